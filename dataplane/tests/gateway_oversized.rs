//! Frames longer than the MTU (issue 14, item 2): what the gateway does with them, shown
//! through the real gateway in generic (skb) mode, where the kernel hands XDP merged frames.
//!
//! - A NIC with GRO on (the default of physical NICs) merges a TCP stream's segments before a
//!   generic-mode program sees them. The gateway turns GRO off on its interfaces for as long
//!   as it runs in that mode and restores it on exit (src/xdp/gro.rs). The lab's veth stands
//!   for that NIC: GRO turned on where the gateway receives, segmentation offload off where
//!   the server sends, so the segments arrive MTU-sized as from a wire and GRO merges them.
//!   Without the fix, the 32 MiB download stalls.
//! - A veth whose peer sends GSO frames (the lab's defaults) in generic mode: no setting of the
//!   gateway's own interface can split them, so they are dropped by the XDP program, counted
//!   as `drop_oversized`, and a warning names the remedy once (driver mode, which veth has
//!   and `auto` picks). Before the fix they vanished in the AF_XDP socket with no name.
//!
//! Driver mode, the default, takes frames before GRO; gateway_docker_bridge.rs checks that its
//! downloads see no `drop_oversized` at all.
//!
//! Skips with a message when not root. `sudo -E cargo test -p dataplane --test
//! gateway_oversized -- --nocapture --test-threads=1`.

use std::time::Duration;

use lab::{ClientKind, GatewayKind, Lab, Node, Topology, SERVER_ADDR};
use ops::client::request_stats;

mod e2e_support;
use e2e_support::{dataplane, download_through_tunnel, ping, root_test, ControlSocket, E2e};

fn skb_gateway(control: &ControlSocket) -> lab::DataplaneGateway {
    let mut gw = dataplane(&control.toml());
    gw.toml.mode = Some("skb".into());
    gw
}

/// `ethtool -k`'s value of `feature` for `ifname` in `node`.
fn feature(lab: &Lab, node: Node, ifname: &str, feature: &str) -> bool {
    let out = lab
        .exec_in(node, &["ethtool", "-k", ifname])
        .expect("ethtool -k (the test installs ethtool)");
    let prefix = format!("{feature}:");
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {feature} in `ethtool -k {ifname}`:\n{out}"))
        .trim()
        .starts_with("on")
}

/// The XDP program's `drop_oversized` on the gateway's eth0, from `dataplane stats`.
fn drop_oversized(control: &ControlSocket) -> u64 {
    let stats = request_stats(&control.0).expect("stats from the gateway's control socket");
    let eth0 = stats
        .xdp
        .iter()
        .find(|x| x.interface == "eth0")
        .expect("XDP counters of eth0 in stats");
    *eth0
        .counters
        .get("drop_oversized")
        .expect("drop_oversized among the XDP counters")
}

#[test]
fn skb_mode_behind_nic_gro_downloads_intact_and_restores_gro() {
    root_test("skb_mode_behind_nic_gro", |name| {
        let control = ControlSocket::new(name);
        let mut t = E2e::build_with(
            ClientKind::WireguardGo,
            name,
            Topology::OneArmed,
            false,
            skb_gateway(&control),
        );
        // Make eth0 a NIC with GRO on and the server's segments wire-sized, then start the
        // gateway again so that it attaches to that NIC.
        t.stop_gateway().expect("stopping the first gateway");
        t.exec_in(Node::Gateway, &["ethtool", "-K", "eth0", "gro", "on"])
            .unwrap();
        t.exec_in(
            Node::Server,
            &["ethtool", "-K", "eth0", "tso", "off", "gso", "off"],
        )
        .unwrap();
        assert!(feature(
            &t,
            Node::Gateway,
            "eth0",
            "generic-receive-offload"
        ));
        t.start_gateway(GatewayKind::Dataplane(skb_gateway(&control)))
            .expect("the gateway in skb mode on a GRO interface");
        t.wait_for_handshake(Duration::from_secs(30))
            .expect("the client handshakes with the restarted gateway");
        assert!(
            !feature(&t, Node::Gateway, "eth0", "generic-receive-offload"),
            "GRO still on while the gateway runs in generic mode"
        );
        ping(&t, Node::Client, None, SERVER_ADDR, 2);
        download_through_tunnel(&t, "blob-32m.bin", 32 << 20);
        assert_eq!(drop_oversized(&control), 0, "merged frames reached XDP");
        t.stop_gateway().expect("stopping the gateway");
        assert!(
            feature(&t, Node::Gateway, "eth0", "generic-receive-offload"),
            "GRO not restored after the gateway stopped"
        );
    });
}

#[test]
fn skb_mode_on_veth_counts_gso_frames_and_names_the_remedy() {
    root_test("skb_mode_veth_gso", |name| {
        let control = ControlSocket::new(name);
        let t = E2e::build_with(
            ClientKind::WireguardGo,
            name,
            Topology::OneArmed,
            false,
            skb_gateway(&control),
        );
        assert!(
            feature(&t, Node::Switch, "gw", "tcp-segmentation-offload"),
            "the bridge port facing the gateway must keep its default TSO"
        );
        ping(&t, Node::Client, None, SERVER_ADDR, 2);
        // TCP from the server arrives as GSO frames: the download cannot complete, and the
        // test does not ask it to; it asks that the loss is named.
        let url = t
            .write_server_file("blob-4m.bin", &vec![7u8; 4 << 20])
            .unwrap();
        let _ = t.http_get_from_client_timeout(&url, Duration::from_secs(3));
        let dropped = drop_oversized(&control);
        eprintln!("{name}: drop_oversized {dropped}");
        assert!(dropped > 0, "no oversized frame counted");
        // The watch reads the counters once a second.
        std::thread::sleep(Duration::from_millis(1500));
        let log = t.gateway_log();
        let warnings: Vec<_> = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("drop_oversized"))
            .collect();
        assert_eq!(warnings.len(), 1, "one warning, not {warnings:?}\n{log}");
        assert!(
            warnings[0].contains("mode = \\\"auto\\\"") || warnings[0].contains("mode = \"auto\""),
            "the warning names driver mode as the remedy: {}",
            warnings[0]
        );
    });
}
