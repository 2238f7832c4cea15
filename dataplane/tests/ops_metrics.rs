//! The Prometheus endpoint and the control socket, served from a fake stats source: the scrape
//! is parsed by a strict reader of the text format (`ops_support`) and must carry the
//! prometheus_wireguard_exporter names and labels and the data plane's own families; the
//! control socket answers `dataplane stats` (text and JSON) and refuses unknown requests.
//! Then the real gateway in the lab (root): after traffic, its scrape carries the per-stage
//! latency histograms with samples in every stage.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fastpath::latency::{LatencySummary, BUCKETS_NS};
use ops::metrics::MetricsServer;
use ops::server::ControlServer;
use ops::{client, PeerStats, StatsSnapshot, StatsSource, WorkerStats, XdpStats};

mod ops_support;
use ops_support::lab::{OpsLab, BIN};
use ops_support::Scrape;

/// A source whose worker rx grows by 100 and uptime by 1 s per snapshot, so a test sees fresh
/// data (and a rate of 100/s) each time.
struct Fake {
    calls: AtomicU64,
}

impl StatsSource for Fake {
    fn snapshot(&self) -> StatsSnapshot {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let mut w = WorkerStats::default();
        for (name, v) in [
            ("rx", 100 * n),
            ("tx", 90),
            ("decrypted", 80),
            ("encrypted", 70),
            ("nat_entries", 5),
        ] {
            w.counters.insert(name.into(), v);
        }
        w.drops.insert("no_route".into(), 3);
        w.drops.insert("malformed".into(), 0);
        w.xsk.insert("rx_ring_full".into(), 2);
        // Ten decrypts: four at or under 1 µs, all ten at or under 2 µs.
        w.latency.insert(
            "decrypt".into(),
            LatencySummary {
                count: 10,
                sum_ns: 16_000,
                p50_ns: 1_900,
                p99_ns: 2_000,
                max_ns: 2_000,
                buckets: BUCKETS_NS
                    .iter()
                    .map(|&le| {
                        (
                            le,
                            if le >= 2_000 {
                                10
                            } else if le >= 1_000 {
                                4
                            } else {
                                0
                            },
                        )
                    })
                    .collect(),
            },
        );
        StatsSnapshot {
            interface: "wg0".into(),
            uptime_seconds: n as f64,
            workers: vec![w],
            slow_path: [("handshakes_received".to_string(), 4u64)]
                .into_iter()
                .collect(),
            handshake_queue_depth: Some(1),
            xdp: vec![XdpStats {
                interface: "eth0".into(),
                counters: [("redirect_wireguard".to_string(), 42u64)]
                    .into_iter()
                    .collect(),
                error: None,
            }],
            peers: vec![
                PeerStats {
                    name: Some("peer1".into()),
                    public_key: "2S7mA0vEMethCNQrJpJKE81/JmhgtB+tHHLYQhgM6kk=".into(),
                    endpoint: Some("192.0.2.7:51820".into()),
                    allowed_ips: vec!["10.13.13.2/32".into(), "10.13.13.66/32".into()],
                    latest_handshake: Some(1_700_000_000),
                    rx_bytes: 71_420_072,
                    tx_bytes: 3_208_804,
                },
                PeerStats {
                    name: None,
                    public_key: "qnoxQoQI8KKMupLnSSureORV0wMmH7JryZNsmGVISzU=".into(),
                    allowed_ips: vec!["10.13.13.3/32".into()],
                    ..Default::default()
                },
            ],
        }
    }
}

fn fake() -> Arc<dyn StatsSource> {
    Arc::new(Fake {
        calls: AtomicU64::new(0),
    })
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

#[test]
fn scrape_parses_with_exporter_names_and_data_plane_families() {
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), fake()).unwrap();
    let (head, body) = http_get(server.local_addr(), "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    let scrape: Scrape = ops_support::parse(&body).expect("valid exposition text");

    // prometheus_wireguard_exporter's series, labels and types.
    let sent = scrape.value(
        "wireguard_sent_bytes_total",
        &[
            ("interface", "wg0"),
            ("public_key", "2S7mA0vEMethCNQrJpJKE81/JmhgtB+tHHLYQhgM6kk="),
            ("allowed_ips", "10.13.13.2/32,10.13.13.66/32"),
            ("friendly_name", "peer1"),
        ],
    );
    assert_eq!(sent, 3_208_804.0);
    assert_eq!(scrape.types["wireguard_sent_bytes_total"], "counter");
    assert_eq!(scrape.types["wireguard_received_bytes_total"], "counter");
    assert_eq!(scrape.types["wireguard_latest_handshake_seconds"], "gauge");
    assert_eq!(
        scrape.value(
            "wireguard_received_bytes_total",
            &[("friendly_name", "peer1")]
        ),
        71_420_072.0
    );
    assert_eq!(
        scrape.value(
            "wireguard_latest_handshake_seconds",
            &[("friendly_name", "peer1")]
        ),
        1_700_000_000.0
    );
    // The unnamed peer has no friendly_name label and a 0 handshake (never).
    let other = scrape
        .find(
            "wireguard_latest_handshake_seconds",
            &[("public_key", "qnoxQoQI8KKMupLnSSureORV0wMmH7JryZNsmGVISzU=")],
        )
        .unwrap();
    assert_eq!(other.labels.get("friendly_name"), None);
    assert_eq!(other.labels["allowed_ips"], "10.13.13.3/32");
    assert_eq!(other.value, 0.0);

    // The data plane's own families.
    assert_eq!(
        scrape.value(
            "dataplane_worker_packets_total",
            &[("worker", "0"), ("stage", "rx")]
        ),
        100.0
    );
    assert_eq!(
        scrape.value("dataplane_worker_drops_total", &[("reason", "no_route")]),
        3.0
    );
    assert_eq!(
        scrape.value("dataplane_worker_drops_total", &[("reason", "malformed")]),
        0.0
    );
    assert_eq!(
        scrape.value("dataplane_nat_entries", &[("worker", "0")]),
        5.0
    );
    assert_eq!(scrape.value("dataplane_handshake_queue_depth", &[]), 1.0);
    assert_eq!(
        scrape.value(
            "dataplane_xdp_packets_total",
            &[("interface", "eth0"), ("action", "redirect_wireguard")]
        ),
        42.0
    );
    assert_eq!(
        scrape.value(
            "dataplane_afxdp_socket_events_total",
            &[("event", "rx_ring_full")]
        ),
        2.0
    );
    assert_eq!(
        scrape.value(
            "dataplane_slowpath_events_total",
            &[("event", "handshakes_received")]
        ),
        4.0
    );
    // The latency histogram: buckets in seconds, cumulative, +Inf = count, sum in seconds.
    let h = scrape
        .histogram(
            "dataplane_stage_latency_seconds",
            &[("worker", "0"), ("stage", "decrypt")],
        )
        .unwrap();
    assert_eq!(h.count, 10.0);
    assert!((h.sum - 16e-6).abs() < 1e-12, "{h:?}");
    assert_eq!(h.buckets.len(), BUCKETS_NS.len() + 1);
    let at = |le: f64| {
        h.buckets
            .iter()
            .find(|b| b.0 == le || (b.0 - le).abs() < 1e-15)
            .unwrap()
            .1
    };
    assert_eq!(
        (at(5e-7), at(1e-6), at(2e-6), at(f64::INFINITY)),
        (0.0, 4.0, 10.0, 10.0)
    );

    // Every family has HELP text.
    for name in [
        "wireguard_sent_bytes_total",
        "dataplane_worker_packets_total",
        "dataplane_xdp_packets_total",
        "dataplane_stage_latency_seconds",
    ] {
        assert!(scrape.help.contains_key(name), "no HELP for {name}");
    }

    // Each scrape takes a fresh snapshot.
    let (_, body2) = http_get(server.local_addr(), "/metrics");
    let scrape2 = ops_support::parse(&body2).unwrap();
    assert_eq!(
        scrape2.value("dataplane_worker_packets_total", &[("stage", "rx")]),
        200.0
    );

    let (head, _) = http_get(server.local_addr(), "/nope");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    server.stop();
}

#[test]
fn label_values_are_escaped() {
    let mut snap = fake().snapshot();
    snap.peers[0].name = Some("a \"quoted\" \\ name\nx".into());
    let text = ops::metrics::render(&snap);
    assert!(
        text.contains(r#"friendly_name="a \"quoted\" \\ name\nx""#),
        "{text}"
    );
    // Every non-comment line is `name{labels} value` or `name value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let v = line.rsplit(' ').next().unwrap();
        assert!(v.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
}

#[test]
fn control_socket_serves_stats_to_the_client_and_the_binary() {
    let dir = std::env::temp_dir().join(format!("ops-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("control.sock");
    let server = ControlServer::start(&sock, fake()).unwrap();

    let snap = client::request_stats(&sock).unwrap();
    assert_eq!(snap.workers[0].counters["rx"], 100);
    assert_eq!(snap.peers.len(), 2);
    let raw = client::request(&sock, "reboot").unwrap();
    assert!(raw.contains("\"error\""), "{raw}");
    // A second server on the same live socket is refused.
    assert!(ControlServer::start(&sock, fake()).is_err());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dataplane"))
        .args(["stats", "--socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("worker 0:"), "{text}");
    assert!(text.contains("dropped      3: no_route=3"), "{text}");
    assert!(text.contains("xdp eth0: redirect_wireguard=42"), "{text}");
    assert!(
        text.contains("peer peer1 (2S7mA0vEMethCNQrJpJKE81/JmhgtB+tHHLYQhgM6kk=)"),
        "{text}"
    );
    assert!(
        text.contains("transfer: 68.11 MiB received, 3.06 MiB sent"),
        "{text}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dataplane"))
        .args(["stats", "--json", "--socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    let back: StatsSnapshot = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(back.peers[0].name.as_deref(), Some("peer1"));

    server.stop();
    assert!(!sock.exists(), "the socket file is removed on stop");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dataplane"))
        .args(["stats", "--socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `dataplane --config ...` running?"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stats_watch_refreshes_with_rates() {
    let dir = std::env::temp_dir().join(format!("ops-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("control.sock");
    let server = ControlServer::start(&sock, fake()).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dataplane"))
        .args(["stats", "--watch", "--socket", sock.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Each refresh clears the screen; from the second one on, counters carry their rate.
    let screens: Vec<&str> = text
        .split("\x1b[2J\x1b[H")
        .filter(|s| !s.is_empty())
        .collect();
    assert!(screens.len() >= 2, "{text}");
    assert!(screens[0].contains("rx           100\n"), "{}", screens[0]);
    assert!(
        screens[1].contains("rx           200 (100/s)"),
        "{}",
        screens[1]
    );
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stages the worker times, as the `stage` label names them.
const STAGES: [&str; 4] = ["decrypt", "nat_route_rewrite", "encrypt", "frame"];

#[test]
fn stage_latency_histograms_after_traffic_on_the_real_gateway() {
    use lab::{is_root, Node, SERVER_ADDR};
    use std::time::{Duration, Instant};
    if !is_root() {
        eprintln!("SKIPPED stage_latency_histograms_after_traffic_on_the_real_gateway: needs root (namespaces, XDP); run as root");
        return;
    }
    let mut lab = OpsLab::start("ops-metrics", "[metrics]\nlisten = \"127.0.0.1:9586\"\n");
    // Before any traffic no stage has a sample, so no latency series are exported yet.
    let scrape = |lab: &OpsLab| {
        let text = lab
            .exec_in(
                Node::Gateway,
                &["curl", "-sf", "http://127.0.0.1:9586/metrics"],
            )
            .expect("the metrics endpoint answers");
        ops_support::parse(&text).expect("valid exposition text")
    };
    assert!(scrape(&lab)
        .find(
            "dataplane_stage_latency_seconds_count",
            &[("stage", "decrypt")]
        )
        .is_none_or(|s| s.value == 0.0));

    // Hundreds of frames each way (one in 64 is timed): a 1 MiB download, a second of upload.
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let url = lab.write_server_file("big.bin", &data).unwrap();
    let body = lab.http_get_from_client(&url).expect("the download");
    assert!(body == data, "the download arrived intact");
    let bps = lab
        .iperf3_from_client(Duration::from_secs(1), false)
        .expect("iperf3 through the tunnel");
    assert!(bps > 0.0);

    // The worker publishes its histograms about once a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (scraped, histograms) = loop {
        let s = scrape(&lab);
        let h: Result<Vec<_>, String> = STAGES
            .iter()
            .map(|st| {
                s.histogram(
                    "dataplane_stage_latency_seconds",
                    &[("worker", "0"), ("stage", st)],
                )
            })
            .collect();
        match h {
            Ok(h) if h.iter().all(|h| h.count > 0.0) => break (s, h),
            other => assert!(
                Instant::now() < deadline,
                "latency histograms without samples after traffic: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    for (stage, h) in STAGES.iter().zip(&histograms) {
        eprintln!(
            "{stage}: {} samples, mean {:.1} µs",
            h.count,
            h.sum / h.count * 1e6
        );
        assert!(h.sum > 0.0, "{stage}: {h:?}");
        // At least one bucket below +Inf holds samples: they are measured, not saturated.
        assert!(
            h.buckets.iter().any(|&(le, n)| le.is_finite() && n > 0.0),
            "{stage}: {h:?}"
        );
    }
    // One frame in 64 of what the worker received is timed, and a frame is at least as long
    // as a stage inside it.
    let rx = scraped.value(
        "dataplane_worker_packets_total",
        &[("worker", "0"), ("stage", "rx")],
    );
    let frame = &histograms[3];
    assert!(
        frame.count <= (rx / 64.0).floor(),
        "{} timed of {rx} received",
        frame.count
    );
    assert!(frame.sum >= histograms[0].sum.max(histograms[2].sum));

    // `dataplane stats` shows the percentiles per worker.
    let out = std::process::Command::new(BIN)
        .args(["stats", "--socket", lab.control.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(text.contains("latency (1 frame in 64)"), "{text}");
    for stage in STAGES {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(stage)),
            "no {stage} line: {text}"
        );
    }
    lab.ping_from_client(SERVER_ADDR).expect("ping at the end");
}
