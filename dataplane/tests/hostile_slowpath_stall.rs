//! Slow-path failure: while the slow-path thread is stalled, the fast path keeps
//! forwarding on the keypairs it already has, and the stall is reported.
//!
//! The real gateway in the one-armed lab, with the test knob that freezes its slow-path thread
//! on purpose a few seconds after start (`slowpath::watchdog`, `STALL_AFTER_ENV` /
//! `STALL_FOR_ENV`). The test waits until `dataplane stats` (over a per-lab control socket)
//! reports the stall, pings the server through the tunnel during it, and checks that the
//! report clears afterwards and counts one stall. Skips with a message when not root.

use std::path::Path;
use std::time::{Duration, Instant};

use lab::{
    is_root, DataplaneGateway, GatewayKind, GwTomlOptions, Lab, Node, Topology, SERVER_ADDR,
};
use ops::client::request_stats;
use ops::stats::StatsSnapshot;
use slowpath::watchdog::{STALL_AFTER_ENV, STALL_FOR_ENV};

/// When the stall starts (seconds after the gateway starts) and how long it lasts: long enough
/// for the watchdog's 2 s threshold plus a ping burst.
const STALL_AFTER_SECS: u64 = 8;
const STALL_FOR_SECS: u64 = 7;

fn gauge(s: &StatsSnapshot, name: &str) -> u64 {
    s.slow_path.get(name).copied().unwrap_or(0)
}

/// Polls the stats until `pred` holds or `timeout` passes; the last snapshot either way.
fn wait_stats(
    socket: &Path,
    timeout: Duration,
    pred: impl Fn(&StatsSnapshot) -> bool,
) -> StatsSnapshot {
    let deadline = Instant::now() + timeout;
    loop {
        let s = request_stats(socket).expect("the control socket answers, stall or not");
        if pred(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn fast_path_forwards_through_a_slow_path_stall_and_the_stall_is_reported() {
    if !is_root() {
        eprintln!("SKIPPED slow-path stall test: needs root (namespaces, XDP, TUN); run as root");
        return;
    }
    let tmp = std::env::temp_dir().join(format!("dataplane-stall-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let control = tmp.join("control.sock");
    let mut dp = DataplaneGateway::new(env!("CARGO_BIN_EXE_dataplane"));
    dp.env
        .push((STALL_AFTER_ENV.into(), STALL_AFTER_SECS.to_string()));
    dp.env
        .push((STALL_FOR_ENV.into(), STALL_FOR_SECS.to_string()));
    dp.toml = GwTomlOptions {
        extra_toml: format!("[control]\nsocket = \"{}\"\n", control.display()),
        ..Default::default()
    };
    dp.ready_timeout = Duration::from_secs(5);
    let mut lab = Lab::builder(Topology::OneArmed)
        .gateway(GatewayKind::Dataplane(dp))
        .build()
        .expect("the lab with the dataplane gateway");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lab.wait_for_handshake(Duration::from_secs(10))
            .expect("handshake before the stall");
        assert_eq!(
            lab.ping_replies(Node::Client, SERVER_ADDR, 3).unwrap(),
            3,
            "forwarding before the stall"
        );
        let before = request_stats(&control).unwrap();
        assert_eq!(gauge(&before, "slowpath_stalled"), 0, "no stall yet");

        let during = wait_stats(&control, Duration::from_secs(STALL_AFTER_SECS + 5), |s| {
            gauge(s, "slowpath_stalled") == 1
        });
        assert_eq!(
            gauge(&during, "slowpath_stalled"),
            1,
            "the stall is reported within its threshold: {:?}",
            during.slow_path
        );
        let t0 = Instant::now();
        let got = lab.ping_replies(Node::Client, SERVER_ADDR, 10).unwrap();
        let still = request_stats(&control).unwrap();
        eprintln!(
            "during the stall: {got}/10 pings through the fast path in {:.1}s, heartbeat age {} ms",
            t0.elapsed().as_secs_f64(),
            gauge(&still, "slowpath_heartbeat_age_ms")
        );
        assert_eq!(
            gauge(&still, "slowpath_stalled"),
            1,
            "the pings must have run inside the stall"
        );
        assert!(got >= 9, "only {got}/10 pings while the slow path stalled");

        let after = wait_stats(&control, Duration::from_secs(STALL_FOR_SECS + 5), |s| {
            gauge(s, "slowpath_stalled") == 0
        });
        assert_eq!(gauge(&after, "slowpath_stalled"), 0, "the report clears");
        assert_eq!(gauge(&after, "slowpath_stalls"), 1, "one stall counted");
        assert_eq!(
            lab.ping_replies(Node::Client, SERVER_ADDR, 3).unwrap(),
            3,
            "forwarding after the stall"
        );
        let log = lab.gateway_log();
        assert!(
            log.contains("stall"),
            "the gateway's log says the slow path stalled:\n{log}"
        );
    }));
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(panic) = result {
        eprintln!(
            "==== gateway log ====\n{}\n==== end ====",
            lab.gateway_log()
        );
        std::panic::resume_unwind(panic);
    }
}
