//! Root integration test: the sink's AF_XDP path against real gateways. In a two-armed lab, the
//! sink binds an AF_XDP socket to the server's veth (copy mode) behind the gateway: a paced
//! burst of the generator's probes arrives there intact, each once, an unpaced one without
//! corruption; the sink's replies, prebuilt frames to the gateway's NAT mapping, come back to
//! the generator and open; and the server's kernel UDP stack carried none of it. Probes aimed
//! at a port the sink does not listen on are not counted (the check that the test can fail).
//! Against the dataplane, and against wireguard-go + iptables MASQUERADE (the kernel's NAT
//! picks the mapping the sink answers).
//!
//! Skips with a message when not root. The lab removes its namespaces even when an assertion
//! fails.

use std::net::SocketAddrV4;
use std::time::Duration;

use bench::load_sweep::{point_line, Drain, GeneratorKind, LoadRig, SINK_PORT};
use bench::packets::SizeMix;
use bench::sink_xdp::SinkKind;
use lab::{is_root, GatewayKind, Lab, Node, Topology, SERVER_ADDR};

mod support;
use support::{dataplane_lab, udp_datagrams, where_lost};

/// Attaches the rig with both AF_XDP paths and runs every check; `why` explains a loss.
fn sink_receives_and_answers_through_af_xdp(lab: &mut Lab, why: &dyn Fn(&Lab) -> String) {
    let mut rig = LoadRig::attach_paths(lab, GeneratorKind::Xdp, SinkKind::Xdp)
        .expect("the generator completes a handshake");
    assert!(rig.sink().is_xdp(), "fell back: {}", rig.sink_path());
    assert!(rig.sink_path().contains("copy"), "{}", rig.sink_path());
    eprintln!(
        "generator via {}; sink via {}; {}",
        rig.path(),
        rig.sink_path(),
        rig.cores().note
    );
    // A debug-built gateway on a shared machine can be seconds behind.
    rig.drain = Drain {
        quiet: Duration::from_secs(1),
        limit: Duration::from_secs(10),
    };
    let server_udp_before = udp_datagrams(lab, Node::Server);

    // Paced: every probe arrives, intact, once, at both ends of the size range.
    for (mix, rate) in [(SizeMix::Fixed(64), 2_000.0), (SizeMix::Fixed(1420), 500.0)] {
        let p = rig
            .forward(mix, Some(rate), Duration::from_millis(500))
            .unwrap();
        eprintln!("{}", point_line(&p));
        let t = p.tally;
        assert!(p.sent as f64 >= 0.9 * rate * 0.5, "sent only {}", p.sent);
        assert_eq!(
            t.unique,
            p.sent,
            "{} at {rate} pps: {t:?}\n{}",
            mix.label(),
            why(lab)
        );
        assert_eq!((t.corrupted, t.duplicates, t.foreign), (0, 0, 0), "{t:?}");
        assert_eq!(t.unique_bytes, p.sent_bytes, "{}", mix.label());
        assert!(t.p50_us > 0.0, "no one-way latency measured: {t:?}");
    }

    // Unpaced for a moment: nothing corrupted on the way into the sink's rings.
    let burst = rig
        .forward(SizeMix::Fixed(64), None, Duration::from_millis(200))
        .unwrap();
    eprintln!("{}", point_line(&burst));
    assert!(burst.sent >= 1_000, "sent only {}", burst.sent);
    assert!(burst.tally.unique > 0, "{:?}", burst.tally);
    assert_eq!(burst.tally.corrupted, 0, "{:?}", burst.tally);

    // Reverse: the sink's frames to the NAT mapping come back through the gateway and open.
    let mapped = rig
        .sink()
        .last_source()
        .expect("the sink saw the generator's flow");
    eprintln!("the gateway's mapping of the generator's flow: {mapped}");
    for mix in [SizeMix::Fixed(64), SizeMix::Fixed(1420)] {
        let back = rig
            .reverse(mix, Some(500.0), Duration::from_millis(500))
            .unwrap();
        eprintln!("{}", point_line(&back));
        let t = back.tally;
        assert!(back.sent >= 200, "the sink sent only {}", back.sent);
        assert_eq!(
            t.unique,
            back.sent,
            "{} back: {t:?}\n{}",
            mix.label(),
            why(lab)
        );
        assert_eq!((t.corrupted, t.duplicates), (0, 0), "{t:?}");
    }

    // None of it went through the server's UDP stack.
    let after = udp_datagrams(lab, Node::Server);
    let (udp_in, udp_out) = (after.0 - server_udp_before.0, after.1 - server_udp_before.1);
    assert!(
        udp_in < 10 && udp_out < 10,
        "the server's UDP stack carried {udp_in} in / {udp_out} out"
    );

    // The test can fail: probes to a port the sink does not take are not counted.
    let wrong = SocketAddrV4::new(SERVER_ADDR, SINK_PORT + 1);
    rig.generator_mut().set_sink(wrong);
    let missed = rig
        .forward(
            SizeMix::Fixed(64),
            Some(1_000.0),
            Duration::from_millis(300),
        )
        .unwrap();
    eprintln!("to {wrong}: {}", point_line(&missed));
    assert!(missed.sent >= 200, "sent only {}", missed.sent);
    assert_eq!(
        (missed.tally.received, missed.tally.unique),
        (0, 0),
        "{:?}",
        missed.tally
    );
    if let Some(drops) = rig.sink_kernel_drops() {
        eprintln!("sink AF_XDP socket: {drops}");
    }
}

#[test]
fn xdp_sink_behind_the_dataplane_counts_probes_and_answers_through_the_nat() {
    if !is_root() {
        eprintln!(
            "SKIPPED xdp_sink_behind_the_dataplane_counts_probes_and_answers_through_the_nat: \
             needs root (network namespaces, veth, AF_XDP); run as root"
        );
        return;
    }
    let (mut lab, binary, control) = dataplane_lab("xdpsink");
    sink_receives_and_answers_through_af_xdp(&mut lab, &|lab| where_lost(lab, &binary, &control));
}

#[test]
fn xdp_sink_behind_wireguard_go_masquerade_answers_the_kernels_mapping() {
    if !is_root() {
        eprintln!(
            "SKIPPED xdp_sink_behind_wireguard_go_masquerade_answers_the_kernels_mapping: needs \
             root (network namespaces, veth, AF_XDP); run as root"
        );
        return;
    }
    let mut lab = Lab::builder(Topology::TwoArmed)
        .gateway(GatewayKind::Reference)
        .build()
        .expect("the lab builds");
    lab.wait_for_handshake(Duration::from_secs(10))
        .expect("the lab's client handshakes");
    sink_receives_and_answers_through_af_xdp(&mut lab, &|lab| {
        let nat = lab
            .exec_in(Node::Gateway, &["conntrack", "-L", "-p", "udp"])
            .unwrap_or_default();
        format!(
            "server eth0: {:?}\ngateway lan0: {:?}\nconntrack:\n{nat}",
            lab.interface_counters(Node::Server, "eth0"),
            lab.interface_counters(Node::Gateway, "lan0")
        )
    });
}
