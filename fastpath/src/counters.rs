//! Per-worker counters: one home for every outcome a frame can have.
//!
//! Each worker owns its `WorkerCounters` and only it writes them (plain relaxed atomics, so the
//! stats reader on another thread sees them without a lock). The same struct carries the two
//! other things a worker shares with the control socket: its capture switch and its published
//! latency histograms. Drop reasons are an enum so that
//! stats, metrics and logs all use the same names.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::capture::{CapturePoint, CaptureTap};
use crate::latency::SharedLatency;

macro_rules! reasons {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// Why a frame was dropped. The name is what stats and metrics print.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum DropReason { $(#[doc = $doc] $variant,)* }

        impl DropReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];

            /// The stable name used in stats output and metric labels.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
        }
    };
}

reasons! {
    Malformed => "malformed": "Frame too short or headers inconsistent.",
    NotForUs => "not_for_us": "Redirected by XDP but matches nothing the worker handles.",
    UnknownReceiver => "unknown_receiver": "WireGuard data for a receiver index with no keypair.",
    DecryptFailed => "decrypt_failed": "AEAD open failed, replayed counter, or keypair expired.",
    SourceNotAllowed => "source_not_allowed": "Inner source address not in the sending peer's AllowedIPs.",
    InnerMalformed => "inner_malformed": "Decrypted packet is not a valid IP packet.",
    NatRefused => "nat_refused": "NAT table full or no port free for a new flow.",
    NatNoMapping => "nat_no_mapping": "Return traffic with no NAT mapping.",
    NatOther => "nat_other": "NAT rejected the packet (bad checksum, untranslatable ICMP error).",
    NoRoute => "no_route": "No route to the destination.",
    NoNeighbour => "no_neighbour": "Next hop's MAC unknown; resolution asked of the kernel.",
    TtlExceeded => "ttl_exceeded": "TTL reached zero while forwarding.",
    NoPeer => "no_peer": "No peer's AllowedIPs cover the destination of a reply.",
    NoKeypair => "no_keypair": "Peer has no usable keypair (a handshake was requested).",
    NoEndpoint => "no_endpoint": "Peer's endpoint is not known yet.",
    EncryptFailed => "encrypt_failed": "Sealing failed (key exhausted or expired, or packet too big).",
    TooBig => "too_big": "Packet does not fit the MTU or the frame.",
    SlowPathFull => "slowpath_full": "The slow path's queue was full.",
    TxFull => "tx_full": "No TX descriptor or frame free.",
    Handoff => "handoff": "Belongs to another worker's NAT and its handoff lane was full (or no frame was free to take it).",
    Unsupported => "unsupported": "Outer IPv6 or VLAN-tagged frame: not handled by the fast path yet.",
}

/// Counters of one worker. Written by that worker only.
#[derive(Default, Debug)]
pub struct WorkerCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    pub decrypted: AtomicU64,
    pub encrypted: AtomicU64,
    pub keepalives: AtomicU64,
    pub to_slowpath: AtomicU64,
    /// Packets this worker received but another worker's NAT owns, copied to that worker
    /// (`worker::handoff`).
    pub handed_off: AtomicU64,
    /// Packets other workers handed to this one.
    pub handed_in: AtomicU64,
    /// TCP/UDP checksums completed: the sender left only the pseudo-header sum (tx offload).
    pub csum_completed: AtomicU64,
    pub dropped: [AtomicU64; DropReason::ALL.len()],
    /// Live NAT mappings of this worker's conntrack: a gauge the worker stores now and then
    /// (`Conntrack::len`); stays 0 without NAT.
    pub nat_entries: AtomicU64,
    /// AF_XDP XDP_STATISTICS of this worker's sockets, summed: gauges the worker stores now
    /// and then ([`XskGauges::publish`]).
    pub xsk: XskGauges,
    /// Packets a capture could not keep because its ring was full (the capture client reads
    /// too slowly); the packets themselves were forwarded as usual.
    pub capture_skipped: AtomicU64,
    /// The worker's capture switch (`dataplane capture`): shared here because this is what
    /// the worker and the control socket already share.
    pub capture: CaptureTap,
    /// Per-stage latency histograms the worker publishes about once a second.
    pub latency: SharedLatency,
}

macro_rules! xsk_stats {
    ($($field:ident: $doc:literal,)*) => {
        /// The kernel's per-socket AF_XDP counters (`getsockopt(SOL_XDP, XDP_STATISTICS)`,
        /// `struct xdp_statistics`), as read from one socket.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct XskStats { $(#[doc = $doc] pub $field: u64,)* }

        /// The same counters summed over a worker's sockets, as last published by the worker.
        #[derive(Default, Debug)]
        pub struct XskGauges { $(#[doc = $doc] pub $field: AtomicU64,)* }

        impl XskGauges {
            /// The kernel's names of the counters, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field),)*];

            /// Stores the sum of `sockets` (the worker calls this now and then).
            pub fn publish(&self, sockets: &[XskStats]) {
                $(self.$field.store(sockets.iter().map(|s| s.$field).sum(), Ordering::Relaxed);)*
            }

            /// `(name, value)` of every counter, in [`XskGauges::NAMES`] order.
            pub fn read(&self) -> [(&'static str, u64); XskGauges::NAMES.len()] {
                [$((stringify!($field), self.$field.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

xsk_stats! {
    rx_dropped: "Dropped for reasons other than invalid descriptors (e.g. frame too big).",
    rx_invalid_descs: "Invalid descriptors on the fill or rx ring.",
    tx_invalid_descs: "Invalid descriptors on the tx ring.",
    rx_ring_full: "The rx ring was full: the worker did not keep up.",
    rx_fill_ring_empty_descs: "The fill ring was empty: the worker did not refill in time.",
    tx_ring_empty_descs: "The tx ring was empty when the kernel looked for work.",
}

impl WorkerCounters {
    /// Adds `n` to a counter. Relaxed: counters are statistics, not synchronisation.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    pub fn total_dropped(&self) -> u64 {
        self.dropped.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The worker's capture tap at `point`: one relaxed load when no capture runs there; else
    /// `packet` is copied into the capture's ring, or counted in `capture_skipped` when the
    /// ring is full.
    #[inline]
    pub fn tap(&self, point: CapturePoint, packet: &[u8]) {
        if self.capture.points() & point.bit() != 0 && !self.capture.record(point, packet) {
            Self::add(&self.capture_skipped, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot_and_name() {
        let c = WorkerCounters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            c.count_drop(*r);
        }
        assert_eq!(c.total_dropped(), DropReason::ALL.len() as u64);
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len());
    }

    #[test]
    fn tap_copies_only_at_the_captured_point_and_counts_a_full_ring() {
        use crate::capture::CaptureRing;
        use std::sync::Arc;
        let c = WorkerCounters::default();
        c.tap(CapturePoint::WireIn, b"no capture running");
        let ring = Arc::new(CaptureRing::new(CapturePoint::WireIn, 2, 64));
        c.capture.attach(ring.clone());
        c.tap(CapturePoint::Decrypted, b"another point");
        for _ in 0..5 {
            c.tap(CapturePoint::WireIn, b"frame");
        }
        assert_eq!(ring.len(), 2);
        assert_eq!(c.capture_skipped.load(Ordering::Relaxed), 3);
        c.capture.detach();
        c.tap(CapturePoint::WireIn, b"after the capture");
        assert_eq!(ring.len(), 2);
        assert_eq!(c.capture_skipped.load(Ordering::Relaxed), 3);
    }
}
