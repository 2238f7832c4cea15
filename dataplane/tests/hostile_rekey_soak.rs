//! Rekey soak: one long TCP transfer through the real gateway in the lab while its
//! protocol clock runs [`DEFAULT_SPEEDUP`] times faster than real time
//! (`DATAPLANE_CLOCK_SPEEDUP`), so that [`DEFAULT_SECS`] of wall time are hours of protocol
//! time and well over a hundred key changes. Root only, and ignored by default (it is long):
//!
//! `HOSTILE_REKEY_SECS=300 HOSTILE_REKEY_SPEEDUP=60 cargo test -p dataplane --test
//! hostile_rekey_soak -- --ignored --nocapture`
//!
//! CI runs the short version, `rekey_under_traffic.rs` (x30, 20 s). What must hold: iperf3's
//! TCP connection survives to the end (iperf3 fails on a reset or a stalled connection), and the
//! gateway completed at least one handshake per [`REKEYS_EVERY`] of protocol time.

use std::time::{Duration, Instant};

use dataplane::runtime::CLOCK_SPEEDUP_ENV;
use lab::{is_root, DataplaneGateway, GatewayKind, Lab, Topology};

const DEFAULT_SPEEDUP: u64 = 60;
const DEFAULT_SECS: u64 = 300;
/// Lower bound on the rate of completed handshakes, in protocol time: a session is renewed at
/// the latest when REJECT_AFTER_TIME (180 s) is near; REKEY_AFTER_TIME (120 s) is the usual.
const REKEYS_EVERY: Duration = Duration::from_secs(180);

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "soak (minutes): run with --ignored, see the module docs"]
fn tcp_survives_hours_of_protocol_time_of_rekeys() {
    if !is_root() {
        eprintln!("SKIPPED rekey soak: needs root to create network namespaces");
        return;
    }
    let speedup = knob("HOSTILE_REKEY_SPEEDUP", DEFAULT_SPEEDUP);
    let secs = knob("HOSTILE_REKEY_SECS", DEFAULT_SECS);
    let mut gw = DataplaneGateway::new(env!("CARGO_BIN_EXE_dataplane"));
    gw.env.push((CLOCK_SPEEDUP_ENV.into(), speedup.to_string()));
    gw.env.push(("RUST_LOG".into(), "info".into()));
    let mut lab = Lab::builder(Topology::OneArmed)
        .gateway(GatewayKind::Dataplane(gw))
        .iperf3_server(true)
        .build()
        .expect("the lab builds");
    lab.wait_for_handshake(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("first handshake: {e:#}\n{}", lab.gateway_log()));
    let before = lab.gateway_log().matches("handshake completed").count();
    let t0 = Instant::now();
    let bps = lab
        .iperf3_from_client(Duration::from_secs(secs), false)
        .unwrap_or_else(|e| {
            panic!(
                "iperf3 lost its connection after {:.0}s: {e:#}",
                t0.elapsed().as_secs_f64()
            )
        });
    let wall = t0.elapsed();
    let handshakes = lab.gateway_log().matches("handshake completed").count() - before;
    let protocol = wall * speedup as u32;
    eprintln!(
        "{secs} s of TCP at {:.0} Mbit/s, gateway clock x{speedup} = {:.1} h of protocol time, \
         {handshakes} handshakes completed (one per {:.0} s of protocol time); transfer \
         counters {:?}",
        bps / 1e6,
        protocol.as_secs_f64() / 3600.0,
        protocol.as_secs_f64() / handshakes.max(1) as f64,
        lab.wg_transfer(lab::Node::Client).ok()
    );
    assert!(bps > 0.0, "no data went through");
    let want = (protocol.as_secs() / REKEYS_EVERY.as_secs()) as usize;
    assert!(
        handshakes >= want,
        "{handshakes} handshakes in {:.0} s of protocol time, expected at least {want}",
        protocol.as_secs_f64()
    );
}
