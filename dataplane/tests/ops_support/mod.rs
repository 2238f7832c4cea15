//! Support for the ops tests: the real gateway in a lab with its control socket ([`lab`]), and
//! a strict reader of the Prometheus text exposition format (version 0.0.4):
//! it rejects what a Prometheus server would reject (bad names, unquoted or badly escaped label
//! values, samples of an undeclared family, non-numeric values) instead of guessing.
//! (prometheus-parse splits labels on ',' and '=', which breaks on base64 keys and on
//! `allowed_ips="a,b"`, so it cannot check this output.)

#![allow(dead_code)]

pub mod lab;

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Family name -> TYPE.
    pub types: HashMap<String, String>,
    /// Family name -> HELP.
    pub help: HashMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the first sample of `metric` whose labels include `labels`.
    pub fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(metric, labels)
            .unwrap_or_else(|| panic!("no {metric} with {labels:?}"))
            .value
    }

    pub fn find(&self, metric: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.samples.iter().find(|s| {
            s.metric == metric
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// One series of a histogram: `(le, cumulative count)` ascending with `+Inf` last, sum, count.
#[derive(Debug, Clone)]
pub struct HistogramSeries {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Scrape {
    /// The series of histogram `name` whose labels include `labels`, checked for the shape
    /// Prometheus relies on: declared a histogram, buckets cumulative (never decreasing as `le`
    /// grows), a `+Inf` bucket equal to `_count`, and a `_sum`.
    pub fn histogram(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<HistogramSeries, String> {
        if self.types.get(name).map(String::as_str) != Some("histogram") {
            return Err(format!("{name} is not declared a histogram"));
        }
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for s in self.samples.iter().filter(|s| {
            s.metric == bucket
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        }) {
            let le = s.labels["le"].as_str();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse()
                    .map_err(|_| format!("{bucket}: le={le:?} is not a number"))?
            };
            buckets.push((le, s.value));
        }
        if buckets.is_empty() {
            return Err(format!("no {bucket} with {labels:?}"));
        }
        if !buckets.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(format!(
                "{bucket} {labels:?}: le not ascending: {buckets:?}"
            ));
        }
        if !buckets.windows(2).all(|w| w[0].1 <= w[1].1) {
            return Err(format!("{bucket} {labels:?}: counts decrease: {buckets:?}"));
        }
        let one = |suffix: &str| {
            self.find(&format!("{name}{suffix}"), labels)
                .map(|s| s.value)
                .ok_or_else(|| format!("no {name}{suffix} with {labels:?}"))
        };
        let (sum, count) = (one("_sum")?, one("_count")?);
        match buckets.last() {
            Some(&(le, n)) if le.is_infinite() && n == count => {}
            _ => {
                return Err(format!(
                    "{bucket} {labels:?}: +Inf bucket is not _count {count}: {buckets:?}"
                ))
            }
        }
        Ok(HistogramSeries {
            buckets,
            sum,
            count,
        })
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// The family a sample belongs to: its own name, or for `_bucket`, `_sum` and `_count` the
/// histogram (or, without `_bucket`, summary) it is part of.
fn family_of<'a>(types: &HashMap<String, String>, metric: &'a str) -> Option<&'a str> {
    if types.contains_key(metric) {
        return Some(metric);
    }
    for (suffix, kinds) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ] {
        if let Some(base) = metric.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| kinds.contains(&t.as_str())) {
                return Some(base);
            }
        }
    }
    None
}

/// Parses `text`; the error names the line.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut out = Scrape::default();
    for (n, line) in text.lines().enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, arg) = (parts.next(), parts.next(), parts.next());
            match (kw, name, arg) {
                (Some("HELP"), Some(name), Some(help)) if is_name(name, true) => {
                    out.help.insert(name.into(), help.into());
                }
                (Some("TYPE"), Some(name), Some(t)) if is_name(name, true) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(err("unknown TYPE"));
                    }
                    if out.types.insert(name.into(), t.into()).is_some() {
                        return Err(err("TYPE declared twice"));
                    }
                }
                _ => return Err(err("malformed comment")),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let metric = &line[..name_end];
        if !is_name(metric, true) {
            return Err(err("bad metric name"));
        }
        let family =
            family_of(&out.types, metric).ok_or_else(|| err("sample before its # TYPE"))?;
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            loop {
                // label name
                let start = chars
                    .peek()
                    .map(|(i, _)| *i)
                    .ok_or_else(|| err("open labels"))?;
                if r[start..].starts_with('}') {
                    rest = &r[start + 1..];
                    break;
                }
                let eq = r[start..].find('=').ok_or_else(|| err("label without ="))? + start;
                let lname = &r[start..eq];
                if !is_name(lname, false) {
                    return Err(err("bad label name"));
                }
                while chars.peek().map(|(i, _)| *i <= eq) == Some(true) {
                    chars.next();
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(err("label value not quoted"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            _ => return Err(err("bad escape in label value")),
                        },
                        Some('\n') | None => return Err(err("unterminated label value")),
                        Some(c) => value.push(c),
                    }
                }
                if labels.insert(lname.to_string(), value).is_some() {
                    return Err(err("label twice"));
                }
                match chars.peek().map(|(_, c)| *c) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    _ => return Err(err("expected , or } after a label")),
                }
            }
        }
        let mut fields = rest.split_whitespace();
        let value = fields.next().ok_or_else(|| err("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| err("value is not a number"))?,
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp"))?;
        }
        if fields.next().is_some() || !rest.starts_with(' ') {
            return Err(err("trailing garbage"));
        }
        if metric.ends_with("_bucket") && family != metric && !labels.contains_key("le") {
            return Err(err("histogram bucket without le"));
        }
        out.samples.push(Sample {
            metric: metric.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

#[test]
fn the_reader_rejects_what_prometheus_rejects() {
    let ok = "# HELP a_total x y\n# TYPE a_total counter\na_total{k=\"v,=\\\"q\\\"\",z=\"\"} 3\n";
    let s = parse(ok).unwrap();
    assert_eq!(s.samples[0].labels["k"], "v,=\"q\"");
    assert_eq!(s.samples[0].value, 3.0);
    let h = "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\n";
    assert_eq!(parse(h).unwrap().samples.len(), 4);
    for bad in [
        "a 1\n",
        "# TYPE a counter\na{k=v} 1\n",
        "# TYPE a counter\na{k=\"v} 1\n",
        "# TYPE a counter\na{k=\"\\x\"} 1\n",
        "# TYPE a counter\na one\n",
        "# TYPE a counter\n1a 1\n",
        "# TYPE a wrong\n",
        "# TYPE a counter\na_bucket{le=\"1\"} 1\n",
        "# TYPE h histogram\nh_bucket 1\n",
        "# TYPE s summary\ns_bucket{le=\"1\"} 1\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
