//! Handshake flood against the slow path's protocol core, sans-IO with a fake clock
//! (whitepaper §5.3).
//!
//! The edge is modelled as the runtime builds it: workers push every handshake datagram into
//! the bounded [`slow_path_queue`] (1024 slots, a full queue drops), and the slow path takes
//! messages off it and calls `Device::handle_handshake` with `under_load` read from the queue
//! depth after each receive, as `engine.rs` does. The slow path's CPU is the bottleneck being
//! attacked: it handles at most `BUDGET` messages per millisecond while the flood brings
//! `FLOOD` (25 000 initiations/s, from 20 000 addresses; half with a valid mac1, half without).
//!
//! What must hold: under load, valid-mac1 initiations get cookie replies and cost no
//! Diffie-Hellman, invalid ones get nothing; sources that do collect cookies are rate-limited;
//! an established peer's session keeps carrying traffic and is not replaced; a new genuine peer
//! completes its handshake *during* the flood through the cookie round trip; live heap memory
//! stays flat while the flood goes on; afterwards the device leaves cookie mode.
//!
//! One test in this binary only: a counting global allocator measures the live heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fastpath::queue::{slow_path_queue, HandshakeDatagram, ToSlowPath};
use rand_core::{CryptoRng, RngCore};
use wgproto::config::{InterfaceConfig, IpPrefix, PeerConfig};
use wgproto::constants::{RATELIMIT_BURST, REKEY_TIMEOUT};
use wgproto::cookie::{CookieError, CookieState};
use wgproto::device::{Device, Handled, HandshakeDrop, KeySlot, Output};
use wgproto::keypair::Keypair;
use wgproto::keys::PrivateKey;
use wgproto::messages::CookieReply;
use wgproto::peer::PeerId;
use wgproto::ratelimiter::RateLimitError;
use wgproto::time::Timestamp;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts the bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` above with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Deterministic randomness (splitmix64), marked CryptoRng for the test only.
struct TestRng(u64);
impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, d: &mut [u8]) {
        for c in d.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_le_bytes()[..c.len()]);
        }
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(d);
        Ok(())
    }
}
impl CryptoRng for TestRng {}

const QUEUE: usize = 1024;
/// Messages the slow path handles per millisecond (its CPU, in this model).
const BUDGET: usize = 15;
/// Flood initiations arriving per millisecond.
const FLOOD: usize = 25;
const SOURCES: u32 = 20_000;
/// Attackers that answer cookie replies (they own their addresses).
const COOKIE_ATTACKERS: u32 = 100;
/// How long the cookie-collecting attackers go on.
const ATTACK_MS: u64 = 1_500;
const WALL: Duration = Duration::from_secs(1_700_000_000);

fn ms(t: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + t * 1_000_000)
}

fn flood_src(i: u32) -> SocketAddr {
    let i = i % SOURCES;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
        1024 + (i % 5000) as u16,
    )
}

fn attacker_src(i: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(192, 168, (i >> 8) as u8, i as u8)),
        40000,
    )
}

/// A client device with the gateway as its only peer, and the keypairs it would publish.
struct Client {
    dev: Device,
    addr: SocketAddr,
    gw: PeerId,
    sending: Option<Arc<Keypair>>,
    handled: Vec<Handled>,
}

impl Client {
    fn new(seed: u8, gw_key: &PrivateKey, gw_addr: SocketAddr, port: u16) -> Client {
        let mut dev = Device::new(&InterfaceConfig::new(PrivateKey::from_bytes([seed; 32])));
        let mut p = PeerConfig::new(gw_key.public_key());
        p.endpoint = Some(gw_addr);
        let gw = dev.set_peer(ms(0), p).unwrap();
        Client {
            dev,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, seed)), port),
            gw,
            sending: None,
            handled: Vec::new(),
        }
    }

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from_bytes([seed; 32])
    }

    /// Polls the device; handshakes go into the gateway's queue, keepalives to `transport`.
    fn poll(
        &mut self,
        now: Timestamp,
        rng: &mut TestRng,
        queue: &fastpath::queue::SlowPathSender,
        transport: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        while let Some(out) = self.dev.poll(now, WALL, rng) {
            match out {
                Output::SendHandshake { bytes, .. } => {
                    let d = HandshakeDatagram::new(self.addr, &bytes).unwrap();
                    let _ = queue.try_send(ToSlowPath::Handshake(d));
                }
                Output::SendKeepalive { bytes, .. } => transport.push((self.addr, bytes.to_vec())),
                Output::KeypairInstalled {
                    keypair,
                    slot: KeySlot::Current,
                    ..
                } => self.sending = Some(keypair),
                _ => {}
            }
        }
    }

    fn receive(&mut self, now: Timestamp, bytes: &[u8], src: SocketAddr, rng: &mut TestRng) {
        if let Ok(h) = self.dev.handle_handshake(now, WALL, src, bytes, false, rng) {
            self.handled.push(h);
        }
    }
}

/// The gateway's fast path, reduced to its receiver-index table.
#[derive(Default)]
struct FastPath {
    receivers: HashMap<u32, Arc<Keypair>>,
}

impl FastPath {
    /// Opens a transport message and reports it, as a worker does; `true` if it opened.
    fn receive(&self, dev: &mut Device, now: Timestamp, src: SocketAddr, msg: &mut [u8]) -> bool {
        let index = u32::from_le_bytes(msg[4..8].try_into().unwrap());
        let Some(kp) = self.receivers.get(&index) else {
            return false;
        };
        match kp.open_in_place(now, msg) {
            Ok(o) => {
                dev.note_data_received(now, kp.peer(), index, src, o.plaintext.is_empty());
                true
            }
            Err(_) => false,
        }
    }
}

#[derive(Default)]
struct Tally {
    processed: u64,
    under_load: u64,
    queue_full: u64,
    cookie_replies_to_valid_mac1: u64,
    cookie_replies_to_invalid_mac1: u64,
    invalid_mac1_dropped: u64,
    /// Diffie-Hellman work done on attacker messages while under load.
    dh_under_load: u64,
    rate_limited: u64,
    other_drops: HashMap<String, u64>,
}

#[test]
fn handshake_flood_cookie_mode_rate_limit_and_recovery() {
    let mut rng = TestRng(7);
    let gw_key = PrivateKey::from_bytes([0x42; 32]);
    let gw_addr: SocketAddr = "172.23.0.3:51820".parse().unwrap();
    let mut gw = Device::new(&InterfaceConfig::new(gw_key.clone()));
    let mut clients: Vec<Client> = (1..=3u8)
        .map(|s| Client::new(s, &gw_key, gw_addr, 51820))
        .collect();
    for (i, c) in clients.iter().enumerate() {
        let mut p = PeerConfig::new(Client::key(i as u8 + 1).public_key());
        p.allowed_ips = vec![IpPrefix::host(IpAddr::V4(Ipv4Addr::new(
            10,
            13,
            13,
            i as u8 + 2,
        )))];
        p.endpoint = Some(c.addr);
        gw.set_peer(ms(0), p).unwrap();
    }
    let (tx, rx) = slow_path_queue(QUEUE);
    let mut fast = FastPath::default();
    let mut transport: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let mut tally = Tally::default();
    // Attackers that own their addresses: their cookie state and what they sent.
    let mut attackers: HashMap<SocketAddr, CookieState> = (0..COOKIE_ATTACKERS)
        .map(|i| (attacker_src(i), CookieState::new(&gw_key.public_key())))
        .collect();
    let mut attacker_cookies: HashSet<SocketAddr> = HashSet::new();
    let mut attacker_mac2_sent = 0u64;
    let mut mac1_forger = CookieState::new(&gw_key.public_key());
    let mut peer1_ok = 0u64;
    let mut peer1_sent = 0u64;
    let mut peer1_index = None;
    let mut live_samples: Vec<(u64, isize)> = Vec::new();
    let mut client2_done_at = None;
    let mut t: u64 = 0;

    // One millisecond of the world: the slow path works its budget, then new arrivals.
    let flood_start = 100;
    let flood_end = 7_000;
    let quiet_end = 9_000;
    while t < quiet_end {
        let now = ms(t);
        // 1. The slow path: at most BUDGET messages, as the engine handles them.
        for _ in 0..BUDGET {
            let Some(msg) = rx.recv_timeout(Duration::ZERO) else {
                break;
            };
            let under_load = rx.under_load(now);
            let ToSlowPath::Handshake(d) = msg else {
                continue;
            };
            tally.processed += 1;
            tally.under_load += u64::from(under_load);
            let flood = d.src.ip().octets_v4().is_some_and(|o| o[0] == 10);
            let valid_mac1 = flood && d.bytes()[5] & 1 == 1; // marker, see below
            match gw.handle_handshake(now, WALL, d.src, d.bytes(), under_load, &mut rng) {
                Ok(Handled::CookieReplySent) if flood && valid_mac1 => {
                    tally.cookie_replies_to_valid_mac1 += 1
                }
                Ok(Handled::CookieReplySent) if flood => tally.cookie_replies_to_invalid_mac1 += 1,
                Ok(_) => {}
                Err(HandshakeDrop::Cookie(CookieError::InvalidMac1)) => {
                    tally.invalid_mac1_dropped += 1
                }
                Err(HandshakeDrop::RateLimited(RateLimitError::RateExceeded)) => {
                    tally.rate_limited += 1
                }
                Err(HandshakeDrop::Handshake(_)) | Err(HandshakeDrop::UnknownPeer)
                    if under_load && !attackers.contains_key(&d.src) =>
                {
                    tally.dh_under_load += 1
                }
                Err(e) => *tally.other_drops.entry(format!("{e:?}")).or_default() += 1,
            }
        }
        // The gateway's outputs: to clients, to cookie-collecting attackers, or lost.
        while let Some(out) = gw.poll(now, WALL, &mut rng) {
            match out {
                Output::KeypairInstalled { keypair, .. } => {
                    fast.receivers.insert(keypair.local_index(), keypair);
                }
                Output::KeypairRetired { index, .. } => {
                    fast.receivers.remove(&index);
                }
                Output::SendHandshake {
                    endpoint, bytes, ..
                } => {
                    if let Some(c) = clients.iter_mut().find(|c| c.addr == endpoint) {
                        c.receive(now, &bytes, gw_addr, &mut rng);
                    }
                }
                Output::SendCookieReply { dst, bytes } => {
                    if let Some(c) = clients.iter_mut().find(|c| c.addr == dst) {
                        c.receive(now, &bytes, gw_addr, &mut rng);
                    } else if let Some(st) = attackers.get_mut(&dst) {
                        let reply = CookieReply::new_checked(&bytes[..]).unwrap();
                        if st.consume_reply(&reply, now).is_ok() {
                            attacker_cookies.insert(dst);
                        }
                    }
                }
                _ => {}
            }
        }
        // 2. Clients: client 1 is established before the flood and sends data every
        // millisecond; client 2 starts its first handshake during the flood; client 3 after it.
        if t == 0 {
            let c = &mut clients[0];
            c.dev.request_handshake(now, WALL, c.gw, &mut rng);
        }
        if t == flood_start + 200 {
            let c = &mut clients[1];
            c.dev.request_handshake(now, WALL, c.gw, &mut rng);
        }
        if t == quiet_end - 500 {
            let c = &mut clients[2];
            c.dev.request_handshake(now, WALL, c.gw, &mut rng);
        }
        for c in clients.iter_mut() {
            c.poll(now, &mut rng, &tx, &mut transport);
        }
        if client2_done_at.is_none()
            && clients[1]
                .handled
                .iter()
                .any(|h| matches!(h, Handled::ResponseAccepted(_)))
        {
            client2_done_at = Some(t);
        }
        if let Some(kp) = clients[0].sending.clone() {
            if t % 10 == 0 && t > 50 {
                let mut buf = vec![0u8; 16 + 64 + 32];
                buf[16..16 + 64].fill(0xab);
                let s = kp.seal_in_place(now, &mut buf, 64, 1420).unwrap();
                buf.truncate(s.len);
                transport.push((clients[0].addr, buf));
                peer1_sent += 1;
                peer1_index.get_or_insert(kp.local_index());
                assert_eq!(
                    peer1_index,
                    Some(kp.local_index()),
                    "peer 1's session was replaced"
                );
            }
        }
        for (src, mut msg) in transport.drain(..) {
            let data = msg.len() > 32;
            if fast.receive(&mut gw, now, src, &mut msg) && data && src == clients[0].addr {
                peer1_ok += 1;
            }
        }
        // Cookie-collecting attackers (they own their addresses), in the first 1.5 s of the
        // flood, ahead of it in the queue: one message each, then, once they hold a cookie,
        // ten at once with mac2, twice their burst.
        if (flood_start..flood_start + ATTACK_MS).contains(&t) {
            let a = (t as u32) % COOKIE_ATTACKERS;
            let src = attacker_src(a);
            let st = attackers.get_mut(&src).unwrap();
            let n = if attacker_cookies.contains(&src) {
                10
            } else {
                1
            };
            for _ in 0..n {
                let mut m = [0u8; 148];
                rng.fill_bytes(&mut m);
                m[..4].copy_from_slice(&[1, 0, 0, 0]);
                st.add_macs(&mut m, now).unwrap();
                let d = HandshakeDatagram::new(src, &m).unwrap();
                if tx.try_send(ToSlowPath::Handshake(d)).is_ok() && m[132..] != [0u8; 16] {
                    attacker_mac2_sent += 1;
                }
            }
        }
        // 3. The flood.
        if (flood_start..flood_end).contains(&t) {
            for k in 0..FLOOD as u32 {
                let i = (t as u32) * FLOOD as u32 + k;
                let mut m = [0u8; 148];
                rng.fill_bytes(&mut m);
                m[..4].copy_from_slice(&[1, 0, 0, 0]);
                // Byte 5 (in the sender index) marks which half this is, for the tally.
                if i % 2 == 1 {
                    m[5] |= 1;
                    mac1_forger.add_macs(&mut m, now).unwrap();
                } else {
                    m[5] &= !1;
                }
                if tx
                    .try_send(ToSlowPath::Handshake(
                        HandshakeDatagram::new(flood_src(i), &m).unwrap(),
                    ))
                    .is_err()
                {
                    tally.queue_full += 1;
                }
            }
        }
        if t % 500 == 0 {
            live_samples.push((t, LIVE.load(Ordering::Relaxed)));
        }
        t += 1;
    }

    let flood_ms = flood_end - flood_start;
    let arrivals = flood_ms * FLOOD as u64;
    eprintln!(
        "flood: {arrivals} initiations in {flood_ms} ms ({} /s) from {SOURCES} sources; \
         processed {} ({} under load), queue full {}, cookie replies {}, invalid mac1 {}, \
         DH under load {}, rate limited {}, attacker mac2 sent {}, other {:?}",
        arrivals * 1000 / flood_ms,
        tally.processed,
        tally.under_load,
        tally.queue_full,
        tally.cookie_replies_to_valid_mac1,
        tally.invalid_mac1_dropped,
        tally.dh_under_load,
        tally.rate_limited,
        attacker_mac2_sent,
        tally.other_drops
    );
    eprintln!("live heap (ms, bytes): {live_samples:?}");
    eprintln!("client 2 completed its handshake at {client2_done_at:?} ms; peer 1 {peer1_ok}/{peer1_sent}");

    // Cookie mode engaged and did its job.
    assert!(
        tally.under_load > tally.processed / 2,
        "the queue never built up"
    );
    assert!(tally.cookie_replies_to_valid_mac1 > 10_000);
    assert_eq!(
        tally.cookie_replies_to_invalid_mac1, 0,
        "an invalid mac1 earned a reply"
    );
    assert!(tally.invalid_mac1_dropped > 10_000);
    assert!(tally.queue_full > 0, "the flood should overrun the queue");
    // No Diffie-Hellman for flood messages without a valid mac2 while under load.
    assert_eq!(tally.dh_under_load, 0);
    // Sources proving their address with mac2 are limited to the burst and the rate.
    assert!(attacker_cookies.len() as u32 > COOKIE_ATTACKERS / 2);
    assert!(tally.rate_limited > 0);
    let allowed_per_source = u64::from(RATELIMIT_BURST) + ATTACK_MS * 20 / 1000 + 1;
    assert!(
        attacker_mac2_sent - tally.rate_limited <= u64::from(COOKIE_ATTACKERS) * allowed_per_source
    );
    // The established peer kept working, on the same session.
    assert!(peer1_sent > 600);
    assert_eq!(peer1_ok, peer1_sent, "peer 1 lost traffic during the flood");
    // A new genuine peer got through during the flood via the cookie round trip.
    assert!(clients[1]
        .handled
        .iter()
        .any(|h| matches!(h, Handled::CookieStored(_))));
    let done = client2_done_at.expect("client 2 never completed a handshake");
    assert!(done < flood_end, "client 2 only got in after the flood");
    assert!(done <= flood_start + 200 + 2 * REKEY_TIMEOUT.as_millis() as u64 + 1000);
    // Memory flat: after the first second of flood, the live heap moves by less than 256 KiB.
    let during: Vec<isize> = live_samples
        .iter()
        .filter(|(t, _)| (flood_start + 1000..flood_end).contains(t))
        .map(|&(_, b)| b)
        .collect();
    let (lo, hi) = (during.iter().min().unwrap(), during.iter().max().unwrap());
    assert!(
        hi - lo < 256 * 1024,
        "live heap grew during the flood: {lo} -> {hi}"
    );
    // Afterwards: the queue drained, and client 3's first initiation is answered directly.
    assert_eq!(rx.depth(), 0);
    assert!(!rx.under_load(ms(t)));
    assert!(
        clients[2]
            .handled
            .iter()
            .any(|h| matches!(h, Handled::ResponseAccepted(_))),
        "client 3 after the flood: {:?}",
        clients[2].handled
    );
    assert!(!clients[2]
        .handled
        .iter()
        .any(|h| matches!(h, Handled::CookieStored(_))));
}

trait OctetsV4 {
    fn octets_v4(&self) -> Option<[u8; 4]>;
}
impl OctetsV4 for IpAddr {
    fn octets_v4(&self) -> Option<[u8; 4]> {
        match self {
            IpAddr::V4(a) => Some(a.octets()),
            IpAddr::V6(_) => None,
        }
    }
}
