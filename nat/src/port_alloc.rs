//! Which external ports of this worker's slice are taken, per (protocol, egress address).
//! One bit per port, preallocated; excluded ports (WireGuard listen port, host services) are
//! marked taken forever, so they can never be handed out.
//!
//! No port overloading (RFC 4787 REQ-3, RFC 5382 REQ-7): a port taken by one mapping is never
//! given to another until that mapping is removed.

#[derive(Debug)]
pub(crate) struct PortAllocator {
    first: u16,
    len: u32,
    words_per_set: usize,
    bits: Vec<u64>,
    free: Vec<u32>,
}

impl PortAllocator {
    /// `sets` = protocols * egress addresses; each covers ports `first ..= first + len - 1`.
    pub(crate) fn new(first: u16, len: u32, sets: usize, exclude: &[u16]) -> PortAllocator {
        let words_per_set = (len as usize).div_ceil(64);
        let mut a = PortAllocator {
            first,
            len,
            words_per_set,
            bits: vec![0; words_per_set * sets],
            free: vec![len; sets],
        };
        for set in 0..sets {
            // Bits past the end of the slice in the last word count as taken.
            for off in len..(words_per_set as u32 * 64) {
                a.bits[set * words_per_set + off as usize / 64] |= 1 << (off % 64);
            }
            for &p in exclude {
                if let Some(off) = a.offset(p) {
                    a.take(set, off);
                }
            }
        }
        a
    }

    pub(crate) fn offset(&self, port: u16) -> Option<u32> {
        let off = u32::from(port.wrapping_sub(self.first));
        (port >= self.first && off < self.len).then_some(off)
    }

    pub(crate) fn port(&self, off: u32) -> u16 {
        self.first + off as u16
    }

    #[cfg(test)]
    pub(crate) fn free(&self, set: usize) -> u32 {
        self.free[set]
    }

    /// Marks `off` taken; false if it already was.
    pub(crate) fn take(&mut self, set: usize, off: u32) -> bool {
        let w = &mut self.bits[set * self.words_per_set + off as usize / 64];
        let m = 1u64 << (off % 64);
        if *w & m != 0 {
            return false;
        }
        *w |= m;
        self.free[set] -= 1;
        true
    }

    pub(crate) fn release(&mut self, set: usize, off: u32) {
        let w = &mut self.bits[set * self.words_per_set + off as usize / 64];
        let m = 1u64 << (off % 64);
        debug_assert!(*w & m != 0, "releasing a free port");
        if *w & m != 0 {
            *w &= !m;
            self.free[set] += 1;
        }
    }

    /// Takes `preferred` if free (port preservation, like MASQUERADE), else the first free port
    /// at or after `hint` (wrapping). Work is bounded by the slice's word count.
    pub(crate) fn allocate(
        &mut self,
        set: usize,
        preferred: Option<u32>,
        hint: u32,
    ) -> Option<u32> {
        if let Some(p) = preferred {
            if self.take(set, p) {
                return Some(p);
            }
        }
        if self.free[set] == 0 {
            return None;
        }
        let base = set * self.words_per_set;
        let start = (hint % self.len) as usize;
        let (w0, b0) = (start / 64, start % 64);
        // First word: only bits at or after b0; then whole words; finally bits before b0.
        let first = self.bits[base + w0] | ((1u64 << b0) - 1);
        if first != u64::MAX {
            let off = (w0 * 64 + (!first).trailing_zeros() as usize) as u32;
            self.take(set, off);
            return Some(off);
        }
        for i in 1..=self.words_per_set {
            let w = (w0 + i) % self.words_per_set;
            let mut word = self.bits[base + w];
            if w == w0 {
                word |= !((1u64 << b0) - 1);
            }
            if word != u64::MAX {
                let off = (w * 64 + (!word).trailing_zeros() as usize) as u32;
                self.take(set, off);
                return Some(off);
            }
        }
        None
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8 + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn excluded_ports_are_never_allocated() {
        let mut a = PortAllocator::new(100, 10, 1, &[103, 105, 200]);
        let mut got = BTreeSet::new();
        while let Some(off) = a.allocate(0, None, 0) {
            got.insert(a.port(off));
        }
        assert_eq!(got, [100, 101, 102, 104, 106, 107, 108, 109].into());
        assert_eq!(a.free(0), 0);
    }

    #[test]
    fn preferred_port_is_kept_when_free() {
        let mut a = PortAllocator::new(100, 70, 2, &[]);
        assert_eq!(a.allocate(1, Some(65), 3), Some(65));
        assert_eq!(a.allocate(1, Some(65), 3), Some(3));
        assert_eq!(a.allocate(0, Some(65), 3), Some(65), "sets are independent");
    }

    proptest! {
        // Naive model: a set of taken offsets.
        #[test]
        fn allocator_matches_a_set_model(ops in proptest::collection::vec((any::<bool>(), 0u32..200, proptest::option::of(0u32..130)), 1..400)) {
            let len = 130;
            let mut a = PortAllocator::new(1000, len, 1, &[]);
            let mut model = BTreeSet::new();
            for (alloc, hint, pref) in ops {
                if alloc {
                    let pref_was_free = pref.is_some_and(|p| !model.contains(&p));
                    match a.allocate(0, pref, hint) {
                        Some(off) => {
                            prop_assert!(off < len);
                            prop_assert!(model.insert(off), "double allocation of {}", off);
                            if pref_was_free {
                                prop_assert_eq!(Some(off), pref, "a free preferred port is kept");
                            }
                        }
                        None => prop_assert_eq!(model.len() as u32, len),
                    }
                } else if let Some(&off) = model.iter().nth(hint as usize % model.len().max(1)) {
                    model.remove(&off);
                    a.release(0, off);
                }
                prop_assert_eq!(a.free(0), len - model.len() as u32);
            }
        }
    }
}
