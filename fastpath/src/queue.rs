//! The bounded queues from the fast-path workers to the slow path, and the clock both share.
//!
//! Two lanes, so that what anyone on the Internet can send cannot crowd out what only a peer
//! can (the kernel's module keeps handshakes on a queue of their own for the same reason):
//! - the handshake lane: unauthenticated handshake datagrams (types 1-3), any sender;
//! - the event lane: what the workers learned from authenticated packets (key confirmation,
//!   roaming, rekey requests) and decrypted packets for the host.
//!
//! Workers never block on the slow path: they `try_send` and count a drop, by lane, when the
//! lane is full. Every message is a fixed-size value, so the channels' preallocated slots are
//! the only memory the exception path uses; nothing is allocated per packet. The slow path
//! takes from both lanes in turn, the event lane first ([`SlowPathReceiver::recv_timeout`]),
//! so a handshake flood costs an authenticated event at most one handshake's wait. The
//! handshake lane's depth tells the handshake code when it is under load (whitepaper §5.3:
//! cookie replies instead of Diffie-Hellman work).

use std::cell::Cell;
use std::net::SocketAddr;
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
    Handshake(HandshakeDatagram),
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

/// Which of the two lanes a message travels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Unauthenticated handshake datagrams.
    Handshake,
    /// Authenticated events and packets for the host.
    Event,
}

impl ToSlowPath {
    pub fn lane(&self) -> Lane {
        match self {
            ToSlowPath::Handshake(_) => Lane::Handshake,
            _ => Lane::Event,
        }
    }
}

/// The workers' end of the queues. Cheap to clone, one per worker.
#[derive(Clone)]
pub struct SlowPathSender {
    handshakes: Sender<HandshakeDatagram>,
    events: Sender<ToSlowPath>,
}

impl SlowPathSender {
    /// Handshake datagrams waiting now (the `handshake_queue_depth` of stats and metrics).
    pub fn depth(&self) -> usize {
        self.handshakes.len()
    }

    /// Events and host packets waiting now.
    pub fn events_depth(&self) -> usize {
        self.events.len()
    }

    /// Queues `msg` in its lane without blocking; `Err(lane)` if that lane is full (or the
    /// slow path is gone, at shutdown): the caller counts a drop for it.
    pub fn try_send(&self, msg: ToSlowPath) -> Result<(), Lane> {
        let lane = msg.lane();
        let sent = match msg {
            ToSlowPath::Handshake(d) => self.handshakes.try_send(d).is_ok(),
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
    events: Receiver<ToSlowPath>,
    capacity: usize,
    /// Whose turn it is when both lanes have messages: the handshake lane's after an event was
    /// taken, so neither lane starves the other.
    handshake_turn: Cell<bool>,
}

impl SlowPathReceiver {
    /// Waits up to `timeout` for a message; `None` on timeout or when every sender is gone.
    /// When both lanes hold messages they are taken in turn, an event first: events are few
    /// and cheap, and a flood of handshakes must not delay them by more than one handshake.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<ToSlowPath> {
        if let Some(m) = self.try_recv() {
            return Some(m);
        }
        if timeout.is_zero() {
            return None;
        }
        let m = crossbeam_channel::select_biased! {
            recv(self.events) -> m => m.ok(),
            recv(self.handshakes) -> m => m.ok().map(ToSlowPath::Handshake),
            default(timeout) => None,
        };
        self.took(m)
    }

    fn try_recv(&self) -> Option<ToSlowPath> {
        let event = || self.events.try_recv().ok();
        let handshake = || self.handshakes.try_recv().ok().map(ToSlowPath::Handshake);
        let m = if self.handshake_turn.get() {
            handshake().or_else(event)
        } else {
            event().or_else(handshake)
        };
        self.took(m)
    }

    fn took(&self, m: Option<ToSlowPath>) -> Option<ToSlowPath> {
        if let Some(m) = &m {
            self.handshake_turn.set(m.lane() == Lane::Event);
        }
        m
    }

    /// Handshake datagrams waiting now.
    pub fn depth(&self) -> usize {
        self.handshakes.len()
    }

    /// Under load when the handshake lane is more than an eighth full: the point at which the
    /// reference implementations switch handshakes to cookie mode.
    pub fn under_load(&self) -> bool {
        self.depth().saturating_mul(8) >= self.capacity
    }
}

/// Two bounded lanes of `capacity` messages each.
pub fn slow_path_queue(capacity: usize) -> (SlowPathSender, SlowPathReceiver) {
    let (htx, hrx) = crossbeam_channel::bounded(capacity);
    let (etx, erx) = crossbeam_channel::bounded(capacity);
    (
        SlowPathSender {
            handshakes: htx,
            events: etx,
        },
        SlowPathReceiver {
            handshakes: hrx,
            events: erx,
            capacity,
            handshake_turn: Cell::new(false),
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
        assert!(rx.under_load());
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
