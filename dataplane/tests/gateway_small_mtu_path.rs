//! A router with a smaller MTU between the client and the gateway (issue 14, item 5): the
//! client's uplink is 1400 bytes (PPPoE, a tunnelled uplink), the gateway's 1500. Full-size
//! tunnel packets (1480-byte outer datagrams) must cross it both ways, as with kernel
//! WireGuard:
//! - gateway -> client: the gateway sends its outer packets with DF clear (as kernel WireGuard
//!   does), so the router fragments them and the client reassembles; with DF set the router
//!   would drop them and a 32 MiB download would stall;
//! - client -> gateway: the client's kernel fragments, the gateway's kernel reassembles, and
//!   the slow path hands the datagrams to worker 0 (`outer_datagrams`).
//!
//! Two-armed lab with the client behind a router namespace (`LabBuilder::wan_router`: client
//! 198.18.1.2/24 at MTU 1400 <-> router <-> 198.18.0.1/24 at MTU 1500), removed with the lab even
//! on failure. Skips with a message when not root.
//! `sudo -E cargo test -p dataplane --test gateway_small_mtu_path -- --nocapture
//! --test-threads=1`.

use std::time::Duration;

use lab::{GatewayKind, Lab, Topology, SERVER_ADDR};
use ops::client::request_stats;

mod e2e_support;
use e2e_support::{
    assert_pings, dataplane, download_through_tunnel, root_test, ControlSocket, E2e,
};

#[test]
fn full_size_tunnel_packets_cross_a_1400_byte_hop() {
    root_test("small_mtu_path", |name| {
        let control = ControlSocket::new(name);
        let builder = Lab::builder(Topology::TwoArmed)
            .iperf3_server(true)
            .wan_router(1400)
            .gateway(GatewayKind::Dataplane(dataplane(&control.toml())));
        let mut t = E2e::from_builder(name, builder);
        assert_pings(&t, None, SERVER_ADDR, 3);

        download_through_tunnel(&t, "blob-32m.bin", 32 << 20);
        let up = t
            .iperf3_from_client(Duration::from_secs(3), false)
            .expect("iperf3 client -> server through the router");
        let stats = request_stats(&control.0).expect("stats from the gateway's control socket");
        let reassembled = stats.slow_path.get("outer_datagrams").copied().unwrap_or(0);
        eprintln!(
            "{name}: upload {:.1} Mbit/s, {reassembled} client datagrams reassembled",
            up / 1e6
        );
        assert!(up > 1e6, "upload through the 1400-byte hop: {up} bit/s");
        assert!(reassembled > 0, "no fragmented datagram from the client");
    });
}
