//! When each entry is next looked at for expiry: a hashed timing wheel of one-second ticks
//! with intrusive doubly-linked lists over slab indices (Varghese & Lauck, scheme 6).
//!
//! The packet path never touches the wheel when it merely refreshes an entry: the entry's own
//! deadline moves later and the wheel finds out lazily when it reaches the old slot (the entry
//! is then re-filed). Only a deadline that moves *earlier* (TCP FIN/RST) re-files at once.
//! [`TimerWheel::poll`] hands out at most `budget` due candidates per call, so expiry of
//! millions of entries is spread over many batches and never stalls the packet path.
//!
//! Preallocated for `capacity` slots; never allocates after construction.

const NIL: u32 = u32::MAX;

/// Number of buckets: covers 1024 s per revolution; longer deadlines cost one extra visit per
/// revolution (a 2 h 4 min TCP entry is looked at ~8 times in its life).
pub(crate) const BUCKETS: usize = 1024;

#[derive(Clone, Copy, Debug)]
struct Link {
    next: u32,
    prev: u32,
    /// Tick the slot is filed under (bucket = at % BUCKETS).
    at: u32,
}

#[derive(Debug)]
pub(crate) struct TimerWheel {
    links: Vec<Link>,
    heads: Vec<u32>,
    /// A bucket detached for processing; drained across calls when the budget runs out.
    pending: u32,
    /// Next tick whose bucket has not been detached yet.
    cursor: u32,
    len: usize,
}

impl TimerWheel {
    pub(crate) fn new(capacity: usize, now_tick: u32) -> TimerWheel {
        TimerWheel {
            links: vec![
                Link {
                    next: NIL,
                    prev: NIL,
                    at: 0
                };
                capacity
            ],
            heads: vec![NIL; BUCKETS],
            pending: NIL,
            cursor: now_tick,
            len: 0,
        }
    }

    pub(crate) fn scheduled_at(&self, slot: u32) -> u32 {
        self.links[slot as usize].at
    }

    pub(crate) fn insert(&mut self, slot: u32, at: u32) {
        let b = at as usize % BUCKETS;
        let head = self.heads[b];
        self.links[slot as usize] = Link {
            next: head,
            prev: NIL,
            at,
        };
        if head != NIL {
            self.links[head as usize].prev = slot;
        }
        self.heads[b] = slot;
        self.len += 1;
    }

    pub(crate) fn remove(&mut self, slot: u32) {
        let Link { next, prev, at } = self.links[slot as usize];
        if prev != NIL {
            self.links[prev as usize].next = next;
        } else if self.pending == slot {
            self.pending = next;
        } else {
            self.heads[at as usize % BUCKETS] = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        }
        self.links[slot as usize].next = NIL;
        self.links[slot as usize].prev = NIL;
        self.len -= 1;
    }

    /// Re-files `slot` under `at` (used when a deadline moves earlier).
    pub(crate) fn reschedule(&mut self, slot: u32, at: u32) {
        self.remove(slot);
        self.insert(slot, at);
    }

    /// Next candidate due at or before `now_tick`, unlinked from the wheel; the caller either
    /// frees it or re-inserts it under its real deadline. Each returned slot costs one unit of
    /// `budget`. Stepping over buckets is a load each and is not charged: the cursor never
    /// passes `now_tick` and never steps more than one revolution (`BUCKETS`) after a pause, so
    /// one call does at most `BUCKETS` bucket steps plus `budget` entries.
    pub(crate) fn poll(&mut self, now_tick: u32, budget: &mut usize) -> Option<u32> {
        loop {
            if *budget == 0 {
                return None;
            }
            if self.pending != NIL {
                let slot = self.pending;
                self.remove(slot);
                *budget -= 1;
                return Some(slot);
            }
            if self.cursor > now_tick {
                return None;
            }
            // After a long pause, one revolution visits every bucket: skip the rest.
            if now_tick - self.cursor >= BUCKETS as u32 {
                self.cursor = now_tick - (BUCKETS as u32 - 1);
            }
            let b = self.cursor as usize % BUCKETS;
            self.pending = self.heads[b];
            self.heads[b] = NIL;
            self.cursor += 1;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.links.capacity() * std::mem::size_of::<Link>() + self.heads.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Drives the wheel like the conntrack does: due slots whose real deadline passed are
    /// freed, others re-filed.
    fn expire(
        w: &mut TimerWheel,
        deadlines: &mut [Option<u32>],
        now: u32,
        mut budget: usize,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(s) = w.poll(now, &mut budget) {
            let d = deadlines[s as usize].unwrap();
            if d <= now {
                deadlines[s as usize] = None;
                out.push(s);
            } else {
                w.insert(s, d);
            }
        }
        out
    }

    proptest! {
        /// Against a naive model: with an unlimited budget, exactly the entries whose deadline
        /// passed are expired, whatever the refreshes and early reschedules did.
        #[test]
        fn wheel_expires_exactly_what_a_naive_scan_would(
            ops in proptest::collection::vec((0u8..4, 0u32..64, 1u32..5000), 1..300)
        ) {
            let cap = 64;
            let mut w = TimerWheel::new(cap, 0);
            let mut deadlines: Vec<Option<u32>> = vec![None; cap];
            let mut now = 0u32;
            for (op, slot, arg) in ops {
                let s = slot as usize;
                match op {
                    0 => if deadlines[s].is_none() {
                        deadlines[s] = Some(now + arg);
                        w.insert(slot, now + arg);
                    },
                    1 => if let Some(d) = deadlines[s] {
                        // Lazy refresh: later deadline, wheel untouched.
                        deadlines[s] = Some(d.max(now + arg));
                    },
                    2 => if deadlines[s].is_some() {
                        // Earlier deadline: re-filed at once.
                        let d = now + 1 + arg % 5;
                        if d < w.scheduled_at(slot) { w.reschedule(slot, d); }
                        deadlines[s] = Some(d);
                    },
                    _ => {
                        now += arg % 2000;
                        let model: Vec<u32> = (0..cap as u32).filter(|&i| deadlines[i as usize].is_some_and(|d| d <= now)).collect();
                        let mut got = expire(&mut w, &mut deadlines, now, usize::MAX);
                        got.sort_unstable();
                        prop_assert_eq!(got, model);
                    }
                }
                prop_assert_eq!(w.len(), deadlines.iter().filter(|d| d.is_some()).count());
            }
        }
    }

    #[test]
    fn budget_bounds_work_and_progress_resumes() {
        let n = 10_000;
        let mut w = TimerWheel::new(n, 0);
        let mut deadlines = vec![None; n];
        for s in 0..n as u32 {
            w.insert(s, 10);
            deadlines[s as usize] = Some(10);
        }
        let mut total = 0;
        let mut calls = 0;
        while total < n {
            let got = expire(&mut w, &mut deadlines, 20, 64);
            assert!(got.len() <= 64);
            total += got.len();
            calls += 1;
            assert!(calls < 1000);
        }
        assert_eq!(w.len(), 0);
        // Large clock jump: one revolution of empty buckets is stepped over, not a million.
        let mut budget = 1;
        assert_eq!(w.poll(1_000_000, &mut budget), None);
        assert_eq!(w.cursor, 1_000_001);
        assert_eq!(budget, 1, "empty buckets are not charged");
    }
}
