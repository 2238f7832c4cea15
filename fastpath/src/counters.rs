//! Per-worker counters: one home for every outcome a frame can have.
//!
//! Each worker owns its `WorkerCounters` and only it writes them (plain relaxed atomics, so the
//! stats reader on another thread sees them without a lock). The same struct carries the two
//! other things a worker shares with the control socket: its capture switch and its published
//! latency histograms.
//!
//! Everything here is declared once, in three tables: [`DropReason`] (`reasons!`), the plain
//! counters of [`WorkerCounters`] (`worker_counters!`, described by [`WorkerCounters::INFO`])
//! and the AF_XDP socket statistics (`xsk_stats!`). Stats, text, JSON, metrics and the log
//! line are generated from them, so a new entry shows up everywhere or nowhere.

use std::sync::atomic::{AtomicU64, Ordering};

use nat::NatError;
use wgproto::keypair::OpenError;
use wgproto::replay::ReplayError;

use crate::capture::{CapturePoint, CaptureTap};
use crate::latency::SharedLatency;

macro_rules! reasons {
    (
        plain { $($variant:ident => $name:literal: $help:literal,)* }
        nat { $($nat_variant:ident => $nat_name:literal: $nat_err:ident,)* }
        decrypt { $($dec_variant:ident => $dec_name:literal: $dec_err:pat => $dec_help:literal,)* }
    ) => {
        /// Why a frame was dropped. The name is what stats and metrics print.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum DropReason {
            $(#[doc = $help] $variant,)*
            $(#[doc = concat!("The NAT refused it: [`NatError::", stringify!($nat_err), "`].")]
            $nat_variant,)*
            $(#[doc = $dec_help] $dec_variant,)*
        }

        impl DropReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [DropReason] = &[
                $(DropReason::$variant,)*
                $(DropReason::$nat_variant,)*
                $(DropReason::$dec_variant,)*
            ];

            /// The reasons the NAT gives ([`NatError`]), `nat_*`.
            pub const NAT: &'static [DropReason] = &[$(DropReason::$nat_variant,)*];

            /// The reasons a transport message fails to open ([`OpenError`]), `decrypt_*`.
            pub const DECRYPT: &'static [DropReason] = &[$(DropReason::$dec_variant,)*];

            /// The stable name used in stats output and metric labels.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                    $(DropReason::$nat_variant => $nat_name,)*
                    $(DropReason::$dec_variant => $dec_name,)*
                }
            }

            /// What it means, for operators (metrics print it beside the reason's series).
            pub fn help(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $help,)*
                    $(DropReason::$nat_variant => NatError::$nat_err.help(),)*
                    $(DropReason::$dec_variant => $dec_help,)*
                }
            }
        }

        /// Each NAT refusal is its own drop reason: a new [`NatError`] does not compile until
        /// it is given one here.
        impl From<NatError> for DropReason {
            fn from(e: NatError) -> Self {
                match e { $(NatError::$nat_err => DropReason::$nat_variant,)* }
            }
        }

        /// Each reason a transport message failed to open is its own drop reason, exhaustively.
        impl From<OpenError> for DropReason {
            fn from(e: OpenError) -> Self {
                match e { $($dec_err => DropReason::$dec_variant,)* }
            }
        }
    };
}

reasons! {
    plain {
        Malformed => "malformed": "Frame too short or headers inconsistent.",
        NotForUs => "not_for_us": "Redirected by XDP but matches nothing the worker handles.",
        UnknownReceiver => "unknown_receiver": "WireGuard data for a receiver index with no keypair.",
        SourceNotAllowed => "source_not_allowed": "Inner source address not in the sending peer's AllowedIPs.",
        InnerMalformed => "inner_malformed": "Decrypted packet is not a valid IP packet.",
        NatUnavailable => "nat_unavailable": "Masquerading is on but this worker has no NAT table.",
        NoRoute => "no_route": "No route to the destination.",
        NoNeighbour => "no_neighbour": "Next hop's MAC unknown; resolution asked of the kernel.",
        TtlExceeded => "ttl_exceeded": "TTL reached zero while forwarding.",
        HopLimitExceeded => "hop_limit_exceeded": "IPv6 hop limit ran out while forwarding from the tunnel, and no ICMPv6 time exceeded went back (rate-limited, not allowed by RFC 4443 §2.4, or wg0 has no IPv6 address to send it from).",
        NoPeer => "no_peer": "No peer's AllowedIPs cover the destination of a reply.",
        NoKeypair => "no_keypair": "Peer has no usable keypair (a handshake was requested).",
        NoEndpoint => "no_endpoint": "Peer's endpoint is not known yet.",
        EncryptFailed => "encrypt_failed": "Sealing failed (key exhausted or expired, or packet too big).",
        TooBig => "too_big": "Packet does not fit the MTU or the frame.",
        SlowPathFull => "slowpath_full": "The slow path's lane for host packets and authenticated events was full.",
        HandshakeQueueFull => "handshake_queue_full": "The slow path's lane for (unauthenticated) handshake messages was full: a handshake flood, or a slow path that fell behind.",
        HandshakeBadSize => "handshake_bad_size": "A handshake message (type 1-3) of another size than its type has (148, 92 or 64 bytes).",
        HandshakeBadMac1 => "handshake_bad_mac1": "A handshake initiation or response whose mac1 is not made with the gateway's public key (forged, or for another server): it can never be accepted (whitepaper §5.4.4).",
        HandshakeCookieRateLimited => "handshake_cookie_ratelimited": "A handshake without a valid mac2 while the slow path was under load, from a source that already had its cookie replies (20/s, burst 5, per address, as handshakes are limited).",
        HandshakeMac2QueueFull => "handshake_mac2_queue_full": "The slow path's lane for handshakes with a valid mac2 (senders that answered a cookie reply) was full.",
        TxFull => "tx_full": "No TX descriptor or frame free.",
        FragmentNoFrame => "fragment_no_frame": "A packet cut into fragments (a return packet for the tunnel, or a sealed datagram for a smaller IPv6 path MTU) lost its remaining fragments: no UMEM frame was free for them.",
        Handoff => "handoff": "Belongs to another worker's NAT and its handoff lane was full (or no frame was free to take it).",
        NatNotEthernet => "nat_not_ethernet": "Masquerading is on and the route to the destination leaves through an interface that is not Ethernet: the fast path cannot send there and the kernel would forward it untranslated.",
        Unsupported => "unsupported": "Neither IPv4 nor WireGuard over IPv6 (other IPv6 is not taken by the fast path yet; the XDP program passes VLAN-tagged frames and IPv6 extension headers to the kernel).",
    }
    // One per NatError, named `nat_<NatError::name>`; the help is the NAT's own.
    nat {
        NatTruncated => "nat_truncated": Truncated,
        NatNotIpv4 => "nat_not_ipv4": NotIpv4,
        NatBadIpHeader => "nat_bad_ip_header": BadIpHeader,
        NatBadIpChecksum => "nat_bad_ip_checksum": BadIpChecksum,
        NatFragment => "nat_fragment": Fragment,
        NatFragmentUnknown => "nat_fragment_unknown": FragmentUnknown,
        NatUnsupportedProtocol => "nat_unsupported_protocol": UnsupportedProtocol,
        NatUnsupportedIcmp => "nat_unsupported_icmp": UnsupportedIcmp,
        NatNoMapping => "nat_no_mapping": NoMapping,
        NatTableFull => "nat_table_full": TableFull,
        NatNoFreePort => "nat_no_free_port": NoFreePort,
        NatIcmpBadChecksum => "nat_icmp_bad_checksum": IcmpBadChecksum,
        NatIcmpErrorBadChecksum => "nat_icmp_error_embedded_bad_checksum": IcmpErrorBadChecksum,
        NatIcmpErrorMalformed => "nat_icmp_error_malformed": IcmpErrorMalformed,
        NatIcmpErrorNoMapping => "nat_icmp_error_no_mapping": IcmpErrorNoMapping,
        NatOffPathRst => "nat_offpath_rst": OffPathRst,
        NatIcmpErrorOffPath => "nat_icmp_error_offpath": IcmpErrorOffPath,
        NatNotIpv6 => "nat_not_ipv6": NotIpv6,
        NatIpv6ExtensionHeader => "nat_ipv6_extension_header": Ipv6ExtensionHeader,
    }
    // One per way a transport message fails to open (`Keypair::open_in_place`).
    decrypt {
        DecryptTooShort => "decrypt_too_short":
            OpenError::TooShort => "Transport message shorter than its header and tag.",
        DecryptNotTransport => "decrypt_not_transport":
            OpenError::NotTransport => "Not a transport message (type or reserved bytes).",
        DecryptWrongReceiver => "decrypt_wrong_receiver":
            OpenError::WrongReceiver => "Receiver index of another keypair than the one it was found under.",
        DecryptExpired => "decrypt_expired":
            OpenError::Expired => "Receiving keypair past REJECT_AFTER_TIME or retired by the slow path.",
        DecryptAuthFailed => "decrypt_auth_failed":
            OpenError::AuthFailed => "AEAD tag did not verify: forged, corrupted or under another key.",
        DecryptReplayed => "decrypt_replayed":
            OpenError::Replay(ReplayError::Duplicate) => "Counter accepted before: a replay.",
        DecryptTooOld => "decrypt_too_old":
            OpenError::Replay(ReplayError::TooOld) => "Counter further behind the newest than the replay window reaches.",
        DecryptCounterExhausted => "decrypt_counter_exhausted":
            OpenError::Replay(ReplayError::Exhausted) => "Counter at or past REJECT_AFTER_MESSAGES.",
        DecryptReplayWindowBusy => "decrypt_replay_window_busy":
            OpenError::ReplayWindowBusy => "Authenticated, but another worker held the keypair's replay window past the wait limit (the same keypair's packets on two queues at once): dropped rather than let through unchecked.",
    }
}

impl DropReason {
    /// The reason called `name` (as [`DropReason::name`] prints it).
    pub fn from_name(name: &str) -> Option<DropReason> {
        DropReason::ALL.iter().copied().find(|r| r.name() == name)
    }
}

/// What kind of number a counter is (the metrics' `# TYPE`; text shows rates of counters only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows.
    Counter,
    /// A level the worker stores now and then.
    Gauge,
}

/// Where a counter of [`WorkerCounters`] appears in the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    /// This `stage` label of `dataplane_worker_packets_total` (frames, by what happened).
    Packets(&'static str),
    /// A metric family of its own, labelled by worker.
    Own(&'static str),
}

/// One plain counter of [`WorkerCounters`], as declared in its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterInfo {
    /// The field's name: the key in stats and JSON, and in the log line.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub series: Series,
}

impl CounterInfo {
    /// The counter called `name` (as [`CounterInfo::name`]).
    pub fn by_name(name: &str) -> Option<&'static CounterInfo> {
        WorkerCounters::INFO.iter().find(|c| c.name == name)
    }
}

macro_rules! worker_counters {
    ($($field:ident: $kind:ident, $series:expr, $help:literal;)*) => {
        /// Counters of one worker. Written by that worker only.
        #[derive(Debug)]
        pub struct WorkerCounters {
            $(#[doc = $help] pub $field: AtomicU64,)*
            /// Drops, indexed by `DropReason as usize`.
            pub dropped: [AtomicU64; DropReason::ALL.len()],
            /// AF_XDP XDP_STATISTICS of this worker's sockets, summed: gauges the worker stores
            /// now and then ([`XskGauges::publish`]).
            pub xsk: XskGauges,
            /// The worker's capture switch (`dataplane capture`): shared here because this is
            /// what the worker and the control socket already share.
            pub capture: CaptureTap,
            /// Per-stage latency histograms the worker publishes about once a second.
            pub latency: SharedLatency,
        }

        impl Default for WorkerCounters {
            fn default() -> Self {
                WorkerCounters {
                    $($field: AtomicU64::new(0),)*
                    // More reasons than arrays implement `Default` for.
                    dropped: std::array::from_fn(|_| AtomicU64::new(0)),
                    xsk: XskGauges::default(),
                    capture: CaptureTap::default(),
                    latency: SharedLatency::default(),
                }
            }
        }

        impl WorkerCounters {
            /// The plain counters, in declaration order.
            pub const INFO: &'static [CounterInfo] = &[$(CounterInfo {
                name: stringify!($field),
                help: $help,
                kind: Kind::$kind,
                series: $series,
            },)*];

            /// `(name, value)` of every plain counter, in [`WorkerCounters::INFO`] order.
            pub fn read(&self) -> [(&'static str, u64); WorkerCounters::INFO.len()] {
                [$((stringify!($field), self.$field.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

worker_counters! {
    rx: Counter, Series::Packets("rx"), "Frames received from the worker's AF_XDP sockets.";
    tx: Counter, Series::Packets("tx"), "Frames sent on the worker's AF_XDP sockets.";
    decrypted: Counter, Series::Packets("decrypted"), "Transport messages opened that carried a packet.";
    encrypted: Counter, Series::Packets("encrypted"), "Packets sealed towards a peer.";
    keepalives: Counter, Series::Packets("keepalive"), "Transport messages opened that were keepalives (empty).";
    endpoint_roamed: Counter, Series::Own("dataplane_worker_endpoint_roams_total"), "Authenticated packets from a new source that moved their peer's endpoint at once, for every worker's replies (the slow path learns it from the report and publishes it).";
    to_slowpath: Counter, Series::Packets("to_slowpath"), "Messages queued to the slow path (handshakes, packets for the host).";
    handshakes_mac2: Counter, Series::Own("dataplane_handshakes_mac2_total"), "Handshake initiations and responses with a valid mac1 and mac2 (the sender holds our cookie for its address) queued on the slow path's mac2 lane, which junk cannot fill.";
    cookie_replies: Counter, Series::Own("dataplane_worker_cookie_replies_total"), "Cookie replies a worker sent itself: a handshake with a valid mac1 but no valid mac2 while the slow path was under load (whitepaper §5.3); the sender retries with mac2.";
    events_lost: Counter, Series::Own("dataplane_slowpath_events_lost_total"), "Reports of authenticated events (key confirmation, roaming, rekey and handshake requests) the slow path's event lane had no room for; each is reported again by a later packet.";
    handed_off: Counter, Series::Packets("handed_off"), "Packets this worker received but another worker's NAT owns, copied to that worker.";
    handed_in: Counter, Series::Packets("handed_in"), "Packets other workers handed to this one.";
    csum_completed: Counter, Series::Packets("csum_completed"), "TCP/UDP checksums completed: the sender left only the pseudo-header sum (tx checksum offload).";
    forwarded_ipv6: Counter, Series::Packets("forwarded_ipv6"), "Decrypted IPv6 packets the worker routed out itself (the kernel's IPv6 routes, NDP next hops), not through wg0.";
    icmpv6_time_exceeded: Counter, Series::Packets("icmpv6_time_exceeded"), "ICMPv6 time exceeded (hop limit) the worker sent into the tunnel, from wg0's IPv6 address.";
    icmpv6_packet_too_big: Counter, Series::Packets("icmpv6_packet_too_big"), "ICMPv6 packet too big the worker sent into the tunnel with the next hop's MTU (IPv6 is never fragmented on the way: path MTU discovery).";
    fragmented_into_tunnel: Counter, Series::Packets("fragmented_into_tunnel"), "Return packets longer than the tunnel MTU, without DF, cut into fragments that fit it (as the kernel forwarding into wg0 would); each fragment counts in `encrypted` and `tx`.";
    outer_fragmented_ipv6: Counter, Series::Packets("outer_fragmented_ipv6"), "Sealed datagrams to a peer's IPv6 endpoint longer than the path MTU the kernel learned from a Packet Too Big (or the link's), cut into fragments at the source as kernel WireGuard's are (routers never fragment IPv6); each fragment counts in `tx`.";
    nat_entries: Gauge, Series::Own("dataplane_nat_entries"), "Live NAT mappings of a worker (0 without NAT).";
    nat_untracked_inbound: Counter, Series::Own("dataplane_nat_untracked_inbound_total"), "NAT return traffic from a remote its mapping does not track (endpoint-independent filtering): delivered, but it neither refreshed the mapping nor changed its TCP state (published now and then from the NAT's own count).";
    nat66_outbound: Counter, Series::Own("dataplane_nat66_outbound_total"), "IPv6 packets from the tunnel source-translated by the IPv6 NAT (`[nat] masquerade_ipv6`; published now and then from the NAT's own count).";
    nat66_inbound: Counter, Series::Own("dataplane_nat66_inbound_total"), "IPv6 return traffic translated back by the IPv6 NAT, ICMPv6 errors included (published now and then from the NAT's own count).";
    nat66_entries: Gauge, Series::Own("dataplane_nat66_entries"), "Live IPv6 NAT mappings of a worker (0 without IPv6 masquerading).";
    icmp_ratelimited: Counter, Series::Own("dataplane_icmp_ratelimited_total"), "ICMP errors not sent: over the rate limit (1000/s burst 50 per worker, 1/s burst 6 per destination, as Linux's icmp_msgs_per_sec and icmp_ratelimit).";
    capture_skipped: Counter, Series::Own("dataplane_capture_skipped_total"), "Packets a running capture could not keep (its reader was too slow); forwarded anyway.";
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
    /// Adds `n` to a counter of this struct. A load and a store, not `fetch_add`: only the
    /// owning worker writes its counters, so nothing can come between the two, and a locked
    /// read-modify-write costs ~7 ns per call here (several per packet). Readers on other
    /// threads still see whole values (relaxed atomics: statistics, not synchronisation).
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        Self::add(&self.dropped[reason as usize], 1);
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
    fn every_nat_error_and_open_error_keeps_its_own_reason() {
        for e in NatError::ALL {
            let r = DropReason::from(*e);
            assert_eq!(r.name(), format!("nat_{}", e.name()));
            assert_eq!(r.help(), e.help());
        }
        let open = [
            OpenError::TooShort,
            OpenError::NotTransport,
            OpenError::WrongReceiver,
            OpenError::Expired,
            OpenError::AuthFailed,
            OpenError::Replay(ReplayError::Duplicate),
            OpenError::Replay(ReplayError::TooOld),
            OpenError::Replay(ReplayError::Exhausted),
            OpenError::ReplayWindowBusy,
        ];
        let mut names: Vec<_> = open.iter().map(|e| DropReason::from(*e).name()).collect();
        assert!(names.iter().all(|n| n.starts_with("decrypt_")), "{names:?}");
        assert_eq!(DropReason::DECRYPT.len(), open.len());
        assert_eq!(DropReason::NAT.len(), NatError::COUNT);
        names.sort();
        names.dedup();
        assert_eq!(names.len(), open.len());
        for r in DropReason::ALL {
            assert_eq!(DropReason::from_name(r.name()), Some(*r));
            assert!(!r.help().is_empty(), "{r:?}");
        }
    }

    #[test]
    fn the_counter_table_matches_the_struct() {
        let c = WorkerCounters::default();
        WorkerCounters::add(&c.handed_in, 4);
        c.nat_entries.store(9, Ordering::Relaxed);
        let read = c.read();
        let names: Vec<_> = read.iter().map(|(n, _)| *n).collect();
        let info: Vec<_> = WorkerCounters::INFO.iter().map(|i| i.name).collect();
        assert_eq!(names, info);
        assert!(read.contains(&("handed_in", 4)) && read.contains(&("nat_entries", 9)));
        assert_eq!(
            CounterInfo::by_name("nat_entries").unwrap().kind,
            Kind::Gauge
        );
        assert_eq!(CounterInfo::by_name("nope"), None);
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
