//! `dataplane stats` as text: one block per source, counters with per-second rates when a
//! previous snapshot is given (`--watch`), and each worker's per-stage latency (p50/p99 over
//! the sampled frames).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::stats::StatsSnapshot;
use fastpath::latency::{human_ns, Stage, SAMPLE_EVERY};

/// Renders `now`; with `prev` (taken `prev.uptime_seconds` earlier), rates are added.
pub fn render(now: &StatsSnapshot, prev: Option<&StatsSnapshot>) -> String {
    let dt = prev
        .map(|p| now.uptime_seconds - p.uptime_seconds)
        .filter(|d| *d > 0.0);
    let rate = |cur: u64, old: Option<u64>| -> String {
        match (dt, old) {
            (Some(dt), Some(old)) => format!(" ({:.0}/s)", cur.saturating_sub(old) as f64 / dt),
            _ => String::new(),
        }
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "gateway {}, up {}",
        now.interface,
        ago(Duration::from_secs(now.uptime_seconds as u64)).trim_end_matches(" ago")
    );
    for w in &now.workers {
        let old = prev.and_then(|p| p.workers.iter().find(|o| o.worker == w.worker));
        let _ = writeln!(s, "worker {}:", w.worker);
        for (name, cur, o) in [
            ("rx", w.rx, old.map(|o| o.rx)),
            ("tx", w.tx, old.map(|o| o.tx)),
            ("decrypted", w.decrypted, old.map(|o| o.decrypted)),
            ("encrypted", w.encrypted, old.map(|o| o.encrypted)),
            ("keepalives", w.keepalives, old.map(|o| o.keepalives)),
            ("to_slowpath", w.to_slowpath, old.map(|o| o.to_slowpath)),
            ("handed_off", w.handed_off, old.map(|o| o.handed_off)),
            ("handed_in", w.handed_in, old.map(|o| o.handed_in)),
            (
                "csum_completed",
                w.csum_completed,
                old.map(|o| o.csum_completed),
            ),
        ] {
            let _ = writeln!(s, "  {name:<12} {cur}{}", rate(cur, o));
        }
        let _ = writeln!(s, "  {:<12} {}", "nat_entries", w.nat_entries);
        let drops: Vec<String> = w
            .drops
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| {
                let o = old.and_then(|o| o.drops.get(k).copied());
                format!("{k}={v}{}", rate(*v, o))
            })
            .collect();
        let total: u64 = w.drops.values().sum();
        let _ = writeln!(
            s,
            "  {:<12} {total}{}",
            "dropped",
            if drops.is_empty() {
                String::new()
            } else {
                format!(": {}", drops.join(" "))
            }
        );
        let xsk: Vec<String> = w
            .xsk
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !xsk.is_empty() {
            let _ = writeln!(s, "  {:<12} {}", "af_xdp", xsk.join(" "));
        }
        if let Some(point) = w.capture {
            let _ = writeln!(s, "  {:<12} running at {point}", "capture");
        }
        if w.capture_skipped > 0 {
            let _ = writeln!(s, "  {:<12} {}", "capture_skipped", w.capture_skipped);
        }
        if w.latency.values().any(|l| l.count > 0) {
            let _ = writeln!(
                s,
                "  latency (1 frame in {SAMPLE_EVERY}):       p50       p99   frames"
            );
            // In the order a frame passes the stages, then any the gateway adds later.
            let known = Stage::ALL.map(Stage::name);
            let ordered = known
                .iter()
                .filter_map(|k| w.latency.get_key_value(*k))
                .chain(
                    w.latency
                        .iter()
                        .filter(|(k, _)| !known.contains(&k.as_str())),
                );
            for (stage, l) in ordered.filter(|(_, l)| l.count > 0) {
                let _ = writeln!(
                    s,
                    "    {stage:<22} {:>9} {:>9} {:>8}",
                    human_ns(l.p50_ns),
                    human_ns(l.p99_ns),
                    l.count
                );
            }
        }
    }
    let slow: Vec<String> = now
        .slow_path
        .iter()
        .map(|(k, v)| {
            let o = prev.and_then(|p| p.slow_path.get(k).copied());
            format!("{k}={v}{}", rate(*v, o))
        })
        .collect();
    let _ = writeln!(s, "slow path: {}", slow.join(" "));
    let _ = writeln!(
        s,
        "handshake queue depth: {}",
        now.handshake_queue_depth
            .map(|d| d.to_string())
            .unwrap_or_else(|| "n/a".into())
    );
    for x in &now.xdp {
        match &x.error {
            Some(e) => {
                let _ = writeln!(s, "xdp {}: unreadable: {e}", x.interface);
            }
            None => {
                let old = prev.and_then(|p| p.xdp.iter().find(|o| o.interface == x.interface));
                let c: Vec<String> = x
                    .counters
                    .iter()
                    .map(|(k, v)| {
                        let o = old.and_then(|o| o.counters.get(k).copied());
                        format!("{k}={v}{}", rate(*v, o))
                    })
                    .collect();
                let _ = writeln!(s, "xdp {}: {}", x.interface, c.join(" "));
            }
        }
    }
    let wall = SystemTime::now();
    for p in &now.peers {
        let old = prev.and_then(|o| o.peers.iter().find(|q| q.public_key == p.public_key));
        let _ = writeln!(
            s,
            "peer {} ({})",
            p.name.as_deref().unwrap_or("(unnamed)"),
            p.public_key
        );
        if let Some(e) = &p.endpoint {
            let _ = writeln!(s, "  endpoint: {e}");
        }
        let _ = writeln!(s, "  allowed ips: {}", p.allowed_ips.join(", "));
        let hs = match p.latest_handshake {
            Some(t) => ago(wall
                .duration_since(UNIX_EPOCH + Duration::from_secs(t))
                .unwrap_or_default()),
            None => "never".into(),
        };
        let _ = writeln!(s, "  latest handshake: {hs}");
        let byte_rate = |cur: u64, o: Option<u64>| match (dt, o) {
            (Some(dt), Some(o)) => {
                format!(" ({}/s)", bytes((cur.saturating_sub(o) as f64 / dt) as u64))
            }
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  transfer: {} received{}, {} sent{}",
            bytes(p.rx_bytes),
            byte_rate(p.rx_bytes, old.map(|o| o.rx_bytes)),
            bytes(p.tx_bytes),
            byte_rate(p.tx_bytes, old.map(|o| o.tx_bytes)),
        );
    }
    s
}

/// "1 hour, 2 minutes, 3 seconds ago", as `wg show` prints ages.
pub fn ago(d: Duration) -> String {
    let mut left = d.as_secs();
    if left == 0 {
        return "Now".into();
    }
    let mut parts = Vec::new();
    for (unit, secs) in [
        ("day", 86_400),
        ("hour", 3_600),
        ("minute", 60),
        ("second", 1),
    ] {
        let n = left / secs;
        left %= secs;
        if n > 0 {
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
    }
    format!("{} ago", parts.join(", "))
}

/// "1.50 KiB", as `wg show` prints transfer.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2} {}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wg_style_ages_and_sizes() {
        assert_eq!(ago(Duration::from_secs(0)), "Now");
        assert_eq!(ago(Duration::from_secs(61)), "1 minute, 1 second ago");
        assert_eq!(
            ago(Duration::from_secs(7322)),
            "2 hours, 2 minutes, 2 seconds ago"
        );
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 20), "3.00 MiB");
    }

    use crate::stats::{PeerStats, WorkerStats};

    #[test]
    fn rates_come_from_the_previous_snapshot() {
        let mut a = StatsSnapshot {
            interface: "wg0".into(),
            uptime_seconds: 10.0,
            ..Default::default()
        };
        a.workers.push(WorkerStats {
            rx: 100,
            ..Default::default()
        });
        a.peers.push(PeerStats {
            name: Some("peer1".into()),
            public_key: "k".into(),
            rx_bytes: 0,
            ..Default::default()
        });
        let mut b = a.clone();
        b.uptime_seconds = 12.0;
        b.workers[0].rx = 300;
        b.workers[0].drops.insert("no_route".into(), 4);
        b.peers[0].rx_bytes = 4096;
        let once = render(&b, None);
        assert!(once.contains("rx           300\n"), "{once}");
        assert!(once.contains("dropped      4: no_route=4\n"), "{once}");
        assert!(once.contains("peer peer1 (k)"), "{once}");
        let watched = render(&b, Some(&a));
        assert!(watched.contains("rx           300 (100/s)"), "{watched}");
        assert!(
            watched.contains("4.00 KiB received (2.00 KiB/s)"),
            "{watched}"
        );
        assert!(watched.contains("handshake queue depth: n/a"), "{watched}");
        assert!(
            !once.contains("latency"),
            "no latency before any sample: {once}"
        );
        assert!(!once.contains("capture"), "no capture running: {once}");
    }

    #[test]
    fn latency_percentiles_and_a_running_capture_are_shown_per_worker() {
        use fastpath::capture::CapturePoint;
        use fastpath::latency::LatencySummary;
        let mut snap = StatsSnapshot::default();
        let mut w = WorkerStats {
            worker: 1,
            capture: Some(CapturePoint::Decrypted),
            ..Default::default()
        };
        let stage = |count, p50_ns, p99_ns| LatencySummary {
            count,
            p50_ns,
            p99_ns,
            ..Default::default()
        };
        w.latency.insert("decrypt".into(), stage(40, 2_100, 8_000));
        w.latency.insert("encrypt".into(), stage(0, 0, 0));
        w.latency
            .insert("nat_route_rewrite".into(), stage(40, 3_000, 9_000));
        w.latency.insert("frame".into(), stage(64, 950, 1_200_000));
        snap.workers.push(w);
        let text = render(&snap, None);
        assert!(text.contains("worker 1:\n"), "{text}");
        assert!(
            text.contains("capture      running at decrypted\n"),
            "{text}"
        );
        let line = |stage: &str| {
            text.lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|w| w.first() == Some(&stage))
        };
        assert_eq!(
            line("decrypt"),
            Some(vec!["decrypt", "2.1µs", "8.0µs", "40"])
        );
        assert_eq!(line("frame"), Some(vec!["frame", "950ns", "1.2ms", "64"]));
        // Pipeline order, not alphabetical: the forwarding stage before the whole frame.
        let nat = text.find("    nat_route_rewrite").unwrap();
        assert!(
            nat < text.find("    frame").unwrap(),
            "pipeline order: {text}"
        );
        // A stage without samples is left out rather than shown as zero.
        assert_eq!(line("encrypt"), None);
    }
}
