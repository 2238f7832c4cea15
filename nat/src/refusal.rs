//! The optional answer to a refused new flow: ICMP Destination Unreachable, code 13
//! "communication administratively prohibited" (RFC 5508 REQ-8, RFC 1812 §5.2.7.1), written
//! into a buffer the caller owns.
//!
//! Rate limiting is the caller's job (RFC 1812 §4.3.2.8): a hostile peer opening flows on a
//! full table must not turn the gateway into an ICMP generator.

use std::net::Ipv4Addr;

use crate::error::NatError;
use crate::wire;
use ::wire::checksum;

/// RFC 1812 §4.3.2.3: quote as much of the original as fits in a 576-byte datagram.
const MAX_ICMP_DATAGRAM: usize = 576;

/// Writes into `out` an IPv4 datagram from `from` (the gateway's inside-facing address) to the
/// source of `original`, quoting `original`. Returns its length. Refuses (never panics) when
/// `original` is malformed, is an ICMP error or a non-first fragment (RFC 1122 §3.2.2: no
/// error about those), or `out` cannot hold the header plus 8 quoted transport bytes.
pub fn write_admin_prohibited(
    original: &[u8],
    from: Ipv4Addr,
    out: &mut [u8],
) -> Result<usize, NatError> {
    let ip = wire::parse_ipv4(original, false)?;
    if ip.later_fragment {
        return Err(NatError::Fragment);
    }
    if ip.proto == wire::PROTO_ICMP {
        let t = original.get(ip.hlen).copied().ok_or(NatError::Truncated)?;
        if !(wire::is_icmp_query_request(t) || wire::is_icmp_query_reply(t)) {
            return Err(NatError::UnsupportedIcmp);
        }
    }
    let room = out.len().min(MAX_ICMP_DATAGRAM);
    let quote = ip.end.min(room.saturating_sub(28));
    if quote < (ip.hlen + 8).min(ip.end) || room < 28 {
        return Err(NatError::Truncated);
    }
    let total = 28 + quote;
    let out = &mut out[..total];
    out[..28].fill(0);
    out[0] = 0x45;
    wire::wr16(out, 2, total as u16);
    out[6] = 0x40; // DF, as Linux sends its own ICMP errors
    out[8] = 64;
    out[9] = wire::PROTO_ICMP;
    wire::wr_addr(out, wire::IP_SRC, from.octets());
    wire::wr_addr(out, wire::IP_DST, ip.src);
    let c = !checksum::fold(checksum::sum(&out[..20]));
    wire::wr16(out, wire::IP_CSUM, c);
    out[20] = wire::ICMP_DEST_UNREACHABLE;
    out[21] = 13;
    out[28..].copy_from_slice(&original[..quote]);
    let c = !checksum::fold(checksum::sum(&out[20..]));
    wire::wr16(out, 22, c);
    Ok(total)
}
