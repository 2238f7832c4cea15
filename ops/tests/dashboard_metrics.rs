//! The Grafana dashboard (`ops/grafana/dataplane.json`) against the metrics the gateway
//! renders: every metric an expression of the dashboard selects must be in the text of
//! [`ops::metrics::render`] over the snapshot the gateway's stats source takes, with the label
//! values the expression asks for (`stage="rx"`, `reason=~"slowpath_full|handshake_queue_full"`, ...). A panel over a
//! renamed or removed series fails here, not as an empty graph in front of an operator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use fastpath::counters::{DropReason, WorkerCounters, XskStats};
use fastpath::latency::{LatencyRecorder, Stage};
use ops::{GatewayStats, PeerNames, StatsSource, XdpCountersSource};
use slowpath::engine::{SlowPath, SlowPathConfig};

const DASHBOARD: &str = include_str!("../grafana/dataplane.json");

/// Labels Prometheus adds when it scrapes (the target's), not the gateway.
const TARGET_LABELS: &[&str] = &["instance", "job"];

const GW_TOML: &str = r#"
[interface]
private_key = "+JFlSD+z7E+jC4egdHTYisN26LkGgkwZ/x+qK8c+4XI="
listen_port = 51820
address = ["10.13.13.1/24"]

[[peer]]
name = "peer1"
public_key = "ZkyQs+CcPGRashZrWqOOqumelXVrLqTAYTdSQffz8nE="
allowed_ips = ["10.13.13.2/32"]

[[peer]]
public_key = "Bn8wg//MwAI35txd06lLrg8DLO46qxbNjrkSTdsIFkQ="
allowed_ips = ["10.13.13.3/32"]

[dataplane]
interfaces = ["eth0"]

[nat]
masquerade = true

[metrics]
listen = "127.0.0.1:9586"
"#;

/// The XDP program's counters, as the binary reads them from the program's map (its counter
/// names live in the binary's crate; the dashboard groups by them and names none).
struct Xdp;

impl XdpCountersSource for Xdp {
    fn interface(&self) -> &str {
        "eth0"
    }
    fn read(&self) -> Result<BTreeMap<String, u64>, String> {
        Ok([("redirect_wireguard", 1000), ("pass_not_ours", 20)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect())
    }
}

/// What the running gateway's metrics endpoint serves, as `ops::start_for_gateway` builds its
/// source: a real slow path over two configured peers (without wg0: no root needed), two
/// workers with traffic, a drop, NAT entries, AF_XDP statistics and published latency.
fn gateway_scrape() -> String {
    let cfg = gwconf::load_str(
        GW_TOML,
        "gw.toml",
        Path::new("."),
        gwconf::Format::GwToml,
        "wg0",
        &gwconf::LoadOptions {
            host: gwconf::HostFacts::unknown(),
            interfaces: None,
        },
    )
    .expect("the test's gw.toml")
    .config;
    let mut interface = cfg.interface.to_wgproto();
    interface.listen_port = 0; // any free port for the slow path's sends
    let (queue, from_workers) = fastpath::queue::slow_path_queue(64);
    let slow = SlowPath::start(
        SlowPathConfig {
            interface,
            peers: cfg.peers.iter().map(|p| p.to_wgproto().unwrap()).collect(),
            tun: None,
            uapi_name: None,
            outer_datagrams: None,
        },
        fastpath::tables::shared_tables(),
        from_workers,
        fastpath::queue::Clock::default(),
    )
    .expect("the slow path starts");
    let workers = (0..2)
        .map(|_| {
            let c = WorkerCounters::default();
            for (counter, n) in [(&c.rx, 1000), (&c.tx, 990), (&c.decrypted, 500)] {
                WorkerCounters::add(counter, n);
            }
            c.nat_entries.store(12, Ordering::Relaxed);
            c.count_drop(DropReason::NoRoute);
            c.xsk.publish(&[XskStats {
                rx_ring_full: 1,
                ..Default::default()
            }]);
            let mut rec = LatencyRecorder::new();
            for stage in Stage::ALL {
                rec.record_ns(stage, 1_500);
            }
            rec.publish(&c.latency);
            Arc::new(c)
        })
        .collect();
    let source = GatewayStats {
        interface: gwconf::schema::defaults::DEVICE_NAME.to_string(),
        started: Instant::now(),
        workers,
        slow: Arc::new(slow),
        xdp: vec![Ok(Box::new(Xdp))],
        names: PeerNames::new(&cfg, None),
        queue,
    };
    let scrape = ops::metrics::render(&source.snapshot());
    if let Ok(slow) = Arc::try_unwrap(source.slow) {
        slow.stop();
    }
    scrape
}

/// The samples of a scrape: metric name -> the label sets of its samples.
type Samples = BTreeMap<String, Vec<BTreeMap<String, String>>>;

fn parse_scrape(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).expect("a sample line");
        let name = &line[..name_end];
        let mut labels = BTreeMap::new();
        if line[name_end..].starts_with('{') {
            let mut rest = &line[name_end + 1..];
            while !rest.starts_with('}') {
                let eq = rest.find("=\"").expect("label=\"value\"");
                let label = rest[..eq].to_string();
                let (value, after) = quoted(&rest[eq + 1..]);
                labels.insert(label, value);
                rest = after.strip_prefix(',').unwrap_or(after);
            }
        }
        out.entry(name.to_string()).or_default().push(labels);
    }
    out
}

/// The string literal at the start of `s` (`"..."`, `'...'` or a backquoted one), unescaped,
/// and what follows it.
fn quoted(s: &str) -> (String, &str) {
    let mut chars = s.char_indices();
    let (_, q) = chars.next().expect("a string literal");
    assert!(matches!(q, '"' | '\'' | '`'), "not a string literal: {s}");
    let mut value = String::new();
    let mut escaped = false;
    for (i, c) in chars {
        match c {
            _ if escaped => {
                value.push(match c {
                    'n' => '\n',
                    c => c,
                });
                escaped = false;
            }
            '\\' if q != '`' => escaped = true,
            c if c == q => return (value, &s[i + 1..]),
            c => value.push(c),
        }
    }
    panic!("unterminated string literal: {s}");
}

/// One vector selector of an expression: the metric and its label matchers.
#[derive(Debug, PartialEq)]
struct Selector {
    metric: String,
    /// `(label, operator, value)`.
    matchers: Vec<(String, String, String)>,
}

/// PromQL words that are not metric names: aggregation operators, keywords and the like.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
];
/// Keywords followed by a parenthesised list of label names.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Skips from the opening bracket at `i` past its matching closing one.
fn skip_bracketed(b: &[u8], mut i: usize, open: u8, close: u8) -> usize {
    let mut depth = 0;
    while i < b.len() {
        if b[i] == open {
            depth += 1;
        } else if b[i] == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    panic!(
        "unbalanced {} in {}",
        open as char,
        String::from_utf8_lossy(b)
    );
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The vector selectors of a PromQL expression (Grafana variables such as `$instance` and
/// `[$__rate_interval]` allowed). Function calls, aggregations, grouping labels, numbers,
/// durations and strings are not selectors.
fn selectors(expr: &str) -> Vec<Selector> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            let (_, rest) = quoted(&expr[i..]);
            i = expr.len() - rest.len();
        } else if c == b'$' {
            i += 1;
            if b.get(i) == Some(&b'{') {
                i = skip_bracketed(b, i, b'{', b'}');
            }
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
        } else if c == b'[' {
            i = skip_bracketed(b, i, b'[', b']');
        } else if c == b'{' {
            panic!("a selector without a metric name in {expr:?}: name the metric");
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            let next = skip_ws(b, i);
            if GROUPING.contains(&word.to_ascii_lowercase().as_str()) {
                if b.get(next) == Some(&b'(') {
                    i = skip_bracketed(b, next, b'(', b')');
                }
            } else if KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
                || b.get(next) == Some(&b'(')
            {
                // An operator or a function call: its arguments are read next.
            } else {
                let mut sel = Selector {
                    metric: word.to_string(),
                    matchers: Vec::new(),
                };
                if b.get(next) == Some(&b'{') {
                    i = next + 1;
                    loop {
                        i = skip_ws(b, i);
                        if b[i] == b'}' {
                            i += 1;
                            break;
                        }
                        let l = i;
                        while is_ident(b[i]) {
                            i += 1;
                        }
                        let label = expr[l..i].to_string();
                        i = skip_ws(b, i);
                        let o = i;
                        while matches!(b[i], b'=' | b'!' | b'~') {
                            i += 1;
                        }
                        let op = expr[o..i].to_string();
                        i = skip_ws(b, i);
                        let (value, rest) = quoted(&expr[i..]);
                        i = skip_ws(b, expr.len() - rest.len());
                        if b[i] == b',' {
                            i += 1;
                        }
                        sel.matchers.push((label, op, value));
                    }
                }
                out.push(sel);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Every PromQL expression of the dashboard: the panels' (rows' too) `expr` and the query
/// variables' `label_values(SELECTOR, LABEL)`, the latter as `(SELECTOR, Some(LABEL))`.
fn expressions(dashboard: &serde_json::Value) -> Vec<(String, Option<String>)> {
    fn walk(v: &serde_json::Value, out: &mut Vec<(String, Option<String>)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr", serde_json::Value::String(e)) => out.push((e.clone(), None)),
                        ("templating", _) => {}
                        _ => walk(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if var["type"] != "query" {
            continue;
        }
        let q = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .expect("a query variable's query");
        let args = q
            .strip_prefix("label_values(")
            .and_then(|a| a.strip_suffix(')'))
            .unwrap_or_else(|| panic!("query variable {q:?}: only label_values(metric, label)"));
        let (sel, label) = args.rsplit_once(',').expect("label_values(metric, label)");
        out.push((sel.trim().to_string(), Some(label.trim().to_string())));
    }
    out
}

/// Whether some sample's `label` satisfies the matcher (regular expressions: only `a|b|c` and
/// `prefix.*`, which the dashboard keeps to).
fn matches_some(samples: &[BTreeMap<String, String>], label: &str, op: &str, value: &str) -> bool {
    let has = |v: &str| samples.iter().any(|s| s.get(label).is_some_and(|x| x == v));
    let any_label = samples.iter().any(|s| s.contains_key(label));
    match op {
        "=" => has(value),
        "!=" | "!~" => any_label,
        "=~" => {
            if let Some(prefix) = value.strip_suffix(".*") {
                assert!(
                    prefix.bytes().all(is_ident),
                    "regex {value:?}: only `a|b|c` and `prefix.*` are checked; keep to those"
                );
                samples
                    .iter()
                    .any(|s| s.get(label).is_some_and(|x| x.starts_with(prefix)))
            } else {
                assert!(
                    value.bytes().all(|c| is_ident(c) || c == b'|'),
                    "regex {value:?}: only `a|b|c` and `prefix.*` are checked; keep to those"
                );
                value.split('|').all(has)
            }
        }
        _ => panic!("unknown matcher operator {op:?}"),
    }
}

/// What the dashboard asks of the scrape that the scrape does not have, one line each; and the
/// metrics it uses.
fn problems(dashboard: &str, scrape: &Samples) -> (Vec<String>, BTreeSet<String>) {
    let dashboard: serde_json::Value = serde_json::from_str(dashboard).expect("dashboard JSON");
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (expr, label_values_of) in expressions(&dashboard) {
        let sels = selectors(&expr);
        if sels.is_empty() {
            problems.push(format!("{expr:?} selects no metric"));
        }
        for sel in sels {
            used.insert(sel.metric.clone());
            let Some(samples) = scrape.get(&sel.metric) else {
                problems.push(format!(
                    "{}: no such metric in the gateway's scrape (in {expr:?})",
                    sel.metric
                ));
                continue;
            };
            for (label, op, value) in &sel.matchers {
                if TARGET_LABELS.contains(&label.as_str()) || value.contains('$') {
                    continue;
                }
                if !matches_some(samples, label, op, value) {
                    problems.push(format!(
                        "{}{{{label}{op}{value:?}}}: no such series (in {expr:?})",
                        sel.metric
                    ));
                }
            }
            if let Some(label) = &label_values_of {
                if !TARGET_LABELS.contains(&label.as_str())
                    && !samples.iter().any(|s| s.contains_key(label))
                {
                    problems.push(format!("{}: no label {label}", sel.metric));
                }
            }
        }
    }
    (problems, used)
}

#[test]
fn every_metric_of_the_dashboard_is_exported_by_the_gateway() {
    let scrape = parse_scrape(&gateway_scrape());
    let (problems, used) = problems(DASHBOARD, &scrape);
    assert!(
        problems.is_empty(),
        "the dashboard asks for series the gateway does not export:\n{}",
        problems.join("\n")
    );
    // What the dashboard is for: peers, drops, latency, NAT, worker rates, slow-path health.
    for m in [
        "wireguard_sent_bytes_total",
        "wireguard_received_bytes_total",
        "wireguard_latest_handshake_seconds",
        "dataplane_worker_packets_total",
        "dataplane_worker_drops_total",
        "dataplane_stage_latency_seconds_bucket",
        "dataplane_nat_entries",
        "dataplane_slowpath_stalled",
        "dataplane_handshake_cookie_mode",
        "dataplane_handshake_queue_depth",
    ] {
        assert!(used.contains(m), "no panel shows {m}; used: {used:?}");
    }
}

#[test]
fn a_renamed_metric_or_label_value_is_caught() {
    let scrape = parse_scrape(&gateway_scrape());
    for (from, to) in [
        ("dataplane_nat_entries{", "dataplane_nat_entry_count{"),
        (
            "wireguard_latest_handshake_seconds",
            "wireguard_handshake_seconds",
        ),
        ("stage=\\\"frame\\\"", "stage=\\\"whole_frame\\\""),
        ("handshake_queue_full", "handshake_lane_full"),
    ] {
        assert!(DASHBOARD.contains(from), "{from}");
        let (problems, _) = problems(&DASHBOARD.replace(from, to), &scrape);
        assert!(!problems.is_empty(), "{from} -> {to} went unnoticed");
    }
}

#[test]
fn selectors_are_told_from_functions_labels_and_variables() {
    let sels = selectors(
        "histogram_quantile(0.99, sum by (stage, le) (rate(a_bucket{worker=~\"$worker\", \
         stage=\"frame\"}[$__rate_interval]))) / on (x) group_left b \
         and time() - c > 0 or vector(0)",
    );
    let names: Vec<_> = sels.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["a_bucket", "b", "c"]);
    assert_eq!(
        sels[0].matchers,
        [
            ("worker".into(), "=~".into(), "$worker".into()),
            ("stage".into(), "=".into(), "frame".into()),
        ]
    );
}
