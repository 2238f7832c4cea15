//! The report's headline ratios come from the figures measured, per direction and size, at the
//! highest offered load, and the machine, NIC driver and AF_XDP mode are stated.

use std::time::Duration;

use bench::e2e::GatewayResult;
use bench::load_sweep::LoadPoint;
use bench::packets::SizeMix;
use bench::pipeline::Direction;
use bench::probe::Tally;
use bench::report::{Machine, Report};

fn point(dir: Direction, rate: Option<f64>, sent: u64, delivered: u64, p50: f64) -> LoadPoint {
    LoadPoint {
        direction: dir,
        mix: SizeMix::Fixed(64),
        rate_pps: rate,
        sent,
        elapsed: Duration::from_secs(1),
        sent_bytes: sent * 64,
        sender_limited: false,
        receiver_drops: None,
        tally: Tally {
            received: delivered,
            unique: delivered,
            unique_bytes: delivered * 64,
            latency_samples: delivered,
            p50_us: p50,
            p99_us: p50 * 2.0,
            p999_us: p50 * 3.0,
            max_us: p50 * 3.0,
            ..Tally::default()
        },
    }
}

fn gateway(short: &str, top_delivered: u64, low_p50: f64) -> GatewayResult {
    GatewayResult {
        gateway: format!("{short} gateway"),
        short: short.into(),
        tcp_up_bps: 100e6,
        tcp_down_bps: 50e6,
        load: vec![
            point(Direction::Forward, Some(10_000.0), 10_000, 10_000, low_p50),
            point(Direction::Reverse, Some(10_000.0), 10_000, 10_000, 100.0),
            point(Direction::Forward, None, 200_000, top_delivered, 5_000.0),
            point(
                Direction::Reverse,
                None,
                100_000,
                top_delivered / 2,
                5_000.0,
            ),
        ],
        afxdp_mode: (short == "dataplane").then(|| "copy".to_owned()),
        driver: "veth".into(),
        ..GatewayResult::default()
    }
}

fn report() -> Report {
    Report {
        machine: Machine {
            cpu: "Test CPU".into(),
            cores: 2,
            kernel: "6.18.0-test".into(),
            load: "1.00 1.00 1.00".into(),
        },
        quick: true,
        gateways: vec![
            gateway("dataplane", 90_000, 200.0),
            gateway("wireguard-go", 30_000, 400.0),
            gateway("boringtun", 45_000, 100.0),
        ],
        ..Report::default()
    }
}

#[test]
fn headline_ratios_are_dataplane_over_each_reference_at_the_top_load() {
    let r = report();
    let h = r.headline();
    let fwd = h
        .iter()
        .find(|h| h.what.contains("client -> server, 64 B, highest"))
        .expect("a forward headline row");
    assert_eq!(fwd.ours, 90.0, "kpps at `max`, not at 10 kpps");
    assert_eq!(
        fwd.references,
        vec![
            ("wireguard-go".to_owned(), Some(30.0)),
            ("boringtun".to_owned(), Some(45.0))
        ]
    );
    let rev = h
        .iter()
        .find(|h| h.what.contains("server -> client, 64 B, highest"))
        .expect("a reverse headline row");
    assert_eq!(rev.ours, 45.0);
    let lat = h.iter().find(|h| h.what.contains("latency")).unwrap();
    assert_eq!(lat.ours, 200.0, "p50 at the lowest offered load");

    let md = r.markdown();
    // 90 / 30 and 90 / 45 in the forward row; latency 200 / 400 and 200 / 100.
    let row = md
        .lines()
        .find(|l| l.contains("client -> server, 64 B, highest"))
        .unwrap();
    assert!(
        row.contains("| 3.00 |") && row.contains("| 2.00 |"),
        "{row}"
    );
    let row = md.lines().find(|l| l.contains("latency p50")).unwrap();
    assert!(
        row.contains("| 0.50 |") && row.contains("| 2.00 |"),
        "{row}"
    );
    assert!(md.contains("AF_XDP mode copy, not zero-copy"), "{md}");
    assert!(md.contains("NIC driver veth"));
    assert!(md.contains("Test CPU (2 cores), kernel 6.18.0-test"));
    // Every load point is a table row.
    let rows = md.lines().filter(|l| l.contains("| 64 B | ")).count();
    assert_eq!(rows, 12, "{md}");
}

#[test]
fn the_svg_has_the_load_and_latency_panels_and_the_machine() {
    let dir = std::env::temp_dir().join(format!("bench-report-test-{}", std::process::id()));
    let r = report();
    r.write(&dir).unwrap();
    let svg = std::fs::read_to_string(dir.join("results.svg")).unwrap();
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(md, r.markdown());
    for text in [
        "delivered vs offered",
        "One-way latency",
        "dataplane c-&gt;s",
        "boringtun s-&gt;c",
        "wireguard-go p99",
        "AF_XDP copy mode, not zero-copy",
        "kernel 6.18.0-test",
    ] {
        assert!(svg.contains(text), "no {text:?} in the SVG");
    }
}

#[test]
fn without_the_dataplane_there_is_no_headline() {
    let mut r = report();
    r.gateways.remove(0);
    assert!(r.headline().is_empty());
    assert!(!r.markdown().contains("### Headline"));
}

#[test]
fn the_cores_at_max_are_a_table_only_when_measured() {
    use bench::cpu_split::{CpuShare, CpuSplit, ThreadShare};
    use bench::load_sweep::MaxPointCpu;
    let mut r = report();
    assert!(!r.markdown().contains("Where the cores went"));
    r.gateways[0].cpu_at_max = vec![MaxPointCpu {
        direction: Direction::Forward,
        mix: SizeMix::Fixed(1420),
        split: CpuSplit {
            cpus: vec![
                CpuShare {
                    user: 0.22,
                    system: 0.26,
                    softirq: 0.51,
                    ..CpuShare::default()
                },
                CpuShare {
                    idle: 0.5,
                    user: 0.5,
                    ..CpuShare::default()
                },
            ],
            threads: vec![ThreadShare {
                name: "worker0".into(),
                cores: 0.98,
                cpus: vec![0],
            }],
        },
    }];
    let md = r.markdown();
    let row = md
        .lines()
        .find(|l| l.starts_with("| dataplane | client -> server | 1420 B | cpu0"))
        .unwrap_or_else(|| panic!("no row for the max point:\n{md}"));
    assert_eq!(
        row,
        "| dataplane | client -> server | 1420 B | cpu0 user 22 % sys 26 % softirq 51 %; \
         cpu1 user 50 % sys 0 % softirq 0 % idle 50 % | worker0 0.98 (cpu0) |"
    );
}
