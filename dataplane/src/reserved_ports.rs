//! Keeps the NAT's port range out of the host's own ephemeral ports while the gateway runs
//! (`net.ipv4.ip_local_reserved_ports`, per network namespace), and puts the setting back on
//! exit.
//!
//! A connection the host opens from a port a NAT mapping also holds would have its replies
//! taken by the XDP program. The kernel's default ephemeral range (32768-60999) already ends
//! below the default NAT range (61000-65535), but an operator who widened it would lose
//! connections now and then; reserving the range rules that out. Where /proc/sys is read-only
//! (most containers) the gateway runs without it and says so.
//!
//! On exit only the ports this gateway added are released, from the value the setting holds
//! then: a second gateway in the namespace keeps its own range. Two gateways with the same
//! range share one reservation, and the first to exit releases it; gateways sharing a
//! namespace need distinct ranges anyway when they share an egress address.

use std::io;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use tracing::{info, warn};

const SYSCTL: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// The range reserved by us; on drop, the ports we added are taken out of whatever the
/// setting holds then (another gateway in the namespace may have added its own range since).
#[derive(Debug)]
pub struct ReservedPorts {
    path: PathBuf,
    /// The ports of our range that were not reserved before we started: the ones to release.
    added: PortSet,
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
        let previous = PortSet::parse(&std::fs::read_to_string(&path)?);
        let mut added = PortSet::default();
        for port in range.clone() {
            if !previous.contains(port) {
                added.insert(port);
            }
        }
        if added.is_empty() {
            return Ok(None);
        }
        let mut value = previous;
        value.extend(&added);
        std::fs::write(&path, value.render())?;
        info!(
            ports = %format!("{}-{}", range.start(), range.end()),
            "NAT ports reserved from the host's ephemeral use (ip_local_reserved_ports); released on exit"
        );
        Ok(Some(ReservedPorts { path, added }))
    }

    fn release(&self) -> io::Result<()> {
        let mut value = PortSet::parse(&std::fs::read_to_string(&self.path)?);
        value.remove_all(&self.added);
        std::fs::write(&self.path, value.render())
    }
}

impl Drop for ReservedPorts {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            warn!("releasing the NAT ports in {}: {e}", self.path.display());
        }
    }
}

/// A set of ports, as the sysctl's comma-separated list of ports and `lo-hi` ranges.
#[derive(Clone, PartialEq, Eq)]
struct PortSet(Box<[u64; 1024]>);

impl Default for PortSet {
    fn default() -> Self {
        PortSet(Box::new([0; 1024]))
    }
}

impl std::fmt::Debug for PortSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PortSet({:?})", self.render())
    }
}

impl PortSet {
    /// Entries that do not parse are skipped: the kernel wrote the list and accepts only
    /// well-formed ones, so there are none in practice.
    fn parse(text: &str) -> PortSet {
        let mut set = PortSet::default();
        for entry in text.trim().split(',').map(str::trim) {
            let (lo, hi) = entry.split_once('-').unwrap_or((entry, entry));
            if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) {
                for port in lo..=hi {
                    set.insert(port);
                }
            }
        }
        set
    }

    /// The list as the kernel prints it: ascending, adjacent ports merged into ranges. An
    /// empty set is a lone newline (the kernel refuses an empty write).
    fn render(&self) -> String {
        let mut entries = Vec::new();
        let mut port = 0u32;
        while port <= u32::from(u16::MAX) {
            if !self.contains(port as u16) {
                port += 1;
                continue;
            }
            let lo = port;
            while port < u32::from(u16::MAX) && self.contains(port as u16 + 1) {
                port += 1;
            }
            entries.push(if lo == port {
                lo.to_string()
            } else {
                format!("{lo}-{port}")
            });
            port += 1;
        }
        if entries.is_empty() {
            "\n".to_string()
        } else {
            entries.join(",")
        }
    }

    fn contains(&self, port: u16) -> bool {
        self.0[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    fn insert(&mut self, port: u16) {
        self.0[usize::from(port) / 64] |= 1 << (port % 64);
    }

    fn extend(&mut self, other: &PortSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    fn remove_all(&mut self, other: &PortSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a &= !b;
        }
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_render_as_the_kernel_prints_them() {
        assert_eq!(PortSet::parse("").render(), "\n");
        assert_eq!(PortSet::parse("\n").render(), "\n");
        assert_eq!(
            PortSet::parse("8080,9000-9100\n").render(),
            "8080,9000-9100"
        );
        assert_eq!(
            PortSet::parse("61000-62999,63000-65535").render(),
            "61000-65535"
        );
        assert_eq!(PortSet::parse("0,65535").render(), "0,65535");
    }

    fn reserve(path: &std::path::Path, range: RangeInclusive<u16>) -> Option<ReservedPorts> {
        ReservedPorts::reserve_at(path.to_path_buf(), range).unwrap()
    }

    fn read(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn reserve_and_release_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reserved");
        std::fs::write(&path, "8080\n").unwrap();
        let r = reserve(&path, 61000..=65535).expect("added");
        assert_eq!(read(&path), "8080,61000-65535");
        drop(r);
        assert_eq!(read(&path), "8080");
        std::fs::write(&path, "60000-65535\n").unwrap();
        assert!(reserve(&path, 61000..=65535).is_none(), "covered already");
    }

    /// Two gateways in one namespace with their own ranges: the first to exit must leave the
    /// other's range reserved (restoring the value it saw at start would not).
    #[test]
    fn a_gateway_exiting_keeps_the_other_gateways_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reserved");
        std::fs::write(&path, "8080\n").unwrap();
        let first = reserve(&path, 61000..=62999).expect("first");
        let second = reserve(&path, 63000..=65535).expect("second");
        assert_eq!(read(&path), "8080,61000-65535");
        drop(first);
        assert_eq!(read(&path), "8080,63000-65535");
        // A port the operator reserved meanwhile stays too.
        std::fs::write(&path, "8080,9999,63000-65535").unwrap();
        drop(second);
        assert_eq!(read(&path), "8080,9999");
    }

    /// A range partly reserved before: only the ports we added are released.
    #[test]
    fn only_the_ports_we_added_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reserved");
        std::fs::write(&path, "61000-62000").unwrap();
        let r = reserve(&path, 61000..=65535).expect("added");
        assert_eq!(read(&path), "61000-65535");
        drop(r);
        assert_eq!(read(&path), "61000-62000");
    }
}
