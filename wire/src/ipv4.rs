//! IPv4 headers (RFC 791): the fixed 20 bytes, options, and the payload up to Total Length;
//! header checksum check and fill, and the TTL decrement a router does with an incremental
//! checksum update (RFC 1624).

use core::net::Ipv4Addr;

use crate::checksum;
use crate::{read_u16, write_u16, Error};

/// The header without options.
pub const HEADER_LEN: usize = 20;
/// The header with the most options IHL can describe (15 words).
pub const MAX_HEADER_LEN: usize = 60;

/// Protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// TTL of the packets the gateway originates (Linux's default `ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;

/// Flag bits of the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
pub const FLAG_MF: u16 = 0x2000;
/// The fragment offset, in 8-byte units.
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// Byte offsets and ranges of the header fields.
pub mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// What decrementing the TTL of a forwarded packet found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// Decremented; the packet may be forwarded.
    Forward,
    /// The TTL was 0 or 1: the packet must not be forwarded (RFC 1812 §5.3.1). Untouched.
    Expired,
}

/// A view of an IPv4 packet.
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks; the accessors panic if it is shorter than the header.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a whole datagram: version 4, IHL >= 5, header within Total Length, Total Length
    /// within `buffer` (bytes after it, such as link padding, are not part of the packet).
    /// The header checksum is not checked here ([`Packet::verify_checksum`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let hlen = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        let total = usize::from(read_u16(b, field::LENGTH.start));
        if hlen < HEADER_LEN || total < hlen {
            return Err(Error::BadLength);
        }
        if total > b.len() || hlen > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// Wraps the start of a datagram as an ICMP error quotes it (RFC 792: the header and 8
    /// bytes): version 4, IHL >= 5 and the header within `buffer`; Total Length is not held
    /// against `buffer`, and [`Packet::payload`] is whatever of it is there.
    #[inline]
    pub fn new_checked_header(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let hlen = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        if hlen < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if hlen > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// IHL in bytes: where the payload starts.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Total Length: header and payload.
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH.start))
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    #[inline]
    fn flg_off(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start)
    }

    /// Don't Fragment: the sender does path MTU discovery.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flg_off() & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flg_off() & FLAG_MF != 0
    }

    /// Fragment offset in 8-byte units; non-zero for every fragment but the first.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.flg_off() & FRAG_OFFSET_MASK
    }

    /// A piece of a fragmented datagram: More Fragments set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flg_off() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }

    /// The options (empty for IHL 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// End of the payload: Total Length, cut to the buffer (a quoted header) and never before
    /// the header.
    #[inline]
    fn payload_end(&self) -> usize {
        let b = self.buffer.as_ref();
        self.total_len().min(b.len()).max(self.header_len())
    }

    /// The payload: from the end of the header to Total Length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.payload_end()]
    }

    /// Whether the header checksum verifies (RFC 1071).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.header())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes version 4 and the IHL for a header of `len` bytes (a multiple of 4, 20..=60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0f);
    }

    #[inline]
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }

    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, v);
    }

    /// Writes the flags/fragment-offset word.
    #[inline]
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut w = offset & FRAG_OFFSET_MASK;
        if dont_frag {
            w |= FLAG_DF;
        }
        if more_frags {
            w |= FLAG_MF;
        }
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, w);
    }

    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    #[inline]
    pub fn set_src_addr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&v.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&v.octets());
    }

    /// Computes and stores the header checksum over the header, options included.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::internet_checksum(self.header());
        self.set_checksum(c);
    }

    /// Decrements the TTL and patches the header checksum incrementally (RFC 1624 eqn. 3:
    /// HC' = ~(~HC + ~m + m')); a TTL of 0 or 1 is left alone and reported expired.
    #[inline]
    pub fn decrement_ttl(&mut self) -> Ttl {
        let b = self.buffer.as_mut();
        if b[field::TTL] <= 1 {
            return Ttl::Expired;
        }
        let old_word = read_u16(b, field::TTL);
        b[field::TTL] -= 1;
        let new_word = read_u16(b, field::TTL);
        let old_csum = read_u16(b, field::CHECKSUM.start);
        let sum = u32::from(!old_csum) + u32::from(!old_word) + u32::from(new_word);
        write_u16(b, field::CHECKSUM.start, !checksum::fold(sum));
        Ttl::Forward
    }

    /// The payload, to rewrite in place.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.payload_end());
        &mut self.buffer.as_mut()[start..end]
    }
}

/// The fields of an option-less IPv4 header the gateway originates; [`Repr::emit`] writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// Bytes after the header.
    pub payload_len: usize,
    pub ttl: u8,
    pub tos: u8,
    /// Identification (RFC 6864: unique per source, destination and protocol while fragments
    /// may be in flight, so it matters only when `dont_frag` is false).
    pub ident: u16,
    pub dont_frag: bool,
}

impl Repr {
    /// Writes the 20-byte header (fragment offset 0, checksum filled) at the start of
    /// `buf`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let total = HEADER_LEN
            .checked_add(self.payload_len)
            .and_then(|t| u16::try_from(t).ok())
            .ok_or(Error::TooLong)?;
        let h = buf.get_mut(..HEADER_LEN).ok_or(Error::Truncated)?;
        let mut p = Packet::new_unchecked(h);
        p.set_version_and_header_len(HEADER_LEN);
        p.set_tos(self.tos);
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.set_frag(self.dont_frag, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
        Ok(())
    }
}

#[inline]
fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Header, Ipv4Options};

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
    fn reads_what_etherparse_writes() {
        let mut h = Ipv4Header::new(5, 17, IpNumber::TCP, [1, 2, 3, 4], [5, 6, 7, 8]).unwrap();
        h.identification = 0xbeef;
        h.dont_fragment = false;
        h.more_fragments = true;
        h.fragment_offset = 100.try_into().unwrap();
        h.dscp = 46.try_into().unwrap();
        h.options = Ipv4Options::try_from(&[1u8, 1, 1, 0][..]).unwrap();
        h.set_payload_len(5).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut b = h.to_bytes().to_vec();
        b.extend_from_slice(&[9, 9, 9, 9, 9]);
        b.extend_from_slice(&[0xee; 3]); // link padding after Total Length
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 29);
        assert_eq!(p.tos(), 46 << 2);
        assert_eq!(p.ident(), 0xbeef);
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 100);
        assert!(p.is_fragment());
        assert_eq!(p.ttl(), 17);
        assert_eq!(p.protocol(), PROTO_TCP);
        assert_eq!(p.checksum(), h.header_checksum);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(5, 6, 7, 8));
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[9; 5]);
        assert_eq!(
            (PROTO_ICMP, PROTO_TCP, PROTO_UDP),
            (IpNumber::ICMP.0, IpNumber::TCP.0, IpNumber::UDP.0)
        );
    }

    #[test]
    fn bad_lengths_are_errors_in_order() {
        let good = sample_ipv4(64);
        assert_eq!(
            Packet::new_checked(&good[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), Error::BadVersion);
        let mut ihl4 = good.clone();
        ihl4[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&ihl4[..]).unwrap_err(),
            Error::BadLength
        );
        let mut short_total = good.clone();
        short_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&short_total[..]).unwrap_err(),
            Error::BadLength
        );
        // Total Length past the buffer: a whole datagram is refused, a quoted header is not.
        assert_eq!(
            Packet::new_checked(&good[..28]).unwrap_err(),
            Error::Truncated
        );
        let q = Packet::new_checked_header(&good[..28]).unwrap();
        assert_eq!(q.payload().len(), 8);
        let mut ihl15 = good.clone();
        ihl15[0] = 0x4f;
        assert_eq!(
            Packet::new_checked_header(&ihl15[..28]).unwrap_err(),
            Error::Truncated
        );
        let mut bad_sum = good.clone();
        bad_sum[10] ^= 1;
        assert!(!Packet::new_checked(&bad_sum[..]).unwrap().verify_checksum());
    }

    #[test]
    fn ttl_decrement_keeps_checksum_equal_to_full_recomputation() {
        for ttl in 2..=255u8 {
            let mut p = sample_ipv4(ttl);
            assert_eq!(
                Packet::new_checked(&mut p[..]).unwrap().decrement_ttl(),
                Ttl::Forward
            );
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
            assert_eq!(
                Packet::new_checked(&mut p[..]).unwrap().decrement_ttl(),
                Ttl::Expired
            );
            assert_eq!(p, before);
        }
        assert_eq!(
            Packet::new_checked(&mut [0u8; 10][..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn emitted_header_parses_back_with_etherparse() {
        let mut b = [0u8; 30];
        let r = Repr {
            src: Ipv4Addr::new(172, 23, 0, 3),
            dst: Ipv4Addr::new(10, 13, 13, 2),
            protocol: PROTO_ICMP,
            payload_len: 10,
            ttl: DEFAULT_TTL,
            tos: 0xc0,
            ident: 0x1234,
            dont_frag: true,
        };
        r.emit(&mut b).unwrap();
        let (h, _) = Ipv4Header::from_slice(&b).unwrap();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.total_len, 30);
        assert_eq!(h.time_to_live, 64);
        assert!(h.dont_fragment);
        assert_eq!(h.identification, 0x1234);
        assert_eq!(h.protocol, IpNumber::ICMP);
        assert_eq!(h.source, [172, 23, 0, 3]);
        assert_eq!(h.destination, [10, 13, 13, 2]);
        assert_eq!(r.emit(&mut [0u8; 19]), Err(Error::Truncated));
        let huge = Repr {
            payload_len: 65516,
            ..r
        };
        assert_eq!(huge.emit(&mut b), Err(Error::TooLong));
    }

    proptest::proptest! {
        #[test]
        fn new_checked_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let mut b = b;
            if let Ok(p) = Packet::new_checked(&b[..]) {
                proptest::prop_assert!(p.total_len() <= b.len());
                let _ = (p.options(), p.payload(), p.verify_checksum(), p.src_addr(), p.dst_addr(),
                         p.is_fragment(), p.dont_frag(), p.frag_offset());
            }
            if let Ok(p) = Packet::new_checked_header(&b[..]) {
                let _ = (p.options(), p.payload(), p.header(), p.verify_checksum());
            }
            if let Ok(mut p) = Packet::new_checked(&mut b[..]) {
                let _ = p.decrement_ttl();
                p.fill_checksum();
                proptest::prop_assert!(p.verify_checksum());
                let _ = p.payload_mut();
            }
        }
    }
}
