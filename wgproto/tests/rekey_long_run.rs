//! Rekeying over a long run: two [`Device`]s exchange traffic both ways over a
//! simulated lossy, reordering, duplicating network, driven by a virtual clock through
//! [`SIM_HOURS`] hours (override with `REKEY_SIM_HOURS` for a soak) with the protocol's real
//! time constants: REKEY_AFTER_TIME is 120 s, so six hours bring about 180 rekeys.
//!
//! On top of the tunnel runs a reliable-stream model of a TCP connection in each direction:
//! sequence numbers, cumulative acknowledgements carried by the reverse traffic, a bounded send
//! window, and retransmission after an RTO (1 s, RFC 6298's minimum, doubled per retry up to
//! 60 s). The tunnel's own losses (no keypair yet, a keypair expired, a dropped datagram) are
//! what the stream has to repair.
//!
//! What must hold: every segment is delivered to the application exactly once and in order;
//! the tunnel never opens the same transmitted datagram twice (duplicates are refused by the
//! replay window); the connection never stalls (no in-order progress while data is pending)
//! for longer than [`STALL_MAX`], far below the ~100 s a TCP gives up after (RFC 1122 R2); and
//! at least [`MIN_REKEYS_PER_6H`] rekeys happened per six hours.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use rand_core::RngCore;
use support::TestRng;
use wgproto::config::{InterfaceConfig, PeerConfig};
use wgproto::constants::{MSG_TRANSPORT, REKEY_AFTER_TIME};
use wgproto::device::{Device, KeySlot, Output};
use wgproto::keypair::Keypair;
use wgproto::keys::PrivateKey;
use wgproto::peer::PeerId;
use wgproto::time::Timestamp;

/// Simulated duration, in hours.
const SIM_HOURS: u64 = 6;
const MIN_REKEYS_PER_6H: u64 = 150;
/// Each side's application sends one new segment (if its window allows) per tick.
const TICK: Duration = Duration::from_millis(250);
/// Unacknowledged segments a sender may have outstanding.
const WINDOW: usize = 64;
/// Retransmissions per tick at most (a TCP's congestion window, crudely).
const RETX_PER_TICK: usize = 8;
const RTO_MIN: Duration = Duration::from_secs(1);
const RTO_MAX: Duration = Duration::from_secs(60);
/// The longest the stream may go without in-order progress while data is pending.
const STALL_MAX: Duration = Duration::from_secs(20);
/// One-way delay: base plus uniform jitter (reorders datagrams).
const DELAY: Duration = Duration::from_millis(10);
const JITTER_NS: u64 = 30_000_000;
/// Loss per million: transport datagrams, handshake messages; duplicates per million.
const LOSS_DATA_PPM: u64 = 10_000;
const LOSS_HANDSHAKE_PPM: u64 = 200_000;
const DUP_PPM: u64 = 5_000;
const MTU: usize = 1420;
/// Segment payload: seq, ack, transmission id, first-send time (u64 each).
const SEGMENT_LEN: usize = 32;

fn wall(now: Timestamp) -> Duration {
    Duration::from_secs(1_700_000_000) + Duration::from_nanos(now.as_nanos())
}

/// One unacknowledged segment at its sender.
struct Unacked {
    first_sent: Timestamp,
    last_sent: Timestamp,
    rto: Duration,
}

/// One direction's reliable stream: the sending half lives at one node, the receiving half at
/// the other.
#[derive(Default)]
struct Stream {
    next_seq: u64,
    unacked: BTreeMap<u64, Unacked>,
    /// Receiver: the next in-order sequence number, and segments that came early.
    expected: u64,
    /// (sequence number -> first-send time)
    early: BTreeMap<u64, u64>,
    /// Receiver: what the application got, in order (checked as it happens).
    delivered: u64,
    duplicates: u64,
    retransmissions: u64,
    last_progress: Option<Timestamp>,
    max_stall: Duration,
    max_latency: Duration,
}

/// A side: the device, the fast-path tables built from its outputs, and its streams.
struct Node {
    dev: Device,
    addr: SocketAddr,
    peer: PeerId,
    by_index: HashMap<u32, Arc<Keypair>>,
    sending: Option<Arc<Keypair>>,
    /// Every keypair this node ever installed, and those it sent data with (one per completed
    /// handshake: a responder sends only after key confirmation).
    keypairs: BTreeSet<u32>,
    used: BTreeSet<u32>,
    /// The stream this node sends (and, at the other node, receives).
    out: Stream,
    /// Segments the tunnel could not send (no or expired keypair) or open, by reason.
    tunnel_drops: BTreeMap<&'static str, u64>,
    /// Transmission ids opened, to catch a datagram opened twice.
    opened: Vec<bool>,
}

enum Event {
    Deliver { to: usize, bytes: Vec<u8> },
    Tick(usize),
}

struct Sim {
    nodes: [Node; 2],
    now: Timestamp,
    rng: TestRng,
    net_rng: TestRng,
    events: BinaryHeap<Reverse<(Timestamp, u64)>>,
    payloads: HashMap<u64, Event>,
    event_seq: u64,
    next_tx_id: u64,
    lost: u64,
    duplicated: u64,
}

impl Sim {
    fn new() -> Sim {
        let (ka, kb) = (
            PrivateKey::from_bytes([11; 32]),
            PrivateKey::from_bytes([12; 32]),
        );
        let (pa, pb) = (ka.public_key(), kb.public_key());
        let addr_a: SocketAddr = "192.0.2.2:40000".parse().unwrap();
        let addr_b: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let now = Timestamp::from_nanos(1_000_000_000);
        let mut da = Device::new(&InterfaceConfig::new(ka));
        let mut db = Device::new(&InterfaceConfig::new(kb));
        let mut ca = PeerConfig::new(pb);
        ca.allowed_ips = vec!["10.0.0.1/32".parse().unwrap()];
        ca.endpoint = Some(addr_b);
        let mut cb = PeerConfig::new(pa);
        cb.allowed_ips = vec!["10.0.0.2/32".parse().unwrap()];
        cb.endpoint = Some(addr_a);
        let peer_a = da.set_peer(now, ca).unwrap();
        let peer_b = db.set_peer(now, cb).unwrap();
        let node = |dev, addr, peer| Node {
            dev,
            addr,
            peer,
            by_index: HashMap::new(),
            sending: None,
            keypairs: BTreeSet::new(),
            used: BTreeSet::new(),
            out: Stream::default(),
            tunnel_drops: BTreeMap::new(),
            opened: Vec::new(),
        };
        let mut sim = Sim {
            nodes: [node(da, addr_a, peer_a), node(db, addr_b, peer_b)],
            now,
            rng: TestRng(1),
            net_rng: TestRng(2),
            events: BinaryHeap::new(),
            payloads: HashMap::new(),
            event_seq: 0,
            next_tx_id: 0,
            lost: 0,
            duplicated: 0,
        };
        sim.schedule(now, Event::Tick(0));
        // B's application starts half a tick later: the two directions interleave.
        sim.schedule(now + TICK / 2, Event::Tick(1));
        sim
    }

    fn schedule(&mut self, at: Timestamp, e: Event) {
        self.event_seq += 1;
        self.events.push(Reverse((at, self.event_seq)));
        self.payloads.insert(self.event_seq, e);
    }

    fn chance(&mut self, ppm: u64) -> bool {
        self.net_rng.next_u64() % 1_000_000 < ppm
    }

    /// Puts a datagram from node `from` on the wire: maybe lost, maybe duplicated, delayed.
    fn transmit(&mut self, from: usize, bytes: Vec<u8>) {
        let loss = if bytes.first() == Some(&MSG_TRANSPORT) {
            LOSS_DATA_PPM
        } else {
            LOSS_HANDSHAKE_PPM
        };
        let copies = if self.chance(DUP_PPM) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.chance(loss) {
                self.lost += 1;
                continue;
            }
            let delay = DELAY + Duration::from_nanos(self.net_rng.next_u64() % JITTER_NS);
            let at = self.now + delay;
            self.schedule(
                at,
                Event::Deliver {
                    to: 1 - from,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    /// Drains both devices' outputs (timers due now included).
    fn poll_devices(&mut self) {
        loop {
            let mut any = false;
            for i in 0..2 {
                let now = self.now;
                while let Some(out) = self.nodes[i].dev.poll(now, wall(now), &mut self.rng) {
                    any = true;
                    self.apply(i, out);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn apply(&mut self, i: usize, out: Output) {
        let node = &mut self.nodes[i];
        match out {
            Output::SendHandshake { bytes, .. } => self.transmit(i, bytes),
            Output::SendKeepalive { bytes, .. } => self.transmit(i, bytes.to_vec()),
            Output::SendCookieReply { bytes, .. } => self.transmit(i, bytes.to_vec()),
            Output::KeypairInstalled { keypair, slot, .. } => {
                node.keypairs.insert(keypair.local_index());
                node.by_index.insert(keypair.local_index(), keypair.clone());
                if slot == KeySlot::Current {
                    node.sending = Some(keypair);
                }
            }
            Output::KeypairRetired { index, .. } => {
                node.by_index.remove(&index);
                if node
                    .sending
                    .as_ref()
                    .is_some_and(|k| k.local_index() == index)
                {
                    node.sending = None;
                }
            }
            Output::AllowedIpsChanged | Output::PeerEvent { .. } => {}
        }
    }

    /// Seals `segment` with node `i`'s sending keypair and transmits it; a worker's behaviour
    /// when there is none (or it expired) is to drop the packet and ask for a handshake.
    fn send_segment(&mut self, i: usize, seq: u64, first_sent: Timestamp) {
        let now = self.now;
        let tx_id = self.next_tx_id;
        self.next_tx_id += 1;
        let ack = self.nodes[1 - i].out.expected;
        let node = &mut self.nodes[i];
        let peer = node.peer;
        let Some(kp) = node.sending.clone() else {
            *node.tunnel_drops.entry("no_keypair").or_default() += 1;
            node.dev
                .request_handshake(now, wall(now), peer, &mut self.rng);
            return;
        };
        let mut buf = vec![0u8; 16 + SEGMENT_LEN + 32];
        for (k, v) in [seq, ack, tx_id, first_sent.as_nanos()].iter().enumerate() {
            buf[16 + 8 * k..24 + 8 * k].copy_from_slice(&v.to_le_bytes());
        }
        let sealed = match kp.seal_in_place(now, &mut buf, SEGMENT_LEN, MTU) {
            Ok(s) => s,
            Err(_) => {
                *node.tunnel_drops.entry("seal_failed").or_default() += 1;
                node.dev
                    .request_handshake(now, wall(now), peer, &mut self.rng);
                return;
            }
        };
        buf.truncate(sealed.len);
        node.used.insert(kp.local_index());
        node.dev.note_data_sent(now, peer, false, &mut self.rng);
        if sealed.rekey {
            node.dev
                .request_handshake(now, wall(now), peer, &mut self.rng);
        }
        self.transmit(i, buf);
    }

    /// Node `i`'s application tick: new data if the window allows, then due retransmissions
    /// (oldest first, with exponential backoff per segment).
    fn tick(&mut self, i: usize) {
        let now = self.now;
        let s = &mut self.nodes[i].out;
        let mut to_send = Vec::new();
        if s.unacked.len() < WINDOW {
            let seq = s.next_seq;
            s.next_seq += 1;
            s.unacked.insert(
                seq,
                Unacked {
                    first_sent: now,
                    last_sent: now,
                    rto: RTO_MIN,
                },
            );
            to_send.push((seq, now));
        }
        for (&seq, u) in s.unacked.iter_mut() {
            if to_send.len() > RETX_PER_TICK {
                break;
            }
            if now.since(u.last_sent) >= u.rto {
                u.last_sent = now;
                u.rto = (u.rto * 2).min(RTO_MAX);
                s.retransmissions += 1;
                to_send.push((seq, u.first_sent));
            }
        }
        for (seq, first) in to_send {
            self.send_segment(i, seq, first);
        }
        self.schedule(now + TICK, Event::Tick(i));
    }

    /// A datagram arrives at node `i`: transport messages through the "fast path", the rest
    /// to the device.
    fn deliver(&mut self, i: usize, mut bytes: Vec<u8>) {
        let now = self.now;
        if bytes.first() != Some(&MSG_TRANSPORT) {
            let from = self.nodes[1 - i].addr;
            let _ = self.nodes[i].dev.handle_handshake(
                now,
                wall(now),
                from,
                &bytes,
                false,
                &mut self.rng,
            );
            return;
        }
        let index = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
        let node = &mut self.nodes[i];
        let Some(kp) = node.by_index.get(&index).cloned() else {
            *node.tunnel_drops.entry("unknown_receiver").or_default() += 1;
            return;
        };
        let opened = match kp.open_in_place(now, &mut bytes) {
            Ok(o) => o,
            Err(e) => {
                let reason = match e {
                    wgproto::keypair::OpenError::Replay(_) => "replay",
                    wgproto::keypair::OpenError::Expired => "expired",
                    _ => "open_failed",
                };
                *node.tunnel_drops.entry(reason).or_default() += 1;
                return;
            }
        };
        let plain = bytes[opened.plaintext.clone()].to_vec();
        let from = self.nodes[1 - i].addr;
        let keepalive = plain.is_empty();
        self.nodes[i]
            .dev
            .note_data_received(now, kp.peer(), index, from, keepalive);
        if opened.rekey {
            let peer = self.nodes[i].peer;
            self.nodes[i]
                .dev
                .request_handshake(now, wall(now), peer, &mut self.rng);
        }
        if keepalive {
            return;
        }
        let field = |k: usize| u64::from_le_bytes(plain[8 * k..8 * k + 8].try_into().unwrap());
        let (seq, ack, tx_id, first_sent) = (field(0), field(1), field(2), field(3));
        // The replay window must refuse a second copy of the same transmission.
        let opened_ids = &mut self.nodes[i].opened;
        let t = tx_id as usize;
        if opened_ids.len() <= t {
            opened_ids.resize(t + 1, false);
        }
        assert!(!opened_ids[t], "transmission {tx_id} was opened twice");
        opened_ids[t] = true;

        // Acknowledgement for the stream node `i` sends.
        let mine = &mut self.nodes[i].out;
        let acked: Vec<u64> = mine.unacked.range(..ack).map(|(k, _)| *k).collect();
        for k in acked {
            mine.unacked.remove(&k);
        }
        // Data of the stream the other node sends.
        let s = &mut self.nodes[1 - i].out;
        if seq < s.expected || s.early.contains_key(&seq) {
            s.duplicates += 1;
            return;
        }
        s.early.insert(seq, first_sent);
        while let Some(first) = s.early.remove(&s.expected) {
            // In order and exactly once: the application's count is the sequence number.
            assert_eq!(s.delivered, s.expected, "delivered out of order");
            s.delivered += 1;
            s.expected += 1;
            let since = s.last_progress.map_or(Duration::ZERO, |t| now.since(t));
            s.max_stall = s.max_stall.max(since);
            s.last_progress = Some(now);
            s.max_latency = s.max_latency.max(now.since(Timestamp::from_nanos(first)));
        }
    }

    /// Runs events and timers in time order until `until`.
    fn run_until(&mut self, until: Timestamp) {
        loop {
            self.poll_devices();
            let timer = self.nodes.iter().filter_map(|n| n.dev.next_timeout()).min();
            let event = self.events.peek().map(|Reverse((t, _))| *t);
            let next = match (timer, event) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).expect("the application ticks forever"),
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            if event == Some(next) {
                let Reverse((_, id)) = self.events.pop().unwrap();
                match self.payloads.remove(&id).unwrap() {
                    Event::Deliver { to, bytes } => self.deliver(to, bytes),
                    Event::Tick(i) => self.tick(i),
                }
            }
        }
    }
}

#[test]
fn hours_of_traffic_across_hundreds_of_rekeys_keep_the_stream_whole() {
    let hours: u64 = std::env::var("REKEY_SIM_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SIM_HOURS);
    let t0 = Instant::now();
    let mut sim = Sim::new();
    let start = sim.now;
    let end = start + Duration::from_secs(hours * 3600);
    let mut hour = start;
    while hour < end {
        hour = (hour + Duration::from_secs(3600)).min(end);
        sim.run_until(hour);
        // The stall bound is checked as it goes, so a failure names the hour.
        for (i, n) in sim.nodes.iter().enumerate() {
            let pending_since = n.out.unacked.values().map(|u| u.first_sent).min();
            if let Some(p) = pending_since {
                assert!(
                    sim.now.since(p) < STALL_MAX,
                    "node {i}'s stream has had data pending for {:?} at hour {}",
                    sim.now.since(p),
                    sim.now.since(start).as_secs() / 3600
                );
            }
        }
    }
    let simulated = sim.now.since(start);
    let sessions = sim.nodes.iter().map(|n| n.used.len()).min().unwrap() as u64;
    let rekeys = sessions.saturating_sub(1);
    for (i, n) in sim.nodes.iter().enumerate() {
        let s = &n.out;
        eprintln!(
            "stream {i}->{}: {} segments sent, {} delivered in order, {} retransmissions, {} \
             duplicates discarded, {} in flight at the end; longest stall {:?}, longest \
             first-send-to-delivery {:?}; node {i} tunnel drops {:?}",
            1 - i,
            s.next_seq,
            s.delivered,
            s.retransmissions,
            s.duplicates,
            s.unacked.len(),
            s.max_stall,
            s.max_latency,
            n.tunnel_drops,
        );
    }
    eprintln!(
        "{:.1} simulated hours in {:.1}s: {rekeys} rekeys (keypairs sent on: node 0 {}, node 1 \
         {}; installed: {}, {}), {} datagrams lost, {} duplicated",
        simulated.as_secs_f64() / 3600.0,
        t0.elapsed().as_secs_f64(),
        sim.nodes[0].used.len(),
        sim.nodes[1].used.len(),
        sim.nodes[0].keypairs.len(),
        sim.nodes[1].keypairs.len(),
        sim.lost,
        sim.duplicated
    );

    // Rekeys: each completed handshake's keypair carried data both ways (a handshake whose
    // response was lost leaves an unused keypair behind, hence `used`, not `keypairs`).
    let (u0, u1) = (sim.nodes[0].used.len(), sim.nodes[1].used.len());
    assert!(
        u0.abs_diff(u1) <= 1,
        "keypairs sent on differ: {u0} and {u1}"
    );
    assert!(
        rekeys >= MIN_REKEYS_PER_6H * hours / 6,
        "only {rekeys} rekeys in {hours} h"
    );
    assert!(
        rekeys <= simulated.as_secs() / REKEY_AFTER_TIME.as_secs() + 5,
        "{rekeys} rekeys in {hours} h: more than one per REKEY_AFTER_TIME"
    );
    for (i, n) in sim.nodes.iter().enumerate() {
        let s = &n.out;
        // Continuous: the sender was never held up by its window for long.
        let ticks = simulated.as_nanos() / TICK.as_nanos();
        assert!(
            s.next_seq as u128 * 100 >= ticks * 99,
            "stream {i} sent only {} segments in {ticks} ticks",
            s.next_seq
        );
        // Everything but the last RTO's worth arrived, in order, once.
        assert_eq!(s.delivered, s.expected);
        assert!(
            s.next_seq - s.delivered <= WINDOW as u64,
            "stream {i}: {} sent, {} delivered",
            s.next_seq,
            s.delivered
        );
        assert!(
            s.max_stall < STALL_MAX,
            "stream {i} stalled for {:?}",
            s.max_stall
        );
        assert!(s.retransmissions > 0, "the lossy network lost nothing?");
    }
    assert!(sim.duplicated > 0 && sim.lost > 0);
    let replays: u64 = sim
        .nodes
        .iter()
        .map(|n| n.tunnel_drops.get("replay").copied().unwrap_or(0))
        .sum();
    assert!(replays > 0, "no duplicate reached the replay window");
}
