//! The next-hop cache the workers read: for each destination the workers asked about, where
//! the kernel would send it (output interface, next hop) and the MACs to write into the frame.
//!
//! Workers never talk to netlink. They read an immutable [`RouteSnapshot`] through an
//! `ArcSwap` (one atomic load per batch, no lock), and on a miss call
//! [`NextHopReader::request`], which queues the address (bounded; dropped when full) for the
//! refresher thread. The refresher asks the kernel (RTM_GETROUTE, RTM_GETNEIGH), triggers
//! neighbour resolution through the kernel when the next hop is unknown (RTM_NEWNEIGH +
//! NTF_USE, at most once per `resolve_interval` per next hop), and publishes a new snapshot.
//! Workers mark the destinations they look up ([`UseFlag`]); every `resolve_interval` the
//! refresher folds the marks into each entry's last use, asks again for the next hops of
//! destinations still resolving that are in use (a neighbour that never answered must not
//! leave them resolving for good), asks the kernel again for the routes of destinations in use
//! (a path MTU learned from a Packet Too Big, or its expiry, comes with no notification; it
//! becomes `NextHop::mtu`), and, when full, evicts the least recently used.
//! A second thread listens to RTNLGRP_NEIGH / LINK / IPV4_ROUTE / IPV6_ROUTE / *_IFADDR
//! notifications so the cache follows the kernel: neighbour changes update entries in place,
//! route, link and address changes re-run the lookups of every cached destination.
//!
//! Usage from a worker:
//! ```ignore
//! let reader = cache.reader();            // once per worker thread (cheap clone)
//! let snap = reader.snapshot();           // once per batch
//! match snap.resolution(dst) {
//!     Some(Resolution::Ready(hop)) => { /* write hop.src_mac / hop.dst_mac, send on hop.ifindex */ }
//!     Some(_) => { /* local, unreachable, not Ethernet, resolving: slow path or drop counter */ }
//!     None => reader.request(dst),        // first packet to dst: ask, and divert this packet
//! }
//! ```

use super::rtnl::{parse_neighbour, Rtnl};
use arc_swap::ArcSwap;
use fastpath::route::*;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use rustc_hash::{FxHashMap, FxHashSet};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// rtnetlink multicast groups (include/uapi/linux/rtnetlink.h, enum rtnetlink_groups).
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// Tuning of the cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheOptions {
    /// Maximum cached destinations; the least recently used eighth is dropped when full.
    pub capacity: usize,
    /// Minimum time between two resolution requests for the same next hop, and how often next
    /// hops of destinations in use that are still resolving are asked for again.
    pub resolve_interval: Duration,
    /// How often STALE next hops in use are re-confirmed through the kernel (the fast path
    /// sends no packets through the kernel, so nothing else would confirm them).
    pub reconfirm_interval: Duration,
    /// Depth of the request queue from the workers.
    pub queue_len: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            capacity: 65536,
            resolve_interval: Duration::from_secs(1),
            reconfirm_interval: Duration::from_secs(30),
            queue_len: 4096,
        }
    }
}

enum Msg {
    Lookup(IpAddr),
    Neighbour(Neighbour),
    NeighbourGone(u32, IpAddr),
    RoutesChanged,
    Resync,
    Stop,
}

/// The refresher's queue, as the workers see it.
struct LookupQueue(SyncSender<Msg>);

impl RouteRequests for LookupQueue {
    fn request(&self, dst: IpAddr) -> bool {
        match self.0.try_send(Msg::Lookup(dst)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The cache and its two threads; dropping it stops them.
pub struct NextHopCache {
    reader: NextHopReader,
    tx: SyncSender<Msg>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl NextHopCache {
    /// Opens the netlink sockets in the calling thread's network namespace, reads the links, and
    /// starts the refresher and the notification listener.
    pub fn start(opts: CacheOptions) -> io::Result<Self> {
        let mut rtnl = Rtnl::open()?;
        let events = subscribe()?;
        let (tx, rx) = sync_channel(opts.queue_len.max(16));
        let links = rtnl
            .links()?
            .into_iter()
            .map(|l| (l.index, l))
            .collect::<FxHashMap<_, _>>();
        let snapshot = Arc::new(ArcSwap::from_pointee(RouteSnapshot::new(
            0,
            FxHashMap::default(),
            links.clone(),
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let refresher = Refresher {
            kernel: rtnl,
            opts,
            snapshot: snapshot.clone(),
            links,
            routes: FxHashMap::default(),
            neighbours: FxHashMap::default(),
            in_use: FxHashSet::default(),
            last_resolve: FxHashMap::default(),
            generation: 0,
        };
        let t1 = std::thread::Builder::new()
            .name("nexthop-refresh".into())
            .spawn(move || refresher.run(rx))?;
        let stop2 = stop.clone();
        let t2 = std::thread::Builder::new()
            .name("nexthop-listen".into())
            .spawn({
                let tx = tx.clone();
                move || listen(events, tx, stop2)
            })?;
        Ok(Self {
            reader: NextHopReader::new(snapshot, Arc::new(LookupQueue(tx.clone()))),
            tx,
            stop,
            threads: vec![t1, t2],
        })
    }

    /// A handle for a worker thread.
    pub fn reader(&self) -> NextHopReader {
        self.reader.clone()
    }
}

impl Drop for NextHopCache {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Stop);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A socket subscribed to the notifications the cache follows, with a receive timeout so the
/// listener can notice shutdown.
fn subscribe() -> io::Result<Socket> {
    let mut s = Socket::new(NETLINK_ROUTE)?;
    s.bind_auto()?;
    for g in [
        RTNLGRP_LINK,
        RTNLGRP_NEIGH,
        RTNLGRP_IPV4_IFADDR,
        RTNLGRP_IPV4_ROUTE,
        RTNLGRP_IPV6_IFADDR,
        RTNLGRP_IPV6_ROUTE,
    ] {
        s.add_membership(g)?;
    }
    let _ = s.set_rx_buf_sz(4 * 1024 * 1024);
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: `s` is an open socket owned by this function; `tv` is a valid timeval that lives
    // across the call and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s)
}

/// The listener thread: turns notifications into messages for the refresher.
fn listen(socket: Socket, tx: SyncSender<Msg>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let n = match socket.recv(&mut &mut buf[..], 0) {
            Ok(n) => n.min(buf.len()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                // The kernel dropped notifications: re-read everything.
                tracing::warn!("netlink notifications overran; resynchronising the next-hop cache");
                if tx.send(Msg::Resync).is_err() {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "netlink notification socket failed; next-hop cache no longer follows the kernel");
                return;
            }
        };
        let mut offset = 0;
        while offset < n {
            let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..n])
            else {
                break;
            };
            let len = msg.header.length as usize;
            if len == 0 {
                break;
            }
            offset += (len + 3) & !3;
            let out = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => {
                    parse_neighbour(&m).map(Msg::Neighbour)
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(m)) => {
                    parse_neighbour(&m).map(|n| Msg::NeighbourGone(n.ifindex, n.addr))
                }
                NetlinkPayload::InnerMessage(
                    RouteNetlinkMessage::NewRoute(_)
                    | RouteNetlinkMessage::DelRoute(_)
                    | RouteNetlinkMessage::NewLink(_)
                    | RouteNetlinkMessage::DelLink(_)
                    | RouteNetlinkMessage::NewAddress(_)
                    | RouteNetlinkMessage::DelAddress(_),
                ) => Some(Msg::RoutesChanged),
                _ => None,
            };
            if let Some(m) = out {
                if tx.send(m).is_err() {
                    return;
                }
            }
        }
    }
}

struct RouteEntry {
    /// The kernel's decision, or its errno.
    route: Result<Route, i32>,
    /// When a worker last asked for it or looked it up (as of the last [`Refresher::sweep`]).
    last_used: Instant,
    /// When the kernel was last asked for `route`.
    checked: Instant,
    /// Set by the workers' lookups; shared by every snapshot of this destination.
    used: Arc<UseFlag>,
}

/// What the refresher asks of the kernel: [`Rtnl`] in the binary, a fake in tests.
trait Kernel {
    fn links(&mut self) -> io::Result<Vec<Link>>;
    fn route_get(&mut self, dst: IpAddr) -> io::Result<Route>;
    fn neighbour_get(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<Option<Neighbour>>;
    fn resolve_neighbour(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<()>;
}

impl Kernel for Rtnl {
    fn links(&mut self) -> io::Result<Vec<Link>> {
        Rtnl::links(self)
    }
    fn route_get(&mut self, dst: IpAddr) -> io::Result<Route> {
        Rtnl::route_get(self, dst)
    }
    fn neighbour_get(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<Option<Neighbour>> {
        Rtnl::neighbour_get(self, ifindex, addr)
    }
    fn resolve_neighbour(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<()> {
        Rtnl::resolve_neighbour(self, ifindex, addr)
    }
}

/// At most this many resolving destinations are asked for again per `resolve_interval`.
const RETRY_BUDGET: usize = 256;
/// At most this many routes of destinations in use are asked for again per
/// `resolve_interval` (the ones asked longest ago first).
const RECHECK_BUDGET: usize = 256;

/// State owned by the refresher thread.
struct Refresher<K: Kernel = Rtnl> {
    kernel: K,
    opts: CacheOptions,
    snapshot: Arc<ArcSwap<RouteSnapshot>>,
    links: FxHashMap<u32, Link>,
    routes: FxHashMap<IpAddr, RouteEntry>,
    /// Neighbour entries of next hops in use, keyed by (ifindex, address).
    neighbours: FxHashMap<(u32, IpAddr), Neighbour>,
    in_use: FxHashSet<(u32, IpAddr)>,
    last_resolve: FxHashMap<(u32, IpAddr), Instant>,
    generation: u64,
}

impl<K: Kernel> Refresher<K> {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut next_reconfirm = Instant::now() + self.opts.reconfirm_interval;
        let mut last_retry = Instant::now();
        loop {
            let next_retry = last_retry + self.opts.resolve_interval;
            let wait = next_reconfirm
                .min(next_retry)
                .saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut dirty = false;
            let mut reroute = false;
            let mut pending = first.into_iter().collect::<Vec<_>>();
            // Drain what else is queued so one burst of misses or notifications becomes one
            // publication.
            while pending.len() < 4096 {
                match rx.try_recv() {
                    Ok(m) => pending.push(m),
                    Err(_) => break,
                }
            }
            for m in pending {
                match m {
                    Msg::Stop => return,
                    Msg::Lookup(dst) => dirty |= self.lookup(dst, Instant::now()),
                    Msg::Neighbour(n) => {
                        let key = (n.ifindex, n.addr);
                        if self.in_use.contains(&key) {
                            self.neighbours.insert(key, n);
                            if !n.state.is_usable() && n.state != NeighbourState::Incomplete {
                                self.maybe_resolve(key);
                            }
                            dirty = true;
                        }
                    }
                    Msg::NeighbourGone(ifindex, addr) => {
                        if self.neighbours.remove(&(ifindex, addr)).is_some() {
                            dirty = true;
                        }
                    }
                    Msg::RoutesChanged => reroute = true,
                    Msg::Resync => {
                        reroute = true;
                        self.neighbours.clear();
                    }
                }
            }
            if reroute {
                self.reroute();
                dirty = true;
            }
            let now = Instant::now();
            if now >= next_retry {
                dirty |= self.retry_resolving(last_retry, now);
                dirty |= self.recheck_routes(last_retry, now);
                last_retry = now;
            }
            if Instant::now() >= next_reconfirm {
                self.reconfirm();
                next_reconfirm = Instant::now() + self.opts.reconfirm_interval;
            }
            if dirty {
                self.publish();
            }
        }
    }

    /// Looks `dst` up in the kernel; returns whether anything changed.
    fn lookup(&mut self, dst: IpAddr, now: Instant) -> bool {
        if let Some(e) = self.routes.get_mut(&dst) {
            e.last_used = now;
            // Already known: a worker raced the publication, or the next hop is still
            // resolving, in which case ask the kernel again (rate-limited).
            return match e.route {
                Ok(route) => self.ensure_neighbour(&route),
                Err(_) => false,
            };
        }
        if self.routes.len() >= self.opts.capacity {
            self.evict(now);
        }
        let route = self
            .kernel
            .route_get(dst)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
        if let Ok(r) = route {
            self.ensure_neighbour(&r);
        }
        self.routes.insert(
            dst,
            RouteEntry {
                route,
                last_used: now,
                checked: now,
                used: Arc::default(),
            },
        );
        true
    }

    /// Folds the workers' use marks into the entries' last use.
    fn sweep(&mut self, now: Instant) {
        for e in self.routes.values_mut() {
            if e.used.take() {
                e.last_used = now;
            }
        }
    }

    /// Asks again for the next hops of destinations still resolving that were used after
    /// `since` (a parked packet or a new one looked them up): the kernel may have dropped the
    /// request, or the neighbour answered after its entry had gone FAILED and no notification
    /// reached us. Destinations nobody uses are left alone until they are used again. Returns
    /// whether anything the workers read changed.
    fn retry_resolving(&mut self, since: Instant, now: Instant) -> bool {
        self.sweep(now);
        let due: Vec<Route> = self
            .routes
            .values()
            .filter(|e| e.last_used > since)
            .filter(|e| matches!(self.resolution(e), Resolution::Resolving { .. }))
            .filter_map(|e| e.route.ok())
            .take(RETRY_BUDGET)
            .collect();
        let mut changed = false;
        for route in due {
            changed |= self.ensure_neighbour(&route);
        }
        changed
    }

    /// Asks the kernel again for the routes of destinations used after `since`, those asked
    /// longest ago first, at most [`RECHECK_BUDGET`]: the kernel sends no notification when it
    /// learns a path MTU (a Packet Too Big for the gateway's own datagrams) or lets one expire
    /// (`mtu_expires`), and the workers must see both. Returns whether anything the workers
    /// read changed.
    fn recheck_routes(&mut self, since: Instant, now: Instant) -> bool {
        self.sweep(now);
        let mut due: Vec<(Instant, IpAddr)> = self
            .routes
            .iter()
            .filter(|(_, e)| e.last_used > since)
            .map(|(dst, e)| (e.checked, *dst))
            .collect();
        due.sort_unstable();
        let mut changed = false;
        for (_, dst) in due.into_iter().take(RECHECK_BUDGET) {
            let route = self
                .kernel
                .route_get(dst)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
            if let Ok(r) = route {
                changed |= self.ensure_neighbour(&r);
            }
            if let Some(e) = self.routes.get_mut(&dst) {
                e.checked = now;
                if e.route != route {
                    e.route = route;
                    changed = true;
                }
            }
        }
        changed
    }

    /// Makes sure the neighbour entry of `route`'s next hop is known, asking the kernel to
    /// resolve it if it is not. Returns whether the neighbour table changed.
    fn ensure_neighbour(&mut self, route: &Route) -> bool {
        if route.kind != RouteKind::Unicast || route.oif == 0 {
            return false;
        }
        if self.links.get(&route.oif).is_none_or(|l| l.mac.is_none()) {
            return false;
        }
        let key = (route.oif, route.next_hop());
        self.in_use.insert(key);
        if self
            .neighbours
            .get(&key)
            .is_some_and(|n| n.usable_mac().is_some())
        {
            return false;
        }
        let mut changed = false;
        if let Ok(Some(n)) = self.kernel.neighbour_get(key.0, key.1) {
            changed = self.neighbours.insert(key, n) != Some(n);
            if n.usable_mac().is_some() {
                return changed;
            }
        }
        self.maybe_resolve(key);
        changed
    }

    /// Asks the kernel to resolve a next hop, at most once per `resolve_interval`.
    fn maybe_resolve(&mut self, key: (u32, IpAddr)) {
        let now = Instant::now();
        if self
            .last_resolve
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < self.opts.resolve_interval)
        {
            return;
        }
        self.last_resolve.insert(key, now);
        if let Err(e) = self.kernel.resolve_neighbour(key.0, key.1) {
            tracing::debug!(ifindex = key.0, next_hop = %key.1, error = %e, "neighbour resolution request failed");
        }
    }

    /// Re-reads links and redoes every cached lookup (routes, links or addresses changed).
    fn reroute(&mut self) {
        match self.kernel.links() {
            Ok(links) => self.links = links.into_iter().map(|l| (l.index, l)).collect(),
            Err(e) => tracing::warn!(error = %e, "cannot re-read links"),
        }
        let dsts: Vec<IpAddr> = self.routes.keys().copied().collect();
        self.in_use.clear();
        for dst in dsts {
            let route = self
                .kernel
                .route_get(dst)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
            if let Ok(r) = route {
                self.ensure_neighbour(&r);
            }
            if let Some(e) = self.routes.get_mut(&dst) {
                e.route = route;
                e.checked = Instant::now();
            }
        }
        let in_use = &self.in_use;
        self.neighbours.retain(|k, _| in_use.contains(k));
        self.last_resolve.retain(|k, _| in_use.contains(k));
    }

    /// Re-confirms STALE next hops through the kernel (NTF_USE moves them to DELAY/PROBE and
    /// the kernel sends a unicast probe), since no kernel traffic confirms them.
    fn reconfirm(&mut self) {
        let stale: Vec<(u32, IpAddr)> = self
            .neighbours
            .iter()
            .filter(|(_, n)| n.state == NeighbourState::Stale)
            .map(|(k, _)| *k)
            .take(256)
            .collect();
        for key in stale {
            self.maybe_resolve(key);
        }
    }

    /// Drops the least recently used eighth of the destinations. (By last request alone, as
    /// before, the hottest entries went first: a destination in use is never requested again.)
    fn evict(&mut self, now: Instant) {
        self.sweep(now);
        let mut by_age: Vec<(Instant, IpAddr)> =
            self.routes.iter().map(|(d, e)| (e.last_used, *d)).collect();
        by_age.sort_unstable();
        for (_, dst) in by_age.iter().take((self.opts.capacity / 8).max(1)) {
            self.routes.remove(dst);
        }
    }

    fn publish(&mut self) {
        self.generation += 1;
        let mut destinations = FxHashMap::default();
        destinations.reserve(self.routes.len());
        for (dst, entry) in &self.routes {
            let cached = Cached {
                resolution: self.resolution(entry),
                used: entry.used.clone(),
            };
            destinations.insert(*dst, cached);
        }
        self.snapshot.store(Arc::new(RouteSnapshot::new(
            self.generation,
            destinations,
            self.links.clone(),
        )));
    }

    fn resolution(&self, entry: &RouteEntry) -> Resolution {
        let route = match entry.route {
            Ok(r) => r,
            Err(errno) => return Resolution::Unreachable { errno },
        };
        match route.kind {
            RouteKind::Local => return Resolution::Local,
            RouteKind::Unicast => {}
            _ => return Resolution::Unreachable { errno: 0 },
        }
        let Some(link) = self.links.get(&route.oif) else {
            return Resolution::Unreachable {
                errno: libc::ENODEV,
            };
        };
        let Some(src_mac) = link.mac else {
            return Resolution::NotEthernet { ifindex: route.oif };
        };
        let next_hop = route.next_hop();
        match self
            .neighbours
            .get(&(route.oif, next_hop))
            .and_then(|n| n.usable_mac())
        {
            Some(dst_mac) => Resolution::Ready(NextHop {
                ifindex: route.oif,
                src_mac,
                dst_mac,
                gateway: route.gateway,
                src_addr: route.prefsrc,
                mtu: route.mtu.map_or(link.mtu, |m| m.min(link.mtu)),
            }),
            None => Resolution::Resolving {
                ifindex: route.oif,
                next_hop,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IFINDEX: u32 = 2;

    /// A kernel whose routes all leave on one Ethernet link, directly, and whose neighbours
    /// never answer; it counts resolution requests.
    #[derive(Default)]
    struct SilentNeighbours {
        resolve_requests: Vec<IpAddr>,
    }

    impl Kernel for SilentNeighbours {
        fn links(&mut self) -> io::Result<Vec<Link>> {
            Ok(vec![link()])
        }
        fn route_get(&mut self, dst: IpAddr) -> io::Result<Route> {
            Ok(Route {
                destination: dst,
                kind: RouteKind::Unicast,
                oif: IFINDEX,
                gateway: None,
                prefsrc: None,
                table: 254,
                mtu: None,
            })
        }
        fn neighbour_get(&mut self, _: u32, _: IpAddr) -> io::Result<Option<Neighbour>> {
            Ok(None)
        }
        fn resolve_neighbour(&mut self, _: u32, addr: IpAddr) -> io::Result<()> {
            self.resolve_requests.push(addr);
            Ok(())
        }
    }

    fn link() -> Link {
        Link {
            index: IFINDEX,
            name: "eth0".into(),
            mac: Some(Mac([2, 0, 0, 0, 0, 1])),
            mtu: 1500,
            up: true,
        }
    }

    fn refresher(capacity: usize) -> Refresher<SilentNeighbours> {
        refresher_with(SilentNeighbours::default(), capacity)
    }

    fn refresher_with<K: Kernel>(kernel: K, capacity: usize) -> Refresher<K> {
        let links: FxHashMap<u32, Link> = [(IFINDEX, link())].into_iter().collect();
        Refresher {
            kernel,
            opts: CacheOptions {
                capacity,
                // No rate limit: the test controls when the refresher runs.
                resolve_interval: Duration::ZERO,
                ..CacheOptions::default()
            },
            snapshot: Arc::new(ArcSwap::from_pointee(RouteSnapshot::default())),
            links,
            routes: FxHashMap::default(),
            neighbours: FxHashMap::default(),
            in_use: FxHashSet::default(),
            last_resolve: FxHashMap::default(),
            generation: 0,
        }
    }

    fn addr(i: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, i])
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Fails on eviction by last request: the destination in use (a peer's endpoint, looked up
    /// by every packet but requested only once) was the oldest request, so it went first.
    #[test]
    fn eviction_keeps_the_destinations_in_use() {
        let mut r = refresher(8);
        let t0 = Instant::now();
        for i in 0..8 {
            r.lookup(addr(i), ms(t0, u64::from(i)));
        }
        r.publish();
        // The workers look the first one up (packet after packet).
        let snap = r.snapshot.load();
        assert!(snap.resolution(addr(0)).is_some());
        assert!(snap.resolution(addr(0)).is_some());
        // A ninth destination: one entry must go, the least recently used.
        r.lookup(addr(8), ms(t0, 100));
        assert_eq!(r.routes.len(), 8);
        assert!(
            r.routes.contains_key(&addr(0)),
            "the entry in use was evicted"
        );
        assert!(!r.routes.contains_key(&addr(1)));
        // Use marks carry over to the next snapshot (the entry keeps its flag).
        r.publish();
        r.snapshot.load().resolution(addr(2));
        r.lookup(addr(9), ms(t0, 200));
        assert!(r.routes.contains_key(&addr(2)));
        assert!(!r.routes.contains_key(&addr(3)));
    }

    /// Fails before the retry timer: a destination whose neighbour never answered was asked
    /// for once, and stayed `Resolving` without another request however long it was used.
    #[test]
    fn resolving_destinations_in_use_are_asked_for_again() {
        let mut r = refresher(8);
        let t0 = Instant::now();
        r.lookup(addr(1), t0);
        r.lookup(addr(2), t0);
        assert_eq!(r.kernel.resolve_requests, [addr(1), addr(2)]);
        r.publish();
        let snap = r.snapshot.load();
        assert!(matches!(
            snap.resolution(addr(1)),
            Some(Resolution::Resolving { .. })
        ));
        // addr(1) is in use (its packets are parked); addr(2) is not looked up again.
        r.kernel.resolve_requests.clear();
        r.retry_resolving(ms(t0, 1), ms(t0, 1000));
        assert_eq!(r.kernel.resolve_requests, [addr(1)]);
        // Not used since: left alone; used again: asked again at the next tick.
        r.retry_resolving(ms(t0, 1000), ms(t0, 2000));
        assert_eq!(r.kernel.resolve_requests, [addr(1)]);
        snap.resolution(addr(1));
        r.retry_resolving(ms(t0, 2000), ms(t0, 3000));
        assert_eq!(r.kernel.resolve_requests, [addr(1), addr(1)]);
    }

    /// A kernel whose neighbours answer and whose routes carry the path MTU it holds now
    /// (`None`: no exception, or it expired); it counts route lookups.
    #[derive(Default)]
    struct PathMtuKernel {
        pmtu: Option<u32>,
        route_gets: usize,
    }

    impl Kernel for PathMtuKernel {
        fn links(&mut self) -> io::Result<Vec<Link>> {
            Ok(vec![link()])
        }
        fn route_get(&mut self, dst: IpAddr) -> io::Result<Route> {
            self.route_gets += 1;
            let mut r = SilentNeighbours::default().route_get(dst)?;
            r.mtu = self.pmtu;
            Ok(r)
        }
        fn neighbour_get(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<Option<Neighbour>> {
            Ok(Some(Neighbour {
                ifindex,
                addr,
                mac: Some(Mac([2, 0, 0, 0, 0, 2])),
                state: NeighbourState::Reachable,
            }))
        }
        fn resolve_neighbour(&mut self, _: u32, _: IpAddr) -> io::Result<()> {
            Ok(())
        }
    }

    fn published_mtu<K: Kernel>(r: &Refresher<K>, dst: IpAddr) -> Option<u32> {
        r.snapshot.load().next_hop(dst).map(|h| h.mtu)
    }

    /// Fails before the periodic re-check: a path MTU the kernel learned after the first
    /// lookup (a Packet Too Big) never reached the workers, nor did its expiry.
    #[test]
    fn a_learned_path_mtu_and_its_expiry_reach_the_next_hop_of_destinations_in_use() {
        let mut r = refresher_with(PathMtuKernel::default(), 8);
        let peer = IpAddr::from(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
        let idle = addr(1);
        let t0 = Instant::now();
        r.lookup(peer, t0);
        r.lookup(idle, t0);
        r.publish();
        assert_eq!(published_mtu(&r, peer), Some(1500), "the link's MTU");
        // A Packet Too Big: the kernel now holds 1400 for every destination (the fake's one
        // exception); the peer is in use, the other destination is not.
        r.kernel.pmtu = Some(1400);
        r.kernel.route_gets = 0;
        r.snapshot.load().resolution(peer);
        assert!(r.recheck_routes(ms(t0, 1), ms(t0, 1000)));
        r.publish();
        assert_eq!(published_mtu(&r, peer), Some(1400));
        assert_eq!(
            r.kernel.route_gets, 1,
            "only the destination in use is asked again"
        );
        // A route MTU above the link's does not raise it.
        r.kernel.pmtu = Some(9000);
        r.snapshot.load().resolution(peer);
        r.recheck_routes(ms(t0, 1000), ms(t0, 2000));
        r.publish();
        assert_eq!(published_mtu(&r, peer), Some(1500));
        // The exception expires (mtu_expires): back to the link's MTU.
        r.kernel.pmtu = Some(1400);
        r.snapshot.load().resolution(peer);
        r.recheck_routes(ms(t0, 2000), ms(t0, 3000));
        r.kernel.pmtu = None;
        r.snapshot.load().resolution(peer);
        assert!(r.recheck_routes(ms(t0, 3000), ms(t0, 4000)));
        r.publish();
        assert_eq!(published_mtu(&r, peer), Some(1500));
        // Nothing changed: nothing to publish.
        r.snapshot.load().resolution(peer);
        assert!(!r.recheck_routes(ms(t0, 4000), ms(t0, 5000)));
    }
}
