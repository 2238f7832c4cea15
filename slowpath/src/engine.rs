//! The slow-path thread: runs the protocol core ([`wgproto::device::Device`]) on handshake
//! messages and events from the workers, drives its timers, sends what it asks to send through
//! a kernel UDP socket bound to the listen port, and publishes keypairs, endpoints and
//! AllowedIPs to the workers ([`fastpath::tables`]).
//!
//! Two more threads belong to it: the wg0 reader, which encrypts what the kernel routes into
//! wg0 (replies of services on the gateway host, pings) and sends it to the peer, and the UAPI
//! server, whose requests are applied here under the same lock. The lock guards slow-path
//! state only; the workers never take it.
//!
//! Sending through the kernel socket: the XDP program steers datagrams *to* the listen port
//! into AF_XDP, so this socket receives nothing, but what it sends is routed and resolved by
//! the kernel, which is what a handshake or a keepalive needs and nothing the hot path pays for.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, UNIX_EPOCH};

use ipnet::IpNet;
use rand_core::OsRng;
use tracing::{debug, info, warn};
use wgproto::config::{InterfaceConfig, IpPrefix, PeerConfig};
use wgproto::cookie::CookieError;
use wgproto::device::{Device, Handled, HandshakeDrop, KeySlot, Output, PeerEvent};
use wgproto::keys::PublicKey;
use wgproto::peer::PeerId;

use crate::tun::{Tun, TunConfig};
use crate::uapi::{DeviceSnapshot, Errno, PeerSnapshot, SetRequest, UapiBackend, UapiServer};
use crate::watchdog::{Health, HealthReport, StallKnob, TestStall, STALL_THRESHOLD};
use fastpath::icmp_ratelimit::IcmpRateLimiter;
use fastpath::outer_datagrams::OuterSender;
use fastpath::queue::{Clock, SlowPathReceiver, ToSlowPath};
use fastpath::roaming::{LearnedEndpoint, Recency};
use fastpath::tables::{PeerRoute, PeerTraffic, SharedTables, Tables};

/// How often statistics become timer events and timers are checked when nothing arrives.
const TICK: Duration = Duration::from_millis(20);
/// While draining a backlog of queued messages, the outputs are sent after this many of them
/// (not only once the queue is empty): a flood must not hold replies back or pile them up.
const FLUSH_EVERY: usize = 64;

macro_rules! slow_path_counters {
    ($($field:ident: $doc:literal,)*) => {
        /// Counters of the slow path, for stats and metrics.
        #[derive(Debug, Default)]
        pub struct SlowPathCounters { $(#[doc = $doc] pub $field: AtomicU64,)* }

        impl SlowPathCounters {
            /// `(name, value)` of every counter, in declaration order.
            pub fn read(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

slow_path_counters! {
    handshakes_received: "Handshake messages taken off the workers' queue.",
    handshakes_dropped: "Handshake messages dropped (invalid, or refused under load).",
    handshakes_bad_mac1: "Of `handshakes_dropped`: mac1 did not verify (not addressed to us, or forged), dropped before any other work (whitepaper §5.4.4).",
    handshakes_rate_limited: "Of `handshakes_dropped`: refused by the per-source rate limiter under load.",
    cookie_replies_sent: "Cookie replies sent instead of handshake responses, under load.",
    host_packets_in: "Packets from the workers written to wg0.",
    host_packets_out: "Packets read from wg0 and sent into the tunnel.",
    host_packets_dropped: "Packets to or from wg0 not delivered (write failed, no peer or session, sealing failed).",
    send_errors: "Datagrams the slow path failed to send.",
    outer_datagrams: "WireGuard datagrams read from the listen port's kernel socket (fragmented ones the kernel reassembled) and handed to worker 0.",
    outer_datagrams_dropped: "Of those read: refused (larger than a frame, or worker 0's queue full).",
    icmp_ratelimited: "ICMP host unreachable errors not sent to wg0: over the rate limit (as the workers', `fastpath::icmp_ratelimit`).",
}

/// What the slow path is started with.
pub struct SlowPathConfig {
    pub interface: InterfaceConfig,
    pub peers: Vec<PeerConfig>,
    /// The wg0 device; `None` runs without one (tests of the fast path alone).
    pub tun: Option<TunConfig>,
    /// Run the UAPI socket under this interface name (normally the TUN's name).
    pub uapi_name: Option<String>,
    /// Where datagrams that arrive on the listen port's kernel socket go (the kernel
    /// reassembled them from fragments the XDP program passed); `None`: the socket is not read.
    pub outer_datagrams: Option<OuterSender>,
}

/// The state every slow-path thread shares, behind one lock.
struct State {
    device: Device,
    master: Tables,
    stats: HashMap<PeerId, Arc<PeerTraffic>>,
    /// Data counters at the last tick, to turn traffic into timer events.
    seen: HashMap<PeerId, (u64, u64)>,
    routes: HashSet<IpPrefix>,
    dirty: bool,
    /// The operator's names of peers (`name` in gw.toml), for logs.
    names: HashMap<PublicKey, String>,
}

/// Everything the threads share.
struct Shared {
    state: Mutex<State>,
    tables: SharedTables,
    socket: UdpSocket,
    tun: Option<Arc<Tun>>,
    clock: Clock,
    /// Tunnel MTU: the cap of transport padding.
    mtu: usize,
    counters: Arc<SlowPathCounters>,
    stop: Arc<AtomicBool>,
    /// Heartbeat, stall flag and cookie mode ([`crate::watchdog`]); read without the lock.
    health: Arc<Health>,
    /// The last [`SlowPath::snapshot`] taken, served while the lock is held too long.
    last_snapshot: Mutex<Option<DeviceSnapshot>>,
    /// The budget of ICMP errors the slow path originates (only the wg0 reader takes it).
    icmp_limit: Mutex<IcmpRateLimiter>,
}

/// The running slow path. Dropping it stops its threads and removes wg0 and the UAPI socket.
pub struct SlowPath {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    uapi: Option<UapiServer>,
}

impl SlowPath {
    /// Builds the device from `config`, creates wg0 and the UAPI socket, binds the listen port
    /// for sending, publishes the initial tables and starts the threads.
    pub fn start(
        config: SlowPathConfig,
        tables: SharedTables,
        queue: SlowPathReceiver,
        clock: Clock,
    ) -> anyhow::Result<SlowPath> {
        let port = config.interface.listen_port;
        let socket = crate::listen_socket::bind_listen_port(port).map_err(|e| {
            anyhow::anyhow!("cannot bind UDP port {port} for the slow path's sends: {e}")
        })?;
        let tun = match &config.tun {
            Some(t) => Some(Arc::new(Tun::create(t)?)),
            None => None,
        };
        let mtu = usize::from(config.interface.mtu);
        let mut device = Device::new(&config.interface);
        let now = clock.now();
        for peer in config.peers {
            let key = peer.public_key;
            device
                .set_peer(now, peer)
                .map_err(|e| anyhow::anyhow!("peer {key}: {e}"))?;
        }
        let state = State {
            device,
            master: Tables::default(),
            stats: HashMap::new(),
            seen: HashMap::new(),
            routes: HashSet::new(),
            dirty: true,
            names: HashMap::new(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            tables,
            socket,
            tun,
            clock,
            mtu,
            counters: Arc::new(SlowPathCounters::default()),
            stop: Arc::new(AtomicBool::new(false)),
            health: Arc::new(Health::default()),
            last_snapshot: Mutex::new(None),
            icmp_limit: Mutex::new(IcmpRateLimiter::new(0)),
        });
        shared.health.heartbeat.beat();
        {
            let mut st = shared.lock();
            shared.sync_peers(&mut st);
            // Peers with a configured endpoint get a session at once, so the first packet
            // does not wait for a handshake.
            let ids: Vec<PeerId> = st
                .device
                .peers()
                .filter(|p| p.endpoint().is_some())
                .map(|p| p.id())
                .collect();
            for id in ids {
                st.device
                    .request_handshake(now, shared.clock.wall(), id, &mut OsRng);
            }
            shared.flush(&mut st);
        }
        let mut threads = Vec::new();
        let s = shared.clone();
        let stall = StallKnob::new(TestStall::from_env());
        threads.push(
            std::thread::Builder::new()
                .name("slowpath".into())
                .spawn(move || s.run(queue, stall))?,
        );
        threads.push(crate::watchdog::spawn_watchdog(
            shared.health.clone(),
            shared.stop.clone(),
            STALL_THRESHOLD,
        )?);
        if shared.tun.is_some() {
            let s = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("wg0-reader".into())
                    .spawn(move || s.read_tun())?,
            );
        }
        if let Some(to_worker) = config.outer_datagrams {
            let s = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("outer-rx".into())
                    .spawn(move || s.read_outer(to_worker))?,
            );
        }
        let uapi = match &config.uapi_name {
            Some(name) => Some(UapiServer::start(name, Arc::new(Backend(shared.clone())))?),
            None => None,
        };
        Ok(SlowPath {
            shared,
            threads,
            uapi,
        })
    }

    pub fn counters(&self) -> Arc<SlowPathCounters> {
        self.shared.counters.clone()
    }

    /// What `wg show` would report now, without the private key. For statistics: when the
    /// slow path holds its lock for longer than 200 ms (a stall), the last snapshot taken is
    /// returned instead of waiting, so `dataplane stats` can still report the stall.
    pub fn snapshot(&self) -> DeviceSnapshot {
        self.shared.snapshot_for_report()
    }

    /// Heartbeat age, stall state and cookie mode, read without the slow path's lock.
    pub fn health(&self) -> HealthReport {
        self.shared.health.report()
    }

    /// Applies a new peer list (config reload): peers not in it are removed, the others are
    /// added or updated in place without disturbing their sessions.
    pub fn reload_peers(&self, peers: Vec<PeerConfig>) -> anyhow::Result<()> {
        let mut st = self.shared.lock();
        let keep: HashSet<_> = peers.iter().map(|p| p.public_key).collect();
        let gone: Vec<_> = st
            .device
            .peers()
            .map(|p| *p.public_key())
            .filter(|k| !keep.contains(k))
            .collect();
        for key in gone {
            st.device.remove_peer(&key);
        }
        let now = self.shared.clock.now();
        for peer in peers {
            let key = peer.public_key;
            st.device
                .set_peer(now, peer)
                .map_err(|e| anyhow::anyhow!("peer {key}: {e}"))?;
        }
        self.shared.sync_peers(&mut st);
        self.shared.flush(&mut st);
        Ok(())
    }

    /// The operator's peer names (gw.toml `name`), so logs say `peer=phone` rather than an
    /// internal number. Replaces the previous names (call it again after a reload).
    pub fn set_peer_names(&self, names: HashMap<PublicKey, String>) {
        self.shared.lock().names = names;
    }

    /// Stops the threads; wg0 and the UAPI socket go when the value is dropped.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.uapi.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for SlowPath {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another slow-path thread must not take the data plane down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self, queue: SlowPathReceiver, mut stall: StallKnob) {
        let mut next_tick = self.clock.now();
        while !self.stop.load(Ordering::Relaxed) {
            self.health.heartbeat.beat();
            if let Some(d) = stall.due() {
                self.stall_on_purpose(d);
            }
            let wait = next_tick.since(self.clock.now()).min(TICK);
            if let Some(msg) = queue.recv_timeout(wait) {
                let under_load = queue.under_load(self.clock.now());
                self.health.set_cookie_mode(under_load);
                let mut st = self.lock();
                self.handle(&mut st, msg, under_load);
                // Drain what else is waiting under the same lock. Under a flood this loop
                // may run for long: it beats the heartbeat so that is not taken for a stall,
                // and flushes every FLUSH_EVERY messages, or the replies (cookie replies, a
                // genuine peer's handshake response) would wait in memory until the flood
                // pauses: ~100 bytes each, 6 MiB after 8 s of flood (hostile_flood_lab.rs).
                let mut handled = 1usize;
                while let Some(msg) = queue.recv_timeout(Duration::ZERO) {
                    self.health.heartbeat.beat();
                    let under_load = queue.under_load(self.clock.now());
                    self.health.set_cookie_mode(under_load);
                    self.handle(&mut st, msg, under_load);
                    handled += 1;
                    if handled % FLUSH_EVERY == 0 {
                        self.flush(&mut st);
                    }
                }
                self.flush(&mut st);
            } else {
                self.health
                    .set_cookie_mode(queue.under_load(self.clock.now()));
            }
            let now = self.clock.now();
            if now >= next_tick {
                let mut st = self.lock();
                self.feed_traffic(&mut st);
                self.flush(&mut st);
                next_tick = now + TICK;
            }
        }
    }

    /// The [`TestStall`] knob: holds the state lock and sleeps, as a slow path stuck in a long
    /// operation would. Ends early when the slow path is stopped.
    fn stall_on_purpose(&self, duration: Duration) {
        warn!(
            duration_s = duration.as_secs_f64(),
            "test knob: stalling the slow path now, holding its lock"
        );
        let _st = self.lock();
        let until = std::time::Instant::now() + duration;
        while std::time::Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        warn!("test knob: slow path stall over");
    }

    fn handle(&self, st: &mut State, msg: ToSlowPath, under_load: bool) {
        let now = self.clock.now();
        let wall = self.clock.wall();
        match msg {
            ToSlowPath::Handshake(d) | ToSlowPath::Mac2Handshake(d) => {
                self.counters
                    .handshakes_received
                    .fetch_add(1, Ordering::Relaxed);
                match st.device.handle_handshake(
                    now,
                    wall,
                    d.src,
                    d.bytes(),
                    under_load,
                    &mut OsRng,
                ) {
                    Ok(h) => {
                        debug!(src = %d.src, ?h, "handshake message handled");
                        // `wg show` counts handshake bytes too, as the kernel does.
                        let peer = match h {
                            Handled::InitiationAnswered(p) | Handled::ResponseAccepted(p) => {
                                // The device roamed to the handshake's source: so do the
                                // workers, unless a newer packet moved them (`roaming.rs`).
                                if let Some(r) = st.master.peers.get(&p) {
                                    r.learned.offer(Recency::handshake(now), d.src);
                                }
                                Some(p)
                            }
                            Handled::CookieStored(p) => Some(p),
                            Handled::CookieReplySent => None,
                        };
                        if let Some(s) = peer.and_then(|p| st.stats.get(&p)) {
                            s.rx_bytes
                                .fetch_add(d.bytes().len() as u64, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        self.counters
                            .handshakes_dropped
                            .fetch_add(1, Ordering::Relaxed);
                        match &e {
                            HandshakeDrop::Cookie(CookieError::InvalidMac1) => {
                                self.counters
                                    .handshakes_bad_mac1
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            HandshakeDrop::RateLimited(_) => {
                                self.counters
                                    .handshakes_rate_limited
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                        debug!(src = %d.src, error = %e, "handshake message dropped");
                    }
                }
            }
            ToSlowPath::ForHost(p) => match &self.tun {
                Some(tun) => match tun.send(p.bytes()) {
                    Ok(_) => {
                        self.counters
                            .host_packets_in
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.counters
                            .host_packets_dropped
                            .fetch_add(1, Ordering::Relaxed);
                        debug!(error = %e, "writing to wg0 failed");
                    }
                },
                None => {
                    self.counters
                        .host_packets_dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
            },
            ToSlowPath::Authenticated {
                peer,
                index,
                src,
                keepalive,
                rekey,
            } => {
                // The workers moved the peer's learned endpoint already, and only to the newest
                // packet's source: the device follows that, not this report, which may be older
                // than another worker's (`roaming.rs`).
                let src = st
                    .master
                    .peers
                    .get(&peer)
                    .and_then(|r| r.learned.get())
                    .unwrap_or(src);
                st.device
                    .note_data_received(now, peer, index, src, keepalive);
                if rekey {
                    st.device.request_handshake(now, wall, peer, &mut OsRng);
                }
            }
            ToSlowPath::HandshakeNeeded { peer } => {
                st.device.request_handshake(now, wall, peer, &mut OsRng);
            }
        }
    }

    /// Turns the workers' traffic counters into the protocol core's timer events (data
    /// received: passive keepalive; data sent: new handshake if unanswered). Granularity is one
    /// tick, far below the protocol's timeouts of seconds.
    fn feed_traffic(&self, st: &mut State) {
        let now = self.clock.now();
        let peers: Vec<(PeerId, Arc<PeerTraffic>)> =
            st.stats.iter().map(|(id, s)| (*id, s.clone())).collect();
        for (id, stats) in peers {
            let rx = stats.rx_data.load(Ordering::Relaxed);
            let tx = stats.tx_data.load(Ordering::Relaxed);
            let (seen_rx, seen_tx) = st.seen.get(&id).copied().unwrap_or((0, 0));
            if rx != seen_rx {
                let current = st.device.peer(id).and_then(|p| {
                    let k = p.keypairs().current()?;
                    Some((k.local_index(), p.endpoint()?))
                });
                if let Some((index, endpoint)) = current {
                    st.device
                        .note_data_received(now, id, index, endpoint, false);
                }
            }
            if tx != seen_tx {
                st.device.note_data_sent(now, id, false, &mut OsRng);
            }
            st.seen.insert(id, (rx, tx));
        }
    }

    /// Runs due timers, executes every output of the protocol core and republishes the tables
    /// if anything the workers read changed.
    fn flush(&self, st: &mut State) {
        let now = self.clock.now();
        let wall = self.clock.wall();
        // A `set=1` of many peers yields one AllowedIpsChanged per peer; republishing the whole
        // table for each would be quadratic. Consecutive ones are applied once, still before
        // any other output that follows them.
        let mut allowed_ips_changed = false;
        while let Some(out) = st.device.poll(now, wall, &mut OsRng) {
            if matches!(out, Output::AllowedIpsChanged) {
                allowed_ips_changed = true;
                continue;
            }
            if matches!(
                out,
                Output::PeerEvent {
                    event: PeerEvent::EndpointSet(_),
                    ..
                }
            ) {
                // One per peer of such a `set=1` too, between its AllowedIpsChanged; it
                // commutes with them (sync_peers publishes the device's endpoint either way),
                // so it does not end the run.
                self.apply(st, out);
                continue;
            }
            if std::mem::take(&mut allowed_ips_changed) {
                self.apply(st, Output::AllowedIpsChanged);
            }
            self.apply(st, out);
        }
        if allowed_ips_changed {
            self.apply(st, Output::AllowedIpsChanged);
        }
        self.publish_cookie_secret(st, now);
        if st.dirty {
            self.tables.store(Arc::new(st.master.clone()));
            st.dirty = false;
        }
    }

    /// The workers check mac1 and mac2 and send cookie replies with a copy of the device's
    /// checker ([`fastpath::handshake_guard`]). The secret is made here ahead of need, and
    /// renewed every COOKIE_SECRET_MAX_AGE, so that the copy is always fresh; a new copy is
    /// published whenever the device's secret differs from it (rotated here or while answering
    /// a handshake, or a new interface key).
    fn publish_cookie_secret(&self, st: &mut State, now: wgproto::time::Timestamp) {
        st.device.rotate_cookie_secret(now, &mut OsRng);
        let current = st.device.cookie_checker();
        let published = st.master.handshake_macs.as_ref().map(|c| c.secret_birth());
        if published != Some(current.secret_birth()) {
            st.master.handshake_macs = Some(Arc::new(current.clone()));
            st.dirty = true;
        }
    }

    fn send(&self, bytes: &[u8], dst: SocketAddr) {
        let to = crate::listen_socket::destination(&self.socket, dst);
        if let Err(e) = self.socket.send_to(bytes, to) {
            self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
            debug!(%dst, error = %e, "send failed");
        }
    }

    fn apply(&self, st: &mut State, out: Output) {
        match out {
            Output::SendHandshake {
                peer,
                endpoint,
                bytes,
            } => {
                self.send(&bytes, endpoint);
                if let Some(s) = st.stats.get(&peer) {
                    s.tx_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            }
            Output::SendCookieReply { dst, bytes } => {
                self.counters
                    .cookie_replies_sent
                    .fetch_add(1, Ordering::Relaxed);
                self.send(&bytes, dst);
            }
            Output::SendKeepalive {
                peer,
                endpoint,
                bytes,
            } => {
                self.send(&bytes, endpoint);
                if let Some(s) = st.stats.get(&peer) {
                    s.tx_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            }
            Output::KeypairInstalled {
                peer,
                keypair,
                slot,
            } => {
                st.master
                    .receivers
                    .insert(keypair.local_index(), keypair.clone());
                if slot == KeySlot::Current {
                    if let Some(route) = st.master.peers.get_mut(&peer) {
                        route.sending = Some(keypair);
                    }
                }
                st.dirty = true;
            }
            Output::KeypairRetired { peer, index } => {
                st.master.receivers.remove(&index);
                if let Some(route) = st.master.peers.get_mut(&peer) {
                    if route
                        .sending
                        .as_ref()
                        .is_some_and(|k| k.local_index() == index)
                    {
                        route.sending = None;
                    }
                }
                st.dirty = true;
            }
            Output::AllowedIpsChanged => {
                st.master.allowed_ips = st.device.allowed_ips().clone();
                self.sync_routes(st);
                self.sync_peers(st);
                st.dirty = true;
            }
            Output::PeerEvent { peer: id, event } => {
                let peer = peer_label(st, id);
                let peer = peer.as_str();
                match event {
                    PeerEvent::EndpointChanged(addr) => {
                        info!(%peer, endpoint = %addr, "peer endpoint changed");
                        if let Some(route) = st.master.peers.get_mut(&id) {
                            route.endpoint = Some(addr);
                            st.dirty = true;
                        }
                    }
                    PeerEvent::EndpointSet(addr) => {
                        debug!(%peer, endpoint = %addr, "peer endpoint set");
                        if let Some(route) = st.master.peers.get_mut(&id) {
                            route.endpoint = Some(addr);
                            route.learned.reset(Some(addr));
                            st.dirty = true;
                        }
                    }
                    PeerEvent::Removed => {
                        st.master.peers.remove(&id);
                        st.master.receivers.retain(|_, k| k.peer() != id);
                        st.stats.remove(&id);
                        st.seen.remove(&id);
                        st.dirty = true;
                    }
                    PeerEvent::HandshakeCompleted => info!(%peer, "handshake completed"),
                    PeerEvent::HandshakeGaveUp => {
                        warn!(%peer, "handshake did not complete within 90 s, giving up")
                    }
                    PeerEvent::KeysZeroed => debug!(%peer, "session keys zeroed"),
                }
            }
        }
    }

    /// Makes the published peer list match the device's peers (new peers, endpoints set by
    /// configuration).
    fn sync_peers(&self, st: &mut State) {
        let mut seen = HashSet::new();
        let device_peers: Vec<(PeerId, Option<SocketAddr>)> =
            st.device.peers().map(|p| (p.id(), p.endpoint())).collect();
        for (id, endpoint) in device_peers {
            seen.insert(id);
            let stats = st.stats.entry(id).or_default().clone();
            let route = st.master.peers.entry(id).or_insert_with(|| PeerRoute {
                sending: None,
                endpoint,
                stats,
                learned: Arc::new(LearnedEndpoint::new(endpoint)),
            });
            if route.endpoint != endpoint {
                route.endpoint = endpoint;
            }
        }
        st.master.peers.retain(|id, _| seen.contains(id));
        st.master.allowed_ips = st.device.allowed_ips().clone();
        self.sync_routes(st);
        st.dirty = true;
    }

    /// Keeps one wg0 route per allowed-IPs prefix, as wg-quick installs them. A default route
    /// is not installed: on a gateway it would capture the underlay the tunnel runs over.
    fn sync_routes(&self, st: &mut State) {
        let Some(tun) = &self.tun else { return };
        let wanted: HashSet<IpPrefix> = st
            .device
            .allowed_ips()
            .iter()
            .map(|(p, _)| p)
            .filter(|p| p.len() > 0)
            .collect();
        for gone in st.routes.difference(&wanted).copied().collect::<Vec<_>>() {
            if let Err(e) = tun.remove_route(to_ipnet(gone)) {
                warn!(prefix = %gone, error = %e, "removing wg0 route failed");
            }
            st.routes.remove(&gone);
        }
        for new in wanted.difference(&st.routes).copied().collect::<Vec<_>>() {
            if let Err(e) = tun.add_route(to_ipnet(new)) {
                warn!(prefix = %new, error = %e, "adding wg0 route failed");
            }
            st.routes.insert(new);
        }
    }

    /// Encrypts what the kernel routes into wg0 and sends it to the owning peer.
    /// Reads the listen port's socket: what the kernel delivers there (datagrams it
    /// reassembled) goes to worker 0, which runs it through the pipeline.
    fn read_outer(&self, to_worker: OuterSender) {
        // A poll interval, so that stop is seen; the socket is otherwise idle.
        if let Err(e) = self
            .socket
            .set_read_timeout(Some(Duration::from_millis(200)))
        {
            warn!("the listen port's socket will not be read: {e}");
            return;
        }
        let mut buf = vec![0u8; 65536];
        while !self.stop.load(Ordering::Relaxed) {
            let (n, src) = match self.socket.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    debug!(error = %e, "reading the listen port's socket");
                    continue;
                }
            };
            let src = crate::listen_socket::unmapped(src);
            let c = &self.counters;
            match to_worker.send(src, &buf[..n]) {
                Ok(()) => c.outer_datagrams.fetch_add(1, Ordering::Relaxed),
                Err(_) => c.outer_datagrams_dropped.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    fn read_tun(&self) {
        let Some(tun) = &self.tun else { return };
        const HEADROOM: usize = wgproto::constants::TRANSPORT_HEADER_LEN;
        let mut buf = vec![0u8; HEADROOM + 65536 + 64];
        while !self.stop.load(Ordering::Relaxed) {
            let mut fds = [nix::poll::PollFd::new(
                tun.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut fds, 100u16) {
                Ok(0) | Err(_) => continue,
                Ok(_) => {}
            }
            loop {
                let n = match tun.recv(&mut buf[HEADROOM..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        debug!(error = %e, "reading wg0 failed");
                        break;
                    }
                };
                self.send_host_packet(&mut buf, n);
            }
        }
    }

    fn send_host_packet(&self, buf: &mut [u8], len: usize) {
        const HEADROOM: usize = wgproto::constants::TRANSPORT_HEADER_LEN;
        let Some(dst) = inner_destination(&buf[HEADROOM..HEADROOM + len]) else {
            self.counters
                .host_packets_dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let tables = self.tables.load();
        let Some(peer) = tables.allowed_ips.lookup(dst).copied() else {
            self.counters
                .host_packets_dropped
                .fetch_add(1, Ordering::Relaxed);
            self.host_unreachable(&buf[HEADROOM..HEADROOM + len]);
            return;
        };
        let Some(route) = tables.peers.get(&peer) else {
            return;
        };
        let (Some(keypair), Some(endpoint)) = (&route.sending, route.endpoint) else {
            self.counters
                .host_packets_dropped
                .fetch_add(1, Ordering::Relaxed);
            let mut st = self.lock();
            st.device
                .request_handshake(self.clock.now(), self.clock.wall(), peer, &mut OsRng);
            self.flush(&mut st);
            return;
        };
        match keypair.seal_in_place(self.clock.now(), buf, len, self.mtu) {
            Ok(sealed) => {
                self.send(&buf[..sealed.len], endpoint);
                route.stats.note_tx(sealed.len);
                self.counters
                    .host_packets_out
                    .fetch_add(1, Ordering::Relaxed);
                if sealed.rekey {
                    let mut st = self.lock();
                    st.device.request_handshake(
                        self.clock.now(),
                        self.clock.wall(),
                        peer,
                        &mut OsRng,
                    );
                    self.flush(&mut st);
                }
            }
            Err(e) => {
                self.counters
                    .host_packets_dropped
                    .fetch_add(1, Ordering::Relaxed);
                debug!(error = %e, "sealing a wg0 packet failed");
            }
        }
    }

    /// No peer owns the destination of a packet the kernel routed into wg0: tell the sender,
    /// as kernel WireGuard does (ICMP host unreachable, written back into wg0).
    fn host_unreachable(&self, packet: &[u8]) {
        let Some(tun) = &self.tun else { return };
        let Some(router) = tun.addresses().iter().find_map(|n| match n.addr() {
            std::net::IpAddr::V4(a) => Some(a),
            std::net::IpAddr::V6(_) => None,
        }) else {
            return;
        };
        // Anyone the kernel routes into wg0 earns an error: spoofed sources must not turn that
        // into a reflector.
        let Ok(original) = wire::ipv4::Packet::new_checked_header(packet) else {
            return;
        };
        let dst = original.src_addr();
        let allowed = match self.icmp_limit.lock() {
            Ok(mut l) => l.allow(self.clock.now().as_nanos(), dst),
            Err(poisoned) => poisoned
                .into_inner()
                .allow(self.clock.now().as_nanos(), dst),
        };
        if !allowed {
            self.counters
                .icmp_ratelimited
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut out = [0u8; 128];
        if let Some(n) = fastpath::icmp::icmp_error(
            &mut out,
            router,
            packet,
            fastpath::icmp::IcmpError::HostUnreachable,
        ) {
            let _ = tun.send(&out[..n]);
        }
    }

    /// [`Shared::snapshot`] for statistics: waits at most 200 ms for the lock, then serves the
    /// last snapshot taken (a stalled slow path must not hang `dataplane stats`). The private
    /// and pre-shared keys are left out: statistics never need them.
    fn snapshot_for_report(&self) -> DeviceSnapshot {
        let deadline = std::time::Instant::now() + Duration::from_millis(200);
        loop {
            let st = match self.state.try_lock() {
                Ok(st) => Some(st),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(st) = st {
                let mut snap = Self::snapshot_of(&st);
                drop(st);
                snap.private_key = None;
                for p in &mut snap.peers {
                    p.preshared_key = None;
                }
                *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(snap.clone());
                return snap;
            }
            if std::time::Instant::now() >= deadline {
                return self
                    .last_snapshot
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_default();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn snapshot(&self) -> DeviceSnapshot {
        Self::snapshot_of(&self.lock())
    }

    fn snapshot_of(st: &State) -> DeviceSnapshot {
        let peers = st
            .device
            .peers()
            .map(|p| {
                let stats = st.stats.get(&p.id());
                let mut s = PeerSnapshot::new(*p.public_key());
                s.endpoint = p.endpoint();
                s.last_handshake = p.last_handshake().map(|d| UNIX_EPOCH + d);
                s.rx_bytes = stats.map_or(0, |s| s.rx_bytes.load(Ordering::Relaxed));
                s.tx_bytes = stats.map_or(0, |s| s.tx_bytes.load(Ordering::Relaxed));
                s.persistent_keepalive_interval = p
                    .persistent_keepalive()
                    .map_or(0, |d| u16::try_from(d.as_secs()).unwrap_or(u16::MAX));
                s.allowed_ips = p.allowed_ips().iter().map(|a| to_ipnet(*a)).collect();
                // Reported as kernel WireGuard and wireguard-go do (`wg showconf` needs it).
                let psk = p.preshared_key();
                s.preshared_key = (!psk.is_none()).then(|| psk.clone());
                s
            })
            .collect();
        DeviceSnapshot {
            private_key: Some(st.device.private_key().clone()),
            listen_port: st.device.listen_port(),
            fwmark: 0,
            peers,
        }
    }

    fn set(&self, req: SetRequest) -> Result<(), Errno> {
        let mut st = self.lock();
        if let Some(port) = req.listen_port {
            if port != st.device.listen_port() {
                // The XDP program and the AF_XDP sockets are bound to the configured port.
                warn!(
                    port,
                    "UAPI: changing the listen port at runtime is not supported"
                );
                return Err(Errno::INVALID);
            }
        }
        if let Some(key) = req.private_key {
            st.device.set_private_key(key);
        }
        let now = self.clock.now();
        if req.replace_peers {
            let all: Vec<_> = st.device.peers().map(|p| *p.public_key()).collect();
            for k in all {
                st.device.remove_peer(&k);
            }
        }
        for update in req.peers {
            if update.remove {
                st.device.remove_peer(&update.public_key);
                continue;
            }
            let existing = st
                .device
                .peer_id(&update.public_key)
                .and_then(|id| st.device.peer(id));
            if existing.is_none() && update.update_only {
                continue;
            }
            let mut cfg = PeerConfig::new(update.public_key);
            if let Some(p) = existing {
                if !update.replace_allowed_ips {
                    cfg.allowed_ips = p.allowed_ips().to_vec();
                }
                cfg.persistent_keepalive = p
                    .persistent_keepalive()
                    .map(|d| u16::try_from(d.as_secs()).unwrap_or(u16::MAX));
            }
            for net in &update.allowed_ips {
                let prefix = IpPrefix::new_masked(net.addr(), net.prefix_len());
                if !cfg.allowed_ips.contains(&prefix) {
                    cfg.allowed_ips.push(prefix);
                }
            }
            cfg.preshared_key = update.preshared_key;
            cfg.endpoint = update.endpoint;
            if let Some(k) = update.persistent_keepalive_interval {
                cfg.persistent_keepalive = Some(k);
            }
            if st.device.set_peer(now, cfg).is_err() {
                return Err(Errno::INVALID);
            }
        }
        self.sync_peers(&mut st);
        self.flush(&mut st);
        Ok(())
    }
}

struct Backend(Arc<Shared>);

impl UapiBackend for Backend {
    fn get(&self) -> DeviceSnapshot {
        self.0.snapshot()
    }

    fn set(&self, request: SetRequest) -> Result<(), Errno> {
        self.0.set(request)
    }
}

fn to_ipnet(p: IpPrefix) -> IpNet {
    IpNet::new(p.addr(), p.len()).expect("an IpPrefix length is valid for its family")
}

/// The destination address of an IPv4 or IPv6 packet (its header must be whole).
fn inner_destination(packet: &[u8]) -> Option<std::net::IpAddr> {
    match wire::ip_version(packet)? {
        4 => Some(
            wire::ipv4::Packet::new_checked_header(packet)
                .ok()?
                .dst_addr()
                .into(),
        ),
        6 => Some(
            wire::ipv6::Packet::new_checked(packet)
                .ok()?
                .dst_addr()
                .into(),
        ),
        _ => None,
    }
}

/// How logs name a peer: its gw.toml name, else its public key (as `wg show` does).
fn peer_label(st: &State, id: PeerId) -> String {
    match st.device.peer(id) {
        Some(p) => st
            .names
            .get(p.public_key())
            .cloned()
            .unwrap_or_else(|| p.public_key().to_string()),
        None => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_destination_reads_both_families_and_rejects_garbage() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[16..20].copy_from_slice(&[172, 23, 0, 2]);
        assert_eq!(inner_destination(&v4), Some("172.23.0.2".parse().unwrap()));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[39] = 1;
        assert_eq!(inner_destination(&v6), Some("::1".parse().unwrap()));
        assert_eq!(inner_destination(&v4[..10]), None);
        assert_eq!(inner_destination(&[0x10; 40]), None);
        assert_eq!(inner_destination(&[]), None);
    }
    /// The workers' copy of the cookie checker is published at start (a secret made ahead of
    /// need, mac1 keyed by our public key) and republished when the secret rotates.
    #[test]
    fn the_cookie_checker_is_published_and_republished_on_rotation() {
        use wgproto::cookie::CookieState;
        use wgproto::keys::PrivateKey;
        let key = PrivateKey::from_bytes([4; 32]);
        let public = key.public_key();
        let mut iface = InterfaceConfig::new(key);
        iface.listen_port = 0;
        let (_tx, rx) = fastpath::queue::slow_path_queue(4);
        let tables = fastpath::tables::shared_tables();
        // 2000x: COOKIE_SECRET_MAX_AGE (120 s) passes in 60 ms.
        let clock = Clock::accelerated(2000);
        let sp = SlowPath::start(
            SlowPathConfig {
                interface: iface,
                peers: vec![],
                tun: None,
                uapi_name: None,
                outer_datagrams: None,
            },
            tables.clone(),
            rx,
            clock,
        )
        .expect("slow path starts");
        let published = || tables.load().handshake_macs.clone().expect("published");
        let first = published();
        let mut msg = [1u8; 148];
        msg[..4].copy_from_slice(&[1, 0, 0, 0]);
        CookieState::new(&public)
            .add_macs(&mut msg, clock.now())
            .unwrap();
        first
            .check_mac1(&msg)
            .expect("mac1 keyed by our public key");
        let born = first.secret_birth().expect("a secret made at start");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while published().secret_birth() == Some(born) {
            assert!(std::time::Instant::now() < deadline, "never rotated");
            std::thread::sleep(Duration::from_millis(10));
        }
        let second = published().secret_birth().unwrap();
        assert!(second.since(born) >= wgproto::constants::COOKIE_SECRET_MAX_AGE);
        sp.stop();
    }

    #[test]
    fn snapshots_report_the_preshared_key_and_logs_name_peers() {
        use wgproto::keys::{PresharedKey, PrivateKey};
        let mut iface = InterfaceConfig::new(PrivateKey::from_bytes([3; 32]));
        iface.listen_port = 0; // any free port for the sending socket
        let with = PublicKey::from_bytes([7; 32]);
        let without = PublicKey::from_bytes([8; 32]);
        let mut p1 = PeerConfig::new(with);
        p1.preshared_key = Some(PresharedKey::from_bytes([0x55; 32]));
        let p2 = PeerConfig::new(without);
        let (_tx, rx) = fastpath::queue::slow_path_queue(4);
        let sp = SlowPath::start(
            SlowPathConfig {
                interface: iface,
                peers: vec![p1, p2],
                tun: None,
                uapi_name: None,
                outer_datagrams: None,
            },
            fastpath::tables::shared_tables(),
            rx,
            Clock::default(),
        )
        .expect("slow path starts");
        // What the UAPI `get=1` serves.
        let snap = Backend(sp.shared.clone()).get();
        let psk_of = |k: &PublicKey| {
            snap.peers
                .iter()
                .find(|p| p.public_key.as_bytes() == k.as_bytes())
                .unwrap()
                .preshared_key
                .as_ref()
                .map(|k| *k.as_bytes())
        };
        assert_eq!(psk_of(&with), Some([0x55; 32]));
        assert_eq!(psk_of(&without), None);
        let report = sp.snapshot();
        assert!(report.peers.iter().all(|p| p.preshared_key.is_none()));

        // Logs name peers by their configured name, else by key.
        sp.set_peer_names(HashMap::from([(with, "phone".to_string())]));
        {
            let st = sp.shared.lock();
            let id_of = |k: &PublicKey| {
                st.device
                    .peers()
                    .find(|p| p.public_key() == k)
                    .unwrap()
                    .id()
            };
            assert_eq!(peer_label(&st, id_of(&with)), "phone");
            assert_eq!(peer_label(&st, id_of(&without)), without.to_base64());
        }
        sp.stop();
    }
}
