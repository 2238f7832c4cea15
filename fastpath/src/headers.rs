//! Header arithmetic the worker applies to frames in place: Ethernet and outer IPv4/UDP headers
//! written in front of a payload, and TTL decrement with an incremental checksum (RFC 1624).
//! The ICMP errors a router owes senders are built by `crate::icmp`, shared with the slow
//! path.
//!
//! Everything here works on byte slices the caller has already bounds-checked for the header it
//! touches; the functions return `None` instead of panicking when a slice is too short. Nothing
//! allocates.

use std::net::Ipv4Addr;

use wire::checksum::{fold, internet_checksum};

pub const ETH_HEADER_LEN: usize = 14;
pub const IPV4_HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
/// TTL of the outer header of packets we originate (Linux's default ip_default_ttl).
pub const DEFAULT_TTL: u8 = 64;

/// A MAC address.
pub type Mac = [u8; 6];

/// Writes an Ethernet header at the start of `buf`.
pub fn write_ethernet(buf: &mut [u8], dst: Mac, src: Mac, ethertype: u16) -> Option<()> {
    let h = buf.get_mut(..ETH_HEADER_LEN)?;
    h[0..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
    Some(())
}

/// Writes an IPv4 header (no options, DF set, as WireGuard's outer packets are sent) followed by
/// a UDP header at the start of `buf`, for a UDP payload of `payload_len` bytes. The UDP checksum
/// is left zero, which RFC 768 allows over IPv4; the AEAD tag already authenticates the payload.
pub fn write_ipv4_udp(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    payload_len: usize,
) -> Option<()> {
    let total = IPV4_HEADER_LEN + UDP_HEADER_LEN + payload_len;
    let total16 = u16::try_from(total).ok()?;
    let h = buf.get_mut(..IPV4_HEADER_LEN + UDP_HEADER_LEN)?;
    h[0] = 0x45; // version 4, IHL 5
    h[1] = 0; // DSCP/ECN
    h[2..4].copy_from_slice(&total16.to_be_bytes());
    h[4..6].copy_from_slice(&[0, 0]); // identification: unused with DF
    h[6..8].copy_from_slice(&[0x40, 0]); // DF, offset 0
    h[8] = DEFAULT_TTL;
    h[9] = IPPROTO_UDP;
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let csum = internet_checksum(&h[..IPV4_HEADER_LEN]);
    h[10..12].copy_from_slice(&csum.to_be_bytes());
    let udp = &mut h[IPV4_HEADER_LEN..];
    udp[0..2].copy_from_slice(&src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&((UDP_HEADER_LEN + payload_len) as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    Some(())
}

/// What decrementing the TTL of a forwarded packet found.
#[derive(Debug, PartialEq, Eq)]
pub enum Ttl {
    /// Decremented; the packet may be forwarded.
    Forward,
    /// The TTL was 0 or 1: the packet must not be forwarded (RFC 1812 §5.3.1).
    Expired,
}

/// Decrements the TTL of the IPv4 header at the start of `ip` and patches the header checksum
/// incrementally (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
pub fn ipv4_decrement_ttl(ip: &mut [u8]) -> Option<Ttl> {
    if ip.len() < IPV4_HEADER_LEN {
        return None;
    }
    if ip[8] <= 1 {
        return Some(Ttl::Expired);
    }
    let old_word = u16::from_be_bytes([ip[8], ip[9]]);
    ip[8] -= 1;
    let new_word = u16::from_be_bytes([ip[8], ip[9]]);
    let old_csum = u16::from_be_bytes([ip[10], ip[11]]);
    let sum = u32::from(!old_csum) + u32::from(!old_word) + u32::from(new_word);
    ip[10..12].copy_from_slice(&(!fold(sum)).to_be_bytes());
    Some(Ttl::Forward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Header, PacketHeaders};

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
    fn ttl_decrement_keeps_checksum_equal_to_full_recomputation() {
        for ttl in 2..=255u8 {
            let mut p = sample_ipv4(ttl);
            assert_eq!(ipv4_decrement_ttl(&mut p), Some(Ttl::Forward));
            let (h, _) = Ipv4Header::from_slice(&p).unwrap();
            assert_eq!(h.time_to_live, ttl - 1);
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "ttl {ttl}");
        }
    }

    #[test]
    fn ttl_one_and_zero_expire_without_touching_the_packet() {
        for ttl in [0u8, 1] {
            let mut p = sample_ipv4(ttl);
            let before = p.clone();
            assert_eq!(ipv4_decrement_ttl(&mut p), Some(Ttl::Expired));
            assert_eq!(p, before);
        }
        assert_eq!(ipv4_decrement_ttl(&mut [0u8; 10]), None);
    }

    #[test]
    fn outer_headers_parse_back_with_etherparse() {
        let mut buf = [0u8; 128];
        write_ethernet(&mut buf, [2; 6], [4; 6], ETHERTYPE_IPV4).unwrap();
        let payload = [9u8; 40];
        buf[42..82].copy_from_slice(&payload);
        write_ipv4_udp(
            &mut buf[14..],
            Ipv4Addr::new(172, 23, 0, 3),
            Ipv4Addr::new(172, 23, 0, 9),
            51820,
            40000,
            40,
        )
        .unwrap();
        let h = PacketHeaders::from_ethernet_slice(&buf[..82]).unwrap();
        let Some(etherparse::NetHeaders::Ipv4(ip, _)) = h.net else {
            panic!("not ipv4")
        };
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(ip.source, [172, 23, 0, 3]);
        assert!(ip.dont_fragment);
        let Some(etherparse::TransportHeader::Udp(udp)) = h.transport else {
            panic!("not udp")
        };
        assert_eq!(
            (udp.source_port, udp.destination_port, udp.length),
            (51820, 40000, 48)
        );
        assert_eq!(h.payload.slice(), &payload);
    }
}
