//! [`Conntrack`]: one worker's NAT state and the two per-packet entry points,
//! [`Conntrack::translate_outbound`] and [`Conntrack::translate_inbound`], plus bounded
//! expiry ([`Conntrack::expire`]).
//!
//! Owns the mappings of the inside hosts this worker owns and the ports of its slice. Never
//! allocates after [`Conntrack::new`], never reads a clock, never blocks.

use std::net::Ipv4Addr;

use crate::config::{ConfigError, NatConfig};
use crate::counters::NatCounters;
use crate::error::NatError;
use crate::family::Family;
use crate::flow_state::{self, Dir, FlowState};
use crate::fragments::{Chain, ChainKey, Fragments};
use crate::partition::Partition;
use crate::port_alloc::PortAllocator;
use crate::port_observer::PortObserver;
use crate::remote::{Remote, Remotes};
use crate::rewrite::{self, Side};
use crate::table::{self, Entry, Table};
use crate::timer_wheel::TimerWheel;
use crate::view::{self, Protocol};
use wire::{icmp, tcp, udp};

/// What to do with an outbound packet (inside host -> outside) after
/// [`Conntrack::translate_outbound`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// Source rewritten to the egress address and mapped port: route it out.
    Forward,
    /// Source rewritten, but the destination is our own egress address at a NAT port
    /// (hairpinning, RFC 4787 REQ-9): pass the packet to `translate_inbound` on worker
    /// `owner` (possibly this one), then deliver it inside like any return traffic.
    Hairpin { owner: u16 },
    /// Not this worker's inside host: give the untouched packet to worker `owner`, which
    /// calls `translate_outbound` on it.
    Handoff { owner: u16 },
    /// Addressed to the gateway itself (egress address, port outside the NAT range, or an
    /// ICMP query): untouched, pass it to the kernel.
    Local,
}

/// What to do with an inbound packet (arriving for an egress address) after
/// [`Conntrack::translate_inbound`] (`Inbound<Ipv6Addr>` from [`crate::Conntrack6`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound<A = Ipv4Addr> {
    /// Destination rewritten to the inside host: find its WireGuard peer by `inside` and send.
    Deliver { inside: A },
    /// The port belongs to worker `owner`'s slice: give it the untouched packet.
    Handoff { owner: u16 },
    /// Not NAT traffic (another destination, port outside the NAT range, ICMP echo request,
    /// another protocol): untouched, pass it to the kernel.
    NotNat,
}

/// A mapping, as shown to operators and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping<A: Family = Ipv4Addr> {
    pub protocol: Protocol,
    pub inside: A::Socket,
    pub external: A::Socket,
    pub state: FlowState,
    /// Second (on the caller's clock) at or after which it is expired.
    pub expires_at_secs: u32,
}

/// Entries looked at when a new flow finds the table or the port slice full, to reclaim
/// mappings that expired but were not reaped yet. Bounded so a refusal stays cheap.
const RECLAIM_BUDGET: usize = 32;

const NANOS_PER_TICK: u64 = 1_000_000_000;

/// IPv4 fragment chains followed at once per direction and worker (32 bytes each).
const FRAGMENT_CHAINS: usize = 512;

pub(crate) fn tick(now_ns: u64) -> u32 {
    (now_ns / NANOS_PER_TICK).min(u64::from(u32::MAX / 2)) as u32
}

/// One worker's conntrack. Built once per worker from the shared [`NatConfig`].
/// `Conntrack<Ipv6Addr>` ([`crate::Conntrack6`]) is the IPv6 NAT: the same parts, its own
/// packet code (`conntrack6.rs`).
#[derive(Debug)]
pub struct Conntrack<A: Family = Ipv4Addr> {
    pub(crate) egress: Vec<A::Octets>,
    partition: Partition,
    worker: u16,
    /// Timeout in ticks per [`FlowState`] discriminant.
    timeouts: [u32; 8],
    inbound_refresh: bool,
    seed: u64,
    table: Table<A>,
    ports: PortAllocator,
    wheel: TimerWheel,
    counters: NatCounters,
    /// Told of every port a mapping takes and releases (the XDP program's live-port map).
    observer: Option<Box<dyn PortObserver>>,
    /// Fragmented datagrams from inside hosts: the egress address of their first fragment
    /// (IPv4 only: the IPv6 NAT refuses extension headers, fragment headers included).
    outbound_chains: Fragments,
    /// Fragmented return traffic: the inside address of their first fragment, or its owner.
    inbound_chains: Fragments,
}

impl<A: Family> Conntrack<A> {
    /// Builds worker `worker`'s table (`0 <= worker < config.workers`), preallocating
    /// everything it will ever use.
    pub fn new(config: &NatConfig<A>, worker: u16) -> Result<Conntrack<A>, ConfigError> {
        config.validate()?;
        if worker >= config.workers {
            return Err(ConfigError::WorkerOutOfRange {
                worker,
                workers: config.workers,
            });
        }
        let partition = Partition::new(config);
        let slice = partition.slice(worker);
        let slice_len = u32::from(*slice.end()) - u32::from(*slice.start()) + 1;
        let naddrs = config.egress.len();
        let t = &config.timeouts;
        let secs = |d: std::time::Duration| d.as_secs().min(u64::from(u32::MAX / 4)) as u32;
        let mut timeouts = [0u32; 8];
        for s in [
            FlowState::TcpOpening,
            FlowState::TcpEstablished,
            FlowState::TcpClosing,
            FlowState::TcpTimeWait,
            FlowState::TcpClosed,
            FlowState::UdpOneWay,
            FlowState::UdpBothWays,
            FlowState::IcmpQuery,
        ] {
            timeouts[s as usize] = secs(flow_state::timeout(t, s));
        }
        // Only IPv4 follows fragment chains; the smallest table otherwise.
        let chains = if A::IS_V4 { FRAGMENT_CHAINS } else { 1 };
        Ok(Conntrack {
            egress: config.egress.iter().map(|a| a.octets()).collect(),
            partition,
            worker,
            timeouts,
            inbound_refresh: config.inbound_refresh,
            seed: config.hash_seed,
            table: Table::new(
                config.capacity_per_worker,
                naddrs,
                slice_len,
                config.hash_seed,
            ),
            ports: PortAllocator::new(
                *slice.start(),
                slice_len,
                Protocol::ALL.len() * naddrs,
                &config.exclude_ports,
            ),
            wheel: TimerWheel::new(config.capacity_per_worker as usize, 0),
            counters: NatCounters::default(),
            observer: None,
            outbound_chains: Fragments::new(chains, config.hash_seed ^ 0x0f0f),
            inbound_chains: Fragments::new(chains, config.hash_seed ^ 0xf0f0),
        })
    }

    /// Counts the result of an outbound translation.
    #[inline]
    pub(crate) fn count_outbound(&mut self, r: &Result<Outbound, NatError>) {
        let c = &mut self.counters;
        match r {
            Ok(Outbound::Forward) => c.translated_outbound += 1,
            Ok(Outbound::Hairpin { .. }) => {
                c.translated_outbound += 1;
                c.hairpinned += 1;
            }
            Ok(Outbound::Handoff { .. }) => c.handoffs += 1,
            Ok(Outbound::Local) => c.local += 1,
            Err(e) => c.count_drop(*e),
        }
    }

    /// Counts the result of an inbound translation.
    #[inline]
    pub(crate) fn count_inbound(&mut self, r: &Result<Inbound<A>, NatError>) {
        let c = &mut self.counters;
        match r {
            Ok(Inbound::Deliver { .. }) => c.translated_inbound += 1,
            Ok(Inbound::Handoff { .. }) => c.handoffs += 1,
            Ok(Inbound::NotNat) => c.not_nat += 1,
            Err(e) => c.count_drop(*e),
        }
    }

    /// Reports every mapping created and removed from now on to `observer` (this worker's
    /// table must be empty yet: earlier mappings would never be reported).
    pub fn observe_ports(&mut self, observer: Box<dyn PortObserver>) {
        debug_assert!(self.is_empty(), "observer set after mappings were created");
        self.observer = Some(observer);
    }

    /// Removes expired mappings, looking at no more than `budget` candidates (and empty wheel
    /// buckets). Call once per batch, e.g. with a budget of 64; returns how many were removed.
    pub fn expire(&mut self, now_ns: u64, budget: usize) -> usize {
        self.expire_ticks(tick(now_ns), budget)
    }

    pub fn counters(&self) -> &NatCounters {
        &self.counters
    }

    /// Live entries (including expired ones not reaped yet).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    pub fn worker(&self) -> u16 {
        self.worker
    }

    /// Bytes of heap this worker's NAT holds (all of it allocated in `new`).
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
            + self.ports.heap_bytes()
            + self.wheel.heap_bytes()
            + self.outbound_chains.heap_bytes()
            + self.inbound_chains.heap_bytes()
            + self.egress.capacity() * std::mem::size_of::<A::Octets>()
    }

    /// The mapping of an inside endpoint, if this worker holds one.
    pub fn lookup_inside(&self, protocol: Protocol, inside: A::Socket) -> Option<Mapping<A>> {
        let (addr, port) = A::socket_parts(inside);
        let slot = self.table.find_inside(protocol, addr.octets(), port)?;
        Some(self.mapping(slot))
    }

    /// The mapping behind an external endpoint, if this worker holds one.
    pub fn lookup_external(&self, protocol: Protocol, external: A::Socket) -> Option<Mapping<A>> {
        let (addr, port) = A::socket_parts(external);
        let a = self.egress_index(addr.octets())?;
        let off = self.ports.offset(port)?;
        let slot = self.table.find_external(protocol, a, off)?;
        Some(self.mapping(slot))
    }

    fn mapping(&self, slot: u32) -> Mapping<A> {
        let e = self.table.entry(slot);
        Mapping {
            protocol: e.protocol(),
            inside: A::socket(A::from_octets(e.inside_addr), e.inside_port),
            external: A::socket(
                A::from_octets(self.egress[usize::from(e.ext_addr)]),
                e.ext_port,
            ),
            state: flow_state::state(e.protocol(), e.bits),
            expires_at_secs: e.deadline,
        }
    }

    pub(crate) fn egress_index(&self, addr: A::Octets) -> Option<u16> {
        // Usually one or two addresses: a linear scan beats any map.
        self.egress
            .iter()
            .position(|a| *a == addr)
            .map(|i| i as u16)
    }

    /// RFC 4787 REQ-2 ("paired" pooling): an inside address always gets the same egress
    /// address.
    fn paired_address(&self, inside: A::Octets) -> u16 {
        let h = A::fold(inside).wrapping_mul(0xff51_afd7_ed55_8ccd) >> 40;
        (h % self.egress.len() as u64) as u16
    }

    /// The egress address and port of the mapping in `slot`.
    #[inline]
    pub(crate) fn external_of(&self, slot: u32) -> (A::Octets, u16) {
        let e = self.table.entry(slot);
        (self.egress[usize::from(e.ext_addr)], e.ext_port)
    }

    /// The inside endpoint of the mapping in `slot`, and whether it tracks `remote`.
    #[inline]
    pub(crate) fn inside_of(&self, slot: u32, remote: Remote<A>) -> (A::Octets, u16, bool) {
        let e = self.table.entry(slot);
        (e.inside_addr, e.inside_port, e.remotes.tracks(remote))
    }

    pub(crate) fn count_untracked(&mut self) {
        self.counters.inbound_untracked += 1;
    }

    pub(crate) fn count_icmp_error(&mut self, outbound: bool) {
        if outbound {
            self.counters.icmp_errors_outbound += 1;
        } else {
            self.counters.icmp_errors_inbound += 1;
        }
    }

    /// The live mapping of an inside endpoint (an ICMP error from inside is about one).
    pub(crate) fn live_inside(
        &self,
        now: u32,
        proto: Protocol,
        inside: A::Octets,
        port: u16,
    ) -> Option<u32> {
        self.table
            .find_inside(proto, inside, port)
            .filter(|&s| self.table.entry(s).deadline > now)
    }

    pub(crate) fn live_external(
        &self,
        now: u32,
        proto: Protocol,
        ext_addr: u16,
        port: u16,
    ) -> Option<u32> {
        let off = self.ports.offset(port)?;
        let slot = self.table.find_external(proto, ext_addr, off)?;
        // An entry past its deadline but not reaped yet no longer admits return traffic.
        (self.table.entry(slot).deadline > now).then_some(slot)
    }

    pub(crate) fn find_or_create(
        &mut self,
        now: u32,
        proto: Protocol,
        inside: A::Octets,
        port: u16,
    ) -> Result<(u32, bool), NatError> {
        if let Some(slot) = self.table.find_inside(proto, inside, port) {
            let e = self.table.entry_mut(slot);
            if e.deadline <= now {
                // Expired, not reaped yet: same mapping (RFC 4787 REQ-1), fresh session state.
                e.bits = 0;
            }
            return Ok((slot, false));
        }
        if self.table.is_full() {
            self.expire_ticks(now, RECLAIM_BUDGET);
            if self.table.is_full() {
                return Err(NatError::TableFull);
            }
        }
        let ext_addr = self.paired_address(inside);
        let set = self.table.port_set(proto, ext_addr);
        // Port preservation, like MASQUERADE, when the inside port is in our slice and free.
        let preferred = self.ports.offset(port);
        // Otherwise a keyed-random starting point (RFC 6056 §3.3.3 style), so external ports
        // do not reveal the order of connections.
        let hint = (table::hash_inside::<A>(self.seed ^ 0xa5a5, proto, inside, port) >> 32) as u32;
        let off = match self.ports.allocate(set, preferred, hint) {
            Some(off) => off,
            None => {
                self.expire_ticks(now, RECLAIM_BUDGET);
                self.ports
                    .allocate(set, preferred, hint)
                    .ok_or(NatError::NoFreePort)?
            }
        };
        let entry = Entry {
            inside_addr: inside,
            deadline: now,
            inside_port: port,
            ext_port: self.ports.port(off),
            ext_addr,
            proto: proto as u8,
            bits: 0,
            // Set by `sent_to` before the first packet is translated.
            remotes: Remotes::default(),
        };
        let Some(slot) = self.table.insert(entry, off) else {
            // Unreachable (fullness was checked), but never leak the port.
            self.ports.release(set, off);
            return Err(NatError::TableFull);
        };
        self.counters.created += 1;
        if let Some(o) = &self.observer {
            o.mapped(proto, entry.ext_port);
        }
        Ok((slot, true))
    }

    /// Notes that the inside host of the mapping in `slot` sent to `remote` (before `touch`
    /// sees the packet, so a new session is recognised from the state it ends).
    pub(crate) fn sent_to(&mut self, slot: u32, remote: Remote<A>, tcp_flags: u8) {
        let e = self.table.entry_mut(slot);
        if flow_state::starts_session(e.protocol(), e.bits, tcp_flags) {
            e.remotes = Remotes::opened_by(remote);
        } else {
            e.remotes.sent_to(remote);
        }
    }

    /// Updates the flow state for one packet and moves the deadline.
    pub(crate) fn touch(&mut self, now: u32, slot: u32, dir: Dir, tcp_flags: u8, new: bool) {
        let e = self.table.entry_mut(slot);
        let proto = e.protocol();
        e.bits = flow_state::on_packet(proto, e.bits, dir, tcp_flags);
        let refresh = new || dir == Dir::Out || proto == Protocol::Tcp || self.inbound_refresh;
        if !refresh {
            return;
        }
        let state = flow_state::state(proto, e.bits);
        let deadline = now
            .saturating_add(self.timeouts[state as usize])
            .saturating_add(1);
        e.deadline = deadline;
        if new {
            self.wheel.insert(slot, deadline);
        } else if deadline < self.wheel.scheduled_at(slot) {
            // Shorter timeout (FIN, RST): re-file now so the port is reclaimed on time.
            self.wheel.reschedule(slot, deadline);
        }
    }

    fn expire_ticks(&mut self, now: u32, budget: usize) -> usize {
        let mut budget = budget;
        let mut removed = 0;
        while let Some(slot) = self.wheel.poll(now, &mut budget) {
            let e = *self.table.entry(slot);
            if e.deadline <= now {
                let set = self.table.port_set(e.protocol(), e.ext_addr);
                let off = self.ports.offset(e.ext_port).unwrap_or(0);
                self.table.remove(slot, off);
                self.ports.release(set, off);
                if let Some(o) = &self.observer {
                    o.unmapped(e.protocol(), e.ext_port);
                }
                removed += 1;
            } else {
                self.wheel.insert(slot, e.deadline);
            }
        }
        self.counters.expired += removed as u64;
        removed
    }
}

/// The IPv4 packet path.
impl Conntrack<Ipv4Addr> {
    /// Translates a packet from an inside host (after decryption and the AllowedIPs source
    /// check). `pkt` starts at the IPv4 header; it is rewritten in place only when the result
    /// is `Forward` or `Hairpin`. `now_ns` is the caller's monotonic clock in nanoseconds
    /// (e.g. `wgproto::Timestamp::as_nanos`).
    pub fn translate_outbound(
        &mut self,
        now_ns: u64,
        pkt: &mut [u8],
    ) -> Result<Outbound, NatError> {
        let r = self.outbound(tick(now_ns), pkt);
        self.count_outbound(&r);
        r
    }

    /// Translates a packet that arrived for an egress address. `pkt` starts at the IPv4
    /// header; it is rewritten in place only when the result is `Deliver`.
    pub fn translate_inbound(&mut self, now_ns: u64, pkt: &mut [u8]) -> Result<Inbound, NatError> {
        let r = self.inbound(tick(now_ns), pkt);
        self.count_inbound(&r);
        r
    }

    fn outbound(&mut self, now: u32, pkt: &mut [u8]) -> Result<Outbound, NatError> {
        let ip = view::parse_ipv4(pkt, true)?;
        let proto = Protocol::from_ip(ip.proto).ok_or(NatError::UnsupportedProtocol)?;
        if ip.later_fragment {
            return self.outbound_later_fragment(now, pkt, &ip);
        }
        if ip.end - ip.hlen < view::min_l4_len(proto) {
            return Err(NatError::Truncated);
        }
        let l4 = ip.hlen;
        let to_egress = self.egress_index(ip.dst).is_some();
        if ip.fragment && to_egress {
            // Hairpinned fragments would need the chain followed on two workers.
            return Err(NatError::Fragment);
        }
        let mut tcp_flags = 0;
        let mut dport = 0;
        if proto == Protocol::Icmp {
            let t = pkt[l4 + icmp::field::TYPE];
            if view::is_icmp_error(t) {
                if ip.fragment {
                    // Its checksum covers the whole message: it cannot be verified here.
                    return Err(NatError::Fragment);
                }
                return self.outbound_icmp_error(pkt, &ip, now);
            }
            if !icmp::is_query_request(t) {
                return Err(NatError::UnsupportedIcmp);
            }
            if to_egress {
                return Ok(Outbound::Local);
            }
        } else {
            dport = view::rd16(pkt, l4 + udp::field::DST_PORT.start);
            if to_egress && !self.partition.in_range(dport) {
                return Ok(Outbound::Local);
            }
            if proto == Protocol::Tcp {
                tcp_flags = pkt[l4 + tcp::field::FLAGS];
            }
        }
        let owner = self.partition.owner_of_inside(Ipv4Addr::from(ip.src));
        if owner != self.worker {
            return Ok(Outbound::Handoff { owner });
        }
        let sport = view::rd16(pkt, l4 + view::src_port_off(proto));
        let (slot, new) = self.find_or_create(now, proto, ip.src, sport)?;
        self.sent_to(slot, Remote::new(proto, ip.dst, dport), tcp_flags);
        self.touch(now, slot, Dir::Out, tcp_flags, new);
        let e = *self.table.entry(slot);
        let ext = self.egress[usize::from(e.ext_addr)];
        // A first fragment: the transport checksum covers the whole datagram, but an
        // incremental update (RFC 1624) is exact whatever part of it is here.
        rewrite::endpoint(pkt, &ip, proto, Side::Src, ext, e.ext_port);
        if ip.fragment {
            let key = chain_key(&ip);
            self.outbound_chains.remember(now, key, Chain::Address(ext));
        }
        if to_egress {
            // In range was checked above, so the owner exists.
            let owner = self.partition.owner_of_port(dport).unwrap_or(self.worker);
            return Ok(Outbound::Hairpin { owner });
        }
        Ok(Outbound::Forward)
    }

    fn inbound(&mut self, now: u32, pkt: &mut [u8]) -> Result<Inbound, NatError> {
        let ip = view::parse_ipv4(pkt, true)?;
        let Some(ext_addr) = self.egress_index(ip.dst) else {
            return Ok(Inbound::NotNat);
        };
        let Some(proto) = Protocol::from_ip(ip.proto) else {
            return Ok(Inbound::NotNat);
        };
        if ip.later_fragment {
            return self.inbound_later_fragment(now, pkt, &ip);
        }
        if ip.end - ip.hlen < view::min_l4_len(proto) {
            return Err(NatError::Truncated);
        }
        let l4 = ip.hlen;
        let mut tcp_flags = 0;
        match proto {
            Protocol::Icmp => {
                let t = pkt[l4 + icmp::field::TYPE];
                if view::is_icmp_error(t) {
                    if ip.fragment {
                        return Err(NatError::Fragment);
                    }
                    return self.inbound_icmp_error(pkt, &ip, now);
                }
                if !icmp::is_query_reply(t) {
                    // Echo requests and the rest are for the gateway itself.
                    return Ok(Inbound::NotNat);
                }
            }
            Protocol::Tcp => tcp_flags = pkt[l4 + tcp::field::FLAGS],
            Protocol::Udp => {}
        }
        let port = view::rd16(pkt, l4 + view::dst_port_off(proto));
        let Some(owner) = self.partition.owner_of_port(port) else {
            return Ok(Inbound::NotNat);
        };
        if owner != self.worker {
            if ip.fragment {
                // Its later fragments carry no port: send them after it.
                let key = chain_key(&ip);
                self.inbound_chains
                    .remember(now, key, Chain::Handoff(owner));
            }
            return Ok(Inbound::Handoff { owner });
        }
        let slot = self
            .live_external(now, proto, ext_addr, port)
            .ok_or(NatError::NoMapping)?;
        let sport = view::rd16(pkt, l4 + view::src_port_off(proto));
        // One read of the entry for the remote check and the rewrite.
        let e = self.table.entry(slot);
        let (inside_addr, inside_port) = (e.inside_addr, e.inside_port);
        if e.remotes.tracks(Remote::new(proto, ip.src, sport)) {
            self.touch(now, slot, Dir::In, tcp_flags, false);
        } else if tcp_flags & tcp::FLAG_RST != 0 {
            // Endpoint-independent filtering delivers other remotes' segments, but a RST
            // from one can only be a spoof aimed at the mapping: the inside host's
            // connection is with a tracked remote.
            return Err(NatError::OffPathRst);
        } else {
            // Delivered (endpoint-independent filtering), but it neither refreshes the
            // mapping nor moves its state: see `remote`.
            self.counters.inbound_untracked += 1;
        }
        rewrite::endpoint(pkt, &ip, proto, Side::Dst, inside_addr, inside_port);
        if ip.fragment {
            let key = chain_key(&ip);
            self.inbound_chains
                .remember(now, key, Chain::Address(inside_addr));
        }
        Ok(Inbound::Deliver {
            inside: inside_addr.into(),
        })
    }

    /// A fragment after the first from an inside host: the source address its first fragment
    /// was given (the ports are in the first fragment only, and the transport checksum was
    /// updated there).
    fn outbound_later_fragment(
        &mut self,
        now: u32,
        pkt: &mut [u8],
        ip: &view::Ipv4,
    ) -> Result<Outbound, NatError> {
        let owner = self.partition.owner_of_inside(Ipv4Addr::from(ip.src));
        if owner != self.worker {
            return Ok(Outbound::Handoff { owner });
        }
        match self.outbound_chains.lookup(now, &chain_key(ip)) {
            Some(Chain::Address(ext)) => {
                rewrite::address(pkt, Side::Src, ext);
                Ok(Outbound::Forward)
            }
            _ => Err(NatError::FragmentUnknown),
        }
    }

    /// A fragment after the first of return traffic: the inside address its first fragment
    /// was delivered to, or the worker it was handed to.
    fn inbound_later_fragment(
        &mut self,
        now: u32,
        pkt: &mut [u8],
        ip: &view::Ipv4,
    ) -> Result<Inbound, NatError> {
        match self.inbound_chains.lookup(now, &chain_key(ip)) {
            Some(Chain::Address(inside)) => {
                rewrite::address(pkt, Side::Dst, inside);
                Ok(Inbound::Deliver {
                    inside: inside.into(),
                })
            }
            Some(Chain::Handoff(owner)) => Ok(Inbound::Handoff { owner }),
            None => Err(NatError::FragmentUnknown),
        }
    }

    /// An ICMP error from outside about a packet we sent (RFC 5508 REQ-4): the quoted packet's
    /// source is our egress endpoint; revert it to the inside endpoint and deliver inside.
    fn inbound_icmp_error(
        &mut self,
        pkt: &mut [u8],
        ip: &view::Ipv4,
        now: u32,
    ) -> Result<Inbound, NatError> {
        let q = rewrite::parse_icmp_error(pkt, ip)?;
        let ext_addr = self
            .egress_index(q.quoted_ip.src)
            .ok_or(NatError::IcmpErrorNoMapping)?;
        let port = q.port(pkt, Side::Src);
        let owner = self
            .partition
            .owner_of_port(port)
            .ok_or(NatError::IcmpErrorNoMapping)?;
        if owner != self.worker {
            return Ok(Inbound::Handoff { owner });
        }
        let slot = self
            .live_external(now, q.proto, ext_addr, port)
            .ok_or(NatError::IcmpErrorNoMapping)?;
        // The quoted packet is one we sent: its destination must be a remote the mapping
        // talks to, or the error is forged by someone who only guessed the port.
        let quoted_remote = Remote::new(q.proto, q.quoted_ip.dst, q.port(pkt, Side::Dst));
        if !self.table.entry(slot).remotes.tracks(quoted_remote) {
            return Err(NatError::IcmpErrorOffPath);
        }
        // RFC 5508 REQ-6 / RFC 4787 REQ-12: an ICMP error neither refreshes nor removes the
        // mapping, so nothing of the entry changes here.
        let e = *self.table.entry(slot);
        rewrite::quoted_endpoint(pkt, &q, Side::Src, e.inside_addr, e.inside_port);
        rewrite::address(pkt, Side::Dst, e.inside_addr);
        self.counters.icmp_errors_inbound += 1;
        Ok(Inbound::Deliver {
            inside: e.inside_addr.into(),
        })
    }

    /// An ICMP error from an inside host about a packet we delivered to it (RFC 5508 REQ-5):
    /// the quoted packet's destination is the inside endpoint; put back the external one and
    /// send the error from our egress address.
    fn outbound_icmp_error(
        &mut self,
        pkt: &mut [u8],
        ip: &view::Ipv4,
        now: u32,
    ) -> Result<Outbound, NatError> {
        let q = rewrite::parse_icmp_error(pkt, ip)?;
        let inside = q.quoted_ip.dst;
        let owner = self.partition.owner_of_inside(Ipv4Addr::from(inside));
        if owner != self.worker {
            return Ok(Outbound::Handoff { owner });
        }
        let port = q.port(pkt, Side::Dst);
        let slot = self
            .table
            .find_inside(q.proto, inside, port)
            .filter(|&s| self.table.entry(s).deadline > now)
            .ok_or(NatError::IcmpErrorNoMapping)?;
        let e = *self.table.entry(slot);
        let ext = self.egress[usize::from(e.ext_addr)];
        rewrite::quoted_endpoint(pkt, &q, Side::Dst, ext, e.ext_port);
        // RFC 5508 REQ-5 c): a NAPT sends the error from its own public address.
        rewrite::address(pkt, Side::Src, ext);
        self.counters.icmp_errors_outbound += 1;
        if self.egress_index(ip.dst).is_some() {
            // Hairpinned error (RFC 5508 REQ-7): the quoted source is the other inside host's
            // external endpoint; the owner of that port reverts it.
            let qport = q.port(pkt, Side::Src);
            let owner = self
                .partition
                .owner_of_port(qport)
                .ok_or(NatError::IcmpErrorNoMapping)?;
            return Ok(Outbound::Hairpin { owner });
        }
        Ok(Outbound::Forward)
    }
}

/// The datagram a fragment belongs to, as it arrived.
fn chain_key(ip: &view::Ipv4) -> ChainKey {
    ChainKey {
        src: ip.src,
        dst: ip.dst,
        proto: ip.proto,
        id: ip.id,
    }
}
