//! UDP headers (RFC 768): ports, length, checksum, and the IPv4 pseudo-header sum the checksum
//! covers.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::ipv4::PROTO_UDP;
use crate::{read_u16, write_u16, Error};

pub const HEADER_LEN: usize = 8;

/// Byte ranges of the header fields.
pub mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A view of a UDP datagram.
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks; the accessors panic if it is shorter than 8 bytes and
    /// [`Packet::payload`] if the length field is not checked ([`Packet::check_len`]).
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`Packet::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// The header is there, and its length field covers the header and fits the buffer (bytes
    /// after it are not part of the datagram).
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(read_u16(b, field::LENGTH.start));
        if len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field: header and payload.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH.start))
    }

    /// True for a length field of 8: no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len()]
    }

    /// Whether the checksum verifies over the pseudo-header and the datagram; a zero checksum
    /// means "none" over IPv4 (RFC 768) and passes.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let b = &self.buffer.as_ref()[..self.len()];
        let s = pseudo_header_sum(src, dst, PROTO_UDP, self.len()) + checksum::sum(b);
        checksum::fold(s) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    #[inline]
    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The header of a datagram the gateway originates; [`Repr::emit`] writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes after the header.
    pub payload_len: usize,
}

impl Repr {
    /// Writes the 8-byte header at the start of `buf` with checksum 0, which RFC 768 allows
    /// over IPv4 (WireGuard's AEAD tag authenticates the payload anyway).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let len = HEADER_LEN
            .checked_add(self.payload_len)
            .and_then(|l| u16::try_from(l).ok())
            .ok_or(Error::TooLong)?;
        let h = buf.get_mut(..HEADER_LEN).ok_or(Error::Truncated)?;
        let mut p = Packet::new_unchecked(h);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len);
        p.set_checksum(0);
        Ok(())
    }
}

/// Writes the checksum of the whole datagram `dgram` (header, checksum field zero, and payload)
/// sent from `src` to `dst` over IPv6, where it is mandatory (RFC 8200 §8.1): a sum of zero is
/// sent as 0xffff, since zero means "no checksum", which IPv6 receivers drop.
pub fn fill_checksum_v6(dgram: &mut [u8], src: core::net::Ipv6Addr, dst: core::net::Ipv6Addr) {
    if dgram.len() < HEADER_LEN {
        return;
    }
    dgram[field::CHECKSUM].fill(0);
    let c = match !crate::ipv6::upper_layer_sum(src, dst, crate::ipv6::NEXT_UDP, dgram) {
        0 => 0xffff,
        c => c,
    };
    dgram[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
}

/// The unfolded one's-complement sum of the IPv4 pseudo-header (RFC 768, RFC 793 §3.1) for a
/// transport segment of `len` bytes: add it to the segment's own sum.
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u32 {
    let mut p = [0u8; 12];
    p[0..4].copy_from_slice(&src.octets());
    p[4..8].copy_from_slice(&dst.octets());
    p[9] = protocol;
    p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    checksum::sum(&p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, UdpHeader};

    fn sample() -> (Vec<u8>, Ipv4Addr, Ipv4Addr) {
        let (src, dst) = ([10, 13, 13, 2], [172, 23, 0, 2]);
        let mut v = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .udp(40000, 53)
            .write(&mut v, &[1, 2, 3, 4, 5])
            .unwrap();
        (v[20..].to_vec(), src.into(), dst.into())
    }

    #[test]
    fn reads_what_etherparse_writes() {
        let (mut b, src, dst) = sample();
        let (h, _) = UdpHeader::from_slice(&b).unwrap();
        b.push(0xee); // padding after the length field
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 13);
        assert_eq!(p.checksum(), h.checksum);
        assert_ne!(p.checksum(), 0);
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(src, Ipv4Addr::new(1, 1, 1, 1)));
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let (mut b, _, _) = sample();
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..12]).unwrap_err(), Error::Truncated);
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
    }

    #[test]
    fn emitted_header_parses_back_with_etherparse() {
        let mut b = [0u8; 8];
        Repr {
            src_port: 51820,
            dst_port: 40000,
            payload_len: 40,
        }
        .emit(&mut b)
        .unwrap();
        let (h, _) = UdpHeader::from_slice(&b).unwrap();
        assert_eq!(
            (h.source_port, h.destination_port, h.length, h.checksum),
            (51820, 40000, 48, 0)
        );
        let r = Repr {
            src_port: 1,
            dst_port: 2,
            payload_len: 65528,
        };
        assert_eq!(r.emit(&mut b), Err(Error::TooLong));
        assert_eq!(
            Repr {
                payload_len: 0,
                ..r
            }
            .emit(&mut [0u8; 7]),
            Err(Error::Truncated)
        );
    }

    proptest::proptest! {
        #[test]
        fn new_checked_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = (p.src_port(), p.dst_port(), p.payload(), p.is_empty(),
                         p.verify_checksum(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST));
            }
        }
    }
}
