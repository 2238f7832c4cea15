//! Which receive queues of the NICs the gateway serves: one worker each.
//!
//! An XDP program sees every queue, but it can only redirect to an AF_XDP socket bound to the
//! queue the frame arrived on; frames on a queue without a socket fall through to the kernel
//! (`XDP_PASS`), where no WireGuard listens. So every queue that can receive tunnel or NAT
//! traffic needs a worker, and more workers than CPUs only make them share cores. Without
//! `[dataplane] queues`, the gateway serves queues `0..n` with `n` the smaller of the queue
//! count of its interfaces and its CPUs, and says which queues are left to the kernel.

use std::io;
use std::path::Path;

/// Receive queues of `ifname` in this network namespace, counted in
/// `/sys/class/net/<ifname>/queues/` (`rx-0`, `rx-1`, ...), as `ethtool -l` reports them.
pub fn rx_queue_count(ifname: &str) -> io::Result<u32> {
    count_rx_dirs(&Path::new("/sys/class/net").join(ifname).join("queues"))
}

fn count_rx_dirs(dir: &Path) -> io::Result<u32> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name
            .strip_prefix("rx-")
            .is_some_and(|i| i.parse::<u32>().is_ok())
        {
            n += 1;
        }
    }
    Ok(n.max(1))
}

/// The queues served by default: `0..min(queue counts, cpus)`, at least queue 0.
pub fn default_queues(queue_counts: &[u32], cpus: usize) -> Vec<u32> {
    let nic = queue_counts.iter().copied().min().unwrap_or(1);
    let n = nic.min(u32::try_from(cpus).unwrap_or(u32::MAX)).max(1);
    (0..n).collect()
}

/// The queues below `count` that `served` leaves out (their frames go to the kernel).
pub fn unserved(count: u32, served: &[u32]) -> Vec<u32> {
    (0..count).filter(|q| !served.contains(q)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_bounded_by_the_smallest_nic_and_the_cpus() {
        assert_eq!(default_queues(&[1], 2), [0]);
        assert_eq!(default_queues(&[8], 2), [0, 1]);
        assert_eq!(default_queues(&[2, 4], 8), [0, 1]);
        assert_eq!(default_queues(&[4, 4], 3), [0, 1, 2]);
        assert_eq!(default_queues(&[], 0), [0], "never less than one worker");
    }

    #[test]
    fn unserved_queues_are_named() {
        assert_eq!(unserved(4, &[0, 1]), [2, 3]);
        assert_eq!(unserved(2, &[0, 1]), Vec::<u32>::new());
        assert_eq!(unserved(3, &[1]), [0, 2]);
    }

    #[test]
    fn rx_directories_are_counted_and_others_ignored() {
        let dir = std::env::temp_dir().join(format!("dataplane-queues-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["rx-0", "rx-1", "rx-2", "tx-0", "tx-1", "rx-x"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        assert_eq!(count_rx_dirs(&dir).unwrap(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            count_rx_dirs(&dir).is_err(),
            "a missing interface is an error"
        );
    }

    #[test]
    fn loopback_has_a_queue() {
        // Every Linux network namespace has `lo`.
        assert!(rx_queue_count("lo").unwrap() >= 1);
    }
}
