//! Keeps the NAT's port range out of the host's own ephemeral ports while the gateway runs
//! (`net.ipv4.ip_local_reserved_ports`, per network namespace), and puts the setting back on
//! exit.
//!
//! A connection the host opens from a port a NAT mapping also holds would have its replies
//! taken by the XDP program. The kernel's default ephemeral range (32768-60999) already ends
//! below the default NAT range (61000-65535), but an operator who widened it would lose
//! connections now and then; reserving the range rules that out. Where /proc/sys is read-only
//! (most containers) the gateway runs without it and says so.

use std::io;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use tracing::{info, warn};

const SYSCTL: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// The range reserved by us; the previous value is written back on drop.
#[derive(Debug)]
pub struct ReservedPorts {
    path: PathBuf,
    previous: String,
}

impl ReservedPorts {
    /// Adds `range` to the reserved ports, unless it is reserved already (`None`: nothing to
    /// restore). Failure is logged, not fatal: the gateway works without it.
    pub fn reserve(range: RangeInclusive<u16>) -> Option<ReservedPorts> {
        match Self::reserve_at(PathBuf::from(SYSCTL), range.clone()) {
            Ok(r) => r,
            Err(e) => {
                warn!(
                    "could not reserve the NAT ports {}-{} for the gateway ({SYSCTL}: {e}); \
                     the host's own connections must not use them: keep \
                     net.ipv4.ip_local_port_range below {} or reserve them on the host",
                    range.start(),
                    range.end(),
                    range.start()
                );
                None
            }
        }
    }

    fn reserve_at(path: PathBuf, range: RangeInclusive<u16>) -> io::Result<Option<Self>> {
        let previous = std::fs::read_to_string(&path)?.trim().to_string();
        let Some(value) = with_range(&previous, &range) else {
            return Ok(None);
        };
        std::fs::write(&path, &value)?;
        info!(
            ports = %format!("{}-{}", range.start(), range.end()),
            "NAT ports reserved from the host's ephemeral use (ip_local_reserved_ports); restored on exit"
        );
        Ok(Some(ReservedPorts { path, previous }))
    }
}

impl Drop for ReservedPorts {
    fn drop(&mut self) {
        // An empty write is refused by the kernel; a lone newline clears the list.
        let value = if self.previous.is_empty() {
            "\n".to_string()
        } else {
            self.previous.clone()
        };
        if let Err(e) = std::fs::write(&self.path, value) {
            warn!("restoring {}: {e}", self.path.display());
        }
    }
}

/// `current` (the sysctl's comma-separated ports and ranges) with `range` added, or `None`
/// when an entry covers it already.
fn with_range(current: &str, range: &RangeInclusive<u16>) -> Option<String> {
    let covered = current.split(',').map(str::trim).any(|entry| {
        let (lo, hi) = entry.split_once('-').unwrap_or((entry, entry));
        match (lo.parse::<u16>(), hi.parse::<u16>()) {
            (Ok(lo), Ok(hi)) => lo <= *range.start() && *range.end() <= hi,
            _ => false,
        }
    });
    if covered {
        return None;
    }
    let ours = format!("{}-{}", range.start(), range.end());
    Some(if current.is_empty() {
        ours
    } else {
        format!("{current},{ours}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_added_once_and_kept_with_what_was_there() {
        assert_eq!(
            with_range("", &(61000..=65535)).as_deref(),
            Some("61000-65535")
        );
        assert_eq!(
            with_range("8080,9000-9100", &(61000..=65535)).as_deref(),
            Some("8080,9000-9100,61000-65535")
        );
        assert_eq!(with_range("60000-65535", &(61000..=65535)), None);
        assert_eq!(with_range("61000-65535", &(61000..=65535)), None);
        assert!(with_range("61000-62000", &(61000..=65535)).is_some());
    }

    #[test]
    fn reserve_and_restore_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reserved");
        std::fs::write(&path, "8080\n").unwrap();
        let r = ReservedPorts::reserve_at(path.clone(), 61000..=65535)
            .unwrap()
            .expect("added");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "8080,61000-65535");
        drop(r);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "8080");
    }
}
