//! Start/stop cycles of the real gateway with traffic, root only.
//!
//! The `dataplane` binary of this build runs in the namespace lab; each cycle starts it, makes
//! the wireguard-go client handshake afresh, pings the server through the tunnel, records the
//! process's open file descriptors and threads at steady state, and stops it: with SIGTERM
//! (exit 0, no XDP program left on any gateway interface, no wg0, no UAPI socket file), or
//! every fifth cycle with SIGKILL (the next start must recover from what it left behind).
//! Across cycles the fd and thread counts of the running process must not grow.
//!
//! `HOSTILE_CYCLES` sets the number of cycles (10 by default, to keep CI short). The soak run
//! documented in SECURITY.md uses 50:
//! `HOSTILE_CYCLES=50 cargo test -p dataplane --test hostile_cycles -- --nocapture`

use std::time::{Duration, Instant};

use lab::{
    is_root, DataplaneGateway, GatewayKind, GwTomlOptions, Lab, Node, Topology, SERVER_ADDR,
};

fn dataplane() -> DataplaneGateway {
    let mut dp = DataplaneGateway::new(env!("CARGO_BIN_EXE_dataplane"));
    dp.toml = GwTomlOptions::default();
    dp.ready_timeout = Duration::from_secs(15);
    dp
}

fn has_wg0(lab: &Lab) -> bool {
    lab.try_exec_in(Node::Gateway, &["ip", "link", "show", "dev", "wg0"])
        .expect("ip link show")
        .0
}

/// (open fds, threads) of a running process.
fn resources(pid: u32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0);
    (fds, threads)
}

#[test]
fn start_stop_cycles_with_traffic_leave_nothing_behind() {
    if !is_root() {
        eprintln!("SKIPPED start_stop_cycles_with_traffic_leave_nothing_behind: needs root");
        return;
    }
    let cycles: u32 = std::env::var("HOSTILE_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let topology = Topology::OneArmed;
    let mut lab = Lab::builder(topology)
        .gateway(GatewayKind::Dataplane(dataplane()))
        .build()
        .expect("the lab with the dataplane gateway builds");
    // The first instance runs with a private /run/wireguard; restart with a visible one.
    lab.signal_gateway("TERM").unwrap();
    lab.wait_gateway_exit(Duration::from_secs(10));
    lab.take_gateway();
    let uapi = lab.dir().join("run-wireguard");
    let sock = uapi.join("wg0.sock");
    let client_conf = lab.dir().join("client-wg.conf");
    let ifaces = topology.gateway_interfaces();
    let mut seen: Vec<(usize, usize)> = Vec::new();
    let t0 = Instant::now();

    for c in 0..cycles {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lab.start_dataplane_with_uapi_dir(dataplane(), &uapi)
                .unwrap_or_else(|e| panic!("cycle {c}: start: {e:#}"));
            assert!(sock.exists(), "cycle {c}: no UAPI socket");
            for i in ifaces {
                assert!(
                    lab.xdp_attached(i).unwrap(),
                    "cycle {c}: no XDP program on {i}"
                );
            }
            // A fresh session with this instance, as a client does after its rekey timeout.
            lab.wg(
                Node::Client,
                &["setconf", "wg0", &client_conf.to_string_lossy()],
            )
            .unwrap();
            lab.wait_for_handshake(Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("cycle {c}: handshake: {e:#}"));
            let got = lab.ping_replies(Node::Client, SERVER_ADDR, 5).unwrap();
            assert!(got >= 4, "cycle {c}: {got}/5 pings through the tunnel");
            let pid = lab.gateway_pid().unwrap();
            let r = resources(pid);
            seen.push(r);
            let kill = c % 5 == 4;
            lab.signal_gateway(if kill { "KILL" } else { "TERM" })
                .unwrap();
            let status = lab.wait_gateway_exit(Duration::from_secs(10));
            lab.take_gateway();
            eprintln!(
                "cycle {c}: pid {pid}, {} fds, {} threads, stopped by {} ({status:?}) at {:.1}s",
                r.0,
                r.1,
                if kill { "SIGKILL" } else { "SIGTERM" },
                t0.elapsed().as_secs_f64()
            );
            if !kill {
                assert_eq!(status.and_then(|s| s.code()), Some(0), "cycle {c}");
                for i in ifaces {
                    assert!(
                        !lab.xdp_attached(i).unwrap(),
                        "cycle {c}: XDP program left on {i}"
                    );
                }
                assert!(!has_wg0(&lab), "cycle {c}: wg0 left behind");
                assert!(!sock.exists(), "cycle {c}: UAPI socket left behind");
            }
        }));
        if let Err(e) = result {
            eprintln!(
                "==== gateway log ({}) ====\n{}",
                lab.gateway_log_path().display(),
                std::fs::read_to_string(lab.gateway_log_path()).unwrap_or_default()
            );
            std::panic::resume_unwind(e);
        }
    }
    let fds: Vec<usize> = seen.iter().map(|r| r.0).collect();
    let threads: Vec<usize> = seen.iter().map(|r| r.1).collect();
    eprintln!(
        "{cycles} cycles in {:.1}s; fds {fds:?}; threads {threads:?}",
        t0.elapsed().as_secs_f64()
    );
    // Same config, same steady state: a leak would show as growth from cycle to cycle. A
    // UAPI connection of the lab's readiness probe may still be open: one fd of slack.
    let (fmin, fmax) = (fds.iter().min().unwrap(), fds.iter().max().unwrap());
    assert!(fmax - fmin <= 1, "open fds vary across cycles: {fds:?}");
    assert!(
        threads.iter().all(|&t| t == threads[0]),
        "threads vary across cycles: {threads:?}"
    );
}
