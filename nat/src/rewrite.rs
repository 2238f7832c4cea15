//! In-place header rewriting with incremental checksum updates (RFC 1624): the endpoint of a
//! TCP/UDP/ICMP-query packet, and the quoted packet inside an ICMP error (RFC 5508 §4.2).
//!
//! Pure functions over bytes whose lengths the caller has checked through [`crate::view`].

use crate::error::NatError;
use crate::view::{self, Ipv4, Protocol};
use wire::checksum::Delta;
use wire::icmp;

/// Which endpoint of a packet is rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Src,
    Dst,
}

/// Whether `side` is the destination address field.
fn is_dst(side: Side) -> bool {
    side == Side::Dst
}

pub(crate) fn port_off(proto: Protocol, side: Side) -> usize {
    match side {
        Side::Src => view::src_port_off(proto),
        Side::Dst => view::dst_port_off(proto),
    }
}

/// Rewrites only an IPv4 address (and the header checksum). ICMP has no pseudo-header, so
/// the outer header of an ICMP message needs nothing else.
pub(crate) fn address(pkt: &mut [u8], side: Side, addr: [u8; 4]) {
    let mut d = Delta::default();
    d.addr(view::addr(pkt, is_dst(side)), addr);
    view::set_addr(pkt, is_dst(side), addr);
    let c = view::ip_checksum(pkt);
    view::set_ip_checksum(pkt, d.apply(c));
}

/// Rewrites one endpoint (address and port / query id) of a packet whose transport header
/// starts at `ip.hlen`, updating the IP, TCP/UDP (pseudo-header included) or ICMP checksum.
pub(crate) fn endpoint(
    pkt: &mut [u8],
    ip: &Ipv4,
    proto: Protocol,
    side: Side,
    addr: [u8; 4],
    port: u16,
) {
    let mut ad = Delta::default();
    ad.addr(view::addr(pkt, is_dst(side)), addr);
    view::set_addr(pkt, is_dst(side), addr);
    let c = view::ip_checksum(pkt);
    view::set_ip_checksum(pkt, ad.apply(c));

    let l4 = ip.hlen;
    let poff = l4 + port_off(proto, side);
    let mut ld = Delta::default();
    ld.word(view::rd16(pkt, poff), port);
    view::wr16(pkt, poff, port);
    if proto != Protocol::Icmp {
        ld.merge(ad);
    }
    let coff = l4 + view::l4_csum_off(proto);
    let c = view::rd16(pkt, coff);
    let nc = if proto == Protocol::Udp {
        ld.apply_udp(c)
    } else {
        ld.apply(c)
    };
    view::wr16(pkt, coff, nc);
}

/// An ICMP error whose checksum verified and whose quoted packet is long enough to translate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IcmpError {
    /// Offset of the ICMP header.
    pub icmp: usize,
    /// Offset of the quoted IPv4 header.
    pub quoted: usize,
    pub quoted_ip: Ipv4,
    pub proto: Protocol,
    /// Offset of the quoted transport header.
    pub quoted_l4: usize,
    /// End of the ICMP message.
    pub end: usize,
}

impl IcmpError {
    pub(crate) fn port(&self, pkt: &[u8], side: Side) -> u16 {
        view::rd16(pkt, self.quoted_l4 + port_off(self.proto, side))
    }
}

/// Checks an ICMP error message (the caller saw type 3, 11 or 12 and 8 ICMP bytes).
pub(crate) fn parse_icmp_error(pkt: &[u8], ip: &Ipv4) -> Result<IcmpError, NatError> {
    let icmp_at = ip.hlen;
    // RFC 5508 REQ-3: a bad ICMP checksum is dropped before anything else is looked at.
    if !icmp::Packet::new_unchecked(&pkt[icmp_at..ip.end]).verify_checksum() {
        return Err(NatError::IcmpBadChecksum);
    }
    let quoted = icmp_at + icmp::HEADER_LEN;
    let qip = view::parse_quoted_ipv4(&pkt[quoted..ip.end])?;
    if qip.later_fragment {
        return Err(NatError::IcmpErrorMalformed);
    }
    let proto = Protocol::from_ip(qip.proto).ok_or(NatError::IcmpErrorMalformed)?;
    let quoted_l4 = quoted + qip.hlen;
    // RFC 792: at least 8 bytes of the transport header are quoted (ports / query id).
    if ip.end - quoted_l4 < icmp::QUOTED_DATA_LEN {
        return Err(NatError::IcmpErrorMalformed);
    }
    if proto == Protocol::Icmp {
        let t = pkt[quoted_l4 + icmp::field::TYPE];
        // Errors are never sent about errors (RFC 1122 §3.2.2): only queries can be quoted.
        if !(icmp::is_query_request(t) || icmp::is_query_reply(t)) {
            return Err(NatError::IcmpErrorMalformed);
        }
    }
    Ok(IcmpError {
        icmp: icmp_at,
        quoted,
        quoted_ip: qip,
        proto,
        quoted_l4,
        end: ip.end,
    })
}

/// Rewrites one endpoint of the quoted packet (RFC 5508 REQ-4 a / REQ-5 a): address, port or
/// query id, the quoted IP header checksum, the quoted transport checksum when it was quoted,
/// and finally the ICMP checksum, which covers every word changed here.
pub(crate) fn quoted_endpoint(pkt: &mut [u8], q: &IcmpError, side: Side, addr: [u8; 4], port: u16) {
    let mut outer = Delta::default();

    let quoted_ip = &mut pkt[q.quoted..];
    let mut ad = Delta::default();
    ad.addr(view::addr(quoted_ip, is_dst(side)), addr);
    view::set_addr(quoted_ip, is_dst(side), addr);
    outer.merge(ad);

    let old = view::ip_checksum(quoted_ip);
    let new = ad.apply(old);
    view::set_ip_checksum(quoted_ip, new);
    outer.word(old, new);

    let poff = q.quoted_l4 + port_off(q.proto, side);
    let old_port = view::rd16(pkt, poff);
    view::wr16(pkt, poff, port);
    outer.word(old_port, port);

    let mut ld = Delta::default();
    ld.word(old_port, port);
    if q.proto != Protocol::Icmp {
        ld.merge(ad);
    }
    let coff = q.quoted_l4 + view::l4_csum_off(q.proto);
    // A router may quote only 8 transport bytes: a TCP checksum (offset 16) is then absent.
    // A quote that ends inside the checksum field leaves that one byte as it was (it cannot
    // be updated without the other byte).
    if coff + 2 <= q.end {
        let old = view::rd16(pkt, coff);
        let new = if q.proto == Protocol::Udp {
            ld.apply_udp(old)
        } else {
            ld.apply(old)
        };
        view::wr16(pkt, coff, new);
        outer.word(old, new);
    }

    let ic = q.icmp + icmp::field::CHECKSUM.start;
    let c = view::rd16(pkt, ic);
    view::wr16(pkt, ic, outer.apply(c));
}
