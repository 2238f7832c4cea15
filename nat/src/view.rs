//! The NAT's reading of packets through `wire`'s views, over a byte slice that starts at the
//! IPv4 header: which transport protocols it translates and where their ports and checksums
//! are, and its drop reasons for headers `wire` refuses. Lengths are checked once in
//! [`parse_ipv4`] / [`parse_quoted_ipv4`] and [`min_l4_len`]; the offsets after that are
//! inside what was checked.
//!
//! Owns no state and never allocates; malformed input is a [`NatError`], never a panic.

use std::net::Ipv4Addr;

use crate::error::NatError;
use wire::{icmp, ipv4, tcp, udp};

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
            ipv4::PROTO_TCP => Some(Protocol::Tcp),
            ipv4::PROTO_UDP => Some(Protocol::Udp),
            ipv4::PROTO_ICMP => Some(Protocol::Icmp),
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

/// The big-endian 16-bit word at `off` (a transport field whose offset the caller checked).
pub(crate) fn rd16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

pub(crate) fn wr16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// What [`parse_ipv4`] checked about an IPv4 header. A copy, so the packet can be rewritten
/// while it is in use.
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
    /// Identification: with the addresses and protocol, names the datagram of a fragment.
    pub id: u16,
}

impl Ipv4 {
    fn of(p: &ipv4::Packet<&[u8]>, end: usize) -> Ipv4 {
        Ipv4 {
            hlen: p.header_len(),
            end,
            proto: p.protocol(),
            src: p.src_addr().octets(),
            dst: p.dst_addr().octets(),
            fragment: p.is_fragment(),
            later_fragment: p.frag_offset() != 0,
            id: p.ident(),
        }
    }
}

/// Checks an IPv4 header at the start of `b`: version, IHL, Total Length within the slice and,
/// when `check_sum` is set, the header checksum (a datagram with a bad header checksum would
/// be dropped by the next hop anyway; translating it would hide that).
pub(crate) fn parse_ipv4(b: &[u8], check_sum: bool) -> Result<Ipv4, NatError> {
    let p = ipv4::Packet::new_checked(b).map_err(|e| match e {
        wire::Error::BadVersion => NatError::NotIpv4,
        wire::Error::BadLength => NatError::BadIpHeader,
        _ => NatError::Truncated,
    })?;
    if check_sum && !p.verify_checksum() {
        return Err(NatError::BadIpChecksum);
    }
    Ok(Ipv4::of(&p, p.total_len()))
}

/// Same checks for an IPv4 header quoted inside an ICMP error: the quote may be cut short
/// (RFC 792 quotes the header + 8 bytes), so Total Length is not held against the slice.
pub(crate) fn parse_quoted_ipv4(b: &[u8]) -> Result<Ipv4, NatError> {
    let p = ipv4::Packet::new_checked_header(b).map_err(|_| NatError::IcmpErrorMalformed)?;
    // RFC 5508 REQ-3 a): an embedded header with a bad checksum is dropped.
    if !p.verify_checksum() {
        return Err(NatError::IcmpErrorBadChecksum);
    }
    Ok(Ipv4::of(&p, b.len()))
}

/// The source or destination address field of the IPv4 header at the start of `pkt`.
pub(crate) fn addr(pkt: &[u8], dst: bool) -> [u8; 4] {
    let p = ipv4::Packet::new_unchecked(pkt);
    if dst { p.dst_addr() } else { p.src_addr() }.octets()
}

/// Writes an address field; the caller patches the checksums that cover it.
pub(crate) fn set_addr(pkt: &mut [u8], dst: bool, a: [u8; 4]) {
    let mut p = ipv4::Packet::new_unchecked(pkt);
    if dst {
        p.set_dst_addr(Ipv4Addr::from(a));
    } else {
        p.set_src_addr(Ipv4Addr::from(a));
    }
}

/// The header checksum of the IPv4 header at the start of `pkt`.
pub(crate) fn ip_checksum(pkt: &[u8]) -> u16 {
    ipv4::Packet::new_unchecked(pkt).checksum()
}

pub(crate) fn set_ip_checksum(pkt: &mut [u8], c: u16) {
    ipv4::Packet::new_unchecked(pkt).set_checksum(c);
}

/// Minimum transport bytes the NAT reads: TCP up to its checksum (offset 16..18) and flags,
/// UDP and ICMP their 8-byte headers.
pub(crate) fn min_l4_len(proto: Protocol) -> usize {
    match proto {
        Protocol::Tcp => tcp::HEADER_LEN,
        Protocol::Udp => udp::HEADER_LEN,
        Protocol::Icmp => icmp::HEADER_LEN,
    }
}

/// Offset of the checksum field within the transport header.
pub(crate) fn l4_csum_off(proto: Protocol) -> usize {
    match proto {
        Protocol::Tcp => tcp::field::CHECKSUM.start,
        Protocol::Udp => udp::field::CHECKSUM.start,
        Protocol::Icmp => icmp::field::CHECKSUM.start,
    }
}

// TCP and UDP share the port layout, so one offset serves both.
const _: () = assert!(tcp::field::SRC_PORT.start == udp::field::SRC_PORT.start);
const _: () = assert!(tcp::field::DST_PORT.start == udp::field::DST_PORT.start);

/// Offset within the transport header of the source "port" (ICMP: the query identifier, which
/// is both the source and the destination "port" of a query, RFC 5508 §3.1).
pub(crate) fn src_port_off(proto: Protocol) -> usize {
    match proto {
        Protocol::Icmp => icmp::field::IDENT.start,
        _ => udp::field::SRC_PORT.start,
    }
}

pub(crate) fn dst_port_off(proto: Protocol) -> usize {
    match proto {
        Protocol::Icmp => icmp::field::IDENT.start,
        _ => udp::field::DST_PORT.start,
    }
}

/// The ICMP errors the NAT translates (RFC 5508 §4.2); redirects and source quench are not
/// forwarded across the NAT.
pub(crate) fn is_icmp_error(t: u8) -> bool {
    matches!(
        t,
        icmp::DEST_UNREACHABLE | icmp::TIME_EXCEEDED | icmp::PARAMETER_PROBLEM
    )
}
