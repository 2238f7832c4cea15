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

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::config::NatConfig;
use crate::family::Family;

/// The port-range split, identical in every worker (built from the same [`NatConfig`]).
///
/// With `n` ports and `w` workers every slice holds `n / w` ports and the first `n % w` slices
/// one more, so slices differ by at most one port and every slice lies inside the range
/// (validation refuses more workers than ports, which would leave a slice empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    first: u16,
    last: u16,
    /// Ports of the smaller slices (`n / w`).
    base: u32,
    /// How many slices hold `base + 1` ports (`n % w`); they come first.
    larger: u32,
    workers: u16,
    /// Reciprocals for the per-packet divisions (a hardware divide each otherwise): by
    /// `workers` for an inside address's owner, by `base + 1` and `base` for a port's.
    by_workers: Remainder,
    by_larger: PortQuotient,
    by_base: PortQuotient,
}

/// `x % d` for any 32-bit `x` by a multiplication (Lemire, Kaser, Kurz 2019, "Faster remainder
/// by direct computation": exact for 32-bit operands with a 64-bit reciprocal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Remainder {
    d: u32,
    /// `floor(2^64 / d) + 1`, wrapped to 0 for `d == 1` (where every remainder is 0).
    m: u64,
}

impl Remainder {
    fn new(d: u32) -> Remainder {
        let d = d.max(1);
        Remainder {
            d,
            m: (u64::MAX / u64::from(d)).wrapping_add(1),
        }
    }

    #[inline]
    fn of(self, x: u32) -> u32 {
        let low = self.m.wrapping_mul(u64::from(x));
        ((u128::from(low) * u128::from(self.d)) >> 64) as u32
    }
}

/// `x / d` for 16-bit `x` and `d` (port offsets, slice lengths) by a multiplication:
/// `ceil(2^32 / d)` is exact there, the error `x * (m * d - 2^32) / 2^32 / d` being below
/// `1 / d` when `x * d < 2^32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PortQuotient {
    m: u64,
}

impl PortQuotient {
    fn new(d: u32) -> PortQuotient {
        let d = u64::from(d.clamp(1, 1 << 16));
        PortQuotient {
            m: (1u64 << 32).div_ceil(d),
        }
    }

    /// `x` below 2^16.
    #[inline]
    fn of(self, x: u32) -> u32 {
        ((u64::from(x) * self.m) >> 32) as u32
    }
}

impl Partition {
    /// `config` must have passed [`NatConfig::validate`].
    pub fn new<A: Family>(config: &NatConfig<A>) -> Partition {
        let first = *config.ports.start();
        let last = *config.ports.end();
        let n = u32::from(last) - u32::from(first) + 1;
        let workers = config.workers.max(1);
        let w = u32::from(workers);
        let base = n / w;
        Partition {
            first,
            last,
            base,
            larger: n % w,
            workers,
            by_workers: Remainder::new(w),
            by_larger: PortQuotient::new(base + 1),
            by_base: PortQuotient::new(base),
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
        let off = u32::from(port - self.first);
        let in_larger = self.larger * (self.base + 1);
        let owner = if off < in_larger {
            self.by_larger.of(off)
        } else {
            self.larger + self.by_base.of(off - in_larger)
        };
        Some(owner as u16)
    }

    /// The worker that keeps the mappings of inside address `addr`.
    pub fn owner_of_inside(&self, addr: Ipv4Addr) -> u16 {
        self.owner_of(addr)
    }

    /// The worker that keeps the IPv6 mappings of inside address `addr`.
    pub fn owner_of_inside6(&self, addr: Ipv6Addr) -> u16 {
        self.owner_of(addr)
    }

    fn owner_of<A: Family>(&self, addr: A) -> u16 {
        // Multiplicative hash: spreads consecutive peer addresses (10.13.13.2, .3, ...) evenly.
        let h = A::fold(addr.octets()).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        self.by_workers.of(h as u32) as u16
    }

    /// The ports of `worker`'s slice (`worker` below [`Partition::workers`]).
    pub fn slice(&self, worker: u16) -> std::ops::RangeInclusive<u16> {
        let w = u32::from(worker);
        let start = u32::from(self.first) + w * self.base + w.min(self.larger);
        let len = self.base + u32::from(w < self.larger);
        let end = (start + len).saturating_sub(1).min(u32::from(self.last));
        (start as u16)..=(end as u16)
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

    /// Every worker count up to 256 against ranges that once broke the split (the default
    /// range with 73 workers gave the last slice ports outside the range): slices are inside
    /// the range, contiguous, in order, cover it, differ by at most one port, and each port's
    /// owner is the worker whose slice holds it.
    #[test]
    fn slices_tile_the_range_for_every_worker_count() {
        for range in [
            61000..=65535u16,
            61000..=61999,
            1024..=65535,
            40000..=40300,
            7..=7,
        ] {
            let n = u32::from(*range.end()) - u32::from(*range.start()) + 1;
            for workers in 1..=256u16 {
                let c = cfg(range.clone(), workers);
                if u32::from(workers) > n {
                    assert!(c.validate().is_err(), "{range:?} {workers}");
                    continue;
                }
                let p = Partition::new(&c);
                let mut next = u32::from(*range.start());
                let (mut min, mut max) = (u32::MAX, 0);
                for w in 0..workers {
                    let s = p.slice(w);
                    assert_eq!(u32::from(*s.start()), next, "{range:?} {workers} {w}");
                    assert!(s.start() <= s.end(), "empty slice {range:?} {workers} {w}");
                    let len = u32::from(*s.end()) - u32::from(*s.start()) + 1;
                    (min, max) = (min.min(len), max.max(len));
                    for port in [*s.start(), *s.end()] {
                        assert_eq!(p.owner_of_port(port), Some(w), "{range:?} {workers}");
                    }
                    next = u32::from(*s.end()) + 1;
                }
                assert_eq!(next, u32::from(*range.end()) + 1, "{range:?} {workers}");
                assert!(max - min <= 1, "{range:?} {workers}: {min}..{max}");
            }
        }
    }

    /// The reciprocals give what the hardware divide gives: every divisor of a port range, and
    /// every 16-bit dividend for the ports; a spread of 32-bit dividends for the remainder.
    #[test]
    fn reciprocals_divide_exactly() {
        for d in 1..=u32::from(u16::MAX) + 1 {
            let q = PortQuotient::new(d);
            let r = Remainder::new(d);
            let step = if d < 300 { 1 } else { 251 };
            for x in (0..=u32::from(u16::MAX))
                .step_by(step)
                .chain([u32::from(u16::MAX)])
            {
                assert_eq!(q.of(x), x / d, "{x} / {d}");
            }
            for x in [0, 1, d - 1, d, d + 1, u32::MAX - 1, u32::MAX, 0x9e37_79b9] {
                assert_eq!(r.of(x), x % d, "{x} % {d}");
            }
        }
        for d in 1..=256u32 {
            let r = Remainder::new(d);
            for x in (0..u32::MAX - 99_991).step_by(99_991) {
                assert_eq!(r.of(x), x % d, "{x} % {d}");
            }
        }
    }

    #[test]
    fn inside_owners_spread_over_workers() {
        let p = Partition::new(&cfg(61000..=65535, 2));
        let zeros = (2..=254u8)
            .filter(|i| p.owner_of_inside(Ipv4Addr::new(10, 13, 13, *i)) == 0)
            .count();
        assert!((80..=173).contains(&zeros), "{zeros}");
        let zeros6 = (2..=254u16)
            .filter(|i| p.owner_of_inside6(Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, *i)) == 0)
            .count();
        assert!((80..=173).contains(&zeros6), "{zeros6}");
    }
}
