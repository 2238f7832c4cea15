//! Typed reading of the IPv4, TCP, UDP and ICMP fields the NAT touches, over a byte slice that
//! starts at the IPv4 header. Lengths are checked once in [`parse_ipv4`] / [`parse_l4`]; the
//! accessors after that index only inside what was checked.
//!
//! Owns no state and never allocates; malformed input is a [`NatError`], never a panic.

use crate::error::NatError;
use ::wire::checksum;

pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;

pub(crate) const ICMP_ECHO_REPLY: u8 = 0;
pub(crate) const ICMP_DEST_UNREACHABLE: u8 = 3;
pub(crate) const ICMP_ECHO_REQUEST: u8 = 8;
pub(crate) const ICMP_TIME_EXCEEDED: u8 = 11;
pub(crate) const ICMP_PARAMETER_PROBLEM: u8 = 12;
pub(crate) const ICMP_TIMESTAMP: u8 = 13;
pub(crate) const ICMP_TIMESTAMP_REPLY: u8 = 14;

pub(crate) const TCP_FIN: u8 = 0x01;
pub(crate) const TCP_SYN: u8 = 0x02;
pub(crate) const TCP_RST: u8 = 0x04;
pub(crate) const TCP_ACK: u8 = 0x10;

/// The transport protocols the NAT translates. The discriminant indexes per-protocol tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Protocol {
    Tcp = 0,
    Udp = 1,
    /// ICMP queries (echo, timestamp); the query identifier plays the role of the port
    /// (RFC 5508 §3.1).
    Icmp = 2,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp];

    pub(crate) fn from_ip(proto: u8) -> Option<Protocol> {
        match proto {
            PROTO_TCP => Some(Protocol::Tcp),
            PROTO_UDP => Some(Protocol::Udp),
            PROTO_ICMP => Some(Protocol::Icmp),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn from_index(i: u8) -> Protocol {
        match i {
            0 => Protocol::Tcp,
            1 => Protocol::Udp,
            _ => Protocol::Icmp,
        }
    }
}

pub(crate) fn rd16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

pub(crate) fn wr16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn rd_addr(b: &[u8], off: usize) -> [u8; 4] {
    [b[off], b[off + 1], b[off + 2], b[off + 3]]
}

pub(crate) fn wr_addr(b: &mut [u8], off: usize, a: [u8; 4]) {
    b[off..off + 4].copy_from_slice(&a);
}

/// What [`parse_ipv4`] checked about an IPv4 header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ipv4 {
    /// Header length in bytes (IHL * 4); the transport header starts here.
    pub hlen: usize,
    /// End of the datagram (Total Length); bytes after it (link padding) are ignored.
    pub end: usize,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    /// Fragment offset != 0 or More Fragments set.
    pub fragment: bool,
    /// Fragment offset != 0: no transport header in this piece.
    pub later_fragment: bool,
}

pub(crate) const IP_SRC: usize = 12;
pub(crate) const IP_DST: usize = 16;
pub(crate) const IP_CSUM: usize = 10;

/// Checks an IPv4 header at the start of `b`: version, IHL, Total Length within the slice and,
/// when `check_sum` is set, the header checksum (a datagram with a bad header checksum would
/// be dropped by the next hop anyway; translating it would hide that).
pub(crate) fn parse_ipv4(b: &[u8], check_sum: bool) -> Result<Ipv4, NatError> {
    if b.len() < 20 {
        return Err(NatError::Truncated);
    }
    if b[0] >> 4 != 4 {
        return Err(NatError::NotIpv4);
    }
    let hlen = usize::from(b[0] & 0x0f) * 4;
    let total = usize::from(rd16(b, 2));
    if hlen < 20 || total < hlen {
        return Err(NatError::BadIpHeader);
    }
    if total > b.len() || hlen > b.len() {
        return Err(NatError::Truncated);
    }
    if check_sum && !checksum::verifies(&b[..hlen]) {
        return Err(NatError::BadIpChecksum);
    }
    let frag = rd16(b, 6);
    Ok(Ipv4 {
        hlen,
        end: total,
        proto: b[9],
        src: rd_addr(b, IP_SRC),
        dst: rd_addr(b, IP_DST),
        fragment: frag & 0x3fff != 0,
        later_fragment: frag & 0x1fff != 0,
    })
}

/// Same checks for an IPv4 header quoted inside an ICMP error: the quote may be cut short
/// (RFC 792 quotes the header + 8 bytes), so Total Length is not held against the slice.
pub(crate) fn parse_quoted_ipv4(b: &[u8]) -> Result<Ipv4, NatError> {
    if b.len() < 20 || b[0] >> 4 != 4 {
        return Err(NatError::IcmpErrorMalformed);
    }
    let hlen = usize::from(b[0] & 0x0f) * 4;
    if hlen < 20 || hlen > b.len() {
        return Err(NatError::IcmpErrorMalformed);
    }
    // RFC 5508 REQ-3 a): an embedded header with a bad checksum is dropped.
    if !checksum::verifies(&b[..hlen]) {
        return Err(NatError::IcmpErrorBadChecksum);
    }
    let frag = rd16(b, 6);
    Ok(Ipv4 {
        hlen,
        end: b.len(),
        proto: b[9],
        src: rd_addr(b, IP_SRC),
        dst: rd_addr(b, IP_DST),
        fragment: frag & 0x3fff != 0,
        later_fragment: frag & 0x1fff != 0,
    })
}

/// Minimum transport bytes the NAT reads: TCP up to its checksum (offset 16..18) and flags,
/// UDP and ICMP their 8-byte headers.
pub(crate) fn min_l4_len(proto: Protocol) -> usize {
    match proto {
        Protocol::Tcp => 20,
        Protocol::Udp | Protocol::Icmp => 8,
    }
}

/// Offset of the checksum field within the transport header.
pub(crate) fn l4_csum_off(proto: Protocol) -> usize {
    match proto {
        Protocol::Tcp => 16,
        Protocol::Udp => 6,
        Protocol::Icmp => 2,
    }
}

/// Offset within the transport header of the source "port" (ICMP: the query identifier, which
/// is both the source and the destination "port" of a query, RFC 5508 §3.1).
pub(crate) fn src_port_off(proto: Protocol) -> usize {
    match proto {
        Protocol::Icmp => 4,
        _ => 0,
    }
}

pub(crate) fn dst_port_off(proto: Protocol) -> usize {
    match proto {
        Protocol::Icmp => 4,
        _ => 2,
    }
}

pub(crate) fn is_icmp_query_request(t: u8) -> bool {
    matches!(t, ICMP_ECHO_REQUEST | ICMP_TIMESTAMP)
}

pub(crate) fn is_icmp_query_reply(t: u8) -> bool {
    matches!(t, ICMP_ECHO_REPLY | ICMP_TIMESTAMP_REPLY)
}

/// The ICMP errors the NAT translates (RFC 5508 §4.2); redirects and source quench are not
/// forwarded across the NAT.
pub(crate) fn is_icmp_error(t: u8) -> bool {
    matches!(
        t,
        ICMP_DEST_UNREACHABLE | ICMP_TIME_EXCEEDED | ICMP_PARAMETER_PROBLEM
    )
}
