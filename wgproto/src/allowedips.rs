//! AllowedIPs: the device-wide routing table from inner IP addresses to peers (whitepaper §2,
//! "cryptokey routing").
//!
//! It owns the prefix -> owner mapping for IPv4 and IPv6 and answers two questions on the data
//! path: which peer does an outgoing packet go to (longest-prefix match on the destination), and
//! may a decrypted packet's inner source have come from the peer whose key decrypted it
//! ([`AllowedIps::source_allowed`]). A prefix has exactly one owner; inserting it again moves
//! it, as `wg set ... allowed-ips` does.
//!
//! Structure: one hash map per prefix length, probed from the longest present length down.
//! A lookup costs one hash probe per *distinct* prefix length in use (typically 2-4: /32, /24,
//! /0 ...), independent of the number of entries. Keys come from configuration, never from the
//! network, so a fast non-keyed hash is safe here. Nothing is allocated by a lookup.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rustc_hash::FxHasher;

use crate::config::IpPrefix;

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Bits of one address family, as an unsigned integer (u32 for IPv4, u128 for IPv6).
trait AddrBits: Copy + Eq + std::hash::Hash {
    const BITS: u8;
    fn masked(self, len: u8) -> Self;
}

impl AddrBits for u32 {
    const BITS: u8 = 32;
    fn masked(self, len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            self & (u32::MAX << (32 - u32::from(len)))
        }
    }
}

impl AddrBits for u128 {
    const BITS: u8 = 128;
    fn masked(self, len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            self & (u128::MAX << (128 - u32::from(len)))
        }
    }
}

/// The table of one address family.
#[derive(Clone)]
struct FamilyTable<K, T> {
    /// `by_len[l]` maps masked network bits of /l prefixes to their owner.
    by_len: Vec<FastMap<K, T>>,
    /// The prefix lengths with at least one entry, longest first (the probe order).
    present: Vec<u8>,
}

impl<K: AddrBits, T> FamilyTable<K, T> {
    fn new() -> Self {
        FamilyTable {
            by_len: (0..=K::BITS).map(|_| FastMap::default()).collect(),
            present: Vec::new(),
        }
    }

    fn insert(&mut self, bits: K, len: u8, value: T) -> Option<T> {
        let old = self.by_len[usize::from(len)].insert(bits.masked(len), value);
        if old.is_none() && self.by_len[usize::from(len)].len() == 1 {
            self.refresh_present();
        }
        old
    }

    fn remove(&mut self, bits: K, len: u8) -> Option<T> {
        let old = self.by_len[usize::from(len)].remove(&bits.masked(len));
        if old.is_some() && self.by_len[usize::from(len)].is_empty() {
            self.refresh_present();
        }
        old
    }

    fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for map in &mut self.by_len {
            map.retain(|_, v| keep(v));
        }
        self.refresh_present();
    }

    fn lookup(&self, bits: K) -> Option<&T> {
        self.present
            .iter()
            .find_map(|&len| self.by_len[usize::from(len)].get(&bits.masked(len)))
    }

    fn refresh_present(&mut self) {
        self.present = (0..=K::BITS)
            .rev()
            .filter(|&l| !self.by_len[usize::from(l)].is_empty())
            .collect();
    }

    fn len(&self) -> usize {
        self.by_len.iter().map(HashMap::len).sum()
    }

    fn iter(&self) -> impl Iterator<Item = (K, u8, &T)> {
        self.present.iter().flat_map(move |&len| {
            self.by_len[usize::from(len)]
                .iter()
                .map(move |(k, v)| (*k, len, v))
        })
    }
}

/// Longest-prefix-match table from IPv4/IPv6 prefixes to an owner `T` (a peer id).
#[derive(Clone)]
pub struct AllowedIps<T> {
    v4: FamilyTable<u32, T>,
    v6: FamilyTable<u128, T>,
}

impl<T> Default for AllowedIps<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for AllowedIps<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<T> AllowedIps<T> {
    pub fn new() -> Self {
        AllowedIps {
            v4: FamilyTable::new(),
            v6: FamilyTable::new(),
        }
    }

    /// Makes `value` the owner of `prefix`, returning the previous owner if there was one.
    pub fn insert(&mut self, prefix: IpPrefix, value: T) -> Option<T> {
        match prefix.addr() {
            IpAddr::V4(a) => self.v4.insert(u32::from(a), prefix.len(), value),
            IpAddr::V6(a) => self.v6.insert(u128::from(a), prefix.len(), value),
        }
    }

    /// Removes exactly `prefix` (not the prefixes it covers), returning its owner.
    pub fn remove(&mut self, prefix: IpPrefix) -> Option<T> {
        match prefix.addr() {
            IpAddr::V4(a) => self.v4.remove(u32::from(a), prefix.len()),
            IpAddr::V6(a) => self.v6.remove(u128::from(a), prefix.len()),
        }
    }

    /// Removes every prefix owned by `value` (a peer being removed or reconfigured).
    pub fn remove_all(&mut self, value: &T)
    where
        T: PartialEq,
    {
        self.v4.retain(|v| v != value);
        self.v6.retain(|v| v != value);
    }

    /// The owner of the longest prefix containing `addr`.
    pub fn lookup(&self, addr: IpAddr) -> Option<&T> {
        match addr {
            IpAddr::V4(a) => self.lookup_v4(a),
            IpAddr::V6(a) => self.lookup_v6(a),
        }
    }

    pub fn lookup_v4(&self, addr: Ipv4Addr) -> Option<&T> {
        self.v4.lookup(u32::from(addr))
    }

    pub fn lookup_v6(&self, addr: Ipv6Addr) -> Option<&T> {
        self.v6.lookup(u128::from(addr))
    }

    /// The receive-side source check (whitepaper §2): a packet decrypted with `peer`'s key is
    /// accepted only if its inner source address routes back to that same peer. Any other
    /// owner, or none, means the peer is spoofing an address it was not given.
    pub fn source_allowed(&self, src: IpAddr, peer: &T) -> bool
    where
        T: PartialEq,
    {
        self.lookup(src) == Some(peer)
    }

    /// Number of prefixes in the table.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (prefix, owner), longest prefixes first within each family, IPv4 before IPv6.
    pub fn iter(&self) -> impl Iterator<Item = (IpPrefix, &T)> {
        let v4 = self
            .v4
            .iter()
            .map(|(bits, len, v)| (IpPrefix::new_masked(Ipv4Addr::from(bits).into(), len), v));
        let v6 = self
            .v6
            .iter()
            .map(|(bits, len, v)| (IpPrefix::new_masked(Ipv6Addr::from(bits).into(), len), v));
        v4.chain(v6)
    }

    /// The prefixes owned by `value`, as `wg show allowed-ips` lists them.
    pub fn prefixes_of<'a>(&'a self, value: &'a T) -> impl Iterator<Item = IpPrefix> + 'a
    where
        T: PartialEq,
    {
        self.iter()
            .filter(move |(_, v)| *v == value)
            .map(|(p, _)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_families_are_separate() {
        let mut t = AllowedIps::new();
        t.insert(p("0.0.0.0/0"), 1);
        t.insert(p("10.0.0.0/8"), 2);
        t.insert(p("10.1.0.0/16"), 3);
        t.insert(p("10.1.2.3/32"), 4);
        t.insert(p("::/0"), 5);
        t.insert(p("fd00::/8"), 6);
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(&1));
        assert_eq!(t.lookup(ip("10.200.0.1")), Some(&2));
        assert_eq!(t.lookup(ip("10.1.9.9")), Some(&3));
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(&4));
        assert_eq!(t.lookup(ip("10.1.2.4")), Some(&3));
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(&5));
        assert_eq!(t.lookup(ip("fd12::1")), Some(&6));
        assert_eq!(t.len(), 6);

        t.remove(p("10.1.0.0/16"));
        assert_eq!(t.lookup(ip("10.1.9.9")), Some(&2));
        t.remove_all(&2);
        assert_eq!(t.lookup(ip("10.1.9.9")), Some(&1));
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(&4));
    }

    #[test]
    fn insert_moves_ownership() {
        let mut t = AllowedIps::new();
        assert_eq!(t.insert(p("10.0.0.0/24"), "a"), None);
        assert_eq!(t.insert(p("10.0.0.0/24"), "b"), Some("a"));
        assert_eq!(t.lookup(ip("10.0.0.7")), Some(&"b"));
        assert_eq!(t.prefixes_of(&"a").count(), 0);
        assert_eq!(
            t.prefixes_of(&"b").collect::<Vec<_>>(),
            vec![p("10.0.0.0/24")]
        );
    }

    #[test]
    fn source_check_requires_the_same_peer() {
        let mut t = AllowedIps::new();
        t.insert(p("10.0.0.2/32"), 1u32);
        t.insert(p("10.0.0.0/24"), 2u32);
        assert!(t.source_allowed(ip("10.0.0.2"), &1));
        // Peer 2 owns the /24 but not .2: a packet from peer 2 claiming .2 is spoofed.
        assert!(!t.source_allowed(ip("10.0.0.2"), &2));
        assert!(t.source_allowed(ip("10.0.0.3"), &2));
        assert!(!t.source_allowed(ip("10.0.0.3"), &1));
        assert!(!t.source_allowed(ip("192.0.2.1"), &1));
        assert!(!t.source_allowed(ip("::1"), &1));
    }

    /// Random prefixes biased towards a few shared networks so that they nest and collide.
    fn arb_prefix() -> impl Strategy<Value = IpPrefix> {
        let v4 = (
            prop_oneof![Just(0x0a00_0000u32), Just(0x0a01_0000), any::<u32>()],
            any::<u16>(),
            0u8..=32,
        )
            .prop_map(|(net, low, len)| {
                IpPrefix::new_masked(Ipv4Addr::from(net | u32::from(low & 0x0f0f)).into(), len)
            });
        let v6 = (
            prop_oneof![Just(0xfd00u128 << 112), any::<u128>()],
            any::<u16>(),
            0u8..=128,
        )
            .prop_map(|(net, low, len)| {
                IpPrefix::new_masked(Ipv6Addr::from(net | u128::from(low)).into(), len)
            });
        prop_oneof![3 => v4, 1 => v6]
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(IpPrefix, u8),
        Remove(IpPrefix),
        RemoveAll(u8),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (arb_prefix(), 0u8..6).prop_map(|(p, v)| Op::Insert(p, v)),
            2 => arb_prefix().prop_map(Op::Remove),
            1 => (0u8..6).prop_map(Op::RemoveAll),
        ]
    }

    /// The naive model: a list of (prefix, owner), searched linearly.
    fn model_lookup(model: &[(IpPrefix, u8)], addr: IpAddr) -> Option<u8> {
        model
            .iter()
            .filter(|(p, _)| p.contains(addr))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, v)| *v)
    }

    proptest! {
        #[test]
        fn matches_linear_scan(ops in prop::collection::vec(arb_op(), 1..120),
                               probes in prop::collection::vec(arb_prefix(), 1..60)) {
            let mut t = AllowedIps::new();
            let mut model: Vec<(IpPrefix, u8)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(p, v) => {
                        let before = model.iter().position(|(q, _)| *q == p);
                        let old = before.map(|i| model.remove(i).1);
                        model.push((p, v));
                        prop_assert_eq!(t.insert(p, v), old);
                    }
                    Op::Remove(p) => {
                        let old = model.iter().position(|(q, _)| *q == p).map(|i| model.remove(i).1);
                        prop_assert_eq!(t.remove(p), old);
                    }
                    Op::RemoveAll(v) => {
                        model.retain(|(_, o)| *o != v);
                        t.remove_all(&v);
                    }
                }
                prop_assert_eq!(t.len(), model.len());
            }
            // Probe addresses inside the inserted prefixes and at random.
            let addrs = probes.iter().map(|p| p.addr()).chain(model.iter().map(|(p, _)| p.addr()));
            for a in addrs {
                prop_assert_eq!(t.lookup(a).copied(), model_lookup(&model, a), "address {}", a);
                if let Some(owner) = model_lookup(&model, a) {
                    prop_assert!(t.source_allowed(a, &owner));
                    prop_assert!(!t.source_allowed(a, &(owner + 1)));
                }
            }
            let mut listed: Vec<_> = t.iter().map(|(p, v)| (p, *v)).collect();
            let mut expect = model.clone();
            listed.sort_by_key(|(p, v)| (p.to_string(), *v));
            expect.sort_by_key(|(p, v)| (p.to_string(), *v));
            prop_assert_eq!(listed, expect);
        }
    }
}
