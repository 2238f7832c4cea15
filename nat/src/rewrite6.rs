//! In-place IPv6 header rewriting with incremental checksum updates (RFC 1624): the endpoint
//! of a TCP/UDP/ICMPv6-echo packet, and an ICMPv6 error with the packet it quotes.
//!
//! IPv6 has no header checksum, but every transport checksum, ICMPv6's included, covers a
//! pseudo-header with both addresses (RFC 8200 §8.1): an address change is folded into the
//! transport checksum of the packet, and for an ICMPv6 error into the ICMPv6 checksum too.
//!
//! Pure functions over bytes whose lengths the caller has checked through [`crate::view6`].

use crate::error::NatError;
use crate::rewrite::{port_off, Side};
use crate::view::{self, Protocol};
use crate::view6::{self, Ipv6, HLEN};
use wire::checksum::Delta;
use wire::icmp;

/// Writes the 16-byte address field of the IPv6 header at the start of `pkt` and returns the
/// checksum delta of the change.
fn set_address(pkt: &mut [u8], side: Side, addr: [u8; 16]) -> Delta {
    let at = view6::addr_off(side == Side::Dst);
    let mut d = Delta::default();
    for (i, new) in addr.chunks_exact(2).enumerate() {
        let o = at + 2 * i;
        d.word(view::rd16(pkt, o), u16::from_be_bytes([new[0], new[1]]));
    }
    pkt[at..at + 16].copy_from_slice(&addr);
    d
}

/// Rewrites one endpoint (address and port / echo identifier) of a packet whose transport
/// header follows the fixed header, updating its checksum (pseudo-header included).
pub(crate) fn endpoint(pkt: &mut [u8], proto: Protocol, side: Side, addr: [u8; 16], port: u16) {
    let mut d = set_address(pkt, side, addr);
    let poff = HLEN + port_off(proto, side);
    d.word(view::rd16(pkt, poff), port);
    view::wr16(pkt, poff, port);
    let coff = HLEN + view::l4_csum_off(proto);
    let c = view::rd16(pkt, coff);
    // UDP over IPv6 must carry a checksum (RFC 8200 §8.1); a zero one is left as it is and
    // the receiver drops the datagram, as it would have without the NAT.
    let nc = if proto == Protocol::Udp {
        d.apply_udp(c)
    } else {
        d.apply(c)
    };
    view::wr16(pkt, coff, nc);
}

/// An ICMPv6 error whose checksum verified and whose quoted packet is long enough to
/// translate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IcmpError6 {
    /// Offset of the quoted IPv6 header.
    pub quoted: usize,
    pub quoted_ip: Ipv6,
    pub proto: Protocol,
    /// Offset of the quoted transport header.
    pub quoted_l4: usize,
    /// End of the ICMPv6 message.
    pub end: usize,
}

impl IcmpError6 {
    pub(crate) fn port(&self, pkt: &[u8], side: Side) -> u16 {
        view::rd16(pkt, self.quoted_l4 + port_off(self.proto, side))
    }
}

/// Checks an ICMPv6 error message (the caller saw type 1-4 and 8 ICMPv6 bytes).
pub(crate) fn parse_icmp_error(pkt: &[u8], ip: &Ipv6) -> Result<IcmpError6, NatError> {
    // As RFC 5508 REQ-3 asks of ICMP: a bad checksum is dropped before anything else is read.
    if !view6::icmpv6_checksum_ok(&ip.src, &ip.dst, &pkt[HLEN..ip.end]) {
        return Err(NatError::IcmpBadChecksum);
    }
    let quoted = HLEN + icmp::HEADER_LEN;
    let qip = view6::parse_quoted_ipv6(&pkt[quoted..ip.end])?;
    // A quoted extension header (a fragment, a routing header) is not followed.
    let proto = view6::protocol(qip.next).map_err(|_| NatError::IcmpErrorMalformed)?;
    let quoted_l4 = quoted + HLEN;
    // The ports / echo identifier must be quoted (RFC 4443 quotes up to 1280 bytes).
    if ip.end - quoted_l4 < icmp::QUOTED_DATA_LEN {
        return Err(NatError::IcmpErrorMalformed);
    }
    if proto == Protocol::Icmp {
        let t = pkt[quoted_l4 + icmp::field::TYPE];
        // No error is sent about an error (RFC 4443 §2.4 e): only echo can be quoted.
        if !matches!(t, view6::ICMPV6_ECHO_REQUEST | view6::ICMPV6_ECHO_REPLY) {
            return Err(NatError::IcmpErrorMalformed);
        }
    }
    Ok(IcmpError6 {
        quoted,
        quoted_ip: qip,
        proto,
        quoted_l4,
        end: ip.end,
    })
}

/// Translates an ICMPv6 error: one endpoint of the quoted packet (`quoted_side`: address and
/// port / echo id, and the quoted transport checksum when it was quoted), then one address of
/// the error itself (`outer_side`), and finally the ICMPv6 checksum, which covers every word
/// changed here, the outer address through the pseudo-header.
pub(crate) fn icmp_error(
    pkt: &mut [u8],
    q: &IcmpError6,
    quoted_side: Side,
    (addr, port): ([u8; 16], u16),
    outer_side: Side,
    outer_addr: [u8; 16],
) {
    let mut icmp_delta = Delta::default();

    let ad = set_address(&mut pkt[q.quoted..], quoted_side, addr);
    icmp_delta.merge(ad);

    let poff = q.quoted_l4 + port_off(q.proto, quoted_side);
    let old_port = view::rd16(pkt, poff);
    view::wr16(pkt, poff, port);
    icmp_delta.word(old_port, port);

    // The quoted transport checksum covers the quoted addresses (ICMPv6 echo's too).
    let mut ld = ad;
    ld.word(old_port, port);
    let coff = q.quoted_l4 + view::l4_csum_off(q.proto);
    // A quote that ends inside the checksum field leaves it as it was (see `rewrite.rs`).
    if coff + 2 <= q.end {
        let old = view::rd16(pkt, coff);
        let new = if q.proto == Protocol::Udp {
            ld.apply_udp(old)
        } else {
            ld.apply(old)
        };
        view::wr16(pkt, coff, new);
        icmp_delta.word(old, new);
    }

    icmp_delta.merge(set_address(pkt, outer_side, outer_addr));
    let ic = HLEN + icmp::field::CHECKSUM.start;
    let c = view::rd16(pkt, ic);
    view::wr16(pkt, ic, icmp_delta.apply(c));
}
