//! How workers share the NAT without sharing memory: the port range is cut into one
//! contiguous slice per worker, and every inside address has one owning worker.
//!
//! * Inbound, the owner of a packet is computable from its destination port alone
//!   ([`Partition::owner_of_port`]): only the worker whose slice holds the port can have
//!   created the mapping.
//! * Outbound, the owner is a hash of the inside source address
//!   ([`Partition::owner_of_inside`]), so all flows of one inside host live in one table and
//!   endpoint-independent mapping holds across workers even when a peer roams and its
//!   WireGuard packets start arriving on another NIC queue.
//!
//! A worker that receives a packet it does not own hands the untouched frame to the owner
//! (see the crate doc). This module is pure arithmetic on the configuration.

use std::net::Ipv4Addr;

use crate::config::NatConfig;

/// The port-range split, identical in every worker (built from the same [`NatConfig`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    first: u16,
    last: u16,
    slice_len: u32,
    workers: u16,
}

impl Partition {
    /// `config` must have passed [`NatConfig::validate`].
    pub fn new(config: &NatConfig) -> Partition {
        let first = *config.ports.start();
        let last = *config.ports.end();
        let n = u32::from(last) - u32::from(first) + 1;
        let workers = config.workers.max(1);
        Partition {
            first,
            last,
            slice_len: n.div_ceil(u32::from(workers)),
            workers,
        }
    }

    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// Whether `port` is in the NAT's range (the XDP program steers exactly these, plus the
    /// WireGuard port, to the workers).
    pub fn in_range(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// The worker whose slice holds `port`, or `None` outside the NAT range.
    pub fn owner_of_port(&self, port: u16) -> Option<u16> {
        if !self.in_range(port) {
            return None;
        }
        Some(((u32::from(port - self.first)) / self.slice_len) as u16)
    }

    /// The worker that keeps the mappings of inside address `addr`.
    pub fn owner_of_inside(&self, addr: Ipv4Addr) -> u16 {
        // Multiplicative hash: spreads consecutive peer addresses (10.13.13.2, .3, ...) evenly.
        let h = u64::from(u32::from(addr)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        (h % u64::from(self.workers)) as u16
    }

    /// The ports of `worker`'s slice (may be shorter for the last worker).
    pub fn slice(&self, worker: u16) -> std::ops::RangeInclusive<u16> {
        let start = u32::from(self.first) + u32::from(worker) * self.slice_len;
        let end = (start + self.slice_len - 1).min(u32::from(self.last));
        (start as u16)..=(end as u16)
    }

    /// Length every slice is sized for (the last one may use fewer).
    pub(crate) fn slice_len(&self) -> u32 {
        self.slice_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ports: std::ops::RangeInclusive<u16>, workers: u16) -> NatConfig {
        NatConfig {
            egress: vec![Ipv4Addr::new(192, 0, 2, 1)],
            ports,
            workers,
            ..NatConfig::default()
        }
    }

    #[test]
    fn every_port_has_exactly_the_owner_whose_slice_holds_it() {
        for workers in 1..=7u16 {
            let p = Partition::new(&cfg(61000..=65535, workers));
            for port in 61000..=65535u16 {
                let owner = p.owner_of_port(port).unwrap();
                assert!(owner < workers);
                assert!(p.slice(owner).contains(&port), "{port} {workers}");
            }
            assert_eq!(p.owner_of_port(60999), None);
        }
    }

    #[test]
    fn inside_owners_spread_over_workers() {
        let p = Partition::new(&cfg(61000..=65535, 2));
        let zeros = (2..=254u8)
            .filter(|i| p.owner_of_inside(Ipv4Addr::new(10, 13, 13, *i)) == 0)
            .count();
        assert!((80..=173).contains(&zeros), "{zeros}");
    }
}
