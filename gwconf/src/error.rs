//! Configuration errors for people: `FILE:LINE: FIELD: what is wrong; what is allowed`.

use std::collections::HashMap;
use std::fmt;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as the operator named it (e.g. `gw.toml`, `/etc/wireguard/wg0.conf`).
    pub file: String,
    /// 1-based line; `None` for problems of the file as a whole (unreadable, empty).
    pub line: Option<usize>,
    /// Dotted path of the field, e.g. `peer[1].allowed_ips[0]` (indices 0-based).
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: ", self.file, line)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one file (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Line numbers of fields by dotted path, so checks that run on the typed config (duplicates,
/// overlaps, port collisions) can still point at the line.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    lines: HashMap<String, usize>,
}

impl Locations {
    pub fn set(&mut self, path: impl Into<String>, line: usize) {
        self.lines.entry(path.into()).or_insert(line);
    }

    /// The line of `path`, or of its closest recorded parent (`peer[1].endpoint` falls back to
    /// `peer[1]`).
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// Collects errors for one file.
#[derive(Debug)]
pub struct ErrorSink {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl ErrorSink {
    pub fn new(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            errors: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        line: Option<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn into_result<T>(mut self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            self.errors.sort_by_key(|e| e.line.unwrap_or(0));
            Err(ConfigErrors(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_and_field() {
        let e = ConfigError {
            file: "gw.toml".into(),
            line: Some(7),
            field: "peer[1].allowed_ips[0]".into(),
            message: "\"10.0.0.300/32\" is not an IP prefix".into(),
        };
        assert_eq!(
            e.to_string(),
            "gw.toml:7: peer[1].allowed_ips[0]: \"10.0.0.300/32\" is not an IP prefix"
        );
    }

    #[test]
    fn locations_fall_back_to_parent() {
        let mut l = Locations::default();
        l.set("peer[1]", 9);
        l.set("peer[1].allowed_ips", 11);
        assert_eq!(l.line("peer[1].allowed_ips[0]"), Some(11));
        assert_eq!(l.line("peer[1].endpoint"), Some(9));
        assert_eq!(l.line("nat.port_range"), None);
    }
}
