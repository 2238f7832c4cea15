//! A client whose path to the gateway has a smaller MTU than its tunnel needs (issue 14, item
//! 4): its kernel fragments the 1480-byte UDP of every full-size tunnel packet. The XDP
//! program gives fragments to the kernel, which reassembles them into the socket the slow path
//! binds to the listen port; before the fix nothing read that socket, so every full-size
//! packet from such a client was lost and TCP uploads stalled. Now the slow path reads it and
//! worker 0 runs each datagram through the pipeline (fastpath/src/outer_datagrams.rs), as
//! kernel WireGuard accepts fragmented datagrams.
//!
//! Two-armed, wireguard-go client, the client's `eth0` at MTU 1400 (the gateway's side keeps
//! 1500, so the fragments are made by the client as a PPPoE or tunnelled uplink would): an
//! iperf3 upload through the tunnel moves data, and `outer_datagrams` counts the reassembled
//! datagrams. Only the upload is shown: the gateway's own full-size replies would need a
//! router to fragment them, which the lab does not have (the gateway clears DF so that one
//! can; fastpath/tests/pipeline_outer_headers.rs).
//!
//! Skips with a message when not root. `sudo -E cargo test -p dataplane --test
//! gateway_outer_fragments -- --nocapture --test-threads=1`.

use std::time::Duration;

use lab::{Node, Topology, SERVER_ADDR};
use ops::client::request_stats;

mod e2e_support;
use e2e_support::{assert_pings, root_test, ControlSocket, E2e};

#[test]
fn fragmented_outer_datagrams_are_accepted() {
    root_test("outer_fragments", |name| {
        let control = ControlSocket::new(name);
        let toml = control.toml();
        let mut t = E2e::build(name, Topology::TwoArmed, true, &toml);
        assert_pings(&t, None, SERVER_ADDR, 3);
        t.exec_in(Node::Client, &["ip", "link", "set", "eth0", "mtu", "1400"])
            .unwrap();

        let up = t
            .iperf3_from_client(Duration::from_secs(3), false)
            .expect("iperf3 client -> server through the tunnel");
        let stats = request_stats(&control.0).expect("stats from the gateway's control socket");
        let reassembled = stats
            .slow_path
            .get("outer_datagrams")
            .copied()
            .expect("outer_datagrams among the slow path's counters");
        eprintln!(
            "{name}: iperf3 upload {:.1} Mbit/s, {reassembled} datagrams reassembled by the kernel",
            up / 1e6
        );
        assert!(
            up > 1e6,
            "upload through a fragmenting path: only {up} bit/s"
        );
        assert!(reassembled > 100, "outer_datagrams {reassembled}");
        // Refusals (worker 0's queue full while it was descheduled) are counted, not silent;
        // how many depends on the machine's load, so they are reported, not bounded.
        let dropped = stats.slow_path.get("outer_datagrams_dropped").copied();
        eprintln!("{name}: outer_datagrams_dropped {dropped:?}");
        assert!(
            dropped.is_some(),
            "outer_datagrams_dropped among the counters"
        );
    });
}
