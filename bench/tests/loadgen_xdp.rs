//! Root integration test: the load generator's AF_XDP path against the real gateway. In a
//! two-armed lab running `dataplane` (AF_XDP copy mode on veth), the generator binds its own
//! AF_XDP socket to the client's veth and sends prebuilt Ethernet/IPv4/UDP/WireGuard frames:
//! every probe of a paced burst reaches the sink intact, a short unpaced burst arrives without
//! corruption, the sink's probes come back through the same socket and open, and the client's
//! kernel UDP stack saw none of it (its datagram counters stay put). Frames to a wrong
//! destination port must not be counted as delivered (the check that the test can fail).
//!
//! Skips with a message when not root. The lab removes its namespaces even when an assertion
//! fails.

use std::time::Duration;

use bench::load_sweep::{point_line, Drain, GeneratorKind, LoadRig};
use bench::packets::SizeMix;
use lab::e2e::parse_logged_counters;
use lab::{is_root, Node};

mod support;
use support::{dataplane_lab, udp_datagrams, where_lost};

#[test]
fn xdp_generator_frames_reach_the_sink_and_replies_come_back_through_af_xdp() {
    if !is_root() {
        eprintln!(
            "SKIPPED xdp_generator_frames_reach_the_sink_and_replies_come_back_through_af_xdp: \
             needs root (network namespaces, veth, AF_XDP); run as root"
        );
        return;
    }
    let (mut lab, binary, control) = dataplane_lab("xdpgen");
    let mut rig = LoadRig::attach_with(&mut lab, GeneratorKind::Xdp)
        .expect("the generator completes a handshake");
    assert!(rig.uses_xdp(), "fell back: {}", rig.path());
    assert!(rig.path().contains("copy"), "{}", rig.path());
    eprintln!("generator via {}; {}", rig.path(), rig.cores().note);
    // A debug-built gateway on a shared machine can be seconds behind.
    rig.drain = Drain {
        quiet: Duration::from_secs(1),
        limit: Duration::from_secs(10),
    };
    let udp_before = udp_datagrams(&lab, Node::Client);

    // Paced: every probe arrives, intact, once, at both ends of the size range.
    let mut forwarded = 0;
    for (mix, rate) in [(SizeMix::Fixed(64), 2_000.0), (SizeMix::Fixed(1420), 500.0)] {
        let p = rig
            .forward(mix, Some(rate), Duration::from_millis(500))
            .unwrap();
        eprintln!("{}", point_line(&p));
        forwarded += p.sent;
        let t = p.tally;
        assert!(p.sent as f64 >= 0.9 * rate * 0.5, "sent only {}", p.sent);
        assert_eq!(
            t.unique,
            p.sent,
            "{} at {rate} pps: {t:?}\n{}",
            mix.label(),
            where_lost(&lab, &binary, &control)
        );
        assert_eq!((t.corrupted, t.duplicates, t.foreign), (0, 0, 0), "{t:?}");
        assert_eq!(t.unique_bytes, p.sent_bytes, "{}", mix.label());
    }

    // Unpaced for a moment: the ring path at full speed loses nothing to corruption, and most of
    // it arrives even at a debug-built gateway.
    let burst = rig
        .forward(SizeMix::Fixed(64), None, Duration::from_millis(200))
        .unwrap();
    eprintln!("{}", point_line(&burst));
    forwarded += burst.sent;
    assert!(burst.sent >= 1_000, "sent only {}", burst.sent);
    assert!(burst.tally.unique > 0, "{:?}", burst.tally);
    assert_eq!(burst.tally.corrupted, 0, "{:?}", burst.tally);

    // Reverse: the gateway's encrypted replies come back through the AF_XDP socket.
    let back = rig
        .reverse(SizeMix::Fixed(512), Some(500.0), Duration::from_millis(500))
        .unwrap();
    eprintln!("{}", point_line(&back));
    let t = back.tally;
    assert!(back.sent >= 200, "the sink sent only {}", back.sent);
    assert_eq!(t.unique, back.sent, "{t:?}");
    assert_eq!((t.corrupted, t.duplicates), (0, 0), "{t:?}");

    // None of it went through the client's UDP stack (a few datagrams of the lab's own
    // wireguard-go client's keepalives may).
    let udp_after = udp_datagrams(&lab, Node::Client);
    let (udp_in, udp_out) = (udp_after.0 - udp_before.0, udp_after.1 - udp_before.1);
    assert!(
        udp_out < 10 && udp_in < 10,
        "the client's UDP stack carried {udp_out} out / {udp_in} in of {forwarded} / {} probes",
        back.sent
    );

    // The test can fail: frames to a port the gateway does not listen on are not delivered.
    // (Not a wrong MAC: the gateway's XDP program and workers do not look at the destination
    // MAC, so a veth delivers such frames to it and it forwards them.)
    let right = *rig.xdp_headers_mut().unwrap();
    let wrong_port = right.dst.port() + 1;
    rig.xdp_headers_mut().unwrap().dst.set_port(wrong_port);
    let wrong = rig
        .forward(
            SizeMix::Fixed(64),
            Some(1_000.0),
            Duration::from_millis(300),
        )
        .unwrap();
    eprintln!("to port {wrong_port}: {}", point_line(&wrong));
    *rig.xdp_headers_mut().unwrap() = right;
    assert!(wrong.sent >= 200, "sent only {}", wrong.sent);
    assert_eq!(wrong.tally.unique, 0, "{:?}", wrong.tally);

    drop(rig);
    lab.signal_gateway("TERM").unwrap();
    assert!(
        lab.wait_gateway_exit(Duration::from_secs(10)).is_some(),
        "the gateway did not stop on SIGTERM"
    );
    let counters = parse_logged_counters(&lab.gateway_log());
    let decrypted: u64 = counters.iter().map(|c| c.decrypted).sum();
    let encrypted: u64 = counters.iter().map(|c| c.encrypted).sum();
    eprintln!("gateway counters: decrypted={decrypted} encrypted={encrypted}");
    assert!(
        decrypted >= forwarded - burst.sent + burst.tally.unique,
        "{counters:?}"
    );
    assert!(encrypted >= back.sent, "{counters:?}");
    lab.take_gateway();
}
