//! Root integration test: the load generator (its `sendmmsg` path, against the UDP sink;
//! `loadgen_xdp.rs` and `sink_xdp.rs` test the AF_XDP paths)
//! is a real WireGuard peer of the real gateway. In a
//! two-armed lab running `dataplane` (AF_XDP copy mode on veth), the generator handshakes, its
//! sealed probes are decrypted, NATed and delivered to the sink (every one, intact, at a low
//! rate), the sink's probes come back encrypted by the gateway and open at the generator, and
//! the gateway's own counters show the packets it decrypted and encrypted.
//!
//! Skips with a message when not root. The lab removes its namespaces even when an assertion
//! fails.

use std::time::{Duration, Instant};

use bench::load_sweep::{point_line, Drain, GeneratorKind, LoadRig, GENERATOR_TUNNEL_ADDR};
use bench::packets::SizeMix;
use bench::sink_xdp::SinkKind;
use lab::e2e::parse_logged_counters;
use lab::{is_root, Node};

mod support;
use support::{dataplane_lab, where_lost};

#[test]
fn generator_packets_are_decrypted_by_the_gateway_and_counted_by_the_sink() {
    if !is_root() {
        eprintln!(
            "SKIPPED generator_packets_are_decrypted_by_the_gateway_and_counted_by_the_sink: \
             needs root (network namespaces, veth, AF_XDP); run as root"
        );
        return;
    }
    let t0 = Instant::now();
    let (mut lab, binary, control) = dataplane_lab("loadgen");
    // Both ends through the kernel's UDP stack: the fallback paths.
    let mut rig = LoadRig::attach_paths(&mut lab, GeneratorKind::Sendmmsg, SinkKind::Udp)
        .expect("the generator completes a handshake");
    assert!(!rig.sink().is_xdp(), "{}", rig.sink_path());
    // A debug-built gateway on a shared machine can be seconds behind; a packet counts as lost
    // only if it has not arrived 10 s after the last one was sent.
    rig.drain = Drain {
        quiet: Duration::from_secs(1),
        limit: Duration::from_secs(10),
    };
    let generator_key = {
        let dump = lab
            .wg(Node::Gateway, &["show", "wg0", "allowed-ips"])
            .unwrap();
        dump.lines()
            .find(|l| l.contains(&format!("{GENERATOR_TUNNEL_ADDR}/32")))
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| panic!("the generator's peer is not on the gateway:\n{dump}"))
    };

    // Warm-up: the gateway resolves the server's MAC and makes the NAT mapping.
    let warm = rig
        .forward(SizeMix::Fixed(64), Some(200.0), Duration::from_millis(250))
        .unwrap();
    eprintln!("warm-up {}", point_line(&warm));
    assert!(
        warm.tally.unique > 0,
        "nothing reached the sink: {warm:?}\n{}",
        where_lost(&lab, &binary, &control)
    );

    // At a low rate every packet arrives, intact, once; at every size.
    let mut forwarded = warm.sent;
    for (mix, rate) in [
        (SizeMix::Fixed(64), 1_000.0),
        (SizeMix::Fixed(1420), 400.0),
        (SizeMix::Imix, 500.0),
    ] {
        let p = rig
            .forward(mix, Some(rate), Duration::from_millis(700))
            .unwrap();
        eprintln!("{}", point_line(&p));
        forwarded += p.sent;
        let t = p.tally;
        assert!(p.sent as f64 >= 0.9 * rate * 0.7, "sent only {}", p.sent);
        assert_eq!(
            t.unique,
            p.sent,
            "{} at {rate} pps: {t:?}\n{}",
            mix.label(),
            where_lost(&lab, &binary, &control)
        );
        assert_eq!((t.corrupted, t.duplicates, t.foreign), (0, 0, 0), "{t:?}");
        assert_eq!(t.latency_samples, t.unique, "every probe timed");
        assert!(t.p50_us > 0.0 && t.p50_us <= t.p99_us, "{t:?}");
        // Every packet arrived at the size it was sent (the sink measures its own bytes).
        assert_eq!(t.unique_bytes, p.sent_bytes, "{}", mix.label());
    }

    // Reverse: the sink answers through the NAT mapping; the gateway encrypts for the
    // generator, which opens every packet.
    let back = rig
        .reverse(SizeMix::Fixed(512), Some(500.0), Duration::from_millis(700))
        .unwrap();
    eprintln!("{}", point_line(&back));
    let t = back.tally;
    assert!(back.sent >= 300, "the sink sent only {}", back.sent);
    assert_eq!(t.unique, back.sent, "{t:?}");
    assert_eq!((t.corrupted, t.duplicates), (0, 0), "{t:?}");
    assert_eq!(t.unique_bytes, back.sent_bytes);

    // The gateway's view: the generator's peer received what it sent (wg show transfer), and
    // the workers decrypted and encrypted at least as many packets.
    let transfer = lab.wg_transfer(Node::Gateway).unwrap();
    let peer = transfer
        .iter()
        .find(|p| p.public_key == generator_key)
        .expect("the generator's peer in wg show transfer");
    assert!(
        peer.rx_bytes >= forwarded * 64,
        "gateway rx {} bytes for {forwarded} packets",
        peer.rx_bytes
    );
    drop(rig);
    lab.signal_gateway("TERM").unwrap();
    assert!(
        lab.wait_gateway_exit(Duration::from_secs(10)).is_some(),
        "the gateway did not stop on SIGTERM"
    );
    let counters = parse_logged_counters(&lab.gateway_log());
    let decrypted: u64 = counters.iter().map(|c| c.decrypted).sum();
    let encrypted: u64 = counters.iter().map(|c| c.encrypted).sum();
    eprintln!(
        "gateway counters: decrypted={decrypted} encrypted={encrypted} (generator sent \
         {forwarded}, sink sent {}); {:.1} s",
        back.sent,
        t0.elapsed().as_secs_f64()
    );
    assert!(decrypted >= forwarded, "{counters:?}");
    assert!(encrypted >= back.sent, "{counters:?}");
    lab.take_gateway();
}
