//! The Prometheus endpoint (`[metrics] listen`): the gateway's [`StatsSnapshot`] in the text
//! exposition format, served on `GET /metrics`.
//!
//! Per-peer series use the names and labels of prometheus_wireguard_exporter
//! (`wireguard_sent_bytes_total`, `wireguard_received_bytes_total`,
//! `wireguard_latest_handshake_seconds`, labelled `interface`, `public_key`, `allowed_ips`
//! and, when the peer has a name in the config, `friendly_name`), so dashboards built for it
//! work unchanged. The data plane's own series are prefixed `dataplane_`.

mod server;

pub use server::MetricsServer;

use std::fmt::Write as _;

use crate::StatsSnapshot;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value (backslash, double quote, newline), as the text format requires.
fn esc(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{name}{labels} {value}");
    }
}

/// The snapshot as Prometheus text.
pub fn render(s: &StatsSnapshot) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };

    // prometheus_wireguard_exporter's families.
    let peer_labels: Vec<String> = s
        .peers
        .iter()
        .map(|p| {
            let ips = p.allowed_ips.join(",");
            let mut l = vec![
                ("interface", s.interface.as_str()),
                ("public_key", p.public_key.as_str()),
                ("allowed_ips", ips.as_str()),
            ];
            if let Some(n) = &p.name {
                l.push(("friendly_name", n.as_str()));
            }
            labels(&l)
        })
        .collect();
    f.header(
        "wireguard_sent_bytes_total",
        "counter",
        "Bytes sent to the peer",
    );
    for (p, l) in s.peers.iter().zip(&peer_labels) {
        f.sample("wireguard_sent_bytes_total", l, p.tx_bytes);
    }
    f.header(
        "wireguard_received_bytes_total",
        "counter",
        "Bytes received from the peer",
    );
    for (p, l) in s.peers.iter().zip(&peer_labels) {
        f.sample("wireguard_received_bytes_total", l, p.rx_bytes);
    }
    f.header(
        "wireguard_latest_handshake_seconds",
        "gauge",
        "Seconds from the last handshake",
    );
    for (p, l) in s.peers.iter().zip(&peer_labels) {
        f.sample(
            "wireguard_latest_handshake_seconds",
            l,
            p.latest_handshake.unwrap_or(0),
        );
    }

    f.header(
        "dataplane_uptime_seconds",
        "gauge",
        "Seconds since the gateway started",
    );
    f.sample("dataplane_uptime_seconds", "", s.uptime_seconds);

    f.header(
        "dataplane_worker_packets_total",
        "counter",
        "Frames handled by a worker, by what happened to them",
    );
    for w in &s.workers {
        let id = w.worker.to_string();
        for (what, v) in [
            ("rx", w.rx),
            ("tx", w.tx),
            ("decrypted", w.decrypted),
            ("encrypted", w.encrypted),
            ("keepalive", w.keepalives),
            ("to_slowpath", w.to_slowpath),
            ("handed_off", w.handed_off),
            ("handed_in", w.handed_in),
            ("csum_completed", w.csum_completed),
        ] {
            f.sample(
                "dataplane_worker_packets_total",
                &labels(&[("worker", &id), ("stage", what)]),
                v,
            );
        }
    }
    f.header(
        "dataplane_worker_drops_total",
        "counter",
        "Frames a worker dropped, by reason",
    );
    for w in &s.workers {
        let id = w.worker.to_string();
        for (reason, v) in &w.drops {
            f.sample(
                "dataplane_worker_drops_total",
                &labels(&[("worker", &id), ("reason", reason)]),
                v,
            );
        }
    }
    f.header(
        "dataplane_capture_skipped_total",
        "counter",
        "Packets a running capture could not keep (its reader was too slow); forwarded anyway",
    );
    for w in &s.workers {
        f.sample(
            "dataplane_capture_skipped_total",
            &labels(&[("worker", &w.worker.to_string())]),
            w.capture_skipped,
        );
    }
    f.header(
        "dataplane_stage_latency_seconds",
        "histogram",
        "Time a worker spends in a pipeline stage, over one frame in 64 (sampled)",
    );
    for w in &s.workers {
        let id = w.worker.to_string();
        for (stage, l) in &w.latency {
            for (le, n) in &l.buckets {
                let le = format!("{}", *le as f64 / 1e9);
                f.sample(
                    "dataplane_stage_latency_seconds_bucket",
                    &labels(&[("worker", &id), ("stage", stage), ("le", &le)]),
                    n,
                );
            }
            f.sample(
                "dataplane_stage_latency_seconds_bucket",
                &labels(&[("worker", &id), ("stage", stage), ("le", "+Inf")]),
                l.count,
            );
            f.sample(
                "dataplane_stage_latency_seconds_sum",
                &labels(&[("worker", &id), ("stage", stage)]),
                l.sum_ns as f64 / 1e9,
            );
            f.sample(
                "dataplane_stage_latency_seconds_count",
                &labels(&[("worker", &id), ("stage", stage)]),
                l.count,
            );
        }
    }
    f.header(
        "dataplane_nat_entries",
        "gauge",
        "Live NAT mappings of a worker",
    );
    for w in &s.workers {
        f.sample(
            "dataplane_nat_entries",
            &labels(&[("worker", &w.worker.to_string())]),
            w.nat_entries,
        );
    }
    f.header(
        "dataplane_afxdp_socket_events_total",
        "counter",
        "AF_XDP socket statistics (XDP_STATISTICS) of a worker's sockets",
    );
    for w in &s.workers {
        let id = w.worker.to_string();
        for (stat, v) in &w.xsk {
            f.sample(
                "dataplane_afxdp_socket_events_total",
                &labels(&[("worker", &id), ("event", stat)]),
                v,
            );
        }
    }
    f.header(
        "dataplane_slowpath_events_total",
        "counter",
        "Slow-path events: handshakes, cookie replies, wg0 traffic, send errors",
    );
    let gauges = crate::stats::SLOW_PATH_GAUGES;
    for (event, v) in s
        .slow_path
        .iter()
        .filter(|(k, _)| !gauges.contains(&k.as_str()))
    {
        f.sample(
            "dataplane_slowpath_events_total",
            &labels(&[("event", event)]),
            v,
        );
    }
    // The slow path's watchdog (slowpath::watchdog): gauges, present when the gateway reports
    // them.
    if let Some(v) = s.slow_path.get("slowpath_stalled") {
        f.header(
            "dataplane_slowpath_stalled",
            "gauge",
            "1 while the slow-path thread has not beaten its heartbeat for over 2 s",
        );
        f.sample("dataplane_slowpath_stalled", "", v);
    }
    if let Some(v) = s.slow_path.get("slowpath_heartbeat_age_ms") {
        f.header(
            "dataplane_slowpath_heartbeat_age_seconds",
            "gauge",
            "Seconds since the slow-path thread's last heartbeat",
        );
        f.sample(
            "dataplane_slowpath_heartbeat_age_seconds",
            "",
            *v as f64 / 1000.0,
        );
    }
    if let Some(v) = s.slow_path.get("cookie_mode") {
        f.header(
            "dataplane_handshake_cookie_mode",
            "gauge",
            "1 while handshake initiations are answered with cookie replies (under load)",
        );
        f.sample("dataplane_handshake_cookie_mode", "", v);
    }
    if let Some(d) = s.handshake_queue_depth {
        f.header(
            "dataplane_handshake_queue_depth",
            "gauge",
            "Messages waiting in the worker to slow-path queue",
        );
        f.sample("dataplane_handshake_queue_depth", "", d);
    }
    f.header(
        "dataplane_xdp_packets_total",
        "counter",
        "What the XDP program did with frames, by interface and action",
    );
    for x in &s.xdp {
        for (action, v) in &x.counters {
            f.sample(
                "dataplane_xdp_packets_total",
                &labels(&[("interface", &x.interface), ("action", action)]),
                v,
            );
        }
    }
    out
}
