//! ICMPv6 errors the gateway originates as an IPv6 router (RFC 4443): time exceeded when a
//! forwarded packet's hop limit runs out, and packet too big with the next hop's MTU, which is
//! all path MTU discovery has to go on, since IPv6 routers never fragment (RFC 8200 §5,
//! RFC 8201). The counterpart of [`crate::icmp`] for IPv4.
//!
//! The error is written in place, in the 48 bytes in front of the offending packet, so that
//! the packet itself becomes the quote without a copy: as much of it as fits in a 1280-byte
//! error (RFC 4443 §2.4 (c)). Nothing allocates; input that may not be answered, or that does
//! not fit, is `None`, never a panic.

use std::net::Ipv6Addr;
use std::ops::Range;

use wire::{icmpv6, ipv6};

/// The headers an error puts in front of the quoted packet: IPv6 and ICMPv6.
pub const ERROR_HEADERS_LEN: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;

/// The most of the offending packet an error quotes: what is left of 1280 bytes.
pub const MAX_QUOTE_LEN: usize = icmpv6::MAX_ERROR_LEN - ERROR_HEADERS_LEN;

/// ICMPv6 error messages the gateway originates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmp6Error {
    /// Type 3 code 0: the hop limit ran out in transit.
    HopLimitExceeded,
    /// Type 2 with the MTU of the next hop's link (RFC 4443 §3.2).
    PacketTooBig { mtu: u32 },
}

impl Icmp6Error {
    /// Type, code and the four bytes after the checksum.
    fn header(self) -> (u8, u8, u32) {
        match self {
            Icmp6Error::HopLimitExceeded => {
                (icmpv6::TIME_EXCEEDED, icmpv6::CODE_HOP_LIMIT_EXCEEDED, 0)
            }
            Icmp6Error::PacketTooBig { mtu } => (icmpv6::PACKET_TOO_BIG, 0, mtu),
        }
    }
}

/// Turns the IPv6 packet at `buf[packet]` into the ICMPv6 error `kind` from `router` to the
/// packet's source, in place: the IPv6 and ICMPv6 headers go into the [`ERROR_HEADERS_LEN`]
/// bytes in front of it, and the packet (without anything past its Payload Length) is the
/// quote, cut so the whole error is at most `max_len` bytes and never more than 1280. Returns
/// where the error is in `buf`.
///
/// `None`, nothing written, when there is no room in front, `max_len` leaves no room for the
/// fixed header of the quote, `buf[packet]` is not a whole IPv6 packet, or RFC 4443 §2.4 (e)
/// forbids an answer: the packet is an ICMPv6 error itself, was sent to a multicast address
/// (packet too big excepted, for multicast PMTU discovery), or its source is not one node's
/// (unspecified, loopback, multicast). Extension headers are not walked: a packet with one is
/// refused, as an error message could hide behind it (the pipeline hands such packets to the
/// kernel before they could earn an error).
pub fn icmp6_error_in_place(
    buf: &mut [u8],
    packet: Range<usize>,
    router: Ipv6Addr,
    kind: Icmp6Error,
    max_len: usize,
) -> Option<Range<usize>> {
    let start = packet.start.checked_sub(ERROR_HEADERS_LEN)?;
    let orig = ipv6::Packet::new_checked(buf.get(packet.clone())?).ok()?;
    let (src, dst, next) = (orig.src_addr(), orig.dst_addr(), orig.next_header());
    let room = max_len
        .min(icmpv6::MAX_ERROR_LEN)
        .checked_sub(ERROR_HEADERS_LEN)?;
    if room < ipv6::HEADER_LEN {
        return None;
    }
    let quote = orig.total_len().min(room);
    if src.is_unspecified() || src.is_loopback() || src.is_multicast() {
        return None;
    }
    if dst.is_multicast() && !matches!(kind, Icmp6Error::PacketTooBig { .. }) {
        return None;
    }
    if ipv6::is_extension_header(next) {
        return None;
    }
    if next == ipv6::NEXT_ICMPV6 {
        // An error about an error could loop; a message too short to have a type is not
        // answered either.
        match orig.packet().get(ipv6::HEADER_LEN) {
            Some(&t) if !icmpv6::is_error(t) => {}
            _ => return None,
        }
    }
    let end = packet.start + quote;
    let icmp_len = icmpv6::HEADER_LEN + quote;
    let (ip, message) = buf.get_mut(start..end)?.split_at_mut(ipv6::HEADER_LEN);
    ipv6::Repr {
        src: router,
        dst: src,
        next_header: ipv6::NEXT_ICMPV6,
        payload_len: icmp_len,
        hop_limit: ipv6::DEFAULT_HOP_LIMIT,
    }
    .emit(ip)
    .ok()?;
    let (icmp_type, code, rest) = kind.header();
    let mut m = icmpv6::Packet::new_checked(message).ok()?;
    m.set_msg_type(icmp_type);
    m.set_code(code);
    m.set_rest(rest);
    m.fill_checksum(router, src);
    Some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv6Type, IpNumber, Ipv6Header, NetSlice, SlicedPacket, TransportSlice};
    use proptest::prelude::*;

    const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, 1);
    const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, 2);
    const SERVER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x23, 0, 0, 0, 0, 2);
    /// Where the packet is put in the test buffers: room for the headers in front.
    const AT: usize = 128;

    /// A buffer with an IPv6 packet (next header `next`, `payload` after the fixed header) at
    /// `AT`, followed by a few bytes of padding.
    fn with_packet(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> (Vec<u8>, usize) {
        let h = Ipv6Header {
            traffic_class: 0,
            flow_label: Default::default(),
            payload_length: payload.len() as u16,
            next_header: IpNumber(next),
            hop_limit: 1,
            source: src.octets(),
            destination: dst.octets(),
        };
        let mut buf = vec![0xaa; AT];
        buf.extend_from_slice(&h.to_bytes());
        buf.extend_from_slice(payload);
        let len = buf.len() - AT;
        buf.extend_from_slice(&[0xee; 16]);
        (buf, len)
    }

    /// Parses the error with etherparse: (type, its checksum verified, quote).
    fn parse(err: &[u8]) -> (Icmpv6Type, Vec<u8>) {
        let s = SlicedPacket::from_ip(err).expect("etherparse reads the error");
        let Some(NetSlice::Ipv6(ip)) = &s.net else {
            panic!("not IPv6")
        };
        let (src, dst) = (ip.header().source(), ip.header().destination());
        assert_eq!(ip.header().payload_length() as usize, err.len() - 40);
        let Some(TransportSlice::Icmpv6(m)) = s.transport else {
            panic!("not ICMPv6")
        };
        let expected = m
            .header()
            .icmp_type
            .calc_checksum(src, dst, m.payload())
            .unwrap();
        assert_eq!(m.checksum(), expected, "checksum over the pseudo-header");
        (m.icmp_type(), m.payload().to_vec())
    }

    #[test]
    fn time_exceeded_quotes_the_whole_small_packet() {
        let udp = [0x12, 0x34, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4];
        let (mut buf, len) = with_packet(CLIENT, SERVER, 17, &udp);
        let original = buf[AT..AT + len].to_vec();
        let r = icmp6_error_in_place(
            &mut buf,
            AT..AT + len + 16,
            ROUTER,
            Icmp6Error::HopLimitExceeded,
            1420,
        )
        .unwrap();
        assert_eq!(r, AT - 48..AT + len, "padding is not quoted");
        let (t, quote) = parse(&buf[r.clone()]);
        assert!(matches!(t, Icmpv6Type::TimeExceeded(_)), "{t:?}");
        assert_eq!(quote, original);
        let ip = ipv6::Packet::new_checked(&buf[r]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (ROUTER, CLIENT));
    }

    #[test]
    fn packet_too_big_carries_the_mtu_and_fits_1280_bytes() {
        let (mut buf, len) = with_packet(CLIENT, SERVER, 6, &[7; 1400]);
        let original = buf[AT..AT + len].to_vec();
        let kind = Icmp6Error::PacketTooBig { mtu: 1280 };
        let r = icmp6_error_in_place(&mut buf, AT..AT + len, ROUTER, kind, 1420).unwrap();
        assert_eq!(r.len(), 1280);
        let (t, quote) = parse(&buf[r]);
        assert_eq!(t, Icmpv6Type::PacketTooBig { mtu: 1280 });
        assert_eq!(quote, original[..1280 - 48]);
        // A tunnel MTU below 1280 bounds it further.
        let (mut buf, len) = with_packet(CLIENT, SERVER, 6, &[7; 1400]);
        let r = icmp6_error_in_place(&mut buf, AT..AT + len, ROUTER, kind, 1000).unwrap();
        assert_eq!(r.len(), 1000);
    }

    #[test]
    fn what_rfc4443_forbids_answering_is_refused_untouched() {
        let cases: [(Ipv6Addr, Ipv6Addr, u8, &[u8], Icmp6Error); 7] = [
            // An ICMPv6 error (packet too big).
            (
                CLIENT,
                SERVER,
                58,
                &[2, 0, 0, 0],
                Icmp6Error::HopLimitExceeded,
            ),
            // An ICMPv6 message without a type.
            (CLIENT, SERVER, 58, &[], Icmp6Error::HopLimitExceeded),
            // Sent to a multicast group.
            (
                CLIENT,
                "ff02::1".parse().unwrap(),
                17,
                &[0; 8],
                Icmp6Error::HopLimitExceeded,
            ),
            // From the unspecified address, a multicast one, loopback.
            (
                Ipv6Addr::UNSPECIFIED,
                SERVER,
                17,
                &[0; 8],
                Icmp6Error::HopLimitExceeded,
            ),
            (
                "ff02::1".parse().unwrap(),
                SERVER,
                17,
                &[0; 8],
                Icmp6Error::HopLimitExceeded,
            ),
            (
                Ipv6Addr::LOCALHOST,
                SERVER,
                17,
                &[0; 8],
                Icmp6Error::HopLimitExceeded,
            ),
            // Behind a fragment header.
            (
                CLIENT,
                SERVER,
                44,
                &[17, 0, 0, 1, 0, 0, 0, 1],
                Icmp6Error::HopLimitExceeded,
            ),
        ];
        for (src, dst, next, payload, kind) in cases {
            let (mut buf, len) = with_packet(src, dst, next, payload);
            let before = buf.clone();
            assert_eq!(
                icmp6_error_in_place(&mut buf, AT..AT + len, ROUTER, kind, 1420),
                None,
                "{src} -> {dst} next {next}"
            );
            assert_eq!(buf, before);
        }
        // An echo request may be answered; so may a packet too big about multicast.
        let (mut buf, len) = with_packet(CLIENT, SERVER, 58, &[128, 0, 0, 0, 0, 1, 0, 1]);
        assert!(icmp6_error_in_place(
            &mut buf,
            AT..AT + len,
            ROUTER,
            Icmp6Error::HopLimitExceeded,
            1420
        )
        .is_some());
        let (mut buf, len) = with_packet(CLIENT, "ff0e::1".parse().unwrap(), 17, &[0; 8]);
        let kind = Icmp6Error::PacketTooBig { mtu: 1280 };
        assert!(icmp6_error_in_place(&mut buf, AT..AT + len, ROUTER, kind, 1420).is_some());
        // No room in front, or a cap that leaves no room for the quoted header.
        let (mut buf, len) = with_packet(CLIENT, SERVER, 17, &[0; 8]);
        assert_eq!(
            icmp6_error_in_place(&mut buf[AT - 47..], 47..47 + len, ROUTER, kind, 1420),
            None
        );
        assert_eq!(
            icmp6_error_in_place(&mut buf, AT..AT + len, ROUTER, kind, 87),
            None
        );
    }

    fn any_kind() -> impl Strategy<Value = Icmp6Error> {
        prop_oneof![
            Just(Icmp6Error::HopLimitExceeded),
            any::<u32>().prop_map(|mtu| Icmp6Error::PacketTooBig { mtu }),
        ]
    }

    proptest! {
        /// Whatever the bytes, the placement and the cap: no panic, and whatever is written is
        /// an ICMPv6 error of at most 1280 bytes (and the cap) that etherparse reads, with a
        /// checksum that verifies, quoting the packet's start unchanged.
        #[test]
        fn never_panics_and_writes_only_valid_bounded_errors(
            mut buf in proptest::collection::vec(any::<u8>(), 0..1700),
            make_ipv6 in any::<bool>(),
            payload_len in any::<u16>(),
            start in 0usize..200,
            len in 0usize..1700,
            max_len in 0usize..2000,
            kind in any_kind(),
        ) {
            let start = start.min(buf.len());
            let end = (start + len).min(buf.len());
            if make_ipv6 && end - start >= 40 {
                // Often enough a plausible header: version 6, a payload length that fits.
                buf[start] = 0x60 | (buf[start] & 0x0f);
                let fits = (end - start - 40) as u16;
                let p = if fits == 0 { 0 } else { payload_len % (fits + 1) };
                buf[start + 4..start + 6].copy_from_slice(&p.to_be_bytes());
            }
            let before = buf.clone();
            if let Some(r) = icmp6_error_in_place(&mut buf, start..end, ROUTER, kind, max_len) {
                prop_assert!(r.len() <= 1280 && r.len() <= max_len);
                prop_assert_eq!(r.start + 48, start);
                let (_, quote) = parse(&buf[r.clone()]);
                prop_assert_eq!(&quote[..], &before[start..r.end]);
                prop_assert!(buf[..r.start] == before[..r.start]);
                prop_assert!(buf[r.end..] == before[r.end..]);
            } else {
                prop_assert!(buf == before);
            }
        }
    }
}
