//! The outer IPv4/UDP headers the worker writes in front of a sealed WireGuard message. The
//! layouts, constants, the Ethernet writer and the TTL decrement are `wire`'s; this is only the
//! choice of fields WireGuard's outer packets are sent with. Nothing allocates; a slice too
//! short is `None`, never a panic.

use std::net::Ipv4Addr;

use wire::{ipv4, udp};

/// Ethernet (no VLAN tag), IPv4 (no options) and UDP in front of a WireGuard message.
pub const OUTER_V4_LEN: usize = wire::ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Writes an IPv4 header followed by a UDP header at the start of `buf`, for a UDP payload of
/// `payload_len` bytes, as kernel WireGuard sends its outer packets: DF clear, so that a router
/// on a path with a smaller MTU fragments the datagram instead of dropping it (the peer
/// reassembles), and identification `ident` (the caller's counter, for that reassembly). The
/// UDP checksum is left zero, which RFC 768 allows over IPv4; the AEAD tag already
/// authenticates the payload.
pub fn write_ipv4_udp(
    buf: &mut [u8],
    (src, dst): (Ipv4Addr, Ipv4Addr),
    (src_port, dst_port): (u16, u16),
    ident: u16,
    payload_len: usize,
) -> Option<()> {
    let udp_len = udp::HEADER_LEN + payload_len;
    if buf.len() < ipv4::HEADER_LEN + udp::HEADER_LEN {
        return None;
    }
    let (ip, rest) = buf.split_at_mut(ipv4::HEADER_LEN);
    ipv4::Repr {
        src,
        dst,
        protocol: ipv4::PROTO_UDP,
        payload_len: udp_len,
        ttl: ipv4::DEFAULT_TTL,
        tos: 0,
        ident,
        dont_frag: false,
    }
    .emit(ip)
    .ok()?;
    udp::Repr {
        src_port,
        dst_port,
        payload_len,
    }
    .emit(rest)
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketHeaders;
    use wire::ethernet::{write_header as write_ethernet, ETHERTYPE_IPV4};

    #[test]
    fn outer_headers_parse_back_with_etherparse() {
        let mut buf = [0u8; 128];
        write_ethernet(&mut buf, [2; 6], [4; 6], ETHERTYPE_IPV4).unwrap();
        let payload = [9u8; 40];
        buf[42..82].copy_from_slice(&payload);
        write_ipv4_udp(
            &mut buf[14..],
            (Ipv4Addr::new(172, 23, 0, 3), Ipv4Addr::new(172, 23, 0, 9)),
            (51820, 40000),
            0xbeef,
            40,
        )
        .unwrap();
        let h = PacketHeaders::from_ethernet_slice(&buf[..82]).unwrap();
        let Some(etherparse::NetHeaders::Ipv4(ip, _)) = h.net else {
            panic!("not ipv4")
        };
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(ip.source, [172, 23, 0, 3]);
        assert!(
            !ip.dont_fragment,
            "outer packets may be fragmented on the path"
        );
        assert_eq!(ip.identification, 0xbeef);
        let Some(etherparse::TransportHeader::Udp(udp)) = h.transport else {
            panic!("not udp")
        };
        assert_eq!(
            (udp.source_port, udp.destination_port, udp.length),
            (51820, 40000, 48)
        );
        assert_eq!(h.payload.slice(), &payload);
    }

    #[test]
    fn short_buffer_or_oversized_payload_is_none() {
        let a = Ipv4Addr::LOCALHOST;
        assert_eq!(write_ipv4_udp(&mut [0u8; 27], (a, a), (1, 2), 0, 0), None);
        assert_eq!(
            write_ipv4_udp(&mut [0u8; 28], (a, a), (1, 2), 0, 65508),
            None
        );
        assert_eq!(
            write_ipv4_udp(&mut [0u8; 28], (a, a), (1, 2), 0, 65507),
            Some(())
        );
    }
}
