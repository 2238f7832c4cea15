//! The IPv6 NAT's reading of packets: a byte slice that starts at the IPv6 header, read
//! through `wire`'s IPv6 view. Which next headers it translates (TCP, UDP, ICMPv6 right after
//! the fixed header: extension headers are refused, see [`protocol`]), the ICMPv6 types it
//! knows (RFC 4443) and the ICMPv6 checksum over the pseudo-header (RFC 8200 §8.1).
//!
//! Owns no state and never allocates; malformed input is a [`NatError`], never a panic.

use crate::error::NatError;
use crate::view::Protocol;
use wire::checksum;
use wire::ipv6;

/// The fixed header; the transport header follows it directly (no extension headers).
pub(crate) const HLEN: usize = ipv6::HEADER_LEN;

/// Next header values (IANA "Assigned Internet Protocol Numbers").
const NEXT_TCP: u8 = 6;
const NEXT_UDP: u8 = 17;
pub(crate) const NEXT_ICMPV6: u8 = 58;

/// ICMPv6 types (RFC 4443 §2.1): the four errors the NAT translates, and echo.
pub(crate) const ICMPV6_DEST_UNREACHABLE: u8 = 1;
pub(crate) const ICMPV6_PACKET_TOO_BIG: u8 = 2;
pub(crate) const ICMPV6_TIME_EXCEEDED: u8 = 3;
pub(crate) const ICMPV6_PARAMETER_PROBLEM: u8 = 4;
pub(crate) const ICMPV6_ECHO_REQUEST: u8 = 128;
pub(crate) const ICMPV6_ECHO_REPLY: u8 = 129;

/// What [`parse_ipv6`] checked about an IPv6 header. A copy, so the packet can be rewritten
/// while it is in use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ipv6 {
    /// End of the packet (40 + Payload Length); bytes after it (link padding) are ignored.
    pub end: usize,
    pub next: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

impl Ipv6 {
    fn of(b: &[u8], end: usize) -> Ipv6 {
        let p = ipv6::Packet::new_unchecked(b);
        Ipv6 {
            end,
            next: p.next_header(),
            src: p.src_addr().octets(),
            dst: p.dst_addr().octets(),
        }
    }
}

/// Checks an IPv6 header at the start of `b`: version and Payload Length within the slice.
pub(crate) fn parse_ipv6(b: &[u8]) -> Result<Ipv6, NatError> {
    let p = ipv6::Packet::new_checked(b).map_err(|e| match e {
        wire::Error::BadVersion => NatError::NotIpv6,
        _ => NatError::Truncated,
    })?;
    Ok(Ipv6::of(b, p.total_len()))
}

/// An IPv6 header quoted in an ICMPv6 error: the quote is usually cut short (RFC 4443 §2.4 c:
/// as much as fits in 1280 bytes), so Payload Length is not held against the slice.
pub(crate) fn parse_quoted_ipv6(b: &[u8]) -> Result<Ipv6, NatError> {
    if b.len() < HLEN || b[0] >> 4 != 6 {
        return Err(NatError::IcmpErrorMalformed);
    }
    Ok(Ipv6::of(b, b.len()))
}

/// The protocol of a next header value. Extension headers are refused by name: skipping them
/// would be cheap, but a fragment header hides the ports of later fragments, a routing header
/// changes the destination the transport checksum covers, and no client of this gateway needs
/// them through the NAT.
pub(crate) fn protocol(next: u8) -> Result<Protocol, NatError> {
    match next {
        NEXT_TCP => Ok(Protocol::Tcp),
        NEXT_UDP => Ok(Protocol::Udp),
        NEXT_ICMPV6 => Ok(Protocol::Icmp),
        // Hop-by-hop, routing, fragment, AH, destination options, mobility, HIP, shim6,
        // experimental (RFC 8200 §4, RFC 7045).
        0 | 43 | 44 | 51 | 60 | 135 | 139 | 140 | 253 | 254 => Err(NatError::Ipv6ExtensionHeader),
        _ => Err(NatError::UnsupportedProtocol),
    }
}

/// The ICMPv6 errors the NAT translates (RFC 4443 §3): a NAT66 changes no header length, so
/// Packet Too Big's MTU and Parameter Problem's pointer stay right as they are.
pub(crate) fn is_icmpv6_error(t: u8) -> bool {
    matches!(
        t,
        ICMPV6_DEST_UNREACHABLE
            | ICMPV6_PACKET_TOO_BIG
            | ICMPV6_TIME_EXCEEDED
            | ICMPV6_PARAMETER_PROBLEM
    )
}

/// Whether the ICMPv6 message `msg` (from `src` to `dst`) has a valid checksum: it covers the
/// pseudo-header (addresses, upper-layer length, next header 58) and the whole message.
pub(crate) fn icmpv6_checksum_ok(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> bool {
    let Ok(len) = u32::try_from(msg.len()) else {
        return false;
    };
    // Each term folded to 16 bits first: their sum cannot overflow.
    let s = u32::from(checksum::fold(checksum::sum(src)))
        + u32::from(checksum::fold(checksum::sum(dst)))
        + (len >> 16)
        + (len & 0xffff)
        + u32::from(NEXT_ICMPV6)
        + u32::from(checksum::fold(checksum::sum(msg)));
    checksum::fold(s) == 0xffff
}

/// Offset of the source (`dst == false`) or destination address in an IPv6 header.
pub(crate) fn addr_off(dst: bool) -> usize {
    if dst {
        ipv6::field::DST.start
    } else {
        ipv6::field::SRC.start
    }
}
