//! Fragment chains (RFC 4787 REQ-14, without reassembly): the first fragment of a datagram
//! carries the transport header and is translated like a whole packet; what was done to it is
//! remembered here under the datagram's (source, destination, protocol, IP identification), so
//! that its later fragments, which carry no ports, get the same address rewrite.
//!
//! A fixed set-associative table allocated in [`Fragments::new`]: a new chain takes a free or
//! expired slot of its set, else the one that expires first (an old chain is forgotten, its
//! later fragments then dropped, rather than memory grown). Entries live [`FRAGMENT_TIMEOUT`]
//! seconds, Linux's `ipfrag_time`. Later fragments that overtake their first are dropped.

/// Seconds a chain is remembered after its first fragment (Linux `ipfrag_time`).
pub(crate) const FRAGMENT_TIMEOUT: u32 = 30;

/// Slots per set: a chain is looked for in one set only.
const WAYS: usize = 4;

/// Which datagram a fragment belongs to (RFC 791: source, destination, protocol, ID), as it
/// arrived (before translation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ChainKey {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    pub id: u16,
}

/// What the first fragment's translation decided for the rest of its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chain {
    /// Rewrite the address (outbound: the source, to this egress address; inbound: the
    /// destination, to this inside address).
    Address([u8; 4]),
    /// The first fragment belonged to worker `owner`'s port slice: hand the rest over too.
    Handoff(u16),
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: ChainKey,
    chain: Chain,
    /// Tick at or after which the slot is free again (0: never used).
    deadline: u32,
}

#[derive(Debug)]
pub(crate) struct Fragments {
    slots: Vec<Slot>,
    /// Sets - 1 (a power of two minus one).
    mask: usize,
    seed: u64,
}

impl Fragments {
    /// A table of at least `slots` slots (rounded up to a power of two, at least one set).
    pub(crate) fn new(slots: usize, seed: u64) -> Fragments {
        let sets = (slots / WAYS).max(1).next_power_of_two();
        let empty = Slot {
            key: ChainKey::default(),
            chain: Chain::Address([0; 4]),
            deadline: 0,
        };
        Fragments {
            slots: vec![empty; sets * WAYS],
            mask: sets - 1,
            seed,
        }
    }

    fn set(&self, key: &ChainKey) -> std::ops::Range<usize> {
        let k =
            (u64::from(u32::from_be_bytes(key.src)) << 32) | u64::from(u32::from_be_bytes(key.dst));
        let m = u128::from(k ^ self.seed)
            * u128::from(0x9e37_79b9_7f4a_7c15 ^ (u64::from(key.id) << 8 | u64::from(key.proto)));
        let h = (m as u64) ^ ((m >> 64) as u64);
        let start = (h as usize & self.mask) * WAYS;
        start..start + WAYS
    }

    /// Remembers `chain` for the datagram `key` until `now + FRAGMENT_TIMEOUT`.
    pub(crate) fn remember(&mut self, now: u32, key: ChainKey, chain: Chain) {
        let set = self.set(&key);
        let slots = &mut self.slots[set];
        let i = slots
            .iter()
            .position(|s| s.deadline > now && s.key == key)
            .or_else(|| slots.iter().position(|s| s.deadline <= now))
            .unwrap_or_else(|| {
                // All live: forget the chain that expires first.
                (0..WAYS).min_by_key(|&i| slots[i].deadline).unwrap_or(0)
            });
        slots[i] = Slot {
            key,
            chain,
            deadline: now.saturating_add(FRAGMENT_TIMEOUT).max(1),
        };
    }

    /// The chain of the datagram `key`, if its first fragment was seen and has not expired.
    pub(crate) fn lookup(&self, now: u32, key: &ChainKey) -> Option<Chain> {
        self.slots[self.set(key)]
            .iter()
            .find(|s| s.deadline > now && s.key == *key)
            .map(|s| s.chain)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> ChainKey {
        ChainKey {
            src: [10, 13, 13, 2],
            dst: [172, 23, 0, 2],
            proto: 17,
            id,
        }
    }

    #[test]
    fn chains_are_found_until_they_expire() {
        let mut f = Fragments::new(16, 7);
        f.remember(100, key(1), Chain::Address([1, 2, 3, 4]));
        assert_eq!(f.lookup(100, &key(1)), Some(Chain::Address([1, 2, 3, 4])));
        assert_eq!(f.lookup(129, &key(1)), Some(Chain::Address([1, 2, 3, 4])));
        assert_eq!(f.lookup(130, &key(1)), None);
        assert_eq!(f.lookup(100, &key(2)), None);
    }

    #[test]
    fn a_full_table_forgets_the_oldest_chains_and_never_grows() {
        let mut f = Fragments::new(16, 7);
        let bytes = f.heap_bytes();
        for id in 0..1000u16 {
            f.remember(u32::from(id), key(id), Chain::Handoff(id));
        }
        assert_eq!(f.heap_bytes(), bytes);
        // The newest chain is always kept.
        assert_eq!(f.lookup(999, &key(999)), Some(Chain::Handoff(999)));
        let kept = (0..1000u16)
            .filter(|&id| f.lookup(999, &key(id)).is_some())
            .count();
        assert!(kept <= 16, "{kept} chains in 16 slots");
    }
}
