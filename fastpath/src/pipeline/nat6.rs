//! IPv6 source NAT in the fast path (`[nat] masquerade_ipv6`, ip6tables MASQUERADE): the
//! worker's [`Conntrack6`] translates routed IPv6 packets from the tunnel to the gateway's
//! egress IPv6 address, and the return traffic back.
//!
//! ```text
//! forward6: route -> hop limit - 1 -> send6 -> nat66_outbound -> Forward  -> Ethernet -> wire-out
//!                                                          -> Handoff  -> worker `owner` (NatOutbound6)
//!                                                          -> Hairpin  -> translate back -> tunnel
//!                                                          -> Local    -> wg0
//! LAN, IPv6 to the egress address (XDP: live NAT66 port) -> nat66_return -> translate_inbound
//!   -> Deliver { inside } -> hop limit - 1 -> peer by AllowedIPs of `inside` -> seal -> wire-out
//!   -> Deliver, longer than the tunnel MTU -> ICMPv6 packet too big -> the LAN sender
//!   -> Handoff { owner }  -> worker `owner` (NatInbound6)
//! ```
//!
//! The same shape as the IPv4 NAT in `pipeline.rs` (`nat_and_send`, `return_traffic`); an
//! IPv4 packet never reaches this module, so the IPv4 path pays nothing for it.

use std::net::IpAddr;
use std::ops::Range;

use nat::{Conntrack6, Inbound, Outbound};
use wire::ethernet::{self, ETHERTYPE_IPV6};
use wire::{ipv6, udp};

use super::{Batch, Pipeline, Resume, Verdict};
use crate::capture::CapturePoint;
use crate::counters::{DropReason, WorkerCounters};
use crate::icmp6::{Icmp6Error, MAX_QUOTE_LEN};
use crate::route::Resolution;
use crate::stage_cycles::Step;

const NEXT_UDP: u8 = 17;

impl Pipeline {
    /// Gives the worker its IPv6 NAT (built from the same settings as the IPv4 one, with the
    /// IPv6 egress address): IPv6 from the tunnel is translated from now on.
    pub fn with_nat6(mut self, nat6: Conntrack6) -> Pipeline {
        self.nat6 = Some(nat6);
        self
    }

    pub fn nat6(&self) -> Option<&Conntrack6> {
        self.nat6.as_ref()
    }

    /// Source NAT of the routed IPv6 packet at `buf[start..start + len]` (hop limit already
    /// decremented), when IPv6 masquerading is on. `None`: translated (or no NAT), send it on;
    /// `Some`: what became of it instead.
    pub(super) fn nat66_outbound(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> Option<Verdict> {
        let nat = self.nat6.as_mut()?;
        let end = start + len;
        match nat.translate_outbound(b.now.as_nanos(), &mut buf[start..end]) {
            Ok(Outbound::Forward) => None,
            Ok(Outbound::Hairpin { owner }) if owner == nat.worker() => {
                Some(self.hairpin6(b, buf, start, len))
            }
            Ok(Outbound::Hairpin { owner }) => Some(Verdict::Handoff {
                owner,
                resume: Resume::Hairpin6,
                start,
                len,
            }),
            Ok(Outbound::Handoff { owner }) => Some(Verdict::Handoff {
                owner,
                resume: Resume::NatOutbound6,
                start,
                len,
            }),
            Ok(Outbound::Local) => Some(self.punt_to_host(&buf[start..end])),
            // Extension headers and other protocols included: the kernel would forward them
            // with the tunnel source address.
            Err(e) => Some(Verdict::Drop(e.into())),
        }
    }

    /// A hairpinned IPv6 packet whose destination port this worker owns: back through the
    /// reverse translation and into the tunnel.
    pub(super) fn hairpin6(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> Verdict {
        let Some(nat) = self.nat6.as_mut() else {
            return Verdict::Drop(DropReason::NatUnavailable);
        };
        match nat.translate_inbound(b.now.as_nanos(), &mut buf[start..start + len]) {
            Ok(Inbound::Deliver { inside }) => {
                self.encrypt_to_peer(b, buf, start, len, IpAddr::V6(inside))
            }
            Ok(_) => Verdict::Drop(DropReason::Handoff),
            Err(e) => Verdict::Drop(e.into()),
        }
    }

    /// Handed over by another worker: a routed IPv6 packet (hop limit decremented) from an
    /// inside host this worker's IPv6 NAT owns.
    pub(super) fn resume_nat_outbound6(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> Verdict {
        let Ok(ip) = ipv6::Packet::new_checked(&buf[start..start + len]) else {
            return Verdict::Drop(DropReason::InnerMalformed);
        };
        let (len, dst) = (ip.total_len(), ip.dst_addr());
        let park = || Verdict::Park {
            resume: Resume::NatOutbound6,
            start,
            len,
        };
        match self.route_or_park(b, IpAddr::V6(dst), park) {
            Ok(Resolution::Ready(hop)) => self.send6(b, buf, start, len, hop),
            Ok(_) => Verdict::Drop(DropReason::NoRoute),
            Err(parked) => parked,
        }
    }

    /// An IPv6 packet from the LAN at `buf[ip]` that may be NAT66 return traffic. `None`: not
    /// the IPv6 NAT's (no IPv6 NAT, WireGuard to the listen port, another destination): the
    /// caller goes on with it.
    pub(super) fn nat66_return(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        ip: Range<usize>,
    ) -> Option<Verdict> {
        self.nat6.as_ref()?;
        let p = ipv6::Packet::new_checked(&buf[ip.clone()]).ok()?;
        let ip = ip.start..ip.start + p.total_len();
        if p.next_header() == NEXT_UDP {
            let l4 = ip.start + ipv6::HEADER_LEN;
            if let Some(h) = buf.get(l4..l4 + udp::HEADER_LEN) {
                if udp::Packet::new_unchecked(h).dst_port() == self.cfg.listen_port {
                    return None;
                }
            }
        }
        // The LAN side of the NAT, before its reverse (as for IPv4, in `process_frame`).
        self.counters.tap(CapturePoint::Nat, &buf[ip.clone()]);
        if self.stops_after(Step::Parse) {
            return Some(Verdict::Consumed);
        }
        self.forwarding_since = self.clock();
        self.return_traffic6(b, buf, ip)
    }

    /// NAT66 return traffic at `buf[ip]` (exactly the packet): reversed and sealed to the peer
    /// whose AllowedIPs hold the inside address. `None` when it is not NAT traffic.
    pub(super) fn return_traffic6(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        ip: Range<usize>,
    ) -> Option<Verdict> {
        // Larger than the tunnel carries: IPv6 is never fragmented on the way (RFC 8200 §5),
        // so the LAN sender is told, but only once the NAT says the packet would be delivered
        // (anything else would answer spoofed packets to unmapped ports), quoting it as it was
        // sent: its start is kept before the reverse translation rewrites it.
        let too_big = ip.len() > self.cfg.mtu;
        let quoted = ip.len().min(MAX_QUOTE_LEN);
        if too_big {
            self.quote6[..quoted].copy_from_slice(&buf[ip.start..ip.start + quoted]);
        }
        self.complete_checksum6(&mut buf[ip.clone()]);
        let nat = self.nat6.as_mut()?;
        let v = match nat.translate_inbound(b.now.as_nanos(), &mut buf[ip.clone()]) {
            Ok(Inbound::Deliver { .. }) if too_big => {
                self.packet_too_big_to_lan(b, buf, ip, quoted)
            }
            Ok(Inbound::Deliver { inside }) => {
                // Routed from the LAN into the tunnel: a hop like any other.
                if !ipv6::Packet::new_unchecked(&mut buf[ip.clone()]).decrement_hop_limit() {
                    return Some(Verdict::Drop(DropReason::HopLimitExceeded));
                }
                if self.stops_after(Step::NatReverse) {
                    return Some(Verdict::Consumed);
                }
                self.encrypt_to_peer(b, buf, ip.start, ip.len(), IpAddr::V6(inside))
            }
            Ok(Inbound::Handoff { owner }) => Verdict::Handoff {
                owner,
                resume: Resume::NatInbound6,
                start: ip.start,
                len: ip.len(),
            },
            Ok(Inbound::NotNat) => return None,
            Err(e) => Verdict::Drop(e.into()),
        };
        Some(v)
    }

    /// Answers the NAT66 return packet at `buf[ip]`, too long for the tunnel and translated
    /// already, with ICMPv6 packet too big (the tunnel MTU) to its LAN sender, from the
    /// gateway's address on the route back (as the kernel picks a source). The first `quoted`
    /// bytes of the packet as it was sent are in `self.quote6`: they are put back, and the
    /// error is written in front of them (`icmp6_error_in_place`).
    fn packet_too_big_to_lan(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        ip: Range<usize>,
        quoted: usize,
    ) -> Verdict {
        let reason = DropReason::TooBig;
        // The quote is cut, so not a whole packet: only its fixed header is read.
        if quoted < ipv6::HEADER_LEN {
            return Verdict::Drop(reason);
        }
        let dst = ipv6::Packet::new_unchecked(&self.quote6[..quoted]).src_addr();
        let Some(Resolution::Ready(hop)) = b.routes.resolution(IpAddr::V6(dst)).copied() else {
            self.routes.request(IpAddr::V6(dst));
            return Verdict::Drop(reason);
        };
        let Some(IpAddr::V6(router)) = hop.src_addr else {
            return Verdict::Drop(reason);
        };
        buf[ip.start..ip.start + quoted].copy_from_slice(&self.quote6[..quoted]);
        let mtu = u32::try_from(self.cfg.mtu).unwrap_or(u32::MAX);
        let kind = Icmp6Error::PacketTooBig { mtu };
        let Some(error) = self.icmp6_error_step(b, buf, ip, router, kind, hop.mtu as usize) else {
            return Verdict::Drop(reason);
        };
        let Some(eth) = error.start.checked_sub(ethernet::HEADER_LEN) else {
            return Verdict::Drop(reason);
        };
        if ethernet::write_header(
            &mut buf[eth..],
            hop.dst_mac.0,
            hop.src_mac.0,
            ETHERTYPE_IPV6,
        )
        .is_err()
        {
            return Verdict::Drop(reason);
        }
        WorkerCounters::add(&self.counters.icmpv6_packet_too_big, 1);
        Verdict::Tx {
            ifindex: hop.ifindex,
            start: eth,
            len: ethernet::HEADER_LEN + error.len(),
        }
    }

    /// A TCP/UDP checksum the LAN sender left partial (tx offload), completed before the NAT
    /// updates it incrementally (see `wire::partial`).
    fn complete_checksum6(&self, packet: &mut [u8]) {
        if wire::partial::complete_partial_ipv6(packet) {
            WorkerCounters::add(&self.counters.csum_completed, 1);
        }
    }
}
