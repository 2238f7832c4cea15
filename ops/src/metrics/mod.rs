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
use fastpath::counters::{CounterInfo, DropReason, Kind, Series, WorkerCounters};

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

/// A family's HELP followed by what each of its label values means: one HELP line per family
/// is all the format allows.
fn described<'a>(what: &str, values: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = format!("{what}.");
    for (value, help) in values {
        let _ = write!(s, " {value}: {}.", help.trim_end_matches('.'));
    }
    s
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

    // The workers' counters, as declared in `fastpath::counters`: the packet stages share one
    // family (the HELP says what each stage means), the rest have their own.
    let stages: Vec<(&str, &CounterInfo)> = WorkerCounters::INFO
        .iter()
        .filter_map(|i| match i.series {
            Series::Packets(stage) => Some((stage, i)),
            Series::Own(_) => None,
        })
        .collect();
    f.header(
        "dataplane_worker_packets_total",
        "counter",
        &described(
            "Frames handled by a worker, by what happened to them (stage)",
            stages.iter().map(|(stage, i)| (*stage, i.help)),
        ),
    );
    for w in &s.workers {
        let id = w.worker.to_string();
        for (stage, i) in &stages {
            f.sample(
                "dataplane_worker_packets_total",
                &labels(&[("worker", &id), ("stage", stage)]),
                w.counter(i.name),
            );
        }
    }
    f.header(
        "dataplane_worker_drops_total",
        "counter",
        &described(
            "Frames a worker dropped, by reason",
            DropReason::ALL.iter().map(|r| (r.name(), r.help())),
        ),
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
    for i in WorkerCounters::INFO {
        let Series::Own(family) = i.series else {
            continue;
        };
        let kind = match i.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        f.header(family, kind, i.help.trim_end_matches('.'));
        for w in &s.workers {
            f.sample(
                family,
                &labels(&[("worker", &w.worker.to_string())]),
                w.counter(i.name),
            );
        }
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
        .filter(|(k, _)| !gauges.iter().any(|g| g.key == k.as_str()))
    {
        f.sample(
            "dataplane_slowpath_events_total",
            &labels(&[("event", event)]),
            v,
        );
    }
    // The slow path's watchdog: gauges, present when the gateway reports them.
    for g in &gauges {
        if let Some(v) = s.slow_path.get(g.key) {
            f.header(g.metric, "gauge", g.help);
            f.sample(g.metric, "", *v as f64 / g.per_unit);
        }
    }
    if let Some(d) = s.handshake_queue_depth {
        f.header(
            "dataplane_handshake_queue_depth",
            "gauge",
            "Handshake messages waiting in the workers' two handshake lanes (with and without mac2) to the slow path",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::worker_stats;

    #[test]
    fn every_declared_counter_and_reason_is_exported_and_described() {
        let c = WorkerCounters::default();
        WorkerCounters::add(&c.keepalives, 2);
        c.count_drop(DropReason::DecryptAuthFailed);
        let mut s = StatsSnapshot::default();
        s.workers.push(worker_stats(0, &c));
        let text = render(&s);
        for line in [
            "dataplane_worker_packets_total{worker=\"0\",stage=\"keepalive\"} 2",
            "dataplane_worker_drops_total{worker=\"0\",reason=\"decrypt_auth_failed\"} 1",
            "# TYPE dataplane_nat_entries gauge",
            "dataplane_nat_entries{worker=\"0\"} 0",
            "# TYPE dataplane_capture_skipped_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        let help = |family: &str| {
            let head = format!("# HELP {family} ");
            text.lines().find_map(|l| l.strip_prefix(&head)).unwrap()
        };
        for r in DropReason::ALL {
            assert!(help("dataplane_worker_drops_total").contains(&format!(" {}: ", r.name())));
        }
        assert!(help("dataplane_worker_packets_total").contains(" keepalive: "));
    }
}
