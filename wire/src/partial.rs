//! Partial TCP/UDP checksums (the kernel's CHECKSUM_PARTIAL) recognised and completed.
//!
//! A Linux sender whose device offers tx checksum offload (veth and bridges do by default, as
//! do Docker's) leaves in the TCP/UDP checksum field only the folded sum of the pseudo-header,
//! expecting the NIC to finish the job. A frame read raw (AF_XDP) still carries that value;
//! forwarded as is, the receiver drops it. A router that reads such frames must complete them.
//!
//! Exact, not a guess: only a field equal to the pseudo-header sum of the very packet is
//! touched, and a packet that already verifies with that value is left alone (1 in 65536
//! correct checksums happen to equal it). Any other wrong checksum stays wrong: end-to-end
//! semantics, the receiver decides. The cost when the field is not partial is the
//! pseudo-header sum (a dozen additions); completing costs one pass over the segment.
//!
//! IPv4 and IPv6 (TCP or UDP right after the fixed header); the L4 part ([`complete_l4`])
//! takes the pseudo-header sum of either (RFC 8200 §8.1).

use crate::checksum::{fold, sum};
use crate::ipv4::{self, PROTO_TCP, PROTO_UDP};
use crate::ipv6;
use crate::{read_u16, tcp, udp};

/// Completes the TCP or UDP checksum of the IPv4 packet at the start of `packet` when it holds
/// only the pseudo-header sum. Returns true when it was completed (the field rewritten).
///
/// Left alone: fragments (the checksum covers the whole datagram), other protocols, UDP
/// without checksum (0), anything malformed or truncated. Never panics, never allocates.
pub fn complete_partial_ipv4(packet: &mut [u8]) -> bool {
    let Ok(ip) = ipv4::Packet::new_checked(&*packet) else {
        return false;
    };
    let protocol = ip.protocol();
    if (protocol != PROTO_TCP && protocol != PROTO_UDP) || ip.is_fragment() {
        return false;
    }
    let (header_len, total_len) = (ip.header_len(), ip.total_len());
    // Source and destination addresses: the address part of the pseudo-header.
    let addrs = sum(&packet[ipv4::field::SRC.start..ipv4::field::DST.end]);
    complete_l4(addrs, protocol, &mut packet[header_len..total_len])
}

/// The same for the IPv6 packet at the start of `packet`, when TCP or UDP follows the fixed
/// header directly (packets with extension headers are left alone).
pub fn complete_partial_ipv6(packet: &mut [u8]) -> bool {
    let Ok(ip) = ipv6::Packet::new_checked(&*packet) else {
        return false;
    };
    let protocol = ip.next_header();
    if protocol != PROTO_TCP && protocol != PROTO_UDP {
        return false;
    }
    let total_len = ip.total_len();
    let addrs = sum(&packet[ipv6::field::SRC.start..ipv6::field::DST.end]);
    complete_l4(addrs, protocol, &mut packet[ipv6::HEADER_LEN..total_len])
}

/// The L4 part, for any IP version: `addrs` is the unfolded sum of the pseudo-header's
/// addresses, `l4` the TCP or UDP segment as far as the IP header says it goes. The length
/// and protocol words of the pseudo-header are added here (same in IPv4 and IPv6 as sums).
fn complete_l4(addrs: u32, protocol: u8, l4: &mut [u8]) -> bool {
    let (check_at, segment) = match protocol {
        PROTO_TCP if l4.len() >= tcp::HEADER_LEN => (tcp::field::CHECKSUM.start, l4),
        PROTO_UDP if l4.len() >= udp::HEADER_LEN => {
            // The checksum covers the UDP length, not the IP payload (which may be padded).
            let udp_len = usize::from(read_u16(l4, udp::field::LENGTH.start));
            match l4.get_mut(..udp_len) {
                Some(s) if udp_len >= udp::HEADER_LEN => (udp::field::CHECKSUM.start, s),
                _ => return false,
            }
        }
        _ => return false,
    };
    let Ok(len) = u32::try_from(segment.len()) else {
        return false;
    };
    let field = read_u16(segment, check_at);
    if protocol == PROTO_UDP && field == 0 {
        // The sender chose no checksum (RFC 768): not partial.
        return false;
    }
    // Length fits 32 bits' worth of words: fold the length's halves in with the addresses.
    let pseudo = addrs + u32::from(protocol) + (len >> 16) + (len & 0xffff);
    let partial = fold(pseudo);
    if field != partial {
        return false;
    }
    segment[check_at..check_at + 2].fill(0);
    let rest = fold(u32::from(fold(pseudo)) + u32::from(fold(sum(segment))));
    if fold(u32::from(rest) + u32::from(field)) == 0xffff {
        // A correct checksum that merely equals the pseudo-header sum: keep it.
        segment[check_at..check_at + 2].copy_from_slice(&field.to_be_bytes());
        return false;
    }
    let mut check = !rest;
    if protocol == PROTO_UDP && check == 0 {
        // Zero means "no checksum" in UDP; a computed zero is sent as all ones (RFC 768).
        check = 0xffff;
    }
    segment[check_at..check_at + 2].copy_from_slice(&check.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    /// Checksum field offsets in the TCP and UDP headers, written out independently of the
    /// views under test.
    const TCP_CHECK_AT: usize = 16;
    const UDP_CHECK_AT: usize = 6;
    const SRC: [u8; 4] = [172, 23, 0, 2];
    const DST: [u8; 4] = [172, 23, 0, 3];

    /// An IPv4 TCP packet with the checksum etherparse computes.
    fn tcp(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4(SRC, DST, 64)
            .tcp(80, 40000, 12345, 65535)
            .ack(777)
            .psh();
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    /// An IPv4 UDP packet with the checksum etherparse computes.
    fn udp(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4(SRC, DST, 64)
            .udp(5201, 40001)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    /// What a Linux sender with tx checksum offload puts in the field: the folded
    /// pseudo-header sum, computed here independently of the code under test.
    fn pseudo_sum(p: &[u8]) -> u16 {
        let l4_len = p.len() - 20;
        let mut words: Vec<u8> = p[12..20].to_vec();
        words.extend_from_slice(&[0, p[9]]);
        words.extend_from_slice(&(l4_len as u16).to_be_bytes());
        fold(sum(&words))
    }

    fn make_partial(p: &mut [u8], check_at: usize) -> u16 {
        let ps = pseudo_sum(p);
        p[20 + check_at..22 + check_at].copy_from_slice(&ps.to_be_bytes());
        ps
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn partial_tcp_is_completed_to_what_etherparse_computes() {
        for n in [0, 1, 2, 3, 100, 1379, 1380] {
            let good = tcp(&payload(n));
            let mut p = good.clone();
            make_partial(&mut p, TCP_CHECK_AT);
            assert_ne!(p, good, "payload {n}: the partial value differs");
            assert!(complete_partial_ipv4(&mut p), "payload {n}");
            assert_eq!(p, good, "payload {n}");
        }
    }

    #[test]
    fn partial_udp_is_completed_to_what_etherparse_computes() {
        for n in [0, 1, 2, 17, 512, 1392] {
            let good = udp(&payload(n));
            let mut p = good.clone();
            make_partial(&mut p, UDP_CHECK_AT);
            assert!(complete_partial_ipv4(&mut p), "payload {n}");
            assert_eq!(p, good, "payload {n}");
        }
    }

    /// IPv6: the pseudo-header is both 16-byte addresses, the length and next header.
    #[test]
    fn partial_ipv6_tcp_and_udp_are_completed_to_what_etherparse_computes() {
        let (src, dst) = (
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            [0xfd; 16],
        );
        for n in [0, 1, 2, 3, 100, 1379] {
            for udp in [false, true] {
                let b = PacketBuilder::ipv6(src, dst, 64);
                let mut good = Vec::new();
                let check_at = if udp {
                    b.udp(5201, 40001).write(&mut good, &payload(n)).unwrap();
                    40 + UDP_CHECK_AT
                } else {
                    let b = b.tcp(80, 40000, 12345, 65535).ack(777);
                    b.write(&mut good, &payload(n)).unwrap();
                    40 + TCP_CHECK_AT
                };
                let mut words: Vec<u8> = good[8..40].to_vec();
                words.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, good[6]]);
                words.extend_from_slice(&((good.len() - 40) as u32).to_be_bytes());
                let ps = fold(sum(&words));
                let mut p = good.clone();
                p[check_at..check_at + 2].copy_from_slice(&ps.to_be_bytes());
                assert!(complete_partial_ipv6(&mut p), "payload {n} udp {udp}");
                assert_eq!(p, good, "payload {n} udp {udp}");
                assert!(
                    !complete_partial_ipv6(&mut p),
                    "a complete one is left alone"
                );
            }
        }
    }

    #[test]
    fn correct_and_wrong_checksums_are_left_alone() {
        for (mut p, at) in [(tcp(b"hello"), TCP_CHECK_AT), (udp(b"hello"), UDP_CHECK_AT)] {
            let good = p.clone();
            assert!(!complete_partial_ipv4(&mut p));
            assert_eq!(p, good, "a correct checksum is untouched");
            let c = u16::from_be_bytes([p[20 + at], p[21 + at]]);
            let wrong = (c ^ 0x0101).to_be_bytes();
            p[20 + at..22 + at].copy_from_slice(&wrong);
            let bad = p.clone();
            assert!(!complete_partial_ipv4(&mut p));
            assert_eq!(p, bad, "a wrong checksum stays wrong");
        }
    }

    #[test]
    fn a_correct_checksum_equal_to_the_pseudo_sum_is_not_counted() {
        // Adjust two payload bytes so that the pseudo-header sum is the correct checksum.
        let mut p = tcp(&[0; 8]);
        let ps = make_partial(&mut p, TCP_CHECK_AT);
        let total = sum(&p[12..20]) + 6 + (p.len() as u32 - 20) + sum(&p[20..]);
        // Adding `x` to a zero payload word makes the sum 0xffff (it verifies).
        let x = !fold(total);
        p[40..42].copy_from_slice(&x.to_be_bytes());
        let before = p.clone();
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), ps);
        assert!(!complete_partial_ipv4(&mut p));
        assert_eq!(p, before);
        // etherparse agrees that this checksum is right.
        let good = tcp(&p[40..]);
        assert_eq!(good, p);
    }

    #[test]
    fn udp_without_checksum_fragments_and_other_protocols_are_skipped() {
        let mut p = udp(b"no checksum");
        p[26..28].fill(0);
        let before = p.clone();
        assert!(!complete_partial_ipv4(&mut p));
        assert_eq!(p, before);

        let mut p = tcp(b"fragment");
        make_partial(&mut p, TCP_CHECK_AT);
        p[6] |= 0x20; // more fragments
        let before = p.clone();
        assert!(!complete_partial_ipv4(&mut p));
        assert_eq!(p, before);

        let mut p = tcp(b"icmp");
        make_partial(&mut p, TCP_CHECK_AT);
        p[9] = 1;
        let before = p.clone();
        assert!(!complete_partial_ipv4(&mut p));
        assert_eq!(p, before);
    }

    #[test]
    fn udp_length_not_ip_length_bounds_the_checksum() {
        // Ethernet padding after the datagram, counted in the IP length but not by UDP.
        let good = udp(b"x");
        let mut p = good.clone();
        make_partial(&mut p, UDP_CHECK_AT);
        let ip_len = (p.len() + 4) as u16;
        p[2..4].copy_from_slice(&ip_len.to_be_bytes());
        p.extend_from_slice(&[0xaa; 4]);
        // The pseudo-header length is the UDP length; recompute the partial value for it.
        let udp_len = u32::from(u16::from_be_bytes([p[24], p[25]]));
        let ps = fold(sum(&p[12..20]) + 17 + udp_len);
        p[26..28].copy_from_slice(&ps.to_be_bytes());
        assert!(complete_partial_ipv4(&mut p));
        assert_eq!(p[26..28], good[26..28]);
    }

    #[test]
    fn short_and_malformed_input_is_left_alone() {
        let good = tcp(b"truncated");
        let mut partial = good.clone();
        make_partial(&mut partial, TCP_CHECK_AT);
        for cut in 0..partial.len() {
            let mut p = partial[..cut].to_vec();
            assert!(!complete_partial_ipv4(&mut p), "cut at {cut}");
        }
        let mut p = partial.clone();
        p[0] = 0x44; // header length 16
        assert!(!complete_partial_ipv4(&mut p));
        let mut p = partial.clone();
        p[0] = 0x65; // version 6
        assert!(!complete_partial_ipv4(&mut p));
        let mut p = udp(b"");
        p[24..26].copy_from_slice(&7u16.to_be_bytes()); // UDP length below its header
        assert!(!complete_partial_ipv4(&mut p));
    }

    proptest! {
        #[test]
        fn never_panics_and_only_touches_the_checksum_field(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..120),
            tcp_proto in any::<bool>(),
        ) {
            if bytes.len() >= 20 {
                bytes[0] = 0x45;
                bytes[9] = if tcp_proto { 6 } else { 17 };
                bytes[6] &= 0x40;
                bytes[7] = 0;
                let len = bytes.len() as u16;
                bytes[2..4].copy_from_slice(&len.to_be_bytes());
            }
            let before = bytes.clone();
            let changed = complete_partial_ipv4(&mut bytes);
            let at = 20 + if tcp_proto { TCP_CHECK_AT } else { UDP_CHECK_AT };
            for (i, (a, b)) in before.iter().zip(&bytes).enumerate() {
                if a != b {
                    prop_assert!(changed && (i == at || i == at + 1));
                }
            }
        }
    }
}
