//! A worker that dies must not go unnoticed: the real gateway in the one-armed lab, with the
//! test knob that makes worker 0 panic a few seconds after start (`PANIC_AFTER_ENV`). Before
//! the panic the tunnel forwards; after it the gateway stops by itself with a non-zero exit
//! (so a service manager restarts it), says which worker died, and leaves nothing behind (no
//! XDP program on eth0, no wg0). Without supervision the gateway ran on with its queue fallen
//! to the kernel, which answers the NAT's return traffic with resets. Skips when not root.

use std::time::{Duration, Instant};

use dataplane::worker::io::PANIC_AFTER_ENV;
use lab::{is_root, DataplaneGateway, GatewayKind, Lab, Node, Topology, SERVER_ADDR};

/// Seconds after start when worker 0 panics: after the handshake and a few pings.
const PANIC_AFTER_SECS: u64 = 6;

#[test]
fn a_worker_panic_stops_the_gateway_with_an_error_and_a_clean_teardown() {
    if !is_root() {
        eprintln!("SKIPPED worker panic test: needs root (namespaces, XDP, TUN); run as root");
        return;
    }
    let mut dp = DataplaneGateway::new(env!("CARGO_BIN_EXE_dataplane"));
    dp.env
        .push((PANIC_AFTER_ENV.into(), PANIC_AFTER_SECS.to_string()));
    dp.ready_timeout = Duration::from_secs(5);
    let started = Instant::now();
    let mut lab = Lab::builder(Topology::OneArmed)
        .gateway(GatewayKind::Dataplane(dp))
        .build()
        .expect("the lab with the dataplane gateway");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lab.wait_for_handshake(Duration::from_secs(5))
            .expect("handshake before the panic");
        assert_eq!(
            lab.ping_replies(Node::Client, SERVER_ADDR, 2).unwrap(),
            2,
            "forwarding before the panic"
        );
        assert!(
            started.elapsed() < Duration::from_secs(PANIC_AFTER_SECS),
            "the lab took too long to start for this test's timing"
        );
        let deadline = Instant::now() + Duration::from_secs(PANIC_AFTER_SECS + 20);
        let status = loop {
            if let Some(s) = lab.gateway_exit_status() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway still runs {} s after its worker panicked",
                started.elapsed().as_secs()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            !status.success(),
            "exit status after a worker panic: {status}"
        );
        let log = lab.gateway_log();
        assert!(
            log.contains("worker 0 stopped unexpectedly"),
            "the log names the dead worker:\n{log}"
        );
        assert!(
            !lab.xdp_attached("eth0").unwrap(),
            "the XDP program was detached on the way out"
        );
        assert!(
            lab.try_exec_in(Node::Gateway, &["ip", "link", "show", "dev", "wg0"])
                .map(|(ok, _)| !ok)
                .unwrap_or(true),
            "wg0 was removed on the way out"
        );
    }));
    if result.is_err() {
        eprintln!(
            "==== gateway log ====\n{}\n==== end ====",
            lab.gateway_log()
        );
    }
    drop(lab);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
