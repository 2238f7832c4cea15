//! What the workers read to forward a packet: for each destination they asked about, where the
//! kernel would send it (output interface, next hop) and the MACs to write into the frame.
//!
//! Workers never talk to netlink. They read an immutable [`RouteSnapshot`] through an
//! `ArcSwap` (one atomic load per batch, no lock), and on a miss call
//! [`NextHopReader::request`], which hands the address to whoever keeps the snapshots current
//! (the refresher of the `dataplane` binary, which asks the kernel through rtnetlink).
//!
//! Usage from a worker:
//! ```ignore
//! let snap = reader.snapshot();           // once per batch
//! match snap.resolution(dst) {
//!     Some(Resolution::Ready(hop)) => { /* write hop.src_mac / hop.dst_mac, send on hop.ifindex */ }
//!     Some(_) => { /* local, unreachable, not Ethernet, resolving: slow path or drop counter */ }
//!     None => reader.request(dst),        // first packet to dst: ask, and divert this packet
//! }
//! ```

mod types;

pub use types::{InterfaceAddress, Link, Mac, Neighbour, NeighbourState, Route, RouteKind};

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};
use rustc_hash::FxHashMap;

/// Where to send a packet for one destination, ready to write into the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Output interface.
    pub ifindex: u32,
    /// Our MAC on `ifindex` (Ethernet source).
    pub src_mac: Mac,
    /// The next hop's MAC (Ethernet destination).
    pub dst_mac: Mac,
    /// The router the packet goes through; `None` if the destination is on the link.
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would choose.
    pub src_addr: Option<IpAddr>,
    /// The largest packet for this destination: the MTU of `ifindex`, or the route's MTU when
    /// smaller (a path MTU the kernel learned from a Packet Too Big or "fragmentation needed",
    /// or one set on the route), which is also what the kernel's forwarding uses. Re-read about
    /// once a second for destinations in use, so a learned one that expires is dropped again.
    pub mtu: u32,
}

/// The state of one destination in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Forward with these headers.
    Ready(NextHop),
    /// The destination is an address of this host: give it to the kernel.
    Local,
    /// Routed, but the next hop's MAC is not known yet; the kernel has been asked.
    Resolving { ifindex: u32, next_hop: IpAddr },
    /// The route leaves by a link without Ethernet addresses (tun `wg0`, loopback): the kernel
    /// handles it.
    NotEthernet { ifindex: u32 },
    /// No usable route; `errno` as the kernel reported it (ENETUNREACH, EHOSTUNREACH, ...),
    /// or 0 for broadcast/reject routes.
    Unreachable { errno: i32 },
}

/// Whether a cached destination was looked up since the cache last checked: how the cache
/// evicts by use and retries only destinations in demand. Workers set it with a load and, only
/// when it is clear, a store, so a hot destination costs one write per check of the cache
/// (about a second), not one per packet. The cache clears it when it checks.
#[derive(Debug, Default)]
pub struct UseFlag(AtomicBool);

impl UseFlag {
    #[inline(always)]
    pub fn touch(&self) {
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    /// Whether it was used since the last call. Writes only when it was (a line the workers
    /// read is not dirtied for idle entries).
    pub fn take(&self) -> bool {
        self.0.load(Ordering::Relaxed) && self.0.swap(false, Ordering::Relaxed)
    }
}

/// One destination of a snapshot: its state, and the use flag every snapshot of it shares.
#[derive(Debug, Clone)]
pub struct Cached {
    pub resolution: Resolution,
    pub used: Arc<UseFlag>,
}

/// An immutable view of the cache. Cheap to read from any thread.
#[derive(Debug, Default)]
pub struct RouteSnapshot {
    /// Incremented on every publication.
    pub generation: u64,
    /// IPv4 destinations keyed by the address as an integer, IPv6 ones by theirs: hashing an
    /// `IpAddr` (a tagged enum built on the stack just before) cost the forward route step a
    /// stalled load per packet in the 64-byte profile (`bench/results/batch-2026-12-03`).
    destinations4: FxHashMap<u32, Cached>,
    destinations6: FxHashMap<Ipv6Addr, Cached>,
    links: FxHashMap<u32, Link>,
}

impl RouteSnapshot {
    /// The state of `dst`, `None` if nobody asked for it yet (call [`NextHopReader::request`]).
    /// Marks `dst` as used. Always inlined: out of line (as the use flag made it) the call
    /// showed in the per-packet route step.
    #[inline(always)]
    pub fn resolution(&self, dst: IpAddr) -> Option<&Resolution> {
        let c = match dst {
            IpAddr::V4(a) => self.destinations4.get(&u32::from(a)),
            IpAddr::V6(a) => self.destinations6.get(&a),
        }?;
        c.used.touch();
        Some(&c.resolution)
    }

    /// The next hop of `dst` when it is ready to forward.
    #[inline]
    pub fn next_hop(&self, dst: IpAddr) -> Option<&NextHop> {
        match self.resolution(dst) {
            Some(Resolution::Ready(hop)) => Some(hop),
            _ => None,
        }
    }

    /// An interface by index.
    pub fn link(&self, ifindex: u32) -> Option<&Link> {
        self.links.get(&ifindex)
    }

    /// An interface by name.
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// Number of cached destinations.
    pub fn len(&self) -> usize {
        self.destinations4.len() + self.destinations6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot published by the refresher.
    pub fn new(
        generation: u64,
        destinations: FxHashMap<IpAddr, Cached>,
        links: FxHashMap<u32, Link>,
    ) -> Self {
        let mut snapshot = RouteSnapshot {
            generation,
            links,
            ..Default::default()
        };
        snapshot.insert_all(destinations);
        snapshot
    }

    /// Files each destination in the map of its family.
    fn insert_all(&mut self, destinations: impl IntoIterator<Item = (IpAddr, Cached)>) {
        for (dst, cached) in destinations {
            match dst {
                IpAddr::V4(a) => self.destinations4.insert(u32::from(a), cached),
                IpAddr::V6(a) => self.destinations6.insert(a, cached),
            };
        }
    }

    /// A fixed snapshot built from known answers instead of the kernel's, for tests and
    /// benchmarks that run the pipeline without netlink.
    pub fn from_entries(
        destinations: impl IntoIterator<Item = (IpAddr, Resolution)>,
        links: impl IntoIterator<Item = Link>,
    ) -> Self {
        let mut snapshot = RouteSnapshot {
            generation: 1,
            links: links.into_iter().map(|l| (l.index, l)).collect(),
            ..Default::default()
        };
        snapshot.insert_all(destinations.into_iter().map(|(dst, resolution)| {
            let used = Arc::default();
            (dst, Cached { resolution, used })
        }));
        snapshot
    }
}

/// Where a worker's lookup requests go: the refresher that asks the kernel. `request` must
/// never block (a full queue refuses, and the next packet to the destination asks again).
pub trait RouteRequests: Send + Sync {
    /// Queues a lookup of `dst`; returns whether it was queued.
    fn request(&self, dst: IpAddr) -> bool;
}

/// Refuses every request: the sink of a [`NextHopReader::detached`] reader.
struct NoRequests;

impl RouteRequests for NoRequests {
    fn request(&self, _dst: IpAddr) -> bool {
        false
    }
}

/// A worker's handle: read snapshots, request lookups. `Clone + Send + Sync`.
#[derive(Clone)]
pub struct NextHopReader {
    snapshot: Arc<ArcSwap<RouteSnapshot>>,
    requests: Arc<dyn RouteRequests>,
}

impl NextHopReader {
    /// The current snapshot (an atomic load; hold it for one batch, not forever).
    #[inline]
    pub fn snapshot(&self) -> Guard<Arc<RouteSnapshot>> {
        self.snapshot.load()
    }

    /// Asks the refresher to look `dst` up. Never blocks: when the queue is full the request is
    /// dropped (the next packet to `dst` asks again). Returns whether it was queued.
    #[inline]
    pub fn request(&self, dst: IpAddr) -> bool {
        self.requests.request(dst)
    }

    /// A reader of one fixed snapshot with no refresher behind it: requests are refused
    /// (`request` returns `false`). For tests and benchmarks of the pipeline without netlink.
    pub fn detached(snapshot: RouteSnapshot) -> Self {
        Self::new(
            Arc::new(ArcSwap::from_pointee(snapshot)),
            Arc::new(NoRequests),
        )
    }

    /// A reader of the snapshots published into `snapshot`, sending misses to `requests`.
    pub fn new(snapshot: Arc<ArcSwap<RouteSnapshot>>, requests: Arc<dyn RouteRequests>) -> Self {
        NextHopReader { snapshot, requests }
    }

    /// Requests `dst` and waits until its state is final (anything but `Resolving`) or `timeout`
    /// passes; returns the last state seen. For start-up and the slow path, never for workers.
    pub fn resolve_blocking(&self, dst: IpAddr, timeout: Duration) -> Option<Resolution> {
        let deadline = Instant::now() + timeout;
        let mut last_request = Instant::now();
        self.request(dst);
        loop {
            let state = self.snapshot().resolution(dst).copied();
            match state {
                Some(Resolution::Resolving { .. }) | None => {}
                Some(done) => return Some(done),
            }
            if Instant::now() >= deadline {
                return state;
            }
            if last_request.elapsed() >= Duration::from_millis(500) {
                last_request = Instant::now();
                self.request(dst);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// The two families live in two maps: each address finds its own entry, an IPv4 address
    /// never the IPv6 entry with the same low bits (`::a.b.c.d`), and the counts add up.
    #[test]
    fn each_family_finds_its_own_destinations() {
        let v4 = IpAddr::V4(Ipv4Addr::new(172, 23, 0, 2));
        let v6 = IpAddr::V6(Ipv6Addr::from(u128::from(0xac17_0002u32)));
        let snap = RouteSnapshot::new(
            1,
            [
                (v4, Resolution::Local),
                (v6, Resolution::Unreachable { errno: 101 }),
            ]
            .into_iter()
            .map(|(dst, resolution)| {
                let used = Arc::default();
                (dst, Cached { resolution, used })
            })
            .collect(),
            FxHashMap::default(),
        );
        assert_eq!(snap.len(), 2);
        assert_eq!(snap.resolution(v4), Some(&Resolution::Local));
        assert_eq!(
            snap.resolution(v6),
            Some(&Resolution::Unreachable { errno: 101 })
        );
        assert_eq!(
            snap.resolution(IpAddr::V4(Ipv4Addr::new(172, 23, 0, 3))),
            None
        );
        assert!(RouteSnapshot::from_entries([], []).is_empty());
    }
}
