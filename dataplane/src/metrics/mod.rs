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

use crate::control::StatsSnapshot;

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
    for (event, v) in &s.slow_path {
        f.sample(
            "dataplane_slowpath_events_total",
            &labels(&[("event", event)]),
            v,
        );
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
