//! The IPv6 packet path of [`Conntrack6`] (ip6tables MASQUERADE): source NAT of IPv6 packets
//! to an egress IPv6 address, with the behaviour the IPv4 NAT documents (endpoint-independent
//! mapping and filtering, port preservation in the worker's slice, partition and handoff,
//! TCP states and timeouts, tracked remotes, ICMPv6 echo by identifier, ICMPv6 errors
//! translated both ways). The state (table, ports, wheel, counters) is the shared
//! [`Conntrack`]'s, instantiated for IPv6.
//!
//! What IPv6 changes: no header checksum, every transport checksum (ICMPv6's too) covers the
//! addresses, and no fragments: a packet from inside whose fixed header is followed by an
//! extension header is refused (`Ipv6ExtensionHeader`); return traffic with one is not NAT
//! traffic (to the kernel).

use std::net::Ipv6Addr;

use crate::conntrack::{tick, Conntrack, Inbound, Outbound};
use crate::error::NatError;
use crate::flow_state::Dir;
use crate::remote::Remote;
use crate::rewrite::Side;
use crate::rewrite6;
use crate::view::{self, Protocol};
use crate::view6::{self, Ipv6, HLEN};
use wire::{tcp, udp};

/// One worker's IPv6 NAT: built with `Conntrack6::new(&NatConfig<Ipv6Addr>, worker)`.
pub type Conntrack6 = Conntrack<Ipv6Addr>;

impl Conntrack<Ipv6Addr> {
    /// Translates an IPv6 packet from an inside host (after decryption and the AllowedIPs
    /// source check). `pkt` starts at the IPv6 header; it is rewritten in place only when the
    /// result is `Forward` or `Hairpin`. The hop limit is the caller's.
    pub fn translate_outbound(
        &mut self,
        now_ns: u64,
        pkt: &mut [u8],
    ) -> Result<Outbound, NatError> {
        let r = self.outbound6(tick(now_ns), pkt);
        self.count_outbound(&r);
        r
    }

    /// Translates an IPv6 packet that arrived for an egress address. `pkt` starts at the IPv6
    /// header; it is rewritten in place only when the result is `Deliver`.
    pub fn translate_inbound(
        &mut self,
        now_ns: u64,
        pkt: &mut [u8],
    ) -> Result<Inbound<Ipv6Addr>, NatError> {
        let r = self.inbound6(tick(now_ns), pkt);
        self.count_inbound(&r);
        r
    }

    fn outbound6(&mut self, now: u32, pkt: &mut [u8]) -> Result<Outbound, NatError> {
        let ip = view6::parse_ipv6(pkt)?;
        let proto = view6::protocol(ip.next)?;
        if ip.end - HLEN < view::min_l4_len(proto) {
            return Err(NatError::Truncated);
        }
        let to_egress = self.egress_index(ip.dst).is_some();
        let mut tcp_flags = 0;
        let mut dport = 0;
        if proto == Protocol::Icmp {
            let t = pkt[HLEN];
            if view6::is_icmpv6_error(t) {
                return self.outbound_icmp_error6(pkt, &ip, now);
            }
            if t != view6::ICMPV6_ECHO_REQUEST {
                return Err(NatError::UnsupportedIcmp);
            }
            if to_egress {
                return Ok(Outbound::Local);
            }
        } else {
            dport = view::rd16(pkt, HLEN + udp::field::DST_PORT.start);
            if to_egress && !self.partition().in_range(dport) {
                return Ok(Outbound::Local);
            }
            if proto == Protocol::Tcp {
                tcp_flags = pkt[HLEN + tcp::field::FLAGS];
            }
        }
        let owner = self.partition().owner_of_inside6(Ipv6Addr::from(ip.src));
        if owner != self.worker() {
            return Ok(Outbound::Handoff { owner });
        }
        let sport = view::rd16(pkt, HLEN + view::src_port_off(proto));
        let (slot, new) = self.find_or_create(now, proto, ip.src, sport)?;
        self.sent_to(slot, Remote::new(proto, ip.dst, dport), tcp_flags);
        self.touch(now, slot, Dir::Out, tcp_flags, new);
        let (ext, ext_port) = self.external_of(slot);
        rewrite6::endpoint(pkt, proto, Side::Src, ext, ext_port);
        if to_egress {
            // In range was checked above, so the owner exists.
            let owner = self
                .partition()
                .owner_of_port(dport)
                .unwrap_or(self.worker());
            return Ok(Outbound::Hairpin { owner });
        }
        Ok(Outbound::Forward)
    }

    fn inbound6(&mut self, now: u32, pkt: &mut [u8]) -> Result<Inbound<Ipv6Addr>, NatError> {
        let ip = view6::parse_ipv6(pkt)?;
        let Some(ext_addr) = self.egress_index(ip.dst) else {
            return Ok(Inbound::NotNat);
        };
        // Other protocols, and extension headers: the kernel's.
        let Ok(proto) = view6::protocol(ip.next) else {
            return Ok(Inbound::NotNat);
        };
        if ip.end - HLEN < view::min_l4_len(proto) {
            return Err(NatError::Truncated);
        }
        let mut tcp_flags = 0;
        match proto {
            Protocol::Icmp => {
                let t = pkt[HLEN];
                if view6::is_icmpv6_error(t) {
                    return self.inbound_icmp_error6(pkt, &ip, now);
                }
                if t != view6::ICMPV6_ECHO_REPLY {
                    // Echo requests, neighbour discovery, MLD: the gateway's own.
                    return Ok(Inbound::NotNat);
                }
            }
            Protocol::Tcp => tcp_flags = pkt[HLEN + tcp::field::FLAGS],
            Protocol::Udp => {}
        }
        let port = view::rd16(pkt, HLEN + view::dst_port_off(proto));
        let Some(owner) = self.partition().owner_of_port(port) else {
            return Ok(Inbound::NotNat);
        };
        if owner != self.worker() {
            return Ok(Inbound::Handoff { owner });
        }
        let slot = self
            .live_external(now, proto, ext_addr, port)
            .ok_or(NatError::NoMapping)?;
        let sport = view::rd16(pkt, HLEN + view::src_port_off(proto));
        let (inside, inside_port, tracked) =
            self.inside_of(slot, Remote::new(proto, ip.src, sport));
        if tracked {
            self.touch(now, slot, Dir::In, tcp_flags, false);
        } else if tcp_flags & tcp::FLAG_RST != 0 {
            // As for IPv4: a RST from a remote the mapping does not talk to is a spoof.
            return Err(NatError::OffPathRst);
        } else {
            self.count_untracked();
        }
        rewrite6::endpoint(pkt, proto, Side::Dst, inside, inside_port);
        Ok(Inbound::Deliver {
            inside: Ipv6Addr::from(inside),
        })
    }

    /// An ICMPv6 error from outside about a packet we sent: the quoted source is our egress
    /// endpoint; revert it to the inside endpoint and deliver the error inside.
    fn inbound_icmp_error6(
        &mut self,
        pkt: &mut [u8],
        ip: &Ipv6,
        now: u32,
    ) -> Result<Inbound<Ipv6Addr>, NatError> {
        let q = rewrite6::parse_icmp_error(pkt, ip)?;
        let ext_addr = self
            .egress_index(q.quoted_ip.src)
            .ok_or(NatError::IcmpErrorNoMapping)?;
        let port = q.port(pkt, Side::Src);
        let owner = self
            .partition()
            .owner_of_port(port)
            .ok_or(NatError::IcmpErrorNoMapping)?;
        if owner != self.worker() {
            return Ok(Inbound::Handoff { owner });
        }
        let slot = self
            .live_external(now, q.proto, ext_addr, port)
            .ok_or(NatError::IcmpErrorNoMapping)?;
        let quoted_remote = Remote::new(q.proto, q.quoted_ip.dst, q.port(pkt, Side::Dst));
        let (inside, inside_port, tracked) = self.inside_of(slot, quoted_remote);
        if !tracked {
            return Err(NatError::IcmpErrorOffPath);
        }
        // An error neither refreshes nor removes the mapping (RFC 4787 REQ-12 / RFC 5508 REQ-6).
        rewrite6::icmp_error(pkt, &q, Side::Src, (inside, inside_port), Side::Dst, inside);
        self.count_icmp_error(false);
        Ok(Inbound::Deliver {
            inside: Ipv6Addr::from(inside),
        })
    }

    /// An ICMPv6 error from an inside host about a packet we delivered to it: put back the
    /// external endpoint in the quote and send the error from our egress address.
    fn outbound_icmp_error6(
        &mut self,
        pkt: &mut [u8],
        ip: &Ipv6,
        now: u32,
    ) -> Result<Outbound, NatError> {
        let q = rewrite6::parse_icmp_error(pkt, ip)?;
        let inside = q.quoted_ip.dst;
        let owner = self.partition().owner_of_inside6(Ipv6Addr::from(inside));
        if owner != self.worker() {
            return Ok(Outbound::Handoff { owner });
        }
        let port = q.port(pkt, Side::Dst);
        let slot = self
            .live_inside(now, q.proto, inside, port)
            .ok_or(NatError::IcmpErrorNoMapping)?;
        let (ext, ext_port) = self.external_of(slot);
        rewrite6::icmp_error(pkt, &q, Side::Dst, (ext, ext_port), Side::Src, ext);
        self.count_icmp_error(true);
        if self.egress_index(ip.dst).is_some() {
            // Hairpinned error: the owner of the quoted source port reverts it.
            let qport = q.port(pkt, Side::Src);
            let owner = self
                .partition()
                .owner_of_port(qport)
                .ok_or(NatError::IcmpErrorNoMapping)?;
            return Ok(Outbound::Hairpin { owner });
        }
        Ok(Outbound::Forward)
    }
}
