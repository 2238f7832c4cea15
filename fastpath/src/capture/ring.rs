//! [`CaptureRing`]: a fixed ring of preallocated packet slots between one worker (the only
//! producer) and the control thread streaming the capture (the only consumer).
//!
//! Every slot's buffer is allocated when the capture starts, `snaplen` bytes each; a packet
//! is copied in truncated to that length, with its original length kept for the pcap record.
//! The producer never waits: when the consumer is behind and the ring is full, the packet is
//! skipped and counted ([`CaptureRing::skipped`]).
//!
//! Synchronisation: `head` (written by the producer only) and `tail` (by the consumer only)
//! say which slots belong to whom, as in any single-producer single-consumer ring. Each slot
//! also sits in a `Mutex`, so that the ring is safe Rust; by the head/tail protocol the two
//! sides never want the same slot at once, so the producer's `try_lock` does not fail in
//! practice (and if it did, the packet would be skipped, never waited for).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::CapturePoint;

/// One packet as the consumer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedFrame<'a> {
    /// Wall-clock time since the Unix epoch.
    pub timestamp: Duration,
    /// Length of the packet before truncation.
    pub orig_len: u32,
    /// The first `snaplen` bytes at most.
    pub data: &'a [u8],
}

struct Slot {
    timestamp: Duration,
    orig_len: u32,
    len: usize,
    data: Box<[u8]>,
}

/// See the module documentation.
pub struct CaptureRing {
    point: CapturePoint,
    snaplen: usize,
    slots: Box<[Mutex<Slot>]>,
    /// Packets pushed so far (producer's).
    head: AtomicU64,
    /// Packets taken so far (consumer's).
    tail: AtomicU64,
    skipped: AtomicU64,
}

impl fmt::Debug for CaptureRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureRing")
            .field("point", &self.point)
            .field("snaplen", &self.snaplen)
            .field("slots", &self.slots.len())
            .field("queued", &self.len())
            .field("skipped", &self.skipped())
            .finish()
    }
}

impl CaptureRing {
    /// A ring of `slots` slots (at least 1) of `snaplen` bytes (at least 1) each, all
    /// allocated now.
    pub fn new(point: CapturePoint, slots: usize, snaplen: usize) -> CaptureRing {
        let snaplen = snaplen.max(1);
        let slots = (0..slots.max(1))
            .map(|_| {
                Mutex::new(Slot {
                    timestamp: Duration::ZERO,
                    orig_len: 0,
                    len: 0,
                    data: vec![0u8; snaplen].into_boxed_slice(),
                })
            })
            .collect();
        CaptureRing {
            point,
            snaplen,
            slots,
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    pub fn point(&self) -> CapturePoint {
        self.point
    }

    pub fn snaplen(&self) -> usize {
        self.snaplen
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Packets waiting for the consumer.
    pub fn len(&self) -> usize {
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        head.saturating_sub(tail) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Packets the producer could not queue because the ring was full.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Producer side (one thread only): copies `packet`, truncated to the snap length.
    /// Returns false, and counts it, when the ring is full. Never blocks, never allocates.
    pub fn push(&self, timestamp: Duration, packet: &[u8]) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head - tail >= self.slots.len() as u64 {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let Ok(mut slot) = self.slots[(head % self.slots.len() as u64) as usize].try_lock() else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let n = packet.len().min(self.snaplen);
        slot.data[..n].copy_from_slice(&packet[..n]);
        slot.len = n;
        slot.orig_len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        slot.timestamp = timestamp;
        drop(slot);
        self.head.store(head + 1, Ordering::Release);
        true
    }

    /// Consumer side (one thread only): hands the oldest queued packet to `f` and frees its
    /// slot; `None` when the ring is empty.
    pub fn pop_with<R>(&self, f: impl FnOnce(CapturedFrame<'_>) -> R) -> Option<R> {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        if tail == head {
            return None;
        }
        let slot = self.slots[(tail % self.slots.len() as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let r = f(CapturedFrame {
            timestamp: slot.timestamp,
            orig_len: slot.orig_len,
            data: &slot.data[..slot.len],
        });
        drop(slot);
        self.tail.store(tail + 1, Ordering::Release);
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn full_ring_skips_and_counts_and_keeps_the_oldest() {
        let r = CaptureRing::new(CapturePoint::WireIn, 4, 64);
        for i in 0..10u8 {
            let queued = r.push(ts(i as u64), &[i; 10]);
            assert_eq!(queued, i < 4, "packet {i}");
        }
        assert_eq!(r.len(), 4);
        assert_eq!(r.skipped(), 6);
        // The four queued are the first four, in order.
        for i in 0..4u8 {
            let (t, d) = r
                .pop_with(|f| (f.timestamp, f.data.to_vec()))
                .expect("queued");
            assert_eq!((t, d), (ts(i as u64), vec![i; 10]));
        }
        assert_eq!(r.pop_with(|_| ()), None);
        // Space again: the ring wraps around and reuses its slots.
        for i in 0..6u8 {
            assert_eq!(r.push(ts(100 + i as u64), &[i]), i < 4);
        }
        assert_eq!(r.skipped(), 8);
        assert_eq!(r.pop_with(|f| f.data[0]), Some(0));
        assert!(r.push(ts(200), &[9]));
        let rest: Vec<u8> = std::iter::from_fn(|| r.pop_with(|f| f.data[0])).collect();
        assert_eq!(rest, vec![1, 2, 3, 9]);
    }

    #[test]
    fn packets_are_truncated_to_the_snap_length_with_the_original_length_kept() {
        let r = CaptureRing::new(CapturePoint::Decrypted, 2, 8);
        let long: Vec<u8> = (0..100).collect();
        assert!(r.push(ts(1), &long));
        assert!(r.push(ts(2), &long[..3]));
        let first = r.pop_with(|f| (f.orig_len, f.data.to_vec())).unwrap();
        assert_eq!(first, (100, (0..8).collect::<Vec<u8>>()));
        // A short packet in a slot that held a longer one shows only its own bytes.
        let second = r.pop_with(|f| (f.orig_len, f.data.to_vec())).unwrap();
        assert_eq!(second, (3, vec![0, 1, 2]));
    }

    #[test]
    fn producer_and_consumer_threads_lose_nothing_they_do_not_count() {
        let r = std::sync::Arc::new(CaptureRing::new(CapturePoint::WireOut, 16, 8));
        let n = 50_000u64;
        let producer = {
            let r = r.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    r.push(ts(i), &i.to_le_bytes());
                }
            })
        };
        let mut got = Vec::new();
        loop {
            match r.pop_with(|f| u64::from_le_bytes(f.data.try_into().unwrap())) {
                Some(v) => got.push(v),
                None if producer.is_finished() && r.is_empty() => break,
                None => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        // Every packet was either delivered (in order, no duplicates) or counted as skipped.
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(got.len() as u64 + r.skipped(), n);
    }
}
