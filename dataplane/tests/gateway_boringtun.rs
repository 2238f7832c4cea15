//! Issue 4's client suite with boringtun (`boringtun-cli`, installed into /opt/boringtun by
//! `dataplane/scripts/install-deps.sh`) as the client instead of wireguard-go: the client pings
//! the server and the gateway, downloads 32 MiB byte-identical with the server seeing the
//! gateway's address as the source, and runs iperf3 TCP both ways, one-armed and two-armed.
//! The scenarios are the ones `gateway_e2e.rs` runs with wireguard-go (`e2e_support/`); a
//! second, independent WireGuard implementation on the other end checks that the gateway
//! speaks the protocol and not one implementation's habits.
//!
//! A missing boringtun-cli fails the lab build with the install command; only a non-root run
//! skips. `sudo -E cargo test -p dataplane --test gateway_boringtun -- --nocapture`.

use lab::ClientKind;

#[macro_use]
mod e2e_support;

client_scenario_tests! {
    ClientKind::Boringtun;
    boringtun_ping_server_and_gateway_one_armed => ping_server_and_gateway(OneArmed);
    boringtun_ping_server_and_gateway_two_armed => ping_server_and_gateway(TwoArmed);
    boringtun_download_32_mib_one_armed => download_32_mib(OneArmed);
    boringtun_download_32_mib_two_armed => download_32_mib(TwoArmed);
    boringtun_iperf3_both_directions_one_armed => iperf3_both_directions(OneArmed);
    boringtun_iperf3_both_directions_two_armed => iperf3_both_directions(TwoArmed);
}
