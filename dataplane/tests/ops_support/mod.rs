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

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
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
        if !out.types.contains_key(metric) {
            return Err(err("sample before its # TYPE"));
        }
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
    for bad in [
        "a 1\n",
        "# TYPE a counter\na{k=v} 1\n",
        "# TYPE a counter\na{k=\"v} 1\n",
        "# TYPE a counter\na{k=\"\\x\"} 1\n",
        "# TYPE a counter\na one\n",
        "# TYPE a counter\n1a 1\n",
        "# TYPE a wrong\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
