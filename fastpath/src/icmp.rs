//! ICMP errors the gateway originates, as a router must (RFC 792, RFC 1812 §4.3.2): time
//! exceeded when a forwarded packet's TTL runs out, fragmentation needed for path MTU discovery
//! (RFC 1191), host unreachable when no tunnel peer owns a destination. Used by the fast-path
//! workers and by the slow path's wg0 reader. Nothing allocates; bad input is `None`, never a
//! panic.

use std::net::Ipv4Addr;

use wire::checksum::internet_checksum;

const IPV4_HEADER_LEN: usize = 20;
const IPPROTO_ICMP: u8 = 1;
/// TTL of the packets the gateway originates (Linux's default ip_default_ttl).
const DEFAULT_TTL: u8 = 64;

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
            IcmpError::TimeExceeded => (11, 0, [0; 4]),
            IcmpError::FragmentationNeeded { mtu } => {
                let m = mtu.to_be_bytes();
                (3, 4, [0, 0, m[0], m[1]])
            }
            IcmpError::HostUnreachable => (3, 1, [0; 4]),
        }
    }
}

/// Builds, at the start of `out`, the ICMP error `kind` from `router` to the source of
/// `original` (an IPv4 packet), quoting its header and the first 8 bytes of its payload as RFC
/// 792 requires. Returns the length written. `out` and `original` must not overlap: callers
/// quote from a copy.
pub fn icmp_error(
    out: &mut [u8],
    router: Ipv4Addr,
    original: &[u8],
    kind: IcmpError,
) -> Option<usize> {
    let ihl = usize::from(original.first()? & 0x0f) * 4;
    if ihl < IPV4_HEADER_LEN || original.len() < ihl + 8 {
        return None;
    }
    // RFC 1122 §3.2.2: never an error about an ICMP error or a non-first fragment.
    let fragment_offset = u16::from_be_bytes([original[6], original[7]]) & 0x1fff;
    if fragment_offset != 0 {
        return None;
    }
    if original[9] == IPPROTO_ICMP && !matches!(original[ihl], 0 | 8 | 13 | 14) {
        return None;
    }
    let quoted = original.len().min(ihl + 8);
    let icmp_len = 8 + quoted;
    let total = IPV4_HEADER_LEN + icmp_len;
    let dst = Ipv4Addr::new(original[12], original[13], original[14], original[15]);
    let pkt = out.get_mut(..total)?;
    pkt[0] = 0x45;
    pkt[1] = 0xc0; // precedence "internetwork control", as routers send ICMP
    pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    pkt[4..8].copy_from_slice(&[0, 0, 0, 0]);
    pkt[8] = DEFAULT_TTL;
    pkt[9] = IPPROTO_ICMP;
    pkt[10..12].copy_from_slice(&[0, 0]);
    pkt[12..16].copy_from_slice(&router.octets());
    pkt[16..20].copy_from_slice(&dst.octets());
    let csum = internet_checksum(&pkt[..IPV4_HEADER_LEN]);
    pkt[10..12].copy_from_slice(&csum.to_be_bytes());
    let (icmp_type, code, rest) = kind.header();
    let icmp = &mut pkt[IPV4_HEADER_LEN..];
    icmp[0] = icmp_type;
    icmp[1] = code;
    icmp[2..4].copy_from_slice(&[0, 0]);
    icmp[4..8].copy_from_slice(&rest);
    icmp[8..].copy_from_slice(&original[..quoted]);
    let csum = internet_checksum(icmp);
    icmp[2..4].copy_from_slice(&csum.to_be_bytes());
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Type, IpNumber, Ipv4Header, SlicedPacket};

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
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = s.transport else {
            panic!()
        };
        assert!(matches!(icmp.icmp_type(), Icmpv4Type::TimeExceeded(_)));
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
