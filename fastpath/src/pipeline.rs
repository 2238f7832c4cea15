//! What a worker does to one frame, without any I/O: the arrows of the article's diagram.
//!
//! ```text
//! wire-in ─ WireGuard UDP :listen_port ─ type 1-3, of its size -> mac1, mac2 ─> slow path
//!        │                               │  (handshake or mac2 lane; under load a cookie reply)
//!        │                               └ type 4: open + replay (keypair by receiver index)
//!        │                                  -> inner source must belong to that peer
//!        │                                  -> for the host (or a fragment, NAT off) -> wg0
//!        │                                  -> route (kernel's table) -> TTL -> source NAT
//!        │                                  -> Ethernet header in front -> wire-out
//!        │                                  (IPv6: the same, routed, in `forward6`)
//!        └ NAT return traffic -> NAT reverse -> TTL -> peer by AllowedIPs
//!                                -> seal in place, outer Ethernet/IPv4|IPv6/UDP in the headroom
//!                                -> wire-out towards the peer's endpoint
//! ```
//!
//! WireGuard arrives over IPv4 or IPv6 (an IPv6 endpoint: [`crate::outer`]); both take the same
//! path from the message on. Other IPv6 frames are not the fast path's (`unsupported`).
//!
//! ```text
//! ```
//!
//! Handshake initiations and responses are screened by their macs first
//! ([`crate::handshake_guard`]). What only an authenticated packet can cause (key confirmation,
//! roaming, rekey and handshake requests) and packets for the host take the slow path's event
//! lane ([`crate::queue`]); roaming also takes effect at once, for every worker
//! ([`crate::roaming`]).
//!
//! [`Pipeline::process`] takes the whole UMEM frame and where the packet is in it, and returns
//! a [`Verdict`]: transmit (with the packet's new place in the frame), consumed (copied to the
//! slow path) or dropped with a [`DropReason`]. Frames are rewritten in place; the headroom in
//! front of a received packet (`afxdp::frame::RX_OFFSET`) is where encapsulation writes its
//! outer headers, and a transport message is decrypted over its own outer headers to where
//! the inner packet is transmitted from ([`crate::frame::forward_plaintext_offset`]). Nothing
//! here allocates or panics on any input.
//!
//! Observability on the way (both cost one branch per packet while off): the capture taps
//! ([`CapturePoint::Decrypted`] and [`CapturePoint::Nat`]; the wire points are in
//! `worker/io.rs`, where frames are received and handed to TX), and the per-stage latency of
//! one frame in [`crate::latency::SAMPLE_EVERY`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use crate::queue::{HandshakeDatagram, HostPacket, Lane, SlowPathSender, ToSlowPath};
use crate::roaming::Recency;
use crate::tables::Tables;
use nat::{Conntrack, Conntrack6, Inbound, Outbound};
use wgproto::keypair::{sealed_len, ReceiveHolder, SendBlocks};
use wgproto::peer::PeerId;
use wgproto::ratelimiter::{RateLimitError, RateLimiter};
use wgproto::time::Timestamp;

use crate::handshake_guard::{screen, CookieNonces, Screened};
use crate::icmp::{icmp_error, IcmpError};
use crate::icmp6::MAX_QUOTE_LEN;

mod forward6;
mod icmp6_reply;
mod nat6;
use crate::icmp_ratelimit::IcmpRateLimiter;

use crate::capture::CapturePoint;
use crate::counters::{DropReason, WorkerCounters};
use crate::fragmentation::{FragmentError, Fragmenter};
use crate::fragmentation6::{Fragment6Error, Fragmenter6};
use crate::frame::{forward_plaintext_offset, RX_OFFSET};
use crate::headers::write_ipv4_udp;
use crate::latency::{LatencyRecorder, SharedLatency, Stage};
use crate::outer::{self, write_ipv6_udp};
use crate::peer_tally::PeerTally;
use crate::route::{NextHop, NextHopReader, Resolution, RouteSnapshot};
use crate::stage_cycles::Step;
use wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use wire::ipv4::{self, Ttl};
use wire::wireguard::{
    handshake_len, MSG_COOKIE_REPLY, MSG_INITIATION, MSG_RESPONSE, MSG_TRANSPORT,
    TRANSPORT_HEADER_LEN,
};
use wire::{icmp, ipv6, udp};

/// What an ICMP error quotes of the offending packet: the IPv4 header (options included, at
/// most 60 bytes) and 8 bytes of payload (RFC 792).
const QUOTE_LEN: usize = ipv4::MAX_HEADER_LEN + icmp::QUOTED_DATA_LEN;

/// The facts a worker needs besides the published tables.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub listen_port: u16,
    /// Tunnel MTU: the padding cap, and the largest inner packet sent into the tunnel.
    pub mtu: usize,
    /// Addresses of the gateway itself (wg0's and the NICs'): decrypted packets to them go to
    /// the kernel through wg0.
    pub host_addrs: Vec<Ipv4Addr>,
    /// The source of ICMP errors the gateway originates towards tunnel clients (wg0's address).
    pub tunnel_addr: Ipv4Addr,
    /// The gateway's own IPv6 addresses (wg0's and the NICs'): decrypted IPv6 packets to them
    /// go to the kernel through wg0.
    pub host_addrs6: Vec<Ipv6Addr>,
    /// The source of ICMPv6 errors the gateway originates towards tunnel clients (wg0's IPv6
    /// address); without one, those errors are not sent (the packets are dropped, counted).
    pub tunnel_addr6: Option<Ipv6Addr>,
    /// Source-NAT forwarded traffic (`[nat] masquerade`).
    pub masquerade: bool,
    /// Where this worker's outer IPv4 identification counter starts (random at run time, so
    /// IDs are neither predictable nor the same across workers and restarts).
    pub outer_ip_id_seed: u16,
    /// The random prefix of this worker's cookie-reply nonces (differs between workers).
    pub cookie_nonce_seed: [u8; 16],
    /// Where this worker's identification of outer IPv6 fragments starts (random at run time,
    /// like `outer_ip_id_seed`; [`crate::fragmentation6`]).
    pub outer_frag_id_seed: u32,
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit `len` bytes from offset `start` of the frame on interface `ifindex`.
    Tx {
        ifindex: u32,
        start: usize,
        len: usize,
    },
    /// Done with: a keepalive, or copied to the slow path. The frame can be reused.
    Consumed,
    /// The next hop's MAC is being resolved by the kernel: keep the frame (packet now at
    /// `start..start + len`) and call [`Pipeline::resume`] later, as the kernel queues packets
    /// on an unresolved neighbour instead of dropping them.
    Park {
        resume: Resume,
        start: usize,
        len: usize,
    },
    /// Another worker's NAT slice owns this packet (RSS put it on our queue): copy `len`
    /// bytes from offset `start` to worker `owner` (`worker::handoff`), which calls
    /// [`Pipeline::resume`] with `resume` on its copy. The frame itself can be reused.
    Handoff {
        owner: u16,
        resume: Resume,
        start: usize,
        len: usize,
    },
    /// A return packet longer than the tunnel MTU that may be fragmented (no DF), NAT reverse
    /// and TTL done: the caller cuts it into fragments ([`Pipeline::fragmenter`]), each in a
    /// frame of its own, and seals each with [`Pipeline::encrypt_fragment`] for `inside`; then
    /// this frame can be reused.
    Fragment {
        inside: Ipv4Addr,
        start: usize,
        len: usize,
    },
    /// A sealed datagram to a peer's IPv6 endpoint, longer than the path MTU `mtu` of its
    /// route: the Ethernet frame at `start..start + len` is to leave on `ifindex` cut into
    /// fragments ([`Pipeline::outer_fragmenter6`]), each written into a frame of its own with
    /// [`Pipeline::write_outer_fragment6`]; then this frame can be reused.
    FragmentOuter6 {
        ifindex: u32,
        start: usize,
        len: usize,
        mtu: u32,
    },
    Drop(DropReason),
}

/// Where a parked packet re-enters the pipeline. Everything before that point (decryption,
/// source check, NAT reverse, TTL) was done already and is not repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// A decrypted inner packet waiting for the route towards its destination.
    Forward,
    /// A decrypted, source-checked inner IPv6 packet waiting for the route towards its
    /// destination ([`forward6`]).
    Forward6,
    /// A packet for the inside host `inside`, waiting for the route towards its peer's
    /// endpoint before it is sealed.
    Encrypt { inside: IpAddr },
    /// Handed over by another worker: a decrypted, source-checked inner packet whose TTL was
    /// decremented already, from an inside host this worker's NAT owns.
    NatOutbound,
    /// Handed over by another worker: an IPv4 packet from the LAN to a NAT port of this
    /// worker's slice.
    NatInbound,
    /// Handed over by another worker: a hairpinned packet (RFC 4787 REQ-9), source translated
    /// already, whose destination port is in this worker's slice.
    Hairpin,
    /// [`Resume::NatOutbound`] for the IPv6 NAT (`nat6.rs`): a routed IPv6 packet, hop limit
    /// decremented, from an inside host this worker's IPv6 NAT owns.
    NatOutbound6,
    /// [`Resume::NatInbound`] for the IPv6 NAT: an IPv6 packet from the LAN to a NAT66 port of
    /// this worker's slice.
    NatInbound6,
    /// [`Resume::Hairpin`] for the IPv6 NAT.
    Hairpin6,
}

/// Per-batch inputs: one load of each published snapshot, one clock reading.
pub struct Batch<'a> {
    pub tables: &'a Tables,
    pub routes: &'a RouteSnapshot,
    pub now: Timestamp,
}

/// One worker's packet processing state.
pub struct Pipeline {
    cfg: PipelineConfig,
    nat: Option<Conntrack>,
    /// The IPv6 NAT (`[nat] masquerade_ipv6`), see `nat6.rs`.
    nat6: Option<Conntrack6>,
    slow: SlowPathSender,
    routes: NextHopReader,
    counters: Arc<WorkerCounters>,
    latency: LatencyRecorder,
    /// Whether the frame being processed is one of the sampled ones.
    timed: bool,
    /// When the forwarding stage (NAT, route, rewrite) of the timed frame began.
    forwarding_since: Option<Instant>,
    /// Identification of the last outer IPv4 packet this worker sent.
    outer_ip_id: u16,
    /// Identification of the last outer IPv6 packet this worker fragmented.
    outer_frag_id: u32,
    /// How many ICMP errors this worker may still originate.
    icmp_limit: IcmpRateLimiter,
    /// The start of a return packet too big for the tunnel, quoted in the ICMP error.
    quote: [u8; QUOTE_LEN],
    /// The same for NAT66 return traffic (`nat6.rs`): an ICMPv6 error quotes up to 1232 bytes.
    quote6: Box<[u8; MAX_QUOTE_LEN]>,
    /// The last `Authenticated` report queued: keypair, source, when (see [`REPORT_RETRY`]).
    last_report: Option<(u32, SocketAddr, Timestamp)>,
    /// The last `HandshakeNeeded` queued: peer, when (see [`REPORT_RETRY`]).
    last_handshake_request: Option<(PeerId, Timestamp)>,
    /// Nonces of the cookie replies this worker sends.
    cookie_nonces: CookieNonces,
    /// Cookie replies per source ([`crate::handshake_guard`]).
    cookie_limit: RateLimiter,
    /// Where every frame ends early, when the bench asked ([`Pipeline::stop_after`]).
    stop_after: Option<Step>,
    /// Per-peer traffic of this batch, added to the shared counters in [`Pipeline::end_batch`].
    tally: PeerTally,
    /// The replay windows this worker holds until the batch ends.
    receiving: ReceiveHolder,
    /// The blocks of sending counters this worker took in this batch.
    sending: SendBlocks,
}

/// How long a worker waits before it repeats an `Authenticated` report about the same keypair
/// and source: far longer than the slow path takes to act on one, far shorter than anything
/// the protocol waits for (a responder sends on its previous keypair meanwhile).
pub const REPORT_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// Decrements the TTL of the IPv4 packet `p` (RFC 1812 §5.3.1); false when it ran out (or `p`
/// is not a whole IPv4 packet).
fn decrement_ttl(p: &mut [u8]) -> bool {
    ipv4::Packet::new_checked(p).map(|mut ip| ip.decrement_ttl()) == Ok(Ttl::Forward)
}

/// Length of the IP packet at the start of a decrypted plaintext, without WireGuard's padding
/// (from its header's length field; the whole plaintext when that is unreadable or too large).
fn inner_len(plain: &[u8]) -> usize {
    let field = |at: Range<usize>| plain.get(at).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let len = match wire::ip_version(plain) {
        Some(4) => field(ipv4::field::LENGTH).map(usize::from),
        Some(6) => field(ipv6::field::PAYLOAD_LEN).map(|p| ipv6::HEADER_LEN + usize::from(p)),
        _ => None,
    };
    len.filter(|&l| l <= plain.len()).unwrap_or(plain.len())
}

impl Pipeline {
    pub fn new(
        cfg: PipelineConfig,
        nat: Option<Conntrack>,
        slow: SlowPathSender,
        routes: NextHopReader,
        counters: Arc<WorkerCounters>,
    ) -> Self {
        let cfg_ip_id = cfg.outer_ip_id_seed;
        let frag_id = cfg.outer_frag_id_seed;
        let cookie_nonces = CookieNonces::new(cfg.cookie_nonce_seed);
        Pipeline {
            cfg,
            nat,
            nat6: None,
            slow,
            routes,
            counters,
            latency: LatencyRecorder::new(),
            timed: false,
            forwarding_since: None,
            outer_ip_id: cfg_ip_id,
            outer_frag_id: frag_id,
            // Full buckets: the first clock reading only adds to them up to their cap.
            icmp_limit: IcmpRateLimiter::new(0),
            quote: [0; QUOTE_LEN],
            quote6: Box::new([0; MAX_QUOTE_LEN]),
            last_report: None,
            last_handshake_request: None,
            cookie_nonces,
            cookie_limit: RateLimiter::preallocated(),
            stop_after: None,
            tally: PeerTally::default(),
            receiving: ReceiveHolder::new(),
            sending: SendBlocks::new(),
        }
    }

    /// Ends a batch: adds its per-peer traffic to the shared counters, gives back the
    /// keypairs' replay windows held since its first packet and skips the rest of its blocks
    /// of sending counters. The worker calls this after
    /// every batch, with the batch's tables; until then other workers wait for those windows.
    pub fn end_batch(&mut self, b: &Batch<'_>) {
        self.tally.flush(b.tables);
        self.receiving.release_all();
        self.sending.release_all();
    }

    /// Ends every frame right after `step` (verdict `Consumed`, the frame half-processed),
    /// or never with `None`: the bench's per-step table, measured by truncation (see
    /// [`crate::stage_cycles`]). A worker never calls this.
    pub fn stop_after(&mut self, step: Option<Step>) {
        self.stop_after = step;
    }

    /// Whether frames end after `step` ([`Pipeline::stop_after`]).
    #[inline]
    fn stops_after(&self, step: Step) -> bool {
        self.stop_after == Some(step)
    }

    /// Adds the latency samples taken since the last call into `to` (the worker calls this
    /// about once a second).
    pub fn publish_latency(&mut self, to: &SharedLatency) {
        self.latency.publish(to);
    }

    /// Now, if the current frame is timed.
    #[inline]
    fn clock(&self) -> Option<Instant> {
        if self.timed {
            Some(Instant::now())
        } else {
            None
        }
    }

    /// Records `stage` as having taken the time since `since` (nothing for untimed frames).
    #[inline]
    fn lap(&mut self, stage: Stage, since: Option<Instant>) {
        if let Some(t) = since {
            self.latency.record(stage, t);
        }
    }

    /// Ends the forwarding stage of a timed frame, started by whichever path it took.
    #[inline]
    fn forwarding_done(&mut self) {
        let since = self.forwarding_since.take();
        self.lap(Stage::NatRouteRewrite, since);
    }

    /// The WireGuard listen port this pipeline serves.
    pub fn listen_port(&self) -> u16 {
        self.cfg.listen_port
    }

    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.counters
    }

    pub fn nat(&self) -> Option<&Conntrack> {
        self.nat.as_ref()
    }

    /// Expires NAT mappings, at most `budget` of them per NAT (once per batch).
    pub fn expire(&mut self, now: Timestamp, budget: usize) -> usize {
        let v6 = self
            .nat6
            .as_mut()
            .map_or(0, |n| n.expire(now.as_nanos(), budget));
        v6 + self
            .nat
            .as_mut()
            .map_or(0, |n| n.expire(now.as_nanos(), budget))
    }

    /// Retries a parked packet (see [`Verdict::Park`]) at its resume point.
    pub fn resume(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        resume: Resume,
        start: usize,
        len: usize,
    ) -> Verdict {
        if start.checked_add(len).is_none_or(|end| end > buf.len()) {
            return Verdict::Drop(DropReason::Malformed);
        }
        match resume {
            Resume::Forward => match ipv4::Packet::new_checked(&buf[start..start + len]) {
                Ok(ip) => {
                    let len = ip.total_len();
                    self.forward_inner(b, buf, start, len)
                }
                Err(_) => Verdict::Drop(DropReason::InnerMalformed),
            },
            Resume::Forward6 => self.resume_forward6(b, buf, start, len),
            Resume::Encrypt { inside } => self.encrypt_to_peer(b, buf, start, len, inside),
            Resume::NatOutbound => {
                let Ok(ip) = ipv4::Packet::new_checked(&buf[start..start + len]) else {
                    return Verdict::Drop(DropReason::InnerMalformed);
                };
                let (len, dst) = (ip.total_len(), ip.dst_addr());
                let park = || Verdict::Park {
                    resume: Resume::NatOutbound,
                    start,
                    len,
                };
                match self.route_or_park(b, IpAddr::V4(dst), park) {
                    Ok(Resolution::Ready(hop)) => self.nat_and_send(b, buf, start, len, hop),
                    Ok(_) => Verdict::Drop(DropReason::NoRoute),
                    Err(parked) => parked,
                }
            }
            Resume::NatInbound => self.return_traffic(b, buf, start..start + len),
            Resume::Hairpin => self.hairpin(b, buf, start, len),
            Resume::NatOutbound6 => self.resume_nat_outbound6(b, buf, start, len),
            Resume::NatInbound6 => self
                .return_traffic6(b, buf, start..start + len)
                .unwrap_or_else(|| self.punt_to_host(&buf[start..start + len])),
            Resume::Hairpin6 => self.hairpin6(b, buf, start, len),
        }
    }

    /// Runs one frame through the pipeline. `buf` is the whole frame; the packet is
    /// `buf[start..start + len]`. One frame in [`crate::latency::SAMPLE_EVERY`] is
    /// timed, stage by stage.
    pub fn process(&mut self, b: &Batch<'_>, buf: &mut [u8], start: usize, len: usize) -> Verdict {
        self.timed = self.latency.sample();
        let since = self.clock();
        let verdict = self.process_frame(b, buf, start, len);
        self.lap(Stage::Frame, since);
        // Nothing of this frame's timing may leak into the next call (a parked frame's resume
        // is never timed).
        self.timed = false;
        self.forwarding_since = None;
        verdict
    }

    fn process_frame(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> Verdict {
        let Some(end) = start.checked_add(len).filter(|&e| e <= buf.len()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let Ok(frame) = ethernet::Frame::new_checked(&buf[start..end]) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if frame.ethertype() != ETHERTYPE_IPV4 {
            // The one branch IPv4 pays for an IPv6 underlay.
            if frame.ethertype() == ETHERTYPE_IPV6 {
                return self.outer_ipv6(b, buf, start, end);
            }
            return Verdict::Drop(DropReason::Unsupported);
        }
        let ip_start = start + ethernet::HEADER_LEN;
        let Ok(ip) = ipv4::Packet::new_checked(&buf[ip_start..end]) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let l4 = ip_start + ip.header_len();
        let ip_end = ip_start + ip.total_len();
        if ip.protocol() == ipv4::PROTO_UDP && !ip.is_fragment() && ip_end >= l4 + udp::HEADER_LEN {
            // The 8 header bytes are there (checked just above); the length field is checked
            // only for datagrams to the listen port, the rest is the NAT's.
            let dgram = udp::Packet::new_unchecked(&buf[l4..ip_end]);
            if dgram.dst_port() == self.cfg.listen_port {
                if dgram.check_len().is_err() {
                    return Verdict::Drop(DropReason::Malformed);
                }
                let src = SocketAddr::V4(SocketAddrV4::new(ip.src_addr(), dgram.src_port()));
                let msg = l4 + udp::HEADER_LEN..l4 + dgram.len();
                let local = IpAddr::V4(ip.dst_addr());
                return self.wireguard(b, buf, msg, (src, local), start);
            }
        }
        if self.nat.is_some() {
            // The LAN side of the NAT, before its reverse (here, not in `return_traffic`, so that
            // a packet handed over by another worker is not captured twice).
            self.counters.tap(CapturePoint::Nat, &buf[ip_start..ip_end]);
        }
        if self.stops_after(Step::Parse) {
            return Verdict::Consumed;
        }
        self.forwarding_since = self.clock();
        self.return_traffic(b, buf, ip_start..ip_end)
    }

    /// An Ethernet/IPv6 frame at `buf[start..end]`: NAT66 return traffic (`nat6.rs`, which
    /// leaves datagrams to the listen port alone), else WireGuard from a peer with an IPv6
    /// endpoint, which takes the same path as over IPv4.
    #[cold]
    fn outer_ipv6(&mut self, b: &Batch<'_>, buf: &mut [u8], start: usize, end: usize) -> Verdict {
        let ip_start = start + ethernet::HEADER_LEN;
        if let Some(v) = self.nat66_return(b, buf, ip_start..end) {
            return v;
        }
        match outer::parse_udp6(&buf[ip_start..end], self.cfg.listen_port) {
            Ok(Some(d)) => {
                let msg = ip_start + d.payload.start..ip_start + d.payload.end;
                let from = (SocketAddr::V6(d.src), IpAddr::V6(d.local));
                self.wireguard(b, buf, msg, from, start)
            }
            Ok(None) => Verdict::Drop(DropReason::Unsupported),
            Err(reason) => Verdict::Drop(reason),
        }
    }

    /// A datagram to the listen port, from `src` to our address `local`; the frame begins at
    /// `frame_start`. Inlined into its callers: called out of line, it began by copying the
    /// `SocketAddr` its caller had just stored in pieces, a load that waited on those stores
    /// (the largest item of its own time in the 64-byte profile).
    #[inline(always)]
    fn wireguard(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        msg: Range<usize>,
        (src, local): (SocketAddr, IpAddr),
        frame_start: usize,
    ) -> Verdict {
        let Some(&kind) = buf.get(msg.start) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        match kind {
            MSG_INITIATION | MSG_RESPONSE | MSG_COOKIE_REPLY => {
                // Each handshake message has one size: anything else is junk, dropped here
                // rather than taking a slot of the slow path's handshake lane.
                if handshake_len(kind) != Some(msg.len()) {
                    return Verdict::Drop(DropReason::HandshakeBadSize);
                }
                let Some(d) = HandshakeDatagram::new(src, &buf[msg]) else {
                    return Verdict::Drop(DropReason::HandshakeBadSize);
                };
                return match (kind, &b.tables.handshake_macs) {
                    // Cookie replies carry no mac1; the slow path finds their handshake by index.
                    (MSG_COOKIE_REPLY, _) | (_, None) => {
                        self.queue_for_slow_path(ToSlowPath::Handshake(d))
                    }
                    (_, Some(macs)) => self.screened_handshake(b, buf, d, macs, local, frame_start),
                };
            }
            MSG_TRANSPORT => {}
            _ => return Verdict::Drop(DropReason::Malformed),
        }
        let Some(receiver) = wire::wireguard::peek_receiver_index(&buf[msg.clone()]) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let Some(keypair) = b.tables.receivers.get(&receiver) else {
            return Verdict::Drop(DropReason::UnknownReceiver);
        };
        let msg_len = msg.len();
        if self.stops_after(Step::Parse) {
            return Verdict::Consumed;
        }
        // Decrypted straight to where the inner packet is transmitted from, behind the
        // Ethernet header `nat_and_send` (or `forward6`) writes at the frame's TX offset: the
        // AF_XDP edge then sends it without moving it. Never after the ciphertext (a frame
        // whose packet starts early, as in tests): there it is decrypted in place.
        let to = forward_plaintext_offset(ethernet::HEADER_LEN);
        let since = self.clock();
        let opened = keypair.open_held_at(b.now, buf, msg.clone(), to, &mut self.receiving);
        self.lap(Stage::Decrypt, since);
        if self.stops_after(Step::Decrypt) {
            return Verdict::Consumed;
        }
        let opened = match opened {
            Ok(o) => o,
            Err(e) => return Verdict::Drop(e.into()),
        };
        let peer = keypair.peer();
        let keepalive = opened.plaintext.is_empty();
        let route = b.tables.peers.get(&peer);
        self.tally.rx(b.tables, peer, msg_len, keepalive);
        if let Some(r) = route {
            // Roaming at once, for every worker's next seal (`roaming.rs`); the report below
            // tells the slow path, which publishes it.
            // `holds` first: the steady state, one read of the cell and no decoding.
            if !r.learned.holds(src)
                && r.send_to() != Some(src)
                && r.learned.offer(Recency::of(keypair, opened.counter), src)
            {
                WorkerCounters::add(&self.counters.endpoint_roamed, 1);
            }
        }
        if opened.unreported || opened.rekey || route.and_then(|r| r.endpoint) != Some(src) {
            // Key confirmation, rekeying and publishing a roam are the slow path's, and each
            // condition holds until the slow path acted on it, so a report lost on a full lane
            // is sent again by a later packet. Not by every one: the same report is repeated at
            // most once per REPORT_RETRY, so a fast stream does not fill the lane with copies while
            // the slow path gets to the first.
            let due = match self.last_report {
                Some((index, from, at)) => {
                    index != receiver || from != src || b.now.since(at) >= REPORT_RETRY
                }
                None => true,
            };
            if due
                && self.report(ToSlowPath::Authenticated {
                    peer,
                    index: receiver,
                    src,
                    keepalive,
                    rekey: opened.rekey,
                })
            {
                self.last_report = Some((receiver, src, b.now));
            }
        }
        if b.routes.resolution(src.ip()).is_none() {
            // Replies will go back to this endpoint: have its next hop ready before they do.
            self.routes.request(src.ip());
        }
        if keepalive {
            WorkerCounters::add(&self.counters.keepalives, 1);
            return Verdict::Consumed;
        }
        WorkerCounters::add(&self.counters.decrypted, 1);
        let (inner_start, inner_end) = (opened.plaintext.start, opened.plaintext.end);
        let plain = &buf[inner_start..inner_end];
        self.counters
            .tap(CapturePoint::Decrypted, &plain[..inner_len(plain)]);
        if self.stops_after(Step::PeerState) {
            return Verdict::Consumed;
        }
        match wire::ip_version(plain) {
            Some(4) => {}
            Some(6) => return self.tunnel_ipv6(b, buf, inner_start..inner_end, peer),
            _ => return Verdict::Drop(DropReason::InnerMalformed),
        }
        let Ok(inner) = ipv4::Packet::new_checked(plain) else {
            return Verdict::Drop(DropReason::InnerMalformed);
        };
        // The check upstream boringtun gets wrong: the inner source must map to the very peer
        // whose key authenticated the packet, not merely to some peer.
        if !b
            .tables
            .allowed_ips
            .source_allowed(IpAddr::V4(inner.src_addr()), &peer)
        {
            return Verdict::Drop(DropReason::SourceNotAllowed);
        }
        let inner_len = inner.total_len();
        if self.stops_after(Step::AllowedIps) {
            return Verdict::Consumed;
        }
        self.forwarding_since = self.clock();
        self.forward_inner(b, buf, inner_start, inner_len)
    }

    /// A decrypted, source-checked IPv4 packet at `buf[start..start + len]`: to the host, or
    /// routed out.
    fn forward_inner(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> Verdict {
        let end = start + len;
        let Ok(ip) = ipv4::Packet::new_checked(&buf[start..end]) else {
            return Verdict::Drop(DropReason::InnerMalformed);
        };
        let (dst, dont_frag) = (ip.dst_addr(), ip.dont_frag());
        if self.cfg.host_addrs.contains(&dst) || dst.is_broadcast() || dst.is_multicast() {
            // The kernel's own services; it does not forward these.
            return self.punt_to_host(&buf[start..end]);
        }
        if ip.is_fragment() && !self.cfg.masquerade {
            // Without NAT the kernel may forward fragments as they are (its own policy). With
            // NAT on, nothing to be forwarded goes to the kernel: it would leave with the
            // tunnel source address. IP options are forwarded here either way (the NAT reads
            // the header length).
            return self.punt_to_host(&buf[start..end]);
        }
        let park = || Verdict::Park {
            resume: Resume::Forward,
            start,
            len,
        };
        let hop = match self.route_or_park(b, IpAddr::V4(dst), park) {
            Ok(Resolution::Ready(hop)) => hop,
            Ok(Resolution::Local) => return self.punt_to_host(&buf[start..end]),
            Ok(Resolution::NotEthernet { .. }) if self.cfg.masquerade => {
                // The kernel would forward it untranslated.
                return Verdict::Drop(DropReason::NatNotEthernet);
            }
            Ok(Resolution::NotEthernet { .. }) => return self.punt_to_host(&buf[start..end]),
            Ok(_) => return Verdict::Drop(DropReason::NoRoute),
            Err(parked) => return parked,
        };
        if len > hop.mtu as usize {
            if !dont_frag {
                // The kernel would fragment; the fast path does not, and the kernel cannot
                // take a packet back from AF_XDP. Counted; DF senders get PMTU feedback.
                return Verdict::Drop(DropReason::TooBig);
            }
            let mtu = u16::try_from(hop.mtu).unwrap_or(u16::MAX);
            return self.icmp_into_tunnel(
                b,
                buf,
                start,
                end,
                IcmpError::FragmentationNeeded { mtu },
            );
        }
        if !decrement_ttl(&mut buf[start..end]) {
            return self.icmp_into_tunnel(b, buf, start, end, IcmpError::TimeExceeded);
        }
        if self.stops_after(Step::Route) {
            return Verdict::Consumed;
        }
        self.nat_and_send(b, buf, start, len, hop)
    }

    /// Source NAT (when on) and the Ethernet header towards `hop` for the forwarded packet at
    /// `buf[start..start + len]` (TTL already decremented).
    fn nat_and_send(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        len: usize,
        hop: NextHop,
    ) -> Verdict {
        let end = start + len;
        self.complete_checksum(&mut buf[start..end]);
        if self.cfg.masquerade {
            let Some(nat) = self.nat.as_mut() else {
                return Verdict::Drop(DropReason::NatUnavailable);
            };
            match nat.translate_outbound(b.now.as_nanos(), &mut buf[start..end]) {
                Ok(Outbound::Forward) => {}
                Ok(Outbound::Hairpin { owner }) if owner == nat.worker() => {
                    // An inside host reaching another through the egress address (RFC 4787
                    // REQ-9): back through the reverse translation and into the tunnel.
                    return self.hairpin(b, buf, start, len);
                }
                Ok(Outbound::Hairpin { owner }) => {
                    let resume = Resume::Hairpin;
                    return Verdict::Handoff {
                        owner,
                        resume,
                        start,
                        len,
                    };
                }
                Ok(Outbound::Handoff { owner }) => {
                    let resume = Resume::NatOutbound;
                    return Verdict::Handoff {
                        owner,
                        resume,
                        start,
                        len,
                    };
                }
                Ok(Outbound::Local) => return self.punt_to_host(&buf[start..end]),
                // Protocols it does not translate included: handing them to the kernel would
                // forward them with the tunnel source address.
                Err(e) => return Verdict::Drop(e.into()),
            }
        }
        if self.stops_after(Step::Nat) {
            return Verdict::Consumed;
        }
        // The LAN side: what leaves towards the server (source translated when NAT is on).
        self.counters.tap(CapturePoint::Nat, &buf[start..end]);
        let eth = start - ethernet::HEADER_LEN;
        if ethernet::write_header(
            &mut buf[eth..],
            hop.dst_mac.0,
            hop.src_mac.0,
            ETHERTYPE_IPV4,
        )
        .is_err()
        {
            return Verdict::Drop(DropReason::TooBig);
        }
        if self.stops_after(Step::TxHeader) {
            return Verdict::Consumed;
        }
        self.forwarding_done();
        Verdict::Tx {
            ifindex: hop.ifindex,
            start: eth,
            len: ethernet::HEADER_LEN + len,
        }
    }

    /// A hairpinned packet whose destination port this worker owns: reverse translation, then
    /// into the tunnel.
    fn hairpin(&mut self, b: &Batch<'_>, buf: &mut [u8], start: usize, len: usize) -> Verdict {
        let Some(nat) = self.nat.as_mut() else {
            return Verdict::Drop(DropReason::NatUnavailable);
        };
        match nat.translate_inbound(b.now.as_nanos(), &mut buf[start..start + len]) {
            Ok(Inbound::Deliver { inside }) => self.encrypt_to_peer(b, buf, start, len, inside),
            Ok(_) => Verdict::Drop(DropReason::Handoff),
            Err(e) => Verdict::Drop(e.into()),
        }
    }

    /// Answers a packet from the tunnel that cannot be forwarded with the ICMP error `kind`,
    /// written over it in the same frame and sealed back to its sender (RFC 1812 §4.3.2).
    fn icmp_into_tunnel(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        end: usize,
        kind: IcmpError,
    ) -> Verdict {
        let reason = match kind {
            IcmpError::TimeExceeded => DropReason::TtlExceeded,
            _ => DropReason::TooBig,
        };
        let mut quoted = [0u8; QUOTE_LEN];
        let q = (end - start).min(QUOTE_LEN);
        quoted[..q].copy_from_slice(&buf[start..start + q]);
        let Some(n) = icmp_error(&mut buf[start..], self.cfg.tunnel_addr, &quoted[..q], kind)
        else {
            return Verdict::Drop(reason);
        };
        // The error goes back to the quoted packet's source.
        let dst = ipv4::Packet::new_unchecked(&quoted[..]).src_addr();
        // Only errors that are written spend tokens.
        if !self.icmp_allowed(b, dst) {
            return Verdict::Drop(reason);
        }
        match self.encrypt_to_peer(b, buf, start, n, dst) {
            Verdict::Drop(_) => Verdict::Drop(reason),
            v => v,
        }
    }

    /// Whether an ICMP error to `dst` may be sent now; counts the ones that may not.
    fn icmp_allowed(&mut self, b: &Batch<'_>, dst: impl Into<IpAddr>) -> bool {
        let allowed = self.icmp_limit.allow(b.now.as_nanos(), dst);
        if !allowed {
            WorkerCounters::add(&self.counters.icmp_ratelimited, 1);
        }
        allowed
    }

    /// Answers a packet from the LAN side that cannot go into the tunnel with the ICMP error
    /// `kind`, written at `ip_start` in the same frame (over the packet) and routed back to its
    /// sender. `quoted` is the start of the packet as the sender sent it.
    fn icmp_to_lan(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        ip_start: usize,
        quoted: &[u8],
        kind: IcmpError,
        reason: DropReason,
    ) -> Verdict {
        if quoted.len() < ipv4::HEADER_LEN {
            return Verdict::Drop(reason);
        }
        // The error goes back to the quoted packet's source.
        let dst = ipv4::Packet::new_unchecked(quoted).src_addr();
        let Some(Resolution::Ready(hop)) = b.routes.resolution(IpAddr::V4(dst)).copied() else {
            self.routes.request(IpAddr::V4(dst));
            return Verdict::Drop(reason);
        };
        let Some(IpAddr::V4(router)) = hop.src_addr else {
            return Verdict::Drop(reason);
        };
        // Last, so that only errors that would leave spend tokens.
        if !self.icmp_allowed(b, dst) {
            return Verdict::Drop(reason);
        }
        let Some(n) = icmp_error(&mut buf[ip_start..], router, quoted, kind) else {
            return Verdict::Drop(reason);
        };
        let eth = ip_start - ethernet::HEADER_LEN;
        if ethernet::write_header(
            &mut buf[eth..],
            hop.dst_mac.0,
            hop.src_mac.0,
            ETHERTYPE_IPV4,
        )
        .is_err()
        {
            return Verdict::Drop(reason);
        }
        Verdict::Tx {
            ifindex: hop.ifindex,
            start: eth,
            len: ethernet::HEADER_LEN + n,
        }
    }

    /// Traffic that is not for the listen port: NAT return traffic, reversed and sent into the
    /// tunnel; anything else the XDP program redirected goes to the kernel through wg0.
    fn return_traffic(&mut self, b: &Batch<'_>, buf: &mut [u8], ip: Range<usize>) -> Verdict {
        if self.nat.is_none() {
            return Verdict::Drop(DropReason::NotForUs);
        }
        // Larger than the tunnel carries, DF set: path MTU discovery for the LAN sender, but
        // only once the NAT says the packet would be delivered (anything else would answer
        // spoofed packets to unmapped ports), quoting it as it was sent (before the reverse).
        let too_big = ip.len() > self.cfg.mtu
            && ip.len() >= ipv4::HEADER_LEN
            && ipv4::Packet::new_unchecked(&buf[ip.clone()]).dont_frag();
        // The quote lives in the pipeline, written only for a packet that is too big: zeroing a
        // stack copy for every return packet showed in the 64-byte figures.
        let q = ip.len().min(QUOTE_LEN);
        if too_big {
            self.quote[..q].copy_from_slice(&buf[ip.start..ip.start + q]);
        }
        self.complete_checksum(&mut buf[ip.clone()]);
        let Some(nat) = self.nat.as_mut() else {
            return Verdict::Drop(DropReason::NotForUs);
        };
        match nat.translate_inbound(b.now.as_nanos(), &mut buf[ip.clone()]) {
            Ok(Inbound::Deliver { .. }) if too_big => {
                let mtu = u16::try_from(self.cfg.mtu).unwrap_or(u16::MAX);
                let kind = IcmpError::FragmentationNeeded { mtu };
                let quoted = self.quote;
                self.icmp_to_lan(b, buf, ip.start, &quoted[..q], kind, DropReason::TooBig)
            }
            Ok(Inbound::Deliver { inside }) => {
                // Routed from the LAN into the tunnel: a hop like any other.
                if !decrement_ttl(&mut buf[ip.clone()]) {
                    return Verdict::Drop(DropReason::TtlExceeded);
                }
                if self.stops_after(Step::NatReverse) {
                    return Verdict::Consumed;
                }
                self.encrypt_to_peer(b, buf, ip.start, ip.len(), inside)
            }
            Ok(Inbound::Handoff { owner }) => Verdict::Handoff {
                owner,
                resume: Resume::NatInbound,
                start: ip.start,
                len: ip.len(),
            },
            Ok(Inbound::NotNat) => self.punt_to_host(&buf[ip]),
            Err(e) => Verdict::Drop(e.into()),
        }
    }

    /// Seals the IP packet at `buf[start..start + len]` for the peer owning `inside` and
    /// writes the outer Ethernet, IP (the endpoint's family) and UDP headers in the headroom
    /// in front of it.
    fn encrypt_to_peer(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        len: usize,
        inside: impl Into<IpAddr>,
    ) -> Verdict {
        let inside = inside.into();
        let Some(&peer) = b.tables.allowed_ips.lookup(inside) else {
            return Verdict::Drop(DropReason::NoPeer);
        };
        let Some(route) = b.tables.peers.get(&peer) else {
            return Verdict::Drop(DropReason::NoPeer);
        };
        let Some(keypair) = route.sending.as_ref() else {
            self.request_handshake(peer, b.now);
            return Verdict::Drop(DropReason::NoKeypair);
        };
        let Some(endpoint) = route.send_to() else {
            return Verdict::Drop(DropReason::NoEndpoint);
        };
        if len > self.cfg.mtu {
            // IPv6 is never fragmented on the way (RFC 8200 §5): the sender was to be told.
            let IpAddr::V4(inside) = inside else {
                return Verdict::Drop(DropReason::TooBig);
            };
            // What the kernel does forwarding into wg0: fragments, unless DF asks for
            // "fragmentation needed" (sent already on the way here, where it applies).
            let dont_frag = ipv4::Packet::new_checked(&buf[start..start + len])
                .map_or(true, |ip| ip.dont_frag());
            if dont_frag {
                return Verdict::Drop(DropReason::TooBig);
            }
            return Verdict::Fragment { inside, start, len };
        }
        let park = || Verdict::Park {
            resume: Resume::Encrypt { inside },
            start,
            len,
        };
        let hop = match self.route_or_park(b, endpoint.ip(), park) {
            Ok(Resolution::Ready(hop)) => hop,
            Ok(_) => return Verdict::Drop(DropReason::NoRoute),
            Err(parked) => return parked,
        };
        // The route's source is of the endpoint's family (the kernel picked it for that
        // destination); without one there is nothing to send from.
        let Some(src) = hop.src_addr.filter(|s| s.is_ipv4() == endpoint.is_ipv4()) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let Some(msg_start) = start.checked_sub(TRANSPORT_HEADER_LEN) else {
            return Verdict::Drop(DropReason::TooBig);
        };
        let outer_len = outer::header_len(&endpoint);
        let Some(frame_start) = msg_start.checked_sub(outer_len) else {
            return Verdict::Drop(DropReason::TooBig);
        };
        if msg_start + sealed_len(len, self.cfg.mtu) > buf.len() {
            return Verdict::Drop(DropReason::TooBig);
        }
        if self.stops_after(Step::PeerLookup) {
            return Verdict::Consumed;
        }
        self.forwarding_done();
        // The reply as wg0 would show it, just before it is sealed.
        self.counters
            .tap(CapturePoint::Decrypted, &buf[start..start + len]);
        let since = self.clock();
        let sealed = match keypair.seal_held(
            b.now,
            &mut buf[msg_start..],
            len,
            self.cfg.mtu,
            &mut self.sending,
        ) {
            Ok(s) => s,
            Err(_) => {
                self.request_handshake(peer, b.now);
                return Verdict::Drop(DropReason::EncryptFailed);
            }
        };
        if sealed.rekey {
            self.request_handshake(peer, b.now);
        }
        if self.stops_after(Step::Seal) {
            return Verdict::Consumed;
        }
        if self
            .write_outer(buf, frame_start, &hop, (src, endpoint), sealed.len)
            .is_none()
        {
            return Verdict::Drop(DropReason::TooBig);
        }
        self.lap(Stage::Encrypt, since);
        self.tally.tx(b.tables, peer, sealed.len);
        WorkerCounters::add(&self.counters.encrypted, 1);
        if self.stops_after(Step::OuterHeaders) {
            return Verdict::Consumed;
        }
        let len = outer_len + sealed.len;
        if endpoint.is_ipv6() && len - ethernet::HEADER_LEN > hop.mtu as usize {
            // No router on the way fragments IPv6 (RFC 8200 §5): cut at the source to the path
            // MTU, as the kernel cuts kernel WireGuard's datagrams.
            return Verdict::FragmentOuter6 {
                ifindex: hop.ifindex,
                start: frame_start,
                len,
                mtu: hop.mtu,
            };
        }
        Verdict::Tx {
            ifindex: hop.ifindex,
            start: frame_start,
            len,
        }
    }

    /// How the sealed frame of a [`Verdict::FragmentOuter6`] (`frame`, Ethernet first) is cut
    /// for `mtu`, with this worker's next fragment identification; counts it
    /// (`outer_fragmented_ipv6`) when it can be.
    pub fn outer_fragmenter6(
        &mut self,
        frame: &[u8],
        mtu: u32,
    ) -> Result<Fragmenter6, Fragment6Error> {
        let ip = frame
            .get(ethernet::HEADER_LEN..)
            .ok_or(Fragment6Error::Malformed)?;
        // One counter per worker from a random start: unpredictable to others, and not reused
        // before 2^32 fragmented packets (RFC 7739 asks no more of a source).
        let ident = self.outer_frag_id.wrapping_add(1);
        let plan = Fragmenter6::new(ip, mtu as usize, ident)?;
        self.outer_frag_id = ident;
        WorkerCounters::add(&self.counters.outer_fragmented_ipv6, 1);
        Ok(plan)
    }

    /// Writes fragment `i` of the sealed frame `frame` (planned by
    /// [`Pipeline::outer_fragmenter6`]) into the empty frame `out`, where a received frame
    /// would be, behind the same Ethernet header: the verdict to send it on `ifindex`.
    pub fn write_outer_fragment6(
        &self,
        frame: &[u8],
        plan: &Fragmenter6,
        i: usize,
        out: &mut [u8],
        ifindex: u32,
    ) -> Verdict {
        let eth = ethernet::HEADER_LEN;
        let (Some(header), Some(ip)) = (frame.get(..eth), frame.get(eth..)) else {
            return Verdict::Drop(DropReason::TooBig);
        };
        let Some(dst) = out.get_mut(RX_OFFSET..) else {
            return Verdict::Drop(DropReason::TooBig);
        };
        let Some(len) = dst.get_mut(eth..).and_then(|o| plan.write(ip, i, o)) else {
            return Verdict::Drop(DropReason::TooBig);
        };
        dst[..eth].copy_from_slice(header);
        Verdict::Tx {
            ifindex,
            start: RX_OFFSET,
            len: eth + len,
        }
    }

    /// How the packet of a [`Verdict::Fragment`] is cut for the tunnel MTU; counts it
    /// (`fragmented_into_tunnel`) when it can be.
    pub fn fragmenter(&self, packet: &[u8]) -> Result<Fragmenter, FragmentError> {
        let plan = Fragmenter::new(packet, self.cfg.mtu)?;
        WorkerCounters::add(&self.counters.fragmented_into_tunnel, 1);
        Ok(plan)
    }

    /// Writes fragment `i` of `packet` (planned by [`Pipeline::fragmenter`]) into the empty
    /// frame `out`, where a received packet would be, and seals it for `inside` like any
    /// return packet (its verdict is never another `Fragment`).
    pub fn encrypt_fragment(
        &mut self,
        b: &Batch<'_>,
        packet: &[u8],
        plan: &Fragmenter,
        i: usize,
        out: &mut [u8],
        inside: Ipv4Addr,
    ) -> Verdict {
        let start = RX_OFFSET + ethernet::HEADER_LEN;
        let Some(len) = out.get_mut(start..).and_then(|o| plan.write(packet, i, o)) else {
            return Verdict::Drop(DropReason::TooBig);
        };
        match self.encrypt_to_peer(b, out, start, len, inside) {
            Verdict::Fragment { .. } => Verdict::Drop(DropReason::TooBig),
            v => v,
        }
    }

    /// Writes the outer Ethernet, IP and UDP headers (from `src` and the listen port to `to`)
    /// at `frame_start`, in front of the `payload_len`-byte WireGuard message already at
    /// `frame_start + outer::header_len(to)`: over IPv4 with a fresh IP ID and DF clear as
    /// kernel WireGuard sends them, over IPv6 with the UDP checksum. `None` when they do not
    /// fit, or `src` is not of `to`'s family (a route's source never is).
    #[inline]
    fn write_outer(
        &mut self,
        buf: &mut [u8],
        frame_start: usize,
        hop: &NextHop,
        (src, to): (IpAddr, SocketAddr),
        payload_len: usize,
    ) -> Option<()> {
        let ip = buf.get_mut(frame_start + ethernet::HEADER_LEN..)?;
        let ethertype = match (src, to) {
            (IpAddr::V4(src), SocketAddr::V4(to)) => {
                self.outer_ip_id = self.outer_ip_id.wrapping_add(1);
                write_ipv4_udp(
                    ip,
                    (src, *to.ip()),
                    (self.cfg.listen_port, to.port()),
                    self.outer_ip_id,
                    payload_len,
                )?;
                ETHERTYPE_IPV4
            }
            (IpAddr::V6(src), SocketAddr::V6(to)) => {
                write_ipv6_udp(
                    ip,
                    (src, *to.ip()),
                    (self.cfg.listen_port, to.port()),
                    payload_len,
                )?;
                ETHERTYPE_IPV6
            }
            _ => return None,
        };
        ethernet::write_header(
            buf.get_mut(frame_start..)?,
            hop.dst_mac.0,
            hop.src_mac.0,
            ethertype,
        )
        .ok()
    }

    /// What the route cache knows of `dst` for a packet that can wait: `Ok` with the
    /// resolution once it is known (`Ready`, or why it is not forwardable), `Err(park)` while
    /// the kernel resolves it. The kernel is asked on the first miss; a destination already
    /// `Resolving` has been asked.
    ///
    /// `park` builds the verdict only for a packet that waits: built on every call, the
    /// `Verdict` (with the return packet's inside address) went through the stack in pieces
    /// that later whole-word copies waited on (the reverse peer-lookup step's largest item in
    /// the 64-byte profile).
    #[inline]
    fn route_or_park(
        &self,
        b: &Batch<'_>,
        dst: IpAddr,
        park: impl FnOnce() -> Verdict,
    ) -> Result<Resolution, Verdict> {
        match b.routes.resolution(dst) {
            Some(Resolution::Resolving { .. }) => Err(park()),
            Some(known) => Ok(*known),
            None => {
                self.routes.request(dst);
                Err(park())
            }
        }
    }

    /// Completes a TCP/UDP checksum its sender left partial (tx offload, as on Docker's veths)
    /// before the NAT updates it incrementally and it leaves: the receiver would drop it.
    #[inline]
    fn complete_checksum(&self, packet: &mut [u8]) {
        if wire::partial::complete_partial_ipv4(packet) {
            WorkerCounters::add(&self.counters.csum_completed, 1);
        }
    }

    /// An initiation or response `d` (a copy of the frame's message) after its macs were
    /// checked with `macs`: dropped (mac1 invalid), queued on the mac2 lane (mac2 valid), or
    /// queued on the handshake lane; under load answered with a cookie reply instead, written
    /// over the frame from `frame_start` and sent back to its source (whitepaper §5.4.7).
    fn screened_handshake(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        d: HandshakeDatagram,
        macs: &wgproto::cookie::CookieChecker,
        local: IpAddr,
        frame_start: usize,
    ) -> Verdict {
        match screen(macs, d.bytes(), d.src, b.now) {
            Screened::BadMac1 => Verdict::Drop(DropReason::HandshakeBadMac1),
            Screened::Mac2Valid => {
                let v = self.queue_for_slow_path(ToSlowPath::Mac2Handshake(d));
                if v == Verdict::Consumed {
                    WorkerCounters::add(&self.counters.handshakes_mac2, 1);
                }
                v
            }
            Screened::NoMac2 if self.slow.under_load(b.now) => {
                // A table full of sources (a flood from spoofed addresses) does not refuse
                // replies: they are smaller than what they answer, and refusing would refuse
                // genuine senders with it.
                if self.cookie_limit.allow(d.src.ip(), b.now) == Err(RateLimitError::RateExceeded) {
                    return Verdict::Drop(DropReason::HandshakeCookieRateLimited);
                }
                match self.cookie_reply(b, buf, &d, macs, local, frame_start) {
                    Some(v) => v,
                    // No route known yet (asked of the kernel) or no fresh secret: the slow
                    // path answers through the kernel's socket, if its lane has room.
                    None => self.queue_for_slow_path(ToSlowPath::Handshake(d)),
                }
            }
            Screened::NoMac2 => self.queue_for_slow_path(ToSlowPath::Handshake(d)),
        }
    }

    /// Writes the cookie reply to `d` into the frame (Ethernet, IP from `local`, UDP from the
    /// listen port, 64 bytes) towards `d.src`; `None` when the route to it is not ready or the
    /// published secret expired.
    fn cookie_reply(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        d: &HandshakeDatagram,
        macs: &wgproto::cookie::CookieChecker,
        local: IpAddr,
        frame_start: usize,
    ) -> Option<Verdict> {
        let dst = d.src;
        let hop = match b.routes.resolution(dst.ip()) {
            Some(Resolution::Ready(hop)) => *hop,
            Some(_) => return None,
            None => {
                self.routes.request(dst.ip());
                return None;
            }
        };
        let reply = self
            .cookie_nonces
            .reply(macs, d.bytes(), d.src, b.now)
            .ok()?;
        let outer_len = outer::header_len(&dst);
        let payload = frame_start + outer_len;
        buf.get_mut(payload..payload + reply.len())?
            .copy_from_slice(&reply);
        self.write_outer(buf, frame_start, &hop, (local, dst), reply.len())?;
        WorkerCounters::add(&self.counters.cookie_replies, 1);
        Some(Verdict::Tx {
            ifindex: hop.ifindex,
            start: frame_start,
            len: outer_len + reply.len(),
        })
    }

    /// Copies a packet for the host to the slow path, which writes it into wg0.
    fn punt_to_host(&mut self, packet: &[u8]) -> Verdict {
        match HostPacket::new(packet) {
            Some(p) => self.queue_for_slow_path(ToSlowPath::ForHost(p)),
            None => Verdict::Drop(DropReason::TooBig),
        }
    }

    /// Hands a frame's content to the slow path; a full lane drops the frame, counted by lane.
    fn queue_for_slow_path(&mut self, msg: ToSlowPath) -> Verdict {
        match self.slow.try_send(msg) {
            Ok(()) => {
                WorkerCounters::add(&self.counters.to_slowpath, 1);
                Verdict::Consumed
            }
            Err(Lane::Handshake) => Verdict::Drop(DropReason::HandshakeQueueFull),
            Err(Lane::Mac2) => Verdict::Drop(DropReason::HandshakeMac2QueueFull),
            Err(Lane::Event) => Verdict::Drop(DropReason::SlowPathFull),
        }
    }

    /// Asks the slow path for a handshake with `peer` (no usable sending keypair, or it is due
    /// for a rekey). Every packet to the peer asks while the condition holds; the same request
    /// is queued at most once per REPORT_RETRY, or a stream of replies would fill the event
    /// lane with copies (the device sends one initiation per REKEY_TIMEOUT anyway).
    fn request_handshake(&mut self, peer: PeerId, now: Timestamp) {
        if self
            .last_handshake_request
            .is_some_and(|(p, at)| p == peer && now.since(at) < REPORT_RETRY)
        {
            return;
        }
        if self.report(ToSlowPath::HandshakeNeeded { peer }) {
            self.last_handshake_request = Some((peer, now));
        }
    }

    /// Tells the slow path about an event (the frame goes on regardless); whether it was
    /// queued. A full event lane loses the report, counted in `events_lost`; the next packet
    /// that gives rise to the same event reports it again.
    fn report(&mut self, event: ToSlowPath) -> bool {
        let queued = self.slow.try_send(event).is_ok();
        if !queued {
            WorkerCounters::add(&self.counters.events_lost, 1);
        }
        queued
    }
}
