//! IPv6 from the tunnel, routed: what a worker does with a decrypted IPv6 packet, as an IPv6
//! router would (RFC 8200 §3, RFC 4443), without the kernel in the path.
//!
//! ```text
//! decrypted IPv6 -> inner source must belong to that peer
//!   -> for the host: its own addresses, fe80::/10, ff00::/8, Hop-by-Hop options  -> wg0
//!   -> other extension headers (fragments included)                             -> wg0
//!   -> route (the kernel's IPv6 table, NDP next hop; parked while resolving)
//!   -> hop limit 1 or 0: ICMPv6 time exceeded back into the tunnel
//!   -> larger than the next hop's MTU: ICMPv6 packet too big back into the tunnel
//!   -> hop limit - 1 -> [source NAT, when on: `send6`] -> Ethernet (0x86DD) -> wire-out
//! ```
//!
//! Return traffic comes back through the kernel, as routed IPv4 does: the LAN routes the
//! tunnel prefix to the gateway, the gateway's kernel routes it into wg0 (whose address covers
//! the prefix), and the slow path seals what it reads from wg0. Nothing here translates
//! addresses; with IPv6 the tunnel prefix is routed (README, "IPv6 inside the tunnel").

use std::net::{IpAddr, Ipv6Addr};
use std::ops::Range;

use super::{Batch, Pipeline, Resume, Verdict};
use crate::capture::CapturePoint;
use crate::counters::{DropReason, WorkerCounters};
use crate::icmp6::Icmp6Error;
use crate::route::{NextHop, Resolution};
use crate::stage_cycles::Step;
use wgproto::peer::PeerId;
use wire::ethernet::{self, ETHERTYPE_IPV6};
use wire::ipv6;

/// Whether a decrypted packet to `dst` is the host's business rather than to be routed:
/// link-local and multicast destinations are never forwarded (RFC 4291 §2.5.6, §2.7; the
/// kernel answers neighbour discovery and multicast listener queries on wg0).
fn for_the_host(host_addrs: &[Ipv6Addr], dst: Ipv6Addr) -> bool {
    host_addrs.contains(&dst)
        || ipv6::is_link_local(dst)
        || dst.is_multicast()
        || dst.is_unspecified()
        || dst.is_loopback()
}

impl Pipeline {
    /// A decrypted IPv6 packet (and WireGuard's padding after it) at `buf[plain]`, sent by
    /// `peer`: source check, then [`Pipeline::forward_inner6`].
    pub(super) fn tunnel_ipv6(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        plain: Range<usize>,
        peer: PeerId,
    ) -> Verdict {
        let Ok(ip) = ipv6::Packet::new_checked(&buf[plain.clone()]) else {
            return Verdict::Drop(DropReason::InnerMalformed);
        };
        // As for IPv4: the source must map to the very peer whose key opened the packet.
        if !b
            .tables
            .allowed_ips
            .source_allowed(IpAddr::V6(ip.src_addr()), &peer)
        {
            return Verdict::Drop(DropReason::SourceNotAllowed);
        }
        let len = ip.total_len();
        if self.stops_after(Step::AllowedIps) {
            return Verdict::Consumed;
        }
        self.forwarding_since = self.clock();
        self.forward_inner6(b, buf, plain.start, len)
    }

    /// A parked IPv6 packet whose route may be known now.
    pub(super) fn resume_forward6(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> Verdict {
        match ipv6::Packet::new_checked(&buf[start..start + len]) {
            Ok(ip) => {
                let len = ip.total_len();
                self.forward_inner6(b, buf, start, len)
            }
            Err(_) => Verdict::Drop(DropReason::InnerMalformed),
        }
    }

    /// A decrypted, source-checked IPv6 packet at `buf[start..start + len]` (exactly its
    /// length): to the host, or routed out.
    fn forward_inner6(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> Verdict {
        let end = start + len;
        let Ok(ip) = ipv6::Packet::new_checked(&buf[start..end]) else {
            return Verdict::Drop(DropReason::InnerMalformed);
        };
        let (src, dst, next) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
        // Hop-by-Hop options are for every node on the path, this one included (RFC 8200
        // §4.3): the kernel reads them (and forwards the packet, when it is not its own).
        if for_the_host(&self.cfg.host_addrs6, dst) || next == ipv6::NEXT_HOP_BY_HOP {
            return self.punt_to_host(&buf[start..end]);
        }
        // A link-local source may not leave its link (RFC 4291 §2.5.6): the kernel answers
        // with destination unreachable, "beyond scope of source address".
        if ipv6::is_link_local(src) {
            return self.punt_to_host(&buf[start..end]);
        }
        // Other extension headers (fragments, routing headers, destination options) go to
        // the kernel, which forwards them as they are: as IPv4 fragments without NAT do. The
        // fast path would have to walk them to find the upper layer a NAT translates.
        if ipv6::is_extension_header(next) {
            if self.nat6.is_some() {
                // With NAT66 on, the kernel would forward it with the tunnel source address.
                return Verdict::Drop(DropReason::NatIpv6ExtensionHeader);
            }
            return self.punt_to_host(&buf[start..end]);
        }
        let park = || Verdict::Park {
            resume: Resume::Forward6,
            start,
            len,
        };
        let hop = match self.route_or_park(b, IpAddr::V6(dst), park) {
            Ok(Resolution::Ready(hop)) => hop,
            Ok(Resolution::Local) => return self.punt_to_host(&buf[start..end]),
            // Back into wg0 (one client to another) or out of another non-Ethernet link: the
            // kernel's.
            Ok(Resolution::NotEthernet { .. }) if self.nat6.is_some() => {
                // The kernel would forward it untranslated.
                return Verdict::Drop(DropReason::NatNotEthernet);
            }
            Ok(Resolution::NotEthernet { .. }) => return self.punt_to_host(&buf[start..end]),
            Ok(_) => return Verdict::Drop(DropReason::NoRoute),
            Err(parked) => return parked,
        };
        // The hop limit first, as Linux's ip6_forward checks it before the MTU.
        if ip.hop_limit() <= 1 {
            return self.icmp6_into_tunnel(b, buf, start..end, Icmp6Error::HopLimitExceeded);
        }
        if len > hop.mtu as usize {
            // Routers never fragment IPv6 (RFC 8200 §5): the sender learns the path MTU.
            let kind = Icmp6Error::PacketTooBig { mtu: hop.mtu };
            return self.icmp6_into_tunnel(b, buf, start..end, kind);
        }
        if !ipv6::Packet::new_unchecked(&mut buf[start..end]).decrement_hop_limit() {
            return Verdict::Drop(DropReason::HopLimitExceeded);
        }
        if self.stops_after(Step::Route) {
            return Verdict::Consumed;
        }
        self.send6(b, buf, start, len, hop)
    }

    /// The Ethernet header towards `hop` for the forwarded IPv6 packet at
    /// `buf[start..start + len]` (hop limit already decremented), and out. The one place where
    /// IPv6 source NAT (when on, `nat6.rs`) translates the packet, after routing as for IPv4
    /// (`nat_and_send`); routed, nothing is translated.
    pub(super) fn send6(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        len: usize,
        hop: NextHop,
    ) -> Verdict {
        let end = start + len;
        if let Some(v) = self.nat66_outbound(b, buf, start, len) {
            return v;
        }
        if self.stops_after(Step::Nat) {
            return Verdict::Consumed;
        }
        // The LAN side: what leaves towards the server.
        self.counters.tap(CapturePoint::Nat, &buf[start..end]);
        let Some(eth) = start.checked_sub(ethernet::HEADER_LEN) else {
            return Verdict::Drop(DropReason::TooBig);
        };
        if ethernet::write_header(
            &mut buf[eth..],
            hop.dst_mac.0,
            hop.src_mac.0,
            ETHERTYPE_IPV6,
        )
        .is_err()
        {
            return Verdict::Drop(DropReason::TooBig);
        }
        if self.stops_after(Step::TxHeader) {
            return Verdict::Consumed;
        }
        self.forwarding_done();
        WorkerCounters::add(&self.counters.forwarded_ipv6, 1);
        Verdict::Tx {
            ifindex: hop.ifindex,
            start: eth,
            len: ethernet::HEADER_LEN + len,
        }
    }

    /// Answers the IPv6 packet at `buf[packet]`, which came from the tunnel and cannot be
    /// forwarded, with the ICMPv6 error `kind` from the gateway's tunnel address, written in
    /// front of it (the packet is the quote) and sealed back to its sender.
    fn icmp6_into_tunnel(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        packet: Range<usize>,
        kind: Icmp6Error,
    ) -> Verdict {
        let reason = match kind {
            Icmp6Error::HopLimitExceeded => DropReason::HopLimitExceeded,
            Icmp6Error::PacketTooBig { .. } => DropReason::TooBig,
        };
        let Some(router) = self.cfg.tunnel_addr6 else {
            return Verdict::Drop(reason);
        };
        // The error goes back to the packet's source (checked: one of the sender's addresses).
        let dst = ipv6::Packet::new_unchecked(&buf[packet.clone()]).src_addr();
        // The whole error must go through the tunnel in one piece.
        let mtu = self.cfg.mtu;
        let Some(error) = self.icmp6_error_step(b, buf, packet, router, kind, mtu) else {
            return Verdict::Drop(reason);
        };
        match self.encrypt_to_peer(b, buf, error.start, error.len(), dst) {
            Verdict::Drop(_) => Verdict::Drop(reason),
            v => {
                let sent = match kind {
                    Icmp6Error::HopLimitExceeded => &self.counters.icmpv6_time_exceeded,
                    Icmp6Error::PacketTooBig { .. } => &self.counters.icmpv6_packet_too_big,
                };
                WorkerCounters::add(sent, 1);
                v
            }
        }
    }
}
