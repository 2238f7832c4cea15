//! The bounded queues from the fast-path workers to the slow path, and the clock both share.
//!
//! Three lanes, so that what anyone on the Internet can send cannot crowd out what only a peer
//! (or a sender that proved its address) can (the kernel's module keeps handshakes on a queue of
//! their own for the same reason):
//! - the handshake lane: handshake datagrams (types 1-3) without a valid mac2, any sender;
//! - the mac2 lane (small): initiations and responses whose mac1 and mac2 a worker verified
//!   (`crate::handshake_guard`): the sender received our cookie reply at its address, so junk
//!   from spoofed or unanswered sources never gets here (whitepaper §5.3);
//! - the event lane: what the workers learned from authenticated packets (key confirmation,
//!   roaming, rekey requests) and decrypted packets for the host.
//!
//! Workers never block on the slow path: they `try_send` and count a drop, by lane, when the
//! lane is full. Every message is a fixed-size value, so the channels' preallocated slots are
//! the only memory the exception path uses; nothing is allocated per packet. The slow path
//! takes from the lanes in turn, the event lane first ([`SlowPathReceiver::recv_timeout`]), so
//! a handshake flood costs an authenticated event at most two handshakes' wait, and a
//! mac2-valid handshake waits for at most one junk one. The handshake lane's depth tells the
//! handshake code, and the workers, when it is under load (whitepaper §5.3: cookie replies
//! instead of Diffie-Hellman work).

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use wgproto::peer::PeerId;
use wgproto::time::Timestamp;
use wire::wireguard::INITIATION_LEN;

/// The largest decrypted packet the slow path accepts for the host (wg0). Larger ones are
/// dropped and counted by the worker.
pub const MAX_HOST_PACKET: usize = 2048;

/// A handshake message (types 1-3) as received, at most 148 bytes.
#[derive(Clone, Copy)]
pub struct HandshakeDatagram {
    pub src: SocketAddr,
    len: u8,
    bytes: [u8; INITIATION_LEN],
}

impl HandshakeDatagram {
    /// `None` if `bytes` is longer than any handshake message.
    pub fn new(src: SocketAddr, bytes: &[u8]) -> Option<Self> {
        let mut buf = [0u8; INITIATION_LEN];
        buf.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(HandshakeDatagram {
            src,
            len: bytes.len() as u8,
            bytes: buf,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A decrypted IP packet that belongs to the kernel (the gateway's own addresses, or an
/// exception the fast path does not handle): the slow path writes it into wg0.
#[derive(Clone)]
pub struct HostPacket {
    len: u16,
    bytes: [u8; MAX_HOST_PACKET],
}

impl HostPacket {
    pub fn new(bytes: &[u8]) -> Option<Self> {
        let mut buf = [0u8; MAX_HOST_PACKET];
        buf.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(HostPacket {
            len: bytes.len() as u16,
            bytes: buf,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What a worker hands to the slow path.
// The host-packet variant is large on purpose: the channel's slots are allocated once, and
// boxing would allocate per packet.
#[allow(clippy::large_enum_variant)]
pub enum ToSlowPath {
    /// A handshake message without a valid mac2 (or before the worker had a cookie secret).
    Handshake(HandshakeDatagram),
    /// An initiation or response whose mac1 and mac2 the worker verified.
    Mac2Handshake(HandshakeDatagram),
    ForHost(HostPacket),
    /// A transport message was authenticated on keypair `index` of `peer`. Sent for the first
    /// packet on a keypair (key confirmation), when the source differs from the known endpoint
    /// (roaming) and when the keypair asked for a rekey; ordinary packets are reported through
    /// the peer's statistics instead.
    Authenticated {
        peer: PeerId,
        index: u32,
        src: SocketAddr,
        keepalive: bool,
        rekey: bool,
    },
    /// A worker had data for `peer` but no usable sending keypair, or sealing asked for a
    /// rekey.
    HandshakeNeeded {
        peer: PeerId,
    },
}

/// Which of the three lanes a message travels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Unauthenticated handshake datagrams.
    Handshake,
    /// Handshake datagrams with a verified mac2.
    Mac2,
    /// Authenticated events and packets for the host.
    Event,
}

impl Lane {
    /// The order the slow path serves the lanes in when each has messages.
    const TURNS: [Lane; 3] = [Lane::Event, Lane::Mac2, Lane::Handshake];

    fn turn(self) -> usize {
        match self {
            Lane::Event => 0,
            Lane::Mac2 => 1,
            Lane::Handshake => 2,
        }
    }
}

impl ToSlowPath {
    pub fn lane(&self) -> Lane {
        match self {
            ToSlowPath::Handshake(_) => Lane::Handshake,
            ToSlowPath::Mac2Handshake(_) => Lane::Mac2,
            _ => Lane::Event,
        }
    }
}

/// The mac2 lane holds this fraction of the others' capacity: it is served in turn with them,
/// and only senders that answered a cookie reply (at most RATELIMIT_BURST each before the slow
/// path's per-source limit refuses them) can fill it.
const MAC2_LANE_DIVISOR: usize = 4;

/// A lane at least an eighth full is over the mark at which the reference implementations
/// switch handshakes to cookie mode.
fn over_load_mark(depth: usize, capacity: usize) -> bool {
    depth.saturating_mul(8) >= capacity
}

/// How long "under load" lasts after a lane was last seen over the mark (as the kernel's
/// module does): once the workers answer the junk with cookie replies, the lane drains, and
/// without this the slow path would fall back to Diffie-Hellman work on the next junk at once.
pub const UNDER_LOAD_HOLD: Duration = Duration::from_secs(1);

/// When a lane was last seen over the mark, shared by the workers and the slow path.
#[derive(Clone, Debug, Default)]
struct LoadMark {
    /// Protocol time in nanoseconds plus one (0: never).
    last_over: Arc<AtomicU64>,
}

impl LoadMark {
    /// Whether under load at `now`, given whether a lane is over the mark now.
    fn under_load(&self, over: bool, now: Timestamp) -> bool {
        let last = self.last_over.load(Ordering::Relaxed);
        if over {
            // Written at most once a millisecond, so that workers under a flood do not all
            // write the same cache line for every packet.
            let stamp = now.as_nanos().saturating_add(1);
            if stamp.saturating_sub(last) >= 1_000_000 {
                self.last_over.store(stamp, Ordering::Relaxed);
            }
            return true;
        }
        last != 0 && now.since(Timestamp::from_nanos(last - 1)) < UNDER_LOAD_HOLD
    }
}

/// The workers' end of the queues. Cheap to clone, one per worker.
#[derive(Clone)]
pub struct SlowPathSender {
    handshakes: Sender<HandshakeDatagram>,
    mac2: Sender<HandshakeDatagram>,
    events: Sender<ToSlowPath>,
    capacity: usize,
    load: LoadMark,
}

impl SlowPathSender {
    /// Handshake datagrams waiting now in both handshake lanes, with and without mac2 (the
    /// `handshake_queue_depth` of stats and metrics).
    pub fn depth(&self) -> usize {
        self.handshakes.len() + self.mac2.len()
    }

    /// Events and host packets waiting now.
    pub fn events_depth(&self) -> usize {
        self.events.len()
    }

    /// Mac2-valid handshake datagrams waiting now.
    pub fn mac2_depth(&self) -> usize {
        self.mac2.len()
    }

    /// Whether the slow path is under load at `now` (its handshake lane an eighth full, or
    /// was within [`UNDER_LOAD_HOLD`]): a worker then answers handshakes without mac2 with a
    /// cookie reply itself instead of queueing them.
    pub fn under_load(&self, now: Timestamp) -> bool {
        let over = over_load_mark(self.handshakes.len(), self.capacity);
        self.load.under_load(over, now)
    }

    /// Queues `msg` in its lane without blocking; `Err(lane)` if that lane is full (or the
    /// slow path is gone, at shutdown): the caller counts a drop for it.
    pub fn try_send(&self, msg: ToSlowPath) -> Result<(), Lane> {
        let lane = msg.lane();
        let sent = match msg {
            ToSlowPath::Handshake(d) => self.handshakes.try_send(d).is_ok(),
            ToSlowPath::Mac2Handshake(d) => self.mac2.try_send(d).is_ok(),
            other => self.events.try_send(other).is_ok(),
        };
        if sent {
            Ok(())
        } else {
            Err(lane)
        }
    }
}

/// The slow path's end of the queues.
pub struct SlowPathReceiver {
    handshakes: Receiver<HandshakeDatagram>,
    mac2: Receiver<HandshakeDatagram>,
    events: Receiver<ToSlowPath>,
    capacity: usize,
    load: LoadMark,
    /// Which lane is tried first next time (an index into [`Lane::TURNS`]): the one after the
    /// lane last taken from, so that no lane starves another.
    turn: Cell<usize>,
}

impl SlowPathReceiver {
    /// Waits up to `timeout` for a message; `None` on timeout or when every sender is gone.
    /// When several lanes hold messages they are taken in turn, events first: events are few
    /// and cheap, and a flood of handshakes must not delay them by more than two handshakes.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<ToSlowPath> {
        if let Some(m) = self.try_recv() {
            return Some(m);
        }
        if timeout.is_zero() {
            return None;
        }
        let m = crossbeam_channel::select_biased! {
            recv(self.events) -> m => m.ok(),
            recv(self.mac2) -> m => m.ok().map(ToSlowPath::Mac2Handshake),
            recv(self.handshakes) -> m => m.ok().map(ToSlowPath::Handshake),
            default(timeout) => None,
        };
        self.took(m)
    }

    fn try_lane(&self, lane: Lane) -> Option<ToSlowPath> {
        match lane {
            Lane::Event => self.events.try_recv().ok(),
            Lane::Mac2 => self.mac2.try_recv().ok().map(ToSlowPath::Mac2Handshake),
            Lane::Handshake => self.handshakes.try_recv().ok().map(ToSlowPath::Handshake),
        }
    }

    fn try_recv(&self) -> Option<ToSlowPath> {
        let first = self.turn.get();
        let m = (0..Lane::TURNS.len())
            .find_map(|i| self.try_lane(Lane::TURNS[(first + i) % Lane::TURNS.len()]));
        self.took(m)
    }

    fn took(&self, m: Option<ToSlowPath>) -> Option<ToSlowPath> {
        if let Some(m) = &m {
            self.turn.set((m.lane().turn() + 1) % Lane::TURNS.len());
        }
        m
    }

    /// Handshake datagrams waiting now (both handshake lanes).
    pub fn depth(&self) -> usize {
        self.handshakes.len() + self.mac2.len()
    }

    /// Under load at `now` when the handshake lane is at least an eighth full (the workers
    /// then answer with cookie replies themselves), or the mac2 lane is (its senders proved
    /// their address, and the per-source rate limit that applies under load is what bounds
    /// each of them), or either was within [`UNDER_LOAD_HOLD`].
    pub fn under_load(&self, now: Timestamp) -> bool {
        let over = over_load_mark(self.handshakes.len(), self.capacity)
            || over_load_mark(self.mac2.len(), mac2_capacity(self.capacity));
        self.load.under_load(over, now)
    }
}

fn mac2_capacity(capacity: usize) -> usize {
    (capacity / MAC2_LANE_DIVISOR).max(1)
}

/// The handshake and event lanes of `capacity` messages each, the mac2 lane of a quarter of it.
pub fn slow_path_queue(capacity: usize) -> (SlowPathSender, SlowPathReceiver) {
    let (htx, hrx) = crossbeam_channel::bounded(capacity);
    let (mtx, mrx) = crossbeam_channel::bounded(mac2_capacity(capacity));
    let (etx, erx) = crossbeam_channel::bounded(capacity);
    let load = LoadMark::default();
    (
        SlowPathSender {
            handshakes: htx,
            mac2: mtx,
            events: etx,
            capacity,
            load: load.clone(),
        },
        SlowPathReceiver {
            handshakes: hrx,
            mac2: mrx,
            events: erx,
            capacity,
            load,
            turn: Cell::new(0),
        },
    )
}

/// The process's monotonic clock as the protocol core wants it.
///
/// `speedup` makes protocol time run that many times faster than real time (timers, key
/// lifetimes, NAT timeouts): a test knob that lets an integration test see many rekeys in a
/// few seconds against unmodified peers. It is 1 in production.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
    speedup: u32,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            origin: Instant::now(),
            speedup: 1,
        }
    }
}

impl Clock {
    /// A clock whose protocol time runs `speedup` times faster than real time (at least 1).
    pub fn accelerated(speedup: u32) -> Self {
        Clock {
            origin: Instant::now(),
            speedup: speedup.max(1),
        }
    }

    pub fn speedup(&self) -> u32 {
        self.speedup
    }

    pub fn now(&self) -> Timestamp {
        let real = self.origin.elapsed().as_nanos();
        let scaled = real.saturating_mul(u128::from(self.speedup));
        Timestamp::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
    }

    /// Wall-clock time since the UNIX epoch (TAI64N timestamps, `wg show`). Never scaled: a
    /// peer compares our TAI64N timestamps with each other only, and they still increase.
    pub fn wall(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(src: SocketAddr) -> ToSlowPath {
        ToSlowPath::Handshake(HandshakeDatagram::new(src, &[1; 148]).unwrap())
    }

    #[test]
    fn full_queue_refuses_without_blocking_and_tracks_load() {
        let (tx, rx) = slow_path_queue(8);
        let src: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        for _ in 0..8 {
            assert_eq!(tx.try_send(handshake(src)), Ok(()));
        }
        assert_eq!(tx.try_send(handshake(src)), Err(Lane::Handshake));
        let t = Timestamp::from_nanos(5);
        assert!(rx.under_load(t));
        let Some(ToSlowPath::Handshake(h)) = rx.recv_timeout(Duration::from_millis(10)) else {
            panic!("expected the first handshake back");
        };
        assert_eq!(h.bytes().len(), 148);
        assert_eq!(rx.depth(), 7);
    }

    /// Fails on a single shared queue: the flood of handshakes took every slot.
    #[test]
    fn a_full_handshake_lane_leaves_room_for_authenticated_events() {
        let (tx, rx) = slow_path_queue(8);
        let src: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        while tx.try_send(handshake(src)).is_ok() {}
        let peer = PeerId::new(1);
        for _ in 0..8 {
            assert_eq!(tx.try_send(ToSlowPath::HandshakeNeeded { peer }), Ok(()));
        }
        assert_eq!(
            tx.try_send(ToSlowPath::HandshakeNeeded { peer }),
            Err(Lane::Event)
        );
        assert_eq!((tx.depth(), tx.events_depth()), (8, 8));
        // Both lanes full: taken in turn, an event first, so no lane starves.
        let lanes: Vec<Lane> = (0..6)
            .map(|_| rx.recv_timeout(Duration::ZERO).unwrap().lane())
            .collect();
        use Lane::{Event as E, Handshake as H};
        assert_eq!(lanes, [E, H, E, H, E, H]);
        // An empty lane does not hold the other back.
        while rx.recv_timeout(Duration::ZERO).is_some() {}
        assert_eq!(tx.try_send(handshake(src)), Ok(()));
        assert_eq!(rx.recv_timeout(Duration::ZERO).map(|m| m.lane()), Some(H));
        assert!(rx.recv_timeout(Duration::from_millis(1)).is_none());
    }

    /// A flood that fills the handshake lane leaves the mac2 lane its own slots, and the slow
    /// path takes mac2-valid handshakes in turn with the junk, not after all of it.
    #[test]
    fn the_mac2_lane_is_not_filled_by_the_handshake_lane_and_is_served_in_turn() {
        let (tx, rx) = slow_path_queue(8);
        let src: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        while tx.try_send(handshake(src)).is_ok() {}
        let t = Timestamp::from_nanos(5);
        assert!(tx.under_load(t) && rx.under_load(t));
        let proven = || ToSlowPath::Mac2Handshake(HandshakeDatagram::new(src, &[2; 148]).unwrap());
        assert_eq!(tx.try_send(proven()), Ok(()));
        assert_eq!(tx.try_send(proven()), Ok(()));
        assert_eq!(tx.try_send(proven()), Err(Lane::Mac2), "a quarter of 8");
        assert_eq!(tx.mac2_depth(), 2);
        assert_eq!(tx.depth(), 8 + 2, "stats show both handshake lanes");
        let lanes: Vec<Lane> = (0..5)
            .map(|_| rx.recv_timeout(Duration::ZERO).unwrap().lane())
            .collect();
        use Lane::{Handshake as H, Mac2 as M};
        assert_eq!(lanes, [M, H, M, H, H]);
        // A full mac2 lane alone puts the slow path under load (per-source rate limits apply).
        let (tx, rx) = slow_path_queue(8);
        assert!(!rx.under_load(t));
        tx.try_send(proven()).unwrap();
        assert!(rx.under_load(t));
    }

    /// Under load lasts UNDER_LOAD_HOLD after a lane was last over the mark, for the workers and
    /// the slow path alike, then ends.
    #[test]
    fn under_load_holds_for_a_second_after_the_lane_drains() {
        let (tx, rx) = slow_path_queue(8);
        let src: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let at = |ms: u64| Timestamp::from_nanos(ms * 1_000_000);
        assert!(!tx.under_load(at(0)) && !rx.under_load(at(0)));
        tx.try_send(handshake(src)).unwrap();
        assert!(tx.under_load(at(10)), "an eighth of 8");
        while rx.recv_timeout(Duration::ZERO).is_some() {}
        assert!(tx.under_load(at(500)) && rx.under_load(at(1009)));
        assert!(!tx.under_load(at(1010)) && !rx.under_load(at(2000)));
    }

    #[test]
    fn a_blocked_receiver_wakes_for_either_lane() {
        let (tx, rx) = slow_path_queue(8);
        let t = std::thread::spawn(move || {
            tx.try_send(ToSlowPath::HandshakeNeeded {
                peer: PeerId::new(2),
            })
        });
        let m = rx.recv_timeout(Duration::from_secs(30));
        assert_eq!(t.join().unwrap(), Ok(()));
        assert!(matches!(m, Some(ToSlowPath::HandshakeNeeded { .. })));
    }

    #[test]
    fn accelerated_clock_runs_faster_and_never_slower_than_one() {
        let normal = Clock::default();
        let fast = Clock::accelerated(50);
        assert_eq!(Clock::accelerated(0).speedup(), 1);
        std::thread::sleep(Duration::from_millis(20));
        let (n, f) = (normal.now().as_nanos(), fast.now().as_nanos());
        assert!(f >= 50 * 20_000_000, "fast clock advanced only {f} ns");
        assert!(n < f / 10, "normal {n} ns vs fast {f} ns");
    }

    #[test]
    fn oversized_payloads_are_refused() {
        let src: SocketAddr = "192.0.2.1:1".parse().unwrap();
        assert!(HandshakeDatagram::new(src, &[0; 149]).is_none());
        assert!(HostPacket::new(&[0; MAX_HOST_PACKET + 1]).is_none());
        assert_eq!(HostPacket::new(&[7; 60]).unwrap().bytes(), &[7; 60]);
    }
}
