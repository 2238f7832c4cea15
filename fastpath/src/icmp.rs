//! ICMP errors the gateway originates, as a router must (RFC 792, RFC 1812 §4.3.2): time
//! exceeded when a forwarded packet's TTL runs out, fragmentation needed for path MTU discovery
//! (RFC 1191), host unreachable when no tunnel peer owns a destination. Used by the fast-path
//! workers and by the slow path's wg0 reader. Nothing allocates; bad input is `None`, never a
//! panic.

use std::net::Ipv4Addr;

use wire::{icmp, ipv4};

/// ICMP error messages the gateway originates (RFC 792, RFC 1191 for "fragmentation needed").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Type 11 code 0: the TTL ran out in transit.
    TimeExceeded,
    /// Type 3 code 4 with the next-hop MTU: too big to forward with DF set (path MTU
    /// discovery, RFC 1191 §4).
    FragmentationNeeded { mtu: u16 },
    /// Type 3 code 1: no tunnel peer for the destination.
    HostUnreachable,
}

impl IcmpError {
    /// Type, code and the four "rest of header" bytes.
    fn header(self) -> (u8, u8, [u8; 4]) {
        match self {
            IcmpError::TimeExceeded => (icmp::TIME_EXCEEDED, icmp::CODE_TTL_EXCEEDED, [0; 4]),
            IcmpError::FragmentationNeeded { mtu } => {
                let m = mtu.to_be_bytes();
                (
                    icmp::DEST_UNREACHABLE,
                    icmp::CODE_FRAG_NEEDED,
                    [0, 0, m[0], m[1]],
                )
            }
            IcmpError::HostUnreachable => {
                (icmp::DEST_UNREACHABLE, icmp::CODE_HOST_UNREACHABLE, [0; 4])
            }
        }
    }
}

/// Builds, at the start of `out`, the ICMP error `kind` from `router` to the source of
/// `original` (an IPv4 packet, or its start), quoting its header and the first 8 bytes of its
/// payload as RFC 792 requires. Returns the length written. `out` and `original` must not
/// overlap: callers quote from a copy.
pub fn icmp_error(
    out: &mut [u8],
    router: Ipv4Addr,
    original: &[u8],
    kind: IcmpError,
) -> Option<usize> {
    let orig = ipv4::Packet::new_checked_header(original).ok()?;
    let ihl = orig.header_len();
    if original.len() < ihl + icmp::QUOTED_DATA_LEN {
        return None;
    }
    // RFC 1122 §3.2.2: never an error about an ICMP error or a non-first fragment.
    if orig.frag_offset() != 0 {
        return None;
    }
    if orig.protocol() == ipv4::PROTO_ICMP && !is_query(original[ihl]) {
        return None;
    }
    let quoted = original.len().min(ihl + icmp::QUOTED_DATA_LEN);
    let icmp_len = icmp::HEADER_LEN + quoted;
    let total = ipv4::HEADER_LEN + icmp_len;
    let pkt = out.get_mut(..total)?;
    let (ip_header, message) = pkt.split_at_mut(ipv4::HEADER_LEN);
    ipv4::Repr {
        src: router,
        dst: orig.src_addr(),
        protocol: ipv4::PROTO_ICMP,
        payload_len: icmp_len,
        ttl: ipv4::DEFAULT_TTL,
        // Precedence "internetwork control", as routers send ICMP.
        tos: 0xc0,
        ident: 0,
        dont_frag: false,
    }
    .emit(ip_header)
    .ok()?;
    let (icmp_type, code, rest) = kind.header();
    let mut m = icmp::Packet::new_checked(message).ok()?;
    m.set_msg_type(icmp_type);
    m.set_code(code);
    m.set_rest_of_header(rest);
    m.data_mut().copy_from_slice(&original[..quoted]);
    m.fill_checksum();
    Some(total)
}

/// An ICMP query (echo, timestamp) may be answered with an error; an error may not.
fn is_query(t: u8) -> bool {
    icmp::is_query_request(t) || icmp::is_query_reply(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Type, IpNumber, Ipv4Header, SlicedPacket};
    use wire::checksum::internet_checksum;
    use wire::ipv4::PROTO_ICMP as IPPROTO_ICMP;

    fn sample_ipv4(ttl: u8) -> Vec<u8> {
        let mut ip =
            Ipv4Header::new(4, ttl, IpNumber::UDP, [10, 13, 13, 2], [172, 23, 0, 2]).unwrap();
        ip.header_checksum = ip.calc_header_checksum();
        let mut v = ip.to_bytes().to_vec();
        v.extend_from_slice(&[0x12, 0x34, 0x00, 0x35, 0, 12, 0, 0, 1, 2, 3, 4]);
        let len = v.len() as u16;
        v[2..4].copy_from_slice(&len.to_be_bytes());
        let (mut h, _) = Ipv4Header::from_slice(&v).unwrap();
        h.header_checksum = h.calc_header_checksum();
        v[..20].copy_from_slice(&h.to_bytes());
        v
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (folded), checksum is its complement.
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn time_exceeded_quotes_header_and_eight_bytes() {
        let original = sample_ipv4(1);
        let mut out = [0u8; 128];
        let n = icmp_error(
            &mut out,
            Ipv4Addr::new(172, 23, 0, 3),
            &original,
            IcmpError::TimeExceeded,
        )
        .unwrap();
        assert_eq!(n, 20 + 8 + 28);
        let s = SlicedPacket::from_ip(&out[..n]).unwrap();
        let Some(etherparse::InternetSlice::Ipv4(ip)) = &s.net else {
            panic!()
        };
        assert_eq!(ip.header().destination(), [10, 13, 13, 2]);
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = &s.transport else {
            panic!()
        };
        assert!(matches!(icmp.icmp_type(), Icmpv4Type::TimeExceeded(_)));
        // The parse (an ArrayVec of link extensions inside: a Drop) borrows `out` until here.
        drop(s);
        assert_eq!(internet_checksum(&out[20..n]), 0, "ICMP checksum verifies");
        assert_eq!(&out[28..n], &original[..28]);
        assert_eq!(
            icmp_error(
                &mut out,
                Ipv4Addr::LOCALHOST,
                &[0x45, 0],
                IcmpError::TimeExceeded
            ),
            None
        );
    }

    #[test]
    fn fragmentation_needed_carries_the_next_hop_mtu() {
        let original = sample_ipv4(64);
        let mut out = [0u8; 128];
        let kind = IcmpError::FragmentationNeeded { mtu: 1420 };
        let n = icmp_error(&mut out, Ipv4Addr::new(172, 23, 0, 3), &original, kind).unwrap();
        let s = SlicedPacket::from_ip(&out[..n]).unwrap();
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = s.transport else {
            panic!("not ICMP")
        };
        let Icmpv4Type::DestinationUnreachable(u) = icmp.icmp_type() else {
            panic!("not destination unreachable")
        };
        assert_eq!(
            u,
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1420 }
        );
        assert_eq!(internet_checksum(&out[20..n]), 0);
    }

    #[test]
    fn no_error_about_an_icmp_error_or_a_later_fragment() {
        let mut out = [0u8; 128];
        let mut p = sample_ipv4(64);
        p[6..8].copy_from_slice(&[0, 10]); // fragment offset 80
        assert_eq!(
            icmp_error(&mut out, Ipv4Addr::LOCALHOST, &p, IcmpError::TimeExceeded),
            None
        );
        let mut p = sample_ipv4(64);
        p[9] = IPPROTO_ICMP;
        p[20] = 3; // destination unreachable
        assert_eq!(
            icmp_error(&mut out, Ipv4Addr::LOCALHOST, &p, IcmpError::TimeExceeded),
            None
        );
        p[20] = 8; // echo request: an error about it is fine
        assert!(icmp_error(&mut out, Ipv4Addr::LOCALHOST, &p, IcmpError::TimeExceeded).is_some());
    }
}
