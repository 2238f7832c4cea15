//! [`IcmpRateLimiter`]: how many ICMP and ICMPv6 errors a worker may originate, as Linux limits
//! its own (`net.ipv4.icmp_msgs_per_sec` / `icmp_msgs_burst`, then `icmp_ratelimit` per
//! destination; `net.ipv6.icmp.ratelimit` is the same 1000 ms). One budget for both families.
//!
//! Without it, every packet that earns an error earns one, so spoofed sources turn the gateway
//! into a reflector: a flood of oversized DF packets to NAT ports becomes a flood of
//! "fragmentation needed" at whoever the attacker names as the source.
//!
//! Two token buckets must both have a token: one for the worker (1000 errors/s, burst 50) and
//! one per destination (1 error/s, burst 6). Per-destination buckets live in a fixed,
//! direct-mapped array: a destination whose slot holds another address takes it over with a
//! full bucket. Memory is therefore bounded whatever the sources, and an attacker rotating
//! sources gains nothing past the worker's bucket. Sans-IO: the caller passes the time; nothing
//! allocates after [`IcmpRateLimiter::new`].

use std::net::IpAddr;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Errors per second a worker may send in all (Linux `icmp_msgs_per_sec`).
pub const GLOBAL_PER_SEC: u64 = 1000;
/// Errors a worker may send at once after a quiet spell (Linux `icmp_msgs_burst`).
pub const GLOBAL_BURST: u64 = 50;
/// Errors per second towards one destination (Linux `icmp_ratelimit`, 1000 ms).
pub const PER_DESTINATION_PER_SEC: u64 = 1;
/// Errors at once towards one destination (Linux `XRLIM_BURST_FACTOR`).
pub const PER_DESTINATION_BURST: u64 = 6;
/// Per-destination buckets per worker (32 bytes each: 8 KB).
const SLOTS: usize = 256;

/// A token bucket counted in nanoseconds of credit: each error costs `cost` ns, credit
/// accrues with time up to `cost * burst` (the kernel's `xrlim_allow`, in integers).
#[derive(Clone, Copy, Debug)]
struct Bucket {
    credit: u64,
    last: u64,
}

impl Bucket {
    fn full(now: u64, cost: u64, burst: u64) -> Bucket {
        Bucket {
            credit: cost * burst,
            last: now,
        }
    }

    /// Adds the credit earned since the last look (a clock going backwards earns nothing).
    fn refill(&mut self, now: u64, cost: u64, burst: u64) {
        let earned = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.credit = self.credit.saturating_add(earned).min(cost * burst);
    }
}

#[derive(Clone, Copy, Debug)]
struct Destination {
    addr: IpAddr,
    bucket: Bucket,
}

/// One worker's ICMP error budget (see the module doc).
#[derive(Debug)]
pub struct IcmpRateLimiter {
    global: Bucket,
    destinations: [Option<Destination>; SLOTS],
}

const GLOBAL_COST: u64 = NANOS_PER_SEC / GLOBAL_PER_SEC;
const DESTINATION_COST: u64 = NANOS_PER_SEC / PER_DESTINATION_PER_SEC;

impl IcmpRateLimiter {
    /// Full buckets at `now_ns` (the caller's monotonic clock).
    pub fn new(now_ns: u64) -> IcmpRateLimiter {
        IcmpRateLimiter {
            global: Bucket::full(now_ns, GLOBAL_COST, GLOBAL_BURST),
            destinations: [None; SLOTS],
        }
    }

    /// Whether an error to `dst` may be sent at `now_ns`; if so, its tokens are taken.
    pub fn allow(&mut self, now_ns: u64, dst: impl Into<IpAddr>) -> bool {
        let dst = dst.into();
        self.global.refill(now_ns, GLOBAL_COST, GLOBAL_BURST);
        let slot = &mut self.destinations[slot_of(dst)];
        match slot {
            Some(d) if d.addr == dst => {
                d.bucket
                    .refill(now_ns, DESTINATION_COST, PER_DESTINATION_BURST)
            }
            _ => {
                *slot = Some(Destination {
                    addr: dst,
                    bucket: Bucket::full(now_ns, DESTINATION_COST, PER_DESTINATION_BURST),
                })
            }
        }
        let Some(d) = slot else {
            return false;
        };
        // Both or neither: a refusal by one bucket must not spend the other's token.
        if self.global.credit < GLOBAL_COST || d.bucket.credit < DESTINATION_COST {
            return false;
        }
        self.global.credit -= GLOBAL_COST;
        d.bucket.credit -= DESTINATION_COST;
        true
    }
}

/// A destination's slot. Not keyed: colliding addresses only take a slot over from each
/// other (with a fresh bucket), which the worker's bucket bounds anyway.
fn slot_of(dst: IpAddr) -> usize {
    let key = match dst {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        // Both halves: the interface identifier alone would put a /64 in one slot.
        IpAddr::V6(a) => {
            let b = u128::from(a);
            (b >> 64) as u64 ^ b as u64
        }
    };
    let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 56) as usize % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn addr(i: u32) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(0xc633_6400 + i)
    }

    #[test]
    fn ipv6_destinations_share_the_worker_budget_with_ipv4() {
        let mut l = IcmpRateLimiter::new(0);
        let v6 = |i: u32| std::net::Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, i as u16);
        let sent = (0..100).filter(|_| l.allow(0, v6(2))).count();
        assert_eq!(sent, PER_DESTINATION_BURST as usize);
        let sent = (0..10_000)
            .filter(|&i| {
                if i % 2 == 0 {
                    l.allow(0, v6(i))
                } else {
                    l.allow(0, addr(i))
                }
            })
            .count();
        assert_eq!(sent, (GLOBAL_BURST - PER_DESTINATION_BURST) as usize);
    }

    #[test]
    fn one_destination_gets_its_burst_then_one_per_second() {
        let mut l = IcmpRateLimiter::new(0);
        let sent = (0..100).filter(|_| l.allow(0, addr(1))).count();
        assert_eq!(sent, PER_DESTINATION_BURST as usize);
        assert!(!l.allow(999 * MS, addr(1)));
        assert!(l.allow(1000 * MS, addr(1)));
        assert!(!l.allow(1000 * MS, addr(1)));
        assert!(
            l.allow(1000 * MS, addr(2)),
            "another destination has its own"
        );
    }

    #[test]
    fn many_destinations_share_the_worker_burst_then_its_rate() {
        let mut l = IcmpRateLimiter::new(0);
        let sent = (0..10_000).filter(|&i| l.allow(0, addr(i))).count();
        assert_eq!(sent, GLOBAL_BURST as usize);
        // Over the next second: at most the rate, whatever the number of sources.
        let mut sent = 0;
        for i in 0..100_000u64 {
            if l.allow(i * 10_000, addr(i as u32)) {
                sent += 1;
            }
        }
        assert!(sent <= GLOBAL_PER_SEC as usize, "{sent}");
        assert!(sent >= GLOBAL_PER_SEC as usize - 1, "{sent}");
    }

    #[test]
    fn a_clock_going_backwards_earns_nothing() {
        let mut l = IcmpRateLimiter::new(5 * NANOS_PER_SEC);
        while l.allow(5 * NANOS_PER_SEC, addr(1)) {}
        assert!(!l.allow(0, addr(1)));
        assert!(!l.allow(5 * NANOS_PER_SEC, addr(1)));
    }
}
