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
//! Two-armed lab rewired by this test: the client's wire to `wan0` is replaced by a router
//! namespace (client 198.18.1.2/24 at MTU 1400 <-> router <-> 198.18.0.1/24 at MTU 1500). The
//! router's namespace is removed even on failure. Skips with a message when not root.
//! `sudo -E cargo test -p dataplane --test gateway_small_mtu_path -- --nocapture
//! --test-threads=1`.

use std::process::Command;
use std::time::Duration;

use lab::{GatewayKind, Node, Topology, SERVER_ADDR};
use ops::client::request_stats;

mod e2e_support;
use e2e_support::{
    assert_pings, dataplane, download_through_tunnel, root_test, ControlSocket, E2e,
};

/// A namespace this test made, deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn full_size_tunnel_packets_cross_a_1400_byte_hop() {
    root_test("small_mtu_path", |name| {
        let control = ControlSocket::new(name);
        let toml = control.toml();
        let mut t = E2e::build(name, Topology::TwoArmed, true, &toml);
        t.stop_gateway()
            .expect("stopping the gateway to rewire its WAN");

        let (client, gw) = (t.ns_name(Node::Client), t.ns_name(Node::Gateway));
        let router = Netns(format!("{}-rt", t.prefix()));
        let _ = Command::new("ip")
            .args(["netns", "del", &router.0])
            .output();
        ip(&["netns", "add", &router.0]);
        let rt = router.0.as_str();
        ip(&["-n", &gw, "link", "del", "wan0"]); // and the client's eth0 with it
        ip(&[
            "link", "add", "c0", "netns", rt, "type", "veth", "peer", "name", "eth0", "netns",
            &client,
        ]);
        ip(&[
            "link", "add", "g0", "netns", rt, "type", "veth", "peer", "name", "wan0", "netns", &gw,
        ]);
        ip(&["-n", &client, "link", "set", "eth0", "mtu", "1400", "up"]);
        ip(&["-n", &client, "addr", "add", "198.18.1.2/24", "dev", "eth0"]);
        ip(&[
            "-n",
            &client,
            "route",
            "add",
            "198.18.0.0/24",
            "via",
            "198.18.1.1",
        ]);
        ip(&["-n", rt, "link", "set", "lo", "up"]);
        ip(&["-n", rt, "link", "set", "c0", "mtu", "1400", "up"]);
        ip(&["-n", rt, "addr", "add", "198.18.1.1/24", "dev", "c0"]);
        ip(&["-n", rt, "link", "set", "g0", "up"]);
        ip(&["-n", rt, "addr", "add", "198.18.0.254/24", "dev", "g0"]);
        ip(&[
            "netns",
            "exec",
            rt,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        ip(&["-n", &gw, "addr", "add", "198.18.0.1/24", "dev", "wan0"]);
        ip(&["-n", &gw, "link", "set", "wan0", "up"]);
        ip(&[
            "-n",
            &gw,
            "route",
            "add",
            "198.18.1.0/24",
            "via",
            "198.18.0.254",
        ]);

        t.start_gateway(GatewayKind::Dataplane(dataplane(&toml)))
            .expect("the gateway on the rewired WAN");
        // A fresh session from the client's new address.
        let client_conf = t.dir().join("client-wg.conf");
        t.wg(
            Node::Client,
            &["setconf", "wg0", &client_conf.to_string_lossy()],
        )
        .unwrap();
        t.wait_for_handshake(Duration::from_secs(30))
            .expect("the client handshakes through the router");
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
