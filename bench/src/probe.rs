//! The load generator's probe payload and what a receiver learns from a stream of them.
//!
//! A probe is the UDP payload of one inner packet: a magic, a sequence number, a timestamp
//! (CLOCK_MONOTONIC nanoseconds when the payload was written) and a CRC-32 over everything else,
//! followed by a pattern derived from the sequence number. [`Arrivals`] is the receiver's
//! tally: intact, corrupted, duplicated, reordered and (given the sender's count) lost packets,
//! and one-way latency in an hdrhistogram. [`SendTimes`] is the table a sender fills with the
//! moment each packet really left (pre-encrypted packets carry the time they were sealed, not
//! sent), which a receiver in another namespace of the same process reads: CLOCK_MONOTONIC is
//! one clock for every namespace.
//!
//! Sans-IO: nothing here reads a clock or touches a socket. Malformed input is counted, never a
//! panic, and memory is fixed when the tally is made.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::packets::pattern_byte;

/// The first four payload bytes of every probe.
pub const MAGIC: [u8; 4] = *b"WGLG";
/// Magic, sequence, timestamp and checksum.
pub const PROBE_HEADER: usize = 4 + 8 + 8 + 4;
/// IPv4 + UDP headers of the inner packet: a probe payload is the inner size minus this.
pub const INNER_IP_UDP: usize = crate::packets::INNER_HEADERS;
/// The smallest inner IPv4 packet that holds a probe (64 bytes holds one with room to spare).
pub const MIN_PROBE_PACKET: usize = INNER_IP_UDP + PROBE_HEADER;

const SEQ: std::ops::Range<usize> = 4..12;
const STAMP: std::ops::Range<usize> = 12..20;
const CRC: std::ops::Range<usize> = 20..24;

/// Writes a probe with `seq` and `stamp_ns` filling all of `buf` (at least [`PROBE_HEADER`]
/// bytes; shorter buffers are left unchanged and `false` is returned).
pub fn write_probe(buf: &mut [u8], seq: u64, stamp_ns: u64) -> bool {
    if buf.len() < PROBE_HEADER {
        return false;
    }
    buf[..4].copy_from_slice(&MAGIC);
    buf[SEQ].copy_from_slice(&seq.to_be_bytes());
    buf[STAMP].copy_from_slice(&stamp_ns.to_be_bytes());
    for (i, b) in buf.iter_mut().enumerate().skip(PROBE_HEADER) {
        *b = pattern_byte(seq, i);
    }
    let crc = checksum(buf);
    buf[CRC].copy_from_slice(&crc.to_be_bytes());
    true
}

/// CRC-32 of the probe with its checksum field left out.
fn checksum(buf: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[..CRC.start]);
    h.update(&buf[CRC.end..]);
    h.finalize()
}

/// A probe that passed its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub seq: u64,
    pub stamp_ns: u64,
}

/// Why a payload is not an intact probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    TooShort,
    BadMagic,
    BadChecksum,
}

/// Checks a probe payload: length, magic, CRC-32 (which covers the pattern, so a flipped,
/// truncated or shifted byte anywhere fails it).
pub fn read_probe(buf: &[u8]) -> Result<Probe, ProbeError> {
    if buf.len() < PROBE_HEADER {
        return Err(ProbeError::TooShort);
    }
    if buf[..4] != MAGIC {
        return Err(ProbeError::BadMagic);
    }
    let stored = u32::from_be_bytes(buf[CRC].try_into().expect("4 bytes"));
    if stored != checksum(buf) {
        return Err(ProbeError::BadChecksum);
    }
    Ok(Probe {
        seq: u64::from_be_bytes(buf[SEQ].try_into().expect("8 bytes")),
        stamp_ns: u64::from_be_bytes(buf[STAMP].try_into().expect("8 bytes")),
    })
}

/// When each sequence number was handed to the kernel (CLOCK_MONOTONIC ns), in a fixed ring
/// indexed by `seq % len`. A slot overwritten by a later packet reads as later than the arrival
/// and is ignored by the receiver, so the ring only needs to cover the packets in flight.
pub struct SendTimes {
    slots: Box<[AtomicU64]>,
}

impl SendTimes {
    pub fn new(len: usize) -> Self {
        SendTimes {
            slots: (0..len.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn set(&self, seq: u64, ns: u64) {
        let i = (seq % self.slots.len() as u64) as usize;
        self.slots[i].store(ns, Ordering::Release);
    }

    /// The send time of `seq`, if one was recorded.
    pub fn get(&self, seq: u64) -> Option<u64> {
        let i = (seq % self.slots.len() as u64) as usize;
        Some(self.slots[i].load(Ordering::Acquire)).filter(|&t| t != 0)
    }
}

/// What happened to one received payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// First copy of an expected sequence number, in order.
    InOrder,
    /// First copy, but a higher sequence number arrived before it.
    Reordered,
    Duplicate,
    Corrupted(ProbeError),
    /// Intact, but its sequence number is outside the range this tally expects (a late
    /// packet of an earlier run, or a sender bug).
    Foreign,
}

/// Counts of a finished tally.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    /// Datagrams seen, whatever they held.
    pub received: u64,
    /// Distinct intact sequence numbers.
    pub unique: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub corrupted: u64,
    pub foreign: u64,
    /// Bytes of the distinct intact packets as the receiver measured them.
    pub unique_bytes: u64,
    /// Latency samples (intact first copies with a send time).
    pub latency_samples: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Tally {
    /// Sent minus distinct intact arrivals (never negative).
    pub fn lost(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.unique)
    }

    pub fn loss_percent(&self, sent: u64) -> f64 {
        if sent == 0 {
            return 0.0;
        }
        self.lost(sent) as f64 * 100.0 / sent as f64
    }
}

/// A receiver's tally of the probes with sequence numbers `first..first + capacity`: a bitmap
/// of what was seen (capacity / 8 bytes, fixed) and a latency histogram.
pub struct Arrivals {
    first: u64,
    capacity: u64,
    seen: Vec<u64>,
    highest: Option<u64>,
    tally: Tally,
    latency_ns: Histogram<u64>,
}

impl Arrivals {
    pub fn new(first: u64, capacity: u64) -> Self {
        Arrivals {
            first,
            capacity,
            seen: vec![0; capacity.div_ceil(64) as usize],
            highest: None,
            tally: Tally::default(),
            // 1 µs .. 60 s in nanoseconds, 3 significant digits.
            latency_ns: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
        }
    }

    /// The first sequence number this tally expects.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Records one received payload of `len_on_wire` bytes (the inner IPv4 packet's size, for
    /// Gbit/s) that arrived at `arrival_ns`; `sent_ns` gives the send time of a sequence number
    /// (from [`SendTimes`] or the probe's own stamp).
    pub fn record(
        &mut self,
        payload: &[u8],
        len_on_wire: usize,
        arrival_ns: u64,
        sent_ns: impl Fn(&Probe) -> Option<u64>,
    ) -> Arrival {
        self.tally.received += 1;
        let probe = match read_probe(payload) {
            Ok(p) => p,
            Err(e) => {
                self.tally.corrupted += 1;
                return Arrival::Corrupted(e);
            }
        };
        let Some(offset) = probe
            .seq
            .checked_sub(self.first)
            .filter(|&o| o < self.capacity)
        else {
            self.tally.foreign += 1;
            return Arrival::Foreign;
        };
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        if self.seen[word] & (1 << bit) != 0 {
            self.tally.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.seen[word] |= 1 << bit;
        self.tally.unique += 1;
        self.tally.unique_bytes += len_on_wire as u64;
        if let Some(sent) = sent_ns(&probe).filter(|&s| s <= arrival_ns) {
            self.latency_ns
                .saturating_record((arrival_ns - sent).max(1));
            self.tally.latency_samples += 1;
        }
        match self.highest {
            Some(h) if probe.seq < h => {
                self.tally.reordered += 1;
                Arrival::Reordered
            }
            _ => {
                self.highest = Some(probe.seq);
                Arrival::InOrder
            }
        }
    }

    /// The counts and latency percentiles so far.
    pub fn tally(&self) -> Tally {
        let mut t = self.tally;
        if t.latency_samples > 0 {
            let q = |p: f64| self.latency_ns.value_at_quantile(p) as f64 / 1000.0;
            t.p50_us = q(0.5);
            t.p99_us = q(0.99);
            t.p999_us = q(0.999);
            t.max_us = self.latency_ns.max() as f64 / 1000.0;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(seq: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        assert!(write_probe(&mut b, seq, 1_000 + seq));
        b
    }

    #[test]
    fn probe_round_trips_and_every_flipped_bit_is_caught() {
        let p = probe(77, 60);
        assert_eq!(
            read_probe(&p),
            Ok(Probe {
                seq: 77,
                stamp_ns: 1077
            })
        );
        for i in 0..p.len() {
            for bit in 0..8 {
                let mut q = p.clone();
                q[i] ^= 1 << bit;
                assert!(read_probe(&q).is_err(), "flip at byte {i} bit {bit} passed");
            }
        }
        assert_eq!(
            read_probe(&p[..PROBE_HEADER - 1]),
            Err(ProbeError::TooShort)
        );
        // A truncated probe fails the checksum.
        assert_eq!(read_probe(&p[..40]), Err(ProbeError::BadChecksum));
        assert!(!write_probe(&mut [0u8; 10], 1, 1));
    }

    #[test]
    fn send_times_ring_keeps_the_latest_per_slot() {
        let t = SendTimes::new(4);
        assert_eq!(t.get(1), None);
        t.set(1, 10);
        t.set(5, 20);
        assert_eq!(t.get(1), Some(20));
    }

    #[test]
    fn latency_comes_from_the_send_time_and_ignores_times_after_arrival() {
        let mut a = Arrivals::new(0, 16);
        a.record(&probe(0, 40), 68, 5_000_000, |_| Some(1_000_000));
        // A send time after the arrival (a reused ring slot) gives no sample.
        a.record(&probe(1, 40), 68, 5_000_000, |_| Some(9_000_000));
        let t = a.tally();
        assert_eq!(t.latency_samples, 1);
        assert!((t.p50_us - 4000.0).abs() < 4.0, "{t:?}");
    }
}
