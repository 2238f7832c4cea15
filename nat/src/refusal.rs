//! The optional answer to a refused new flow: ICMP Destination Unreachable, code 13
//! "communication administratively prohibited" (RFC 5508 REQ-8, RFC 1812 §5.2.7.1), written
//! into a buffer the caller owns.
//!
//! Rate limiting is the caller's job (RFC 1812 §4.3.2.8): a hostile peer opening flows on a
//! full table must not turn the gateway into an ICMP generator.

use std::net::Ipv4Addr;

use crate::error::NatError;
use crate::view;
use wire::{icmp, ipv4};

/// RFC 1812 §4.3.2.3: quote as much of the original as fits in a 576-byte datagram.
const MAX_ICMP_DATAGRAM: usize = 576;

/// The IPv4 and ICMP headers in front of the quote.
const HEADERS: usize = ipv4::HEADER_LEN + icmp::HEADER_LEN;

/// Writes into `out` an IPv4 datagram from `from` (the gateway's inside-facing address) to the
/// source of `original`, quoting `original`. Returns its length. Refuses (never panics) when
/// `original` is malformed, is an ICMP error or a non-first fragment (RFC 1122 §3.2.2: no
/// error about those), or `out` cannot hold the header plus 8 quoted transport bytes.
pub fn write_admin_prohibited(
    original: &[u8],
    from: Ipv4Addr,
    out: &mut [u8],
) -> Result<usize, NatError> {
    let ip = view::parse_ipv4(original, false)?;
    if ip.later_fragment {
        return Err(NatError::Fragment);
    }
    if ip.proto == ipv4::PROTO_ICMP {
        let t = original.get(ip.hlen).copied().ok_or(NatError::Truncated)?;
        if !(icmp::is_query_request(t) || icmp::is_query_reply(t)) {
            return Err(NatError::UnsupportedIcmp);
        }
    }
    let room = out.len().min(MAX_ICMP_DATAGRAM);
    let quote = ip.end.min(room.saturating_sub(HEADERS));
    if quote < (ip.hlen + icmp::QUOTED_DATA_LEN).min(ip.end) || room < HEADERS {
        return Err(NatError::Truncated);
    }
    let total = HEADERS + quote;
    let out = &mut out[..total];
    let (ip_header, message) = out.split_at_mut(ipv4::HEADER_LEN);
    ipv4::Repr {
        src: from,
        dst: Ipv4Addr::from(ip.src),
        protocol: ipv4::PROTO_ICMP,
        payload_len: message.len(),
        ttl: ipv4::DEFAULT_TTL,
        tos: 0,
        // DF, as Linux sends its own ICMP errors.
        ident: 0,
        dont_frag: true,
    }
    .emit(ip_header)
    .map_err(|_| NatError::Truncated)?;
    let mut m = icmp::Packet::new_checked(message).map_err(|_| NatError::Truncated)?;
    m.set_msg_type(icmp::DEST_UNREACHABLE);
    m.set_code(icmp::CODE_ADMIN_PROHIBITED);
    m.set_rest_of_header([0; 4]);
    m.data_mut().copy_from_slice(&original[..quote]);
    m.fill_checksum();
    Ok(total)
}
