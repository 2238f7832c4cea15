//! The article's Docker network through the real gateway, with the features Docker's veths
//! have: TCP from a kernel sender on a veth or bridge carries a partial checksum (only the
//! pseudo-header sum, CHECKSUM_PARTIAL), which the gateway reads raw through AF_XDP and must
//! complete before the NAT reverse and the seal, or the client drops every segment.
//!
//! The lab's one-armed layout already is the network Docker builds, so it is reused rather
//! than built a second time: a Linux bridge (`br0`, in the `sw` namespace where Docker has it
//! in the host's), and every host's `eth0` a veth whose other end is a port of that bridge,
//! all with the kernel's default features (the lab changes none). The client reaches the
//! gateway over the same bridge. The two-armed layout has the server's veth facing the
//! gateway directly, the same offload without a bridge.
//!
//! `gateway_e2e.rs` and `gateway_boringtun.rs` run the download, iperf3 both ways and ping
//! on these same default features, one-armed and two-armed, with both clients. What they cannot
//! see is checked here: that tx checksum offload really is on where the server's frames leave,
//! and that the gateway completed partial checksums (`csum_completed` in `dataplane stats`)
//! during a 32 MiB download that arrived intact.
//!
//! Skips with a message when not root. `sudo -E cargo test -p dataplane --test
//! gateway_docker_bridge -- --nocapture --test-threads=1`.

use std::time::Duration;

use lab::{ClientKind, Lab, Node, Topology, SERVER_ADDR};
use ops::client::request_stats;

mod e2e_support;
use e2e_support::{download_through_tunnel, ping, root_test, ControlSocket, E2e};

/// `ethtool -k`'s "tx-checksumming" of `ifname` in `node`: `None` without ethtool.
fn tx_checksumming(lab: &Lab, node: Node, ifname: &str) -> Option<bool> {
    let (ok, out) = lab
        .try_exec_in(node, &["ethtool", "-k", ifname])
        .unwrap_or((false, String::new()));
    if !ok {
        return None;
    }
    out.lines()
        .find_map(|l| l.trim().strip_prefix("tx-checksumming:"))
        .map(|v| v.trim().starts_with("on"))
}

/// The interfaces the server's TCP segments leave through on their way to the gateway.
fn server_side_ports(topology: Topology) -> &'static [(Node, &'static str)] {
    match topology {
        Topology::OneArmed => &[(Node::Server, "eth0"), (Node::Switch, "gw")],
        Topology::TwoArmed => &[(Node::Server, "eth0")],
    }
}

fn download_completes_partial_checksums(
    name: &'static str,
    topology: Topology,
    client: ClientKind,
) {
    let control = ControlSocket::new(name);
    let mut t = E2e::build_for(client, name, topology, true, &control.toml());
    for &(node, ifname) in server_side_ports(topology) {
        match tx_checksumming(&t, node, ifname) {
            Some(on) => assert!(
                on,
                "{}:{ifname} has tx checksum offload off: the lab must keep the defaults",
                node.role()
            ),
            None => eprintln!("{name}: ethtool unavailable, offload of {ifname} not checked"),
        }
    }
    ping(&t, Node::Client, None, SERVER_ADDR, 2);
    download_through_tunnel(&t, "blob-32m.bin", 32 << 20);
    let stats = request_stats(&control.0).expect("stats from the gateway's control socket");
    let completed: u64 = stats
        .workers
        .iter()
        .map(|w| w.counter("csum_completed"))
        .sum();
    eprintln!("{name}: csum_completed {completed} during the download");
    assert!(
        completed > 0,
        "the download arrived but no partial checksum was completed: the offload was not \
         exercised"
    );
    // Driver mode takes frames before GRO, and the kernel segments for a veth with XDP: no
    // frame above the MTU may reach the program (gateway_oversized.rs covers generic mode).
    for x in &stats.xdp {
        assert_eq!(
            x.counters.get("drop_oversized").copied(),
            Some(0),
            "{}: frames above the MTU reached the XDP program in driver mode",
            x.interface
        );
    }
    let up = t
        .iperf3_from_client(Duration::from_secs(3), false)
        .expect("iperf3 client -> server through the gateway");
    let down = t
        .iperf3_from_client(Duration::from_secs(3), true)
        .expect("iperf3 -R server -> client through the gateway");
    eprintln!(
        "{name}: iperf3 TCP client->server {:.0} Mbit/s, server->client {:.0} Mbit/s",
        up / 1e6,
        down / 1e6
    );
    assert!(up > 1e6, "client->server only {up} bit/s");
    assert!(down > 1e6, "server->client only {down} bit/s");
}

#[test]
fn docker_bridge_wireguard_go_one_armed() {
    root_test("docker_bridge_wireguard_go_one_armed", |name| {
        download_completes_partial_checksums(name, Topology::OneArmed, ClientKind::WireguardGo)
    });
}

#[test]
fn docker_bridge_boringtun_one_armed() {
    root_test("docker_bridge_boringtun_one_armed", |name| {
        download_completes_partial_checksums(name, Topology::OneArmed, ClientKind::Boringtun)
    });
}

#[test]
fn default_offloads_boringtun_two_armed() {
    root_test("default_offloads_boringtun_two_armed", |name| {
        download_completes_partial_checksums(name, Topology::TwoArmed, ClientKind::Boringtun)
    });
}
