//! End-to-end: two [`Device`]s and their "fast paths" (tables built only from the devices'
//! outputs) exchange handshakes and data over a simulated network, driven by a fake clock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

mod support;

use support::TestRng;
use wgproto::allowedips::AllowedIps;
use wgproto::config::{InterfaceConfig, PeerConfig};
use wgproto::constants::{
    KEEPALIVE_TIMEOUT, MAX_HANDSHAKE_ATTEMPTS, MSG_INITIATION, MSG_TRANSPORT, REJECT_AFTER_TIME,
    REKEY_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_ON_RECEIVE_AFTER_TIME, REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
};
use wgproto::device::{Device, Handled, HandshakeDrop, KeySlot, Output, PeerEvent};
use wgproto::keypair::{Keypair, OpenError};
use wgproto::keys::PrivateKey;
use wgproto::noise::HandshakeError;
use wgproto::peer::PeerId;
use wgproto::time::Timestamp;

const A: usize = 0;
const B: usize = 1;
const MTU: usize = 1420;

/// One side: the device plus the tables a fast path would build from its outputs.
struct Node {
    dev: Device,
    addr: SocketAddr,
    by_index: HashMap<u32, Arc<Keypair>>,
    sending: HashMap<PeerId, Arc<Keypair>>,
    allowed: AllowedIps<PeerId>,
    events: Vec<(Timestamp, PeerId, PeerEvent)>,
    under_load: bool,
    /// Payloads delivered to the "TUN" side, with the keypair index they arrived on.
    delivered: Vec<(Vec<u8>, u32)>,
    /// Handshake drop reasons seen.
    drops: Vec<HandshakeDrop>,
    handled: Vec<Handled>,
}

/// A datagram on the wire.
#[derive(Clone, Debug)]
struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

struct Net {
    nodes: [Node; 2],
    now: Timestamp,
    rng: TestRng,
    in_flight: Vec<Datagram>,
    /// Everything put on the wire, with the time.
    log: Vec<(Timestamp, Datagram)>,
    /// Return false to drop a datagram.
    filter: Box<dyn FnMut(&Datagram) -> bool>,
    /// Peer ids: `peer_of[A]` is B as known to A, and vice versa.
    peer_of: [PeerId; 2],
}

fn key(seed: u8) -> PrivateKey {
    PrivateKey::from_bytes([seed; 32])
}

fn wall(now: Timestamp) -> Duration {
    // A wall clock 1.7e9 s after the epoch that advances with the fake monotonic clock.
    Duration::from_secs(1_700_000_000) + Duration::from_nanos(now.as_nanos())
}

impl Net {
    /// A (10.0.0.2) knows B's endpoint; B (10.0.0.1) learns A's from its first initiation.
    fn new(a_keepalive: Option<u16>) -> Net {
        let addr_a: SocketAddr = "192.0.2.2:40000".parse().unwrap();
        let addr_b: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let (ka, kb) = (key(1), key(2));
        let (pa, pb) = (ka.public_key(), kb.public_key());
        let now = Timestamp::from_nanos(1_000_000_000);
        let node = |k: PrivateKey, addr| Node {
            dev: Device::new(&InterfaceConfig::new(k)),
            addr,
            by_index: HashMap::new(),
            sending: HashMap::new(),
            allowed: AllowedIps::new(),
            events: Vec::new(),
            under_load: false,
            delivered: Vec::new(),
            drops: Vec::new(),
            handled: Vec::new(),
        };
        let mut nodes = [node(ka, addr_a), node(kb, addr_b)];
        let mut a_cfg = PeerConfig::new(pb);
        a_cfg.allowed_ips = vec!["10.0.0.0/24".parse().unwrap()];
        a_cfg.endpoint = Some(addr_b);
        a_cfg.persistent_keepalive = a_keepalive;
        let b_of_a = nodes[A].dev.set_peer(now, a_cfg).unwrap();
        let mut b_cfg = PeerConfig::new(pa);
        b_cfg.allowed_ips = vec!["10.0.0.2/32".parse().unwrap()];
        let a_of_b = nodes[B].dev.set_peer(now, b_cfg).unwrap();
        let mut net = Net {
            nodes,
            now,
            rng: TestRng(7),
            in_flight: Vec::new(),
            log: Vec::new(),
            filter: Box::new(|_| true),
            peer_of: [b_of_a, a_of_b],
        };
        net.settle();
        net
    }

    fn node_at(&self, addr: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr == addr)
    }

    fn transmit(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let d = Datagram { from, to, bytes };
        self.log.push((self.now, d.clone()));
        if (self.filter)(&d) {
            self.in_flight.push(d);
        }
    }

    /// Drains every device's outputs and delivers every datagram, until quiet.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut progressed = false;
            for i in 0..2 {
                let now = self.now;
                while let Some(out) = self.nodes[i].dev.poll(now, wall(now), &mut self.rng) {
                    progressed = true;
                    self.apply(i, out);
                }
            }
            let batch = std::mem::take(&mut self.in_flight);
            for d in batch {
                progressed = true;
                self.receive(d);
            }
            if !progressed {
                return;
            }
        }
        panic!("network never settled");
    }

    fn apply(&mut self, i: usize, out: Output) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let from = node.addr;
        match out {
            Output::SendHandshake {
                endpoint, bytes, ..
            } => self.transmit(from, endpoint, bytes),
            Output::SendCookieReply { dst, bytes } => self.transmit(from, dst, bytes.to_vec()),
            Output::SendKeepalive {
                endpoint, bytes, ..
            } => self.transmit(from, endpoint, bytes.to_vec()),
            Output::KeypairInstalled {
                peer,
                keypair,
                slot,
            } => {
                node.by_index.insert(keypair.local_index(), keypair.clone());
                if slot == KeySlot::Current {
                    node.sending.insert(peer, keypair);
                }
            }
            Output::KeypairRetired { peer, index } => {
                node.by_index.remove(&index);
                if node
                    .sending
                    .get(&peer)
                    .is_some_and(|k| k.local_index() == index)
                {
                    node.sending.remove(&peer);
                }
            }
            Output::AllowedIpsChanged => node.allowed = node.dev.allowed_ips().clone(),
            Output::PeerEvent { peer, event } => node.events.push((now, peer, event)),
        }
    }

    /// The receive side of a node: the fast path for transport messages, the device for the
    /// rest.
    fn receive(&mut self, d: Datagram) {
        let Some(i) = self.node_at(d.to) else {
            return; // black hole
        };
        let now = self.now;
        let mut bytes = d.bytes;
        if bytes.first() == Some(&MSG_TRANSPORT) && bytes.len() >= 16 {
            let index = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
            let Some(kp) = self.nodes[i].by_index.get(&index).cloned() else {
                return;
            };
            let Ok(opened) = kp.open_in_place(now, &mut bytes) else {
                return;
            };
            let plain = bytes[opened.plaintext.clone()].to_vec();
            let keepalive = plain.is_empty();
            let node = &mut self.nodes[i];
            node.dev
                .note_data_received(now, kp.peer(), index, d.from, keepalive);
            if !keepalive {
                node.delivered.push((plain, index));
            }
            if opened.rekey {
                node.dev
                    .request_handshake(now, wall(now), kp.peer(), &mut self.rng);
            }
        } else {
            let under_load = self.nodes[i].under_load;
            let node = &mut self.nodes[i];
            match node.dev.handle_handshake(
                now,
                wall(now),
                d.from,
                &bytes,
                under_load,
                &mut self.rng,
            ) {
                Ok(h) => node.handled.push(h),
                Err(e) => node.drops.push(e),
            }
        }
    }

    /// Node `i` sends `payload` (padded to 16 like an IP packet would not be, but the receiver
    /// only compares the prefix) to its one peer. Returns the receiver index used, or None
    /// when there is no sending keypair (a handshake is requested instead, as a worker would).
    fn send_data(&mut self, i: usize, payload: &[u8]) -> Option<u32> {
        let now = self.now;
        let peer = self.peer_of[i];
        let Some(kp) = self.nodes[i].sending.get(&peer).cloned() else {
            self.nodes[i]
                .dev
                .request_handshake(now, wall(now), peer, &mut self.rng);
            return None;
        };
        let mut buf = vec![0u8; 16 + payload.len() + 32];
        buf[16..16 + payload.len()].copy_from_slice(payload);
        let sealed = match kp.seal_in_place(now, &mut buf, payload.len(), MTU) {
            Ok(s) => s,
            Err(_) => {
                self.nodes[i]
                    .dev
                    .request_handshake(now, wall(now), peer, &mut self.rng);
                return None;
            }
        };
        buf.truncate(sealed.len);
        let dev = &mut self.nodes[i].dev;
        dev.note_data_sent(now, peer, false, &mut self.rng);
        if sealed.rekey {
            dev.request_handshake(now, wall(now), peer, &mut self.rng);
        }
        let endpoint = dev.peer(peer).unwrap().endpoint().unwrap();
        let from = self.nodes[i].addr;
        self.transmit(from, endpoint, buf);
        Some(kp.remote_index())
    }

    /// Advances the clock to `until`, firing every timer on the way at its exact deadline.
    fn run_until(&mut self, until: Timestamp) {
        self.settle();
        loop {
            let next = self.nodes.iter().filter_map(|n| n.dev.next_timeout()).min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = until;
        self.settle();
    }

    fn advance(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Handshake initiations put on the wire by node `i`, with their times.
    fn initiations_from(&self, i: usize) -> Vec<Timestamp> {
        let addr = self.nodes[i].addr;
        self.log
            .iter()
            .filter(|(_, d)| d.from == addr && d.bytes.first() == Some(&MSG_INITIATION))
            .map(|(t, _)| *t)
            .collect()
    }

    fn count_events(&self, i: usize, f: impl Fn(&PeerEvent) -> bool) -> usize {
        self.nodes[i].events.iter().filter(|(_, _, e)| f(e)).count()
    }
}

/// An IPv4 header with the given source, enough for the source check.
fn ipv4_packet(src: [u8; 4], dst: [u8; 4], tag: u8) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20] = tag;
    p
}

fn inner_source(p: &[u8]) -> IpAddr {
    IpAddr::from(<[u8; 4]>::try_from(&p[12..16]).unwrap())
}

#[test]
fn handshake_then_data_both_ways() {
    let mut net = Net::new(None);
    // A has data but no session: the worker asks for a handshake.
    assert_eq!(net.send_data(A, b"first"), None);
    net.settle();
    // Initiation, response, keepalive: both sides now have a sending keypair.
    assert_eq!(net.initiations_from(A).len(), 1);
    assert_eq!(
        net.nodes[B].handled,
        vec![Handled::InitiationAnswered(net.peer_of[B])]
    );
    assert_eq!(
        net.nodes[A].handled,
        vec![Handled::ResponseAccepted(net.peer_of[A])]
    );
    let ka = net.nodes[A].sending[&net.peer_of[A]].clone();
    let kb = net.nodes[B].sending[&net.peer_of[B]].clone();
    assert_eq!(ka.remote_index(), kb.local_index());
    assert_eq!(kb.remote_index(), ka.local_index());
    assert!(ka.is_initiator() && !kb.is_initiator());
    // B learned A's endpoint from the authenticated initiation.
    assert_eq!(
        net.nodes[B].dev.peer(net.peer_of[B]).unwrap().endpoint(),
        Some(net.nodes[A].addr)
    );
    assert!(net.nodes[A]
        .dev
        .peer(net.peer_of[A])
        .unwrap()
        .last_handshake()
        .is_some());

    for n in 0..5u8 {
        net.send_data(A, &[b'a', n]).unwrap();
        net.send_data(B, &[b'b', n]).unwrap();
        net.advance(Duration::from_millis(100));
    }
    let got_b: Vec<_> = net.nodes[B]
        .delivered
        .iter()
        .map(|(p, _)| p[..2].to_vec())
        .collect();
    let got_a: Vec<_> = net.nodes[A]
        .delivered
        .iter()
        .map(|(p, _)| p[..2].to_vec())
        .collect();
    assert_eq!(got_b, (0..5).map(|n| vec![b'a', n]).collect::<Vec<_>>());
    assert_eq!(got_a, (0..5).map(|n| vec![b'b', n]).collect::<Vec<_>>());
    // Data was padded to 16 bytes on the wire.
    assert!(net.nodes[B].delivered.iter().all(|(p, _)| p.len() == 16));
}

#[test]
fn responder_sends_only_after_key_confirmation() {
    let mut net = Net::new(None);
    // Lose A's confirming keepalive: B holds the keypair in `next` only.
    net.filter = Box::new(|d| !(d.bytes[0] == MSG_TRANSPORT && d.bytes.len() == 32));
    net.send_data(A, b"x");
    net.settle();
    assert!(net.nodes[A].sending.contains_key(&net.peer_of[A]));
    assert!(
        !net.nodes[B].sending.contains_key(&net.peer_of[B]),
        "responder must not send before receiving on the new keypair"
    );
    let next_index = net.nodes[B]
        .dev
        .peer(net.peer_of[B])
        .unwrap()
        .keypairs()
        .next()
        .unwrap()
        .local_index();
    // The first data packet from A confirms it.
    net.filter = Box::new(|_| true);
    net.send_data(A, b"confirm").unwrap();
    net.settle();
    let kb = net.nodes[B].sending[&net.peer_of[B]].clone();
    assert_eq!(kb.local_index(), next_index);
    assert!(net.send_data(B, b"now").is_some());
    net.settle();
    assert_eq!(&net.nodes[A].delivered.last().unwrap().0[..3], b"now");
}

#[test]
fn rekey_after_time_keeps_traffic_flowing_without_loss() {
    let mut net = Net::new(None);
    net.send_data(A, b"start");
    net.settle();
    let start = net.now;
    let mut sent = [0usize; 2];
    let mut b_indices = Vec::new();
    let mut b_keys_before_confirm_ok = true;
    // Both directions send every 500 ms for 400 s.
    for step in 0..800u32 {
        for i in [A, B] {
            let payload = format!("{i}:{step}");
            if let Some(idx) = net.send_data(i, payload.as_bytes()) {
                sent[i] += 1;
                if i == B {
                    b_indices.push(idx);
                }
            }
        }
        // The responder's sending keypair is always one it has received on.
        if let Some(kb) = net.nodes[B].sending.get(&net.peer_of[B]) {
            b_keys_before_confirm_ok &= kb.has_received();
        }
        net.advance(Duration::from_millis(500));
    }
    assert!(b_keys_before_confirm_ok);
    assert_eq!(sent, [800, 800], "no send ever lacked a keypair");
    assert_eq!(net.nodes[B].delivered.len(), sent[A], "A -> B lost packets");
    assert_eq!(net.nodes[A].delivered.len(), sent[B], "B -> A lost packets");
    // The initiator rekeyed every REKEY_AFTER_TIME; the responder never initiated.
    let inits = net.initiations_from(A);
    assert_eq!(inits.len(), 4, "initial + 3 rekeys in 400 s: {inits:?}");
    for (k, t) in inits.iter().enumerate().skip(1) {
        let age = t.since(start);
        let expected = REKEY_AFTER_TIME * k as u32;
        assert!(
            age >= expected && age < expected + Duration::from_secs(1),
            "rekey {k} at {age:?}"
        );
    }
    assert!(net.initiations_from(B).is_empty());
    // B moved to each new keypair.
    b_indices.dedup();
    assert_eq!(b_indices.len(), 4);
}

#[test]
fn responder_does_not_rekey_by_time() {
    let mut net = Net::new(None);
    net.send_data(A, b"start");
    net.settle();
    let start = net.now;
    // Only B (the responder) sends data. A answers with passive keepalives, and a keepalive
    // sealed on a keypair older than REKEY_AFTER_TIME makes the initiator rekey (as in the
    // kernel, where keepalives also go through keep_key_fresh).
    for _ in 0..400 {
        net.send_data(B, b"from b")
            .expect("B always has a sending keypair");
        net.advance(Duration::from_millis(500));
    }
    let inits = net.initiations_from(A);
    assert!(inits.len() >= 2, "{inits:?}");
    let age = inits[1].since(start);
    assert!(
        age >= REKEY_AFTER_TIME
            && age < REKEY_AFTER_TIME + KEEPALIVE_TIMEOUT + Duration::from_secs(1),
        "second handshake at {age:?}"
    );
    assert!(
        net.initiations_from(B).is_empty(),
        "the responder does not rekey by time"
    );
    assert_eq!(net.nodes[A].delivered.len(), 400);
}

#[test]
fn stale_rekey_hints_are_ignored() {
    let mut net = Net::new(None);
    net.send_data(A, b"start");
    net.settle();
    let (peer_a, peer_b) = (net.peer_of[B], net.peer_of[A]);
    // The responder's worker asking for a rekey at 170 s of key age does nothing: only the
    // initiator rekeys by time (whitepaper 6.2).
    net.advance(REKEY_ON_RECEIVE_AFTER_TIME + Duration::from_secs(5));
    let now = net.now;
    net.nodes[B]
        .dev
        .request_handshake(now, wall(now), peer_a, &mut net.rng);
    net.settle();
    assert!(net.initiations_from(B).is_empty());
    // The initiator's does.
    net.nodes[A]
        .dev
        .request_handshake(now, wall(now), peer_b, &mut net.rng);
    net.settle();
    assert_eq!(net.initiations_from(A).len(), 2);
    // Right after the new session, a hint computed on the old keypair is ignored.
    net.nodes[A]
        .dev
        .request_handshake(now + REKEY_TIMEOUT, wall(now), peer_b, &mut net.rng);
    net.settle();
    assert_eq!(net.initiations_from(A).len(), 2);
}

#[test]
fn keys_are_rejected_after_reject_after_time_and_zeroed_later() {
    let mut net = Net::new(None);
    net.send_data(A, b"start");
    net.settle();
    let ka = net.nodes[A].sending[&net.peer_of[A]].clone();
    // Silence: nobody sends, no timers start a handshake.
    net.advance(REJECT_AFTER_TIME);
    let mut buf = [0u8; 64];
    assert!(ka.seal_in_place(net.now, &mut buf, 0, MTU).is_err());
    assert!(
        ka.is_retired(),
        "expired keypairs are retired by the device"
    );
    assert!(net.nodes[A].sending.is_empty() && net.nodes[A].by_index.is_empty());
    assert!(net.nodes[B].by_index.is_empty());
    net.advance(REJECT_AFTER_TIME * 3);
    assert_eq!(net.count_events(A, |e| *e == PeerEvent::KeysZeroed), 1);
    assert_eq!(
        Arc::strong_count(&ka),
        1,
        "only the test still holds the keypair"
    );
}

#[test]
fn retries_every_rekey_timeout_then_gives_up() {
    let mut net = Net::new(None);
    net.filter = Box::new(|_| false); // B is unreachable
    net.send_data(A, b"lost");
    net.advance(Duration::from_secs(200));
    let inits = net.initiations_from(A);
    assert_eq!(inits.len() as u32, MAX_HANDSHAKE_ATTEMPTS);
    for w in inits.windows(2) {
        let gap = w[1].since(w[0]);
        assert!(
            gap >= REKEY_TIMEOUT && gap <= REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX,
            "gap {gap:?}"
        );
    }
    let gave_up: Vec<_> = net.nodes[A]
        .events
        .iter()
        .filter(|(_, _, e)| *e == PeerEvent::HandshakeGaveUp)
        .map(|(t, _, _)| *t)
        .collect();
    assert_eq!(gave_up.len(), 1);
    let span = gave_up[0].since(inits[0]);
    assert!(
        span >= REKEY_ATTEMPT_TIME && span <= REKEY_ATTEMPT_TIME + REKEY_TIMEOUT_JITTER_MAX * 18,
        "{span:?}"
    );
    // New data starts a new attempt.
    net.send_data(A, b"again");
    net.settle();
    assert_eq!(
        net.initiations_from(A).len() as u32,
        MAX_HANDSHAKE_ATTEMPTS + 1
    );
}

#[test]
fn passive_keepalive_and_unanswered_data() {
    let mut net = Net::new(None);
    net.send_data(A, b"start");
    net.settle();
    // A sends data, B does not answer: B owes a keepalive after KEEPALIVE_TIMEOUT.
    let before = net.log.len();
    net.send_data(A, b"ping").unwrap();
    net.advance(Duration::from_secs(11));
    let b_addr = net.nodes[B].addr;
    let keepalives: Vec<_> = net.log[before..]
        .iter()
        .filter(|(_, d)| d.from == b_addr && d.bytes.len() == 32)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(keepalives.len(), 1);
    // Now B's keepalives are lost: A's data goes unanswered and A rehandshakes after
    // KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (+ jitter).
    net.filter = Box::new(move |d| d.from != b_addr);
    let t_send = net.now;
    net.send_data(A, b"ping2").unwrap();
    net.advance(Duration::from_secs(16));
    let inits = net.initiations_from(A);
    let last = *inits.last().unwrap();
    let gap = last.since(t_send);
    assert!(
        gap >= Duration::from_secs(15) && gap <= Duration::from_secs(15) + REKEY_TIMEOUT_JITTER_MAX,
        "{gap:?}"
    );
}

#[test]
fn persistent_keepalive_every_interval() {
    let mut net = Net::new(Some(25));
    // Setting the interval sends a keepalive at once, which starts the handshake.
    net.settle();
    assert_eq!(net.initiations_from(A).len(), 1);
    let start = net.now;
    net.advance(Duration::from_secs(100));
    let a_addr = net.nodes[A].addr;
    let times: Vec<_> = net
        .log
        .iter()
        .filter(|(t, d)| *t > start && d.from == a_addr && d.bytes.len() == 32)
        .map(|(t, _)| t.since(start).as_secs())
        .collect();
    assert_eq!(times, vec![25, 50, 75, 100]);
}

#[test]
fn cookie_reply_under_load_then_handshake_with_mac2() {
    let mut net = Net::new(None);
    net.nodes[B].under_load = true;
    net.send_data(A, b"hello");
    net.settle();
    assert_eq!(net.nodes[B].handled, vec![Handled::CookieReplySent]);
    assert_eq!(
        net.nodes[A].handled,
        vec![Handled::CookieStored(net.peer_of[A])]
    );
    assert!(net.nodes[A].sending.is_empty());
    // The retry after REKEY_TIMEOUT carries mac2 and is accepted under load.
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    assert_eq!(net.initiations_from(A).len(), 2);
    assert_eq!(
        net.nodes[B].handled,
        vec![
            Handled::CookieReplySent,
            Handled::InitiationAnswered(net.peer_of[B])
        ]
    );
    assert!(net.nodes[A].sending.contains_key(&net.peer_of[A]));
    assert!(net.nodes[B].sending.contains_key(&net.peer_of[B]));
}

#[test]
fn garbage_and_bad_mac1_are_dropped_without_reply() {
    let mut net = Net::new(None);
    let from: SocketAddr = "198.51.100.9:1".parse().unwrap();
    let to = net.nodes[B].addr;
    for bytes in [
        vec![],
        vec![1u8],
        vec![1, 0, 0, 0],
        vec![1; 148],
        vec![2; 92],
        vec![3; 64],
        vec![9; 200],
    ] {
        net.transmit(from, to, bytes);
    }
    let mut init = [0u8; 148];
    init[0] = 1;
    net.transmit(from, to, init.to_vec());
    net.settle();
    assert_eq!(net.nodes[B].drops.len(), 8, "{:?}", net.nodes[B].drops);
    assert!(net.nodes[B].drops.contains(&HandshakeDrop::Cookie(
        wgproto::cookie::CookieError::InvalidMac1
    )));
    assert!(
        net.log.iter().all(|(_, d)| d.from != to),
        "no reply to garbage"
    );
}

#[test]
fn roaming_only_on_authenticated_packets() {
    let mut net = Net::new(None);
    net.send_data(A, b"start");
    net.settle();
    let a_addr = net.nodes[A].addr;
    let b_addr = net.nodes[B].addr;
    let peer_a = net.peer_of[B];
    let endpoint = |net: &Net| net.nodes[B].dev.peer(peer_a).unwrap().endpoint();
    assert_eq!(endpoint(&net), Some(a_addr));
    let attacker: SocketAddr = "203.0.113.66:666".parse().unwrap();

    // 1. A replayed initiation (valid mac1, authentic, old timestamp) from elsewhere.
    let first_init = net
        .log
        .iter()
        .find(|(_, d)| d.bytes[0] == MSG_INITIATION)
        .unwrap()
        .1
        .bytes
        .clone();
    net.transmit(attacker, b_addr, first_init);
    // 2. A replayed data packet from elsewhere.
    let data = net
        .log
        .iter()
        .rev()
        .find(|(_, d)| d.from == a_addr && d.bytes[0] == MSG_TRANSPORT)
        .unwrap()
        .1
        .bytes
        .clone();
    net.transmit(attacker, b_addr, data.clone());
    // 3. A tampered data packet from elsewhere.
    let mut tampered = data.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    net.transmit(attacker, b_addr, tampered);
    net.settle();
    assert_eq!(
        endpoint(&net),
        Some(a_addr),
        "unauthenticated packets must not move the endpoint"
    );
    assert_eq!(
        net.nodes[B].drops.last(),
        Some(&HandshakeDrop::Handshake(
            HandshakeError::TimestampNotIncreasing
        ))
    );
    let kp = net.nodes[B].by_index.values().next().unwrap().clone();
    assert_eq!(
        kp.open_in_place(net.now, &mut data.clone()).unwrap_err(),
        OpenError::Replay(wgproto::replay::ReplayError::Duplicate)
    );

    // A genuine packet from A's new address moves it.
    let new_a: SocketAddr = "192.0.2.99:40001".parse().unwrap();
    net.nodes[A].addr = new_a;
    net.send_data(A, b"roamed").unwrap();
    net.settle();
    assert_eq!(endpoint(&net), Some(new_a));
    assert!(net.nodes[B]
        .events
        .iter()
        .any(|(_, _, e)| *e == PeerEvent::EndpointChanged(new_a)));
    // And B's replies follow it.
    net.send_data(B, b"reply").unwrap();
    net.settle();
    assert_eq!(&net.nodes[A].delivered.last().unwrap().0[..5], b"reply");
}

#[test]
fn inner_source_must_belong_to_the_decrypting_peer() {
    let mut net = Net::new(None);
    // B also knows a third peer C that owns 10.0.0.3.
    let mut c = PeerConfig::new(key(3).public_key());
    c.allowed_ips = vec!["10.0.0.3/32".parse().unwrap()];
    let peer_c = net.nodes[B].dev.set_peer(net.now, c).unwrap();
    net.send_data(A, b"start");
    net.settle();
    let peer_a = net.peer_of[B];
    assert_eq!(
        net.nodes[B].allowed.lookup("10.0.0.3".parse().unwrap()),
        Some(&peer_c)
    );

    net.send_data(A, &ipv4_packet([10, 0, 0, 2], [10, 0, 0, 1], 1))
        .unwrap();
    net.send_data(A, &ipv4_packet([10, 0, 0, 3], [10, 0, 0, 1], 2))
        .unwrap(); // spoofs C
    net.send_data(A, &ipv4_packet([192, 168, 1, 1], [10, 0, 0, 1], 3))
        .unwrap(); // nobody's
    net.settle();
    let b = &net.nodes[B];
    let verdicts: Vec<(u8, bool)> = b
        .delivered
        .iter()
        .map(|(p, index)| {
            let peer = b.by_index[index].peer();
            assert_eq!(peer, peer_a);
            (p[20], b.allowed.source_allowed(inner_source(p), &peer))
        })
        .collect();
    assert_eq!(verdicts, vec![(1, true), (2, false), (3, false)]);
}

#[test]
fn reconfiguring_one_peer_keeps_sessions() {
    let mut net = Net::new(None);
    let mut c = PeerConfig::new(key(3).public_key());
    c.allowed_ips = vec!["10.9.0.0/16".parse().unwrap()];
    net.nodes[B].dev.set_peer(net.now, c.clone()).unwrap();
    net.send_data(A, b"start");
    net.settle();
    let kb = net.nodes[B].sending[&net.peer_of[B]].clone();
    // Change A's allowed IPs on B and remove C: the A session is untouched.
    let mut a_cfg = PeerConfig::new(key(1).public_key());
    a_cfg.allowed_ips = vec![
        "10.0.0.2/32".parse().unwrap(),
        "fd00::2/128".parse().unwrap(),
    ];
    let id = net.nodes[B].dev.set_peer(net.now, a_cfg).unwrap();
    assert_eq!(id, net.peer_of[B]);
    net.nodes[B].dev.remove_peer(&c.public_key).unwrap();
    net.settle();
    assert!(Arc::ptr_eq(&net.nodes[B].sending[&net.peer_of[B]], &kb));
    assert!(!kb.is_retired());
    assert_eq!(
        net.nodes[B].allowed.lookup("fd00::2".parse().unwrap()),
        Some(&id)
    );
    assert_eq!(
        net.nodes[B].allowed.lookup("10.9.1.1".parse().unwrap()),
        None
    );
    net.send_data(B, b"still here").unwrap();
    net.settle();
    assert_eq!(
        &net.nodes[A].delivered.last().unwrap().0[..10],
        b"still here"
    );
    // Removing A retires its keypairs.
    net.nodes[B].dev.remove_peer(&key(1).public_key()).unwrap();
    net.settle();
    assert!(kb.is_retired());
    assert!(net.nodes[B].by_index.is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Arbitrary handshake-shaped datagrams (right type and length, random content) from
    /// anywhere are refused without a panic, without replies and without touching the session.
    #[test]
    fn arbitrary_handshake_datagrams_are_refused(
        msgs in proptest::collection::vec((1u8..=4, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160)), 1..20),
        under_load in proptest::prelude::any::<bool>(),
    ) {
        let mut net = Net::new(None);
        net.send_data(A, b"start");
        net.settle();
        let b_addr = net.nodes[B].addr;
        let attacker: SocketAddr = "203.0.113.7:9".parse().unwrap();
        net.nodes[B].under_load = under_load;
        let before = net.log.len();
        let n = msgs.len();
        for (t, mut body) in msgs {
            let len = match t { 1 => 148, 2 => 92, 3 => 64, _ => body.len().max(32) };
            body.resize(len, 0);
            body[..4].copy_from_slice(&[t, 0, 0, 0]);
            net.transmit(attacker, b_addr, body);
        }
        net.settle();
        proptest::prop_assert_eq!(net.nodes[B].drops.len(), n - net.log[before..].iter().filter(|(_, d)| d.bytes[0] == MSG_TRANSPORT).count());
        proptest::prop_assert!(net.log[before + n..].is_empty(), "no reply: mac1 never verifies");
        proptest::prop_assert_eq!(net.nodes[B].dev.peer(net.peer_of[B]).unwrap().endpoint(), Some(net.nodes[A].addr));
    }
}

#[test]
fn own_key_is_not_a_peer_and_key_change_ends_sessions() {
    let mut net = Net::new(None);
    let own = net.nodes[B].dev.public_key().to_owned();
    assert_eq!(
        net.nodes[B].dev.set_peer(net.now, PeerConfig::new(own)),
        Err(wgproto::device::ConfigError::PeerIsSelf)
    );
    net.send_data(A, b"start");
    net.settle();
    let kb = net.nodes[B].sending[&net.peer_of[B]].clone();
    // B gets a new private key: its sessions end, and A (still configured with B's old public
    // key) can no longer handshake: its mac1 is keyed to the old key.
    net.nodes[B].dev.set_private_key(key(9));
    net.settle();
    assert!(kb.is_retired());
    assert!(net.nodes[B].by_index.is_empty() && net.nodes[B].sending.is_empty());
    // A's keypair is still fresh on its side: it sends data B cannot read, and the
    // unanswered-data timer starts a handshake, which B drops.
    net.send_data(A, b"unread").unwrap();
    net.advance(Duration::from_secs(16));
    assert!(net.nodes[B].drops.contains(&HandshakeDrop::Cookie(
        wgproto::cookie::CookieError::InvalidMac1
    )));
}

#[test]
fn simultaneous_initiations_converge() {
    let mut net = Net::new(None);
    // B learns A's endpoint from configuration too, and both start at the same instant; the
    // initiations cross on the wire.
    let mut b_cfg = PeerConfig::new(key(1).public_key());
    b_cfg.allowed_ips = vec!["10.0.0.2/32".parse().unwrap()];
    b_cfg.endpoint = Some(net.nodes[A].addr);
    net.nodes[B].dev.set_peer(net.now, b_cfg).unwrap();
    let now = net.now;
    let (pa, pb) = (net.peer_of[A], net.peer_of[B]);
    net.nodes[A]
        .dev
        .request_handshake(now, wall(now), pa, &mut net.rng);
    net.nodes[B]
        .dev
        .request_handshake(now, wall(now), pb, &mut net.rng);
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + Duration::from_millis(100));
    assert!(net.send_data(A, b"a->b").is_some());
    assert!(net.send_data(B, b"b->a").is_some());
    net.settle();
    assert_eq!(&net.nodes[B].delivered.last().unwrap().0[..4], b"a->b");
    assert_eq!(&net.nodes[A].delivered.last().unwrap().0[..4], b"b->a");
    // And it stays quiet afterwards: no handshake storm.
    let before = net.initiations_from(A).len() + net.initiations_from(B).len();
    net.advance(Duration::from_secs(60));
    assert_eq!(
        net.initiations_from(A).len() + net.initiations_from(B).len(),
        before
    );
}
