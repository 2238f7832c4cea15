//! The bounded queue from the fast-path workers to the slow path, and the clock both share.
//!
//! Workers never block on the slow path: they `try_send` and count a drop when the queue is
//! full. Every message is a fixed-size value, so the channel's preallocated slots are the only
//! memory the exception path uses; nothing is allocated per packet. The queue depth is tracked
//! so that the handshake code knows when it is under load (whitepaper §5.3: cookie replies
//! instead of Diffie-Hellman work).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wgproto::constants::INITIATION_LEN;
use wgproto::peer::PeerId;
use wgproto::time::Timestamp;

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

/// The workers' end of the queue. Cheap to clone, one per worker.
#[derive(Clone)]
pub struct SlowPathSender {
    tx: SyncSender<ToSlowPath>,
    depth: Arc<AtomicUsize>,
}

impl SlowPathSender {
    /// Messages waiting in the queue now (handshakes, host packets, events).
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Queues `msg` without blocking; `false` if the queue is full (the caller counts a drop).
    pub fn try_send(&self, msg: ToSlowPath) -> bool {
        // Counted before the send: the receiver may take the message before this thread runs
        // again, and its decrement must never find the counter at zero.
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// The slow path's end of the queue.
pub struct SlowPathReceiver {
    rx: Receiver<ToSlowPath>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
}

impl SlowPathReceiver {
    /// Waits up to `timeout` for a message; `None` on timeout or when every sender is gone.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<ToSlowPath> {
        match self.rx.recv_timeout(timeout) {
            Ok(m) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Some(m)
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Messages waiting now.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Under load when the queue is more than an eighth full: the point at which the reference
    /// implementations switch handshakes to cookie mode.
    pub fn under_load(&self) -> bool {
        self.depth().saturating_mul(8) >= self.capacity
    }
}

/// A bounded queue of `capacity` messages.
pub fn slow_path_queue(capacity: usize) -> (SlowPathSender, SlowPathReceiver) {
    let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
    let depth = Arc::new(AtomicUsize::new(0));
    (
        SlowPathSender {
            tx,
            depth: depth.clone(),
        },
        SlowPathReceiver {
            rx,
            depth,
            capacity,
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

    #[test]
    fn full_queue_refuses_without_blocking_and_tracks_load() {
        let (tx, rx) = slow_path_queue(8);
        let src: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        for _ in 0..8 {
            assert!(tx.try_send(ToSlowPath::Handshake(
                HandshakeDatagram::new(src, &[1; 148]).unwrap()
            )));
        }
        assert!(!tx.try_send(ToSlowPath::HandshakeNeeded {
            peer: PeerId::new(1)
        }));
        assert!(rx.under_load());
        let Some(ToSlowPath::Handshake(h)) = rx.recv_timeout(Duration::from_millis(10)) else {
            panic!("expected the first handshake back");
        };
        assert_eq!(h.bytes().len(), 148);
        assert_eq!(rx.depth(), 7);
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
