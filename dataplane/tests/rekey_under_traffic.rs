//! Rekeying under traffic against an unmodified wireguard-go peer, in the namespace lab (root).
//!
//! The gateway runs with its protocol clock 30 times faster than real time (the
//! `DATAPLANE_CLOCK_SPEEDUP` test knob): REJECT_AFTER_TIME (180 s) passes every 6 s and
//! REKEY_AFTER_TIME (120 s) every 4 s, so one iperf3 TCP transfer of 20 s crosses several key
//! changes. The transfer must finish without losing its connection, and the gateway must have
//! completed several handshakes while it ran.

use std::time::Duration;

use dataplane::runtime::CLOCK_SPEEDUP_ENV;
use lab::{is_root, DataplaneGateway, GatewayKind, Lab, Topology};

#[test]
fn tcp_survives_repeated_rekeys_with_an_accelerated_clock() {
    if !is_root() {
        eprintln!("SKIPPED rekey test: needs root to create network namespaces");
        return;
    }
    let mut gw = DataplaneGateway::new(env!("CARGO_BIN_EXE_dataplane"));
    gw.env.push((CLOCK_SPEEDUP_ENV.into(), "30".into()));
    gw.env.push(("RUST_LOG".into(), "info".into()));
    let mut lab = Lab::builder(Topology::OneArmed)
        .gateway(GatewayKind::Dataplane(gw))
        .iperf3_server(true)
        .build()
        .expect("the lab builds");
    lab.wait_for_handshake(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("first handshake: {e:#}\n{}", lab.gateway_log()));
    let handshakes_before = lab.gateway_log().matches("handshake completed").count();

    let bps = lab
        .iperf3_from_client(Duration::from_secs(20), false)
        .unwrap_or_else(|e| panic!("iperf3 lost its connection: {e:#}\n{}", lab.gateway_log()));
    let log = lab.gateway_log();
    let handshakes = log.matches("handshake completed").count() - handshakes_before;
    eprintln!(
        "20 s of TCP at {:.0} Mbit/s across {handshakes} handshakes (gateway clock x30)",
        bps / 1e6
    );
    assert!(bps > 0.0, "no data went through");
    assert!(
        handshakes >= 2,
        "expected several rekeys in 600 s of protocol time, saw {handshakes}\n{log}"
    );
}
