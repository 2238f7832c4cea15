//! The outer headers of WireGuard datagrams over an IPv6 underlay: reading a received
//! Ethernet/IPv6/UDP frame addressed to the listen port, and writing Ethernet/IPv6/UDP in front
//! of a sealed message. The IPv4 writer is [`crate::headers`]; [`header_len`] picks by family.
//!
//! Extension headers are not walked: the XDP program passes any IPv6 frame whose Next Header is
//! not UDP, TCP or ICMPv6 to the kernel (`handle_ipv6` in `redirect.bpf.c`), where the slow
//! path's dual-stack socket receives the datagram (fragments reassembled) and hands it back to a
//! worker through [`crate::outer_datagrams`] without them. So a frame here with anything but
//! UDP right after the fixed header is not WireGuard the fast path takes ([`parse_udp6`] says
//! `None`). Nothing allocates; short or inconsistent input is an error, never a panic.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::ops::Range;

use wire::{ethernet, ipv6, udp};

use crate::counters::DropReason;
use crate::headers::OUTER_V4_LEN;

/// Ethernet (no VLAN tag), IPv6 (no extension headers) and UDP in front of a WireGuard message.
pub const OUTER_V6_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + udp::HEADER_LEN;

/// The outer headers' length for a datagram to `to`.
#[inline]
pub fn header_len(to: &SocketAddr) -> usize {
    match to {
        SocketAddr::V4(_) => OUTER_V4_LEN,
        SocketAddr::V6(_) => OUTER_V6_LEN,
    }
}

/// A UDP datagram to the listen port found in an IPv6 packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Udp6 {
    /// Its source: the peer's endpoint as seen here.
    pub src: SocketAddrV6,
    /// Our address it was sent to (the source of a reply).
    pub local: Ipv6Addr,
    /// Where the UDP payload (the WireGuard message) is, relative to the IPv6 header.
    pub payload: Range<usize>,
}

/// Reads the IPv6 packet at the start of `ip` (the frame after its Ethernet header; trailing
/// Ethernet padding allowed): `Ok(Some)` for a UDP datagram to `listen_port` right after the
/// fixed header, `Ok(None)` for anything else that parses (another port, another protocol, an
/// extension header), `Err` for a packet or datagram whose lengths do not hold.
///
/// The UDP checksum is not verified, as for IPv4: a veth peer with tx checksum offload sends a
/// partial one, and the AEAD tag authenticates the message (the source address it does not
/// cover at most makes an authenticated packet roam the peer, as a NAT rebinding would).
pub fn parse_udp6(ip: &[u8], listen_port: u16) -> Result<Option<Udp6>, DropReason> {
    let packet = ipv6::Packet::new_checked(ip).map_err(|_| DropReason::Malformed)?;
    if packet.next_header() != ipv6::NEXT_UDP {
        return Ok(None);
    }
    let end = packet.total_len();
    let dgram =
        udp::Packet::new_checked(&ip[ipv6::HEADER_LEN..end]).map_err(|_| DropReason::Malformed)?;
    if dgram.dst_port() != listen_port {
        return Ok(None);
    }
    dgram.check_len().map_err(|_| DropReason::Malformed)?;
    let start = ipv6::HEADER_LEN + udp::HEADER_LEN;
    Ok(Some(Udp6 {
        src: SocketAddrV6::new(packet.src_addr(), dgram.src_port(), 0, 0),
        local: packet.dst_addr(),
        payload: start..ipv6::HEADER_LEN + dgram.len(),
    }))
}

/// Writes an IPv6 header followed by a UDP header at the start of `buf`, in front of the
/// `payload_len`-byte payload already at `buf[48..]`, with the UDP checksum IPv6 requires
/// (RFC 8200 §8.1), hop limit 64, flow label 0. `None` when `buf` is too short or the
/// payload too long for a UDP length.
pub fn write_ipv6_udp(
    buf: &mut [u8],
    (src, dst): (Ipv6Addr, Ipv6Addr),
    (src_port, dst_port): (u16, u16),
    payload_len: usize,
) -> Option<()> {
    let udp_len = udp::HEADER_LEN.checked_add(payload_len)?;
    let end = ipv6::HEADER_LEN.checked_add(udp_len)?;
    let buf = buf.get_mut(..end)?;
    let (ip, dgram) = buf.split_at_mut(ipv6::HEADER_LEN);
    ipv6::Repr {
        src,
        dst,
        next_header: ipv6::NEXT_UDP,
        payload_len: udp_len,
        hop_limit: ipv6::DEFAULT_HOP_LIMIT,
    }
    .emit(ip)
    .ok()?;
    udp::Repr {
        src_port,
        dst_port,
        payload_len,
    }
    .emit(dgram)
    .ok()?;
    udp::fill_checksum_v6(dgram, src, dst);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    #[test]
    fn written_headers_parse_back_with_etherparse_and_the_checksum_holds() {
        for payload_len in [0usize, 1, 32, 148, 1452] {
            let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7) as u8).collect();
            let mut buf = vec![0u8; 14 + 48 + payload_len];
            ethernet::write_header(&mut buf, [2; 6], [4; 6], ethernet::ETHERTYPE_IPV6).unwrap();
            buf[62..].copy_from_slice(&payload);
            write_ipv6_udp(&mut buf[14..], (SRC, DST), (51820, 40000), payload_len).unwrap();
            let h = PacketHeaders::from_ethernet_slice(&buf).unwrap();
            let Some(NetHeaders::Ipv6(ip, ext)) = h.net else {
                panic!("not IPv6")
            };
            assert!(ext.is_empty());
            assert_eq!((ip.source, ip.destination), (SRC.octets(), DST.octets()));
            assert_eq!(ip.hop_limit, 64);
            assert_eq!(ip.flow_label.value(), 0);
            assert_eq!(usize::from(ip.payload_length), 8 + payload_len);
            let Some(TransportHeader::Udp(u)) = h.transport else {
                panic!("not UDP")
            };
            assert_eq!((u.source_port, u.destination_port), (51820, 40000));
            assert_ne!(u.checksum, 0, "mandatory over IPv6");
            assert_eq!(u.checksum, u.calc_checksum_ipv6(&ip, &payload).unwrap());
            assert_eq!(h.payload.slice(), &payload[..]);
            let d = parse_udp6(&buf[14..], 40000).unwrap().unwrap();
            assert_eq!(d.src, SocketAddrV6::new(SRC, 51820, 0, 0));
            assert_eq!(d.local, DST);
            assert_eq!(&buf[14..][d.payload], &payload[..]);
        }
    }

    #[test]
    fn reads_what_etherparse_writes() {
        let mut v = Vec::new();
        PacketBuilder::ipv6(DST.octets(), SRC.octets(), 64)
            .udp(40000, 51820)
            .write(&mut v, &[4, 0, 0, 0, 9, 9])
            .unwrap();
        v.extend_from_slice(&[0xee; 3]); // Ethernet padding after the packet
        let d = parse_udp6(&v, 51820).unwrap().unwrap();
        assert_eq!(d.src, SocketAddrV6::new(DST, 40000, 0, 0));
        assert_eq!(d.local, SRC);
        assert_eq!(&v[d.payload], &[4, 0, 0, 0, 9, 9]);
        assert_eq!(parse_udp6(&v, 51821), Ok(None), "another port");
        // A datagram longer than its packet, and a packet longer than the frame.
        let mut bad = v.clone();
        bad[44..46].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(parse_udp6(&bad, 51820), Err(DropReason::Malformed));
        assert_eq!(parse_udp6(&v[..50], 51820), Err(DropReason::Malformed));
        // An extension header (hop-by-hop) before UDP: the kernel's, never parsed here.
        let mut ext = v.clone();
        ext[6] = 0;
        assert_eq!(parse_udp6(&ext, 51820), Ok(None));
    }

    #[test]
    fn short_buffer_or_oversized_payload_is_none() {
        assert_eq!(write_ipv6_udp(&mut [0u8; 47], (SRC, DST), (1, 2), 0), None);
        assert_eq!(
            write_ipv6_udp(&mut vec![0u8; 70_000], (SRC, DST), (1, 2), 65528),
            None
        );
        assert!(write_ipv6_udp(&mut vec![0u8; 70_000], (SRC, DST), (1, 2), 65527).is_some());
    }

    proptest::proptest! {
        /// Any bytes: never a panic, and a datagram found lies inside the packet.
        #[test]
        fn parse_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..160),
                              v6 in proptest::bool::ANY, udp in proptest::bool::ANY) {
            let mut b = b;
            if v6 && !b.is_empty() { b[0] = 0x60 | (b[0] & 0x0f); }
            if udp && b.len() > 6 { b[6] = 17; }
            if let Ok(Some(d)) = parse_udp6(&b, u16::from_be_bytes([b.get(42).copied().unwrap_or(0), b.get(43).copied().unwrap_or(0)])) {
                proptest::prop_assert!(d.payload.start <= d.payload.end && d.payload.end <= b.len());
            }
        }
    }
}
