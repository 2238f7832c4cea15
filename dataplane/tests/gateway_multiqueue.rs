//! Root end-to-end test of the gateway with two queues and source NAT: two workers, each on its
//! own AF_XDP socket of a two-queue veth, with packets that land on the worker whose NAT does
//! not own them handed across (`worker::handoff`).
//!
//! The veth ends that reach the gateway get two queues each ([`LabBuilder::gateway_queues`]):
//! the sender picks a tx queue per flow by hash, which on veth is the receiver's rx queue, so
//! parallel downloads spread over both workers as RSS would spread them on a NIC. The NAT
//! gives all of one inside host's flows to one worker, so about half the return traffic
//! arrives at the other one and must cross over. The test checks that every download arrives
//! byte-identical, that both workers received traffic, and that packets were handed over and
//! taken in (the counters of the running gateway, over its control socket).
//!
//! Skips with a message when not root.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lab::{
    is_root, DataplaneGateway, GatewayKind, GwTomlOptions, Lab, Node, Topology, SERVER_ADDR,
};
use ops::client::request_stats;

/// Parallel downloads (one TCP connection, one NAT mapping each) and the size of each.
const DOWNLOADS: usize = 8;
const SIZE: usize = 4 << 20;

/// The two tests run one at a time: both load the two cores fully.
static SERIAL: Mutex<()> = Mutex::new(());

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces, veth, XDP, TUN); run as root");
    true
}

/// A file under the system's temp dir, removed on drop.
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn sha256_of(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Distinct, position-dependent bytes per file, so a packet delivered into the wrong
/// connection or at the wrong offset changes the checksum.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[i % 4] ^ seed)
        .collect()
}

/// `explicit`: `[dataplane] queues = [0, 1]`; otherwise the default, which must find both
/// queues of the veth (the machine has two CPUs).
fn two_workers_hand_over(name: &str, topology: Topology, explicit: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let control = TempPath(std::env::temp_dir().join(format!(
        "dataplane-mq-{}-{}.sock",
        std::process::id(),
        topology.name()
    )));
    let mut dp = DataplaneGateway::new(env!("CARGO_BIN_EXE_dataplane"));
    dp.toml = GwTomlOptions {
        queues: explicit.then(|| vec![0, 1]),
        extra_toml: format!("[control]\nsocket = \"{}\"\n", control.0.display()),
        ..Default::default()
    };
    dp.ready_timeout = Duration::from_secs(5);
    let started = Instant::now();
    let mut lab = Lab::builder(topology)
        .gateway(GatewayKind::Dataplane(dp))
        .gateway_queues(2)
        .build()
        .unwrap_or_else(|e| panic!("{name}: the lab with a two-queue gateway: {e:#}"));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lab.wait_for_handshake(Duration::from_secs(10))
            .expect("wireguard-go handshakes with the two-worker gateway");
        lab.ping_from_client(SERVER_ADDR)
            .expect("ping through the gateway");

        let mut args: Vec<String> = vec![
            "curl".into(),
            "-sS".into(),
            "--fail".into(),
            "--max-time".into(),
            "60".into(),
            "--parallel".into(),
            "--parallel-max".into(),
            DOWNLOADS.to_string(),
        ];
        let mut files = Vec::new();
        for i in 0..DOWNLOADS {
            let blob = pattern(SIZE, i as u8);
            let url = lab
                .write_server_file(&format!("blob-{i}.bin"), &blob)
                .unwrap();
            let served = lab.dir().join("www").join(format!("blob-{i}.bin"));
            let got = lab.dir().join(format!("got-{i}.bin"));
            args.extend(["-o".into(), got.to_string_lossy().into_owned(), url]);
            files.push((served, got));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let t0 = Instant::now();
        let (ok, out) = lab.try_exec_in(Node::Client, &argv).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        assert!(ok, "parallel downloads through the gateway failed: {out}");
        for (served, got) in &files {
            assert_eq!(
                sha256_of(got),
                sha256_of(served),
                "{} differs from what the server sent",
                got.display()
            );
        }
        eprintln!(
            "{name}: {DOWNLOADS} x {} MiB in parallel in {secs:.2}s, all byte-identical",
            SIZE >> 20
        );

        let stats = request_stats(&control.0).expect("stats from the gateway's control socket");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if !explicit && cpus < 2 {
            eprintln!("{name}: one CPU: the default serves one queue; nothing to hand over");
            assert_eq!(stats.workers.len(), 1);
            return;
        }
        assert_eq!(stats.workers.len(), 2, "one worker per queue");
        for w in &stats.workers {
            eprintln!(
                "{name}: worker {}: rx {} tx {} handed_off {} handed_in {} handoff drops {}",
                w.worker,
                w.counters["rx"],
                w.counters["tx"],
                w.counters["handed_off"],
                w.counters["handed_in"],
                w.drops.get("handoff").copied().unwrap_or(0)
            );
            assert!(
                w.counters["rx"] > 0,
                "worker {} received nothing: flows did not spread",
                w.worker
            );
        }
        let off: u64 = stats.workers.iter().map(|w| w.counters["handed_off"]).sum();
        let taken: u64 = stats.workers.iter().map(|w| w.counters["handed_in"]).sum();
        assert!(
            off > 0,
            "no packet was handed over, yet return traffic landed on both queues"
        );
        assert!(taken > 0, "handed-over packets were never taken in");
        assert!(
            taken <= off,
            "more packets taken in ({taken}) than handed over ({off})"
        );
    }));
    if let Err(panic) = result {
        eprintln!(
            "==== {name} failed after {:.1}s; gateway log ====\n{}\n==== end ====",
            started.elapsed().as_secs_f64(),
            lab.gateway_log()
        );
        std::panic::resume_unwind(panic);
    }
    eprintln!("{name} took {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn two_workers_hand_over_one_armed() {
    if skip_unless_root("two_workers_hand_over_one_armed") {
        return;
    }
    two_workers_hand_over("two_workers_hand_over_one_armed", Topology::OneArmed, true);
}

#[test]
fn two_workers_hand_over_two_armed_default_queues() {
    if skip_unless_root("two_workers_hand_over_two_armed_default_queues") {
        return;
    }
    two_workers_hand_over(
        "two_workers_hand_over_two_armed_default_queues",
        Topology::TwoArmed,
        false,
    );
}
