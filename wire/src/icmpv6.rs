//! ICMPv6 (RFC 4443): type, code, checksum, the four bytes after them (the MTU of Packet Too
//! Big, the pointer of Parameter Problem, a query's identifier and sequence), and the data,
//! which for an error is as much of the offending packet as fits the minimum MTU. The checksum
//! covers the IPv6 pseudo-header ([`crate::ipv6::pseudo_header_sum`]), unlike ICMP for IPv4.

use core::net::Ipv6Addr;

use crate::{ipv6, read_u16, write_u16, Error};

/// Type, code, checksum, and the four bytes that follow.
pub const HEADER_LEN: usize = 8;

/// Error messages (types 0-127).
pub const DEST_UNREACHABLE: u8 = 1;
pub const PACKET_TOO_BIG: u8 = 2;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAMETER_PROBLEM: u8 = 4;
/// Informational messages (types 128-255).
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;

/// Time exceeded code: the hop limit ran out in transit.
pub const CODE_HOP_LIMIT_EXCEEDED: u8 = 0;

/// The largest error message: an error must fit the minimum MTU, IPv6 header included
/// (RFC 4443 §2.4 (c)).
pub const MAX_ERROR_LEN: usize = ipv6::MIN_MTU;

/// Byte offsets and ranges of the header fields.
pub mod field {
    use core::ops::{Range, RangeFrom};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// The MTU of Packet Too Big, the pointer of Parameter Problem, unused otherwise.
    pub const REST: Range<usize> = 4..8;
    pub const DATA: RangeFrom<usize> = 8..;
}

/// Whether type `t` is an error message (RFC 4443 §2.1: the high-order bit is clear).
#[inline]
pub fn is_error(t: u8) -> bool {
    t < 128
}

/// A view of an ICMPv6 message.
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks; the accessors panic if it is shorter than 8 bytes.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps `buffer` (the whole message: its length is the IPv6 payload's) after checking
    /// that it holds the 8-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The MTU of Packet Too Big (the four bytes after the checksum, as one number).
    #[inline]
    pub fn mtu(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::REST];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// What follows the header: for an error, the start of the packet it is about.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Whether the checksum verifies over the pseudo-header of `src` -> `dst` and the message.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        ipv6::upper_layer_sum(src, dst, ipv6::NEXT_ICMPV6, self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the four bytes after the checksum (the MTU of Packet Too Big; zero otherwise).
    #[inline]
    pub fn set_rest(&mut self, v: u32) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&v.to_be_bytes());
    }

    /// Computes and stores the checksum over the pseudo-header of `src` -> `dst` and the
    /// whole message (RFC 4443 §2.3).
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let s = ipv6::upper_layer_sum(src, dst, ipv6::NEXT_ICMPV6, self.buffer.as_ref());
        self.set_checksum(!s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv6Header, Icmpv6Type};

    #[test]
    fn reads_and_writes_what_etherparse_does() {
        let (src, dst) = (
            Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, 2),
        );
        let payload = [0x60u8, 0, 0, 0, 0, 8, 58, 1, 9];
        let h = Icmpv6Header::with_checksum(
            Icmpv6Type::PacketTooBig { mtu: 1280 },
            src.octets(),
            dst.octets(),
            &payload,
        )
        .unwrap();
        let mut b = h.to_bytes().to_vec();
        b.extend_from_slice(&payload);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), PACKET_TOO_BIG);
        assert_eq!(p.code(), 0);
        assert_eq!(p.mtu(), 1280);
        assert_eq!(p.checksum(), h.checksum);
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(dst, dst), "the pseudo-header counts");
        assert_eq!(p.data(), &payload);

        let mut w = b.clone();
        let mut q = Packet::new_checked(&mut w[..]).unwrap();
        q.set_checksum(0x1234);
        q.fill_checksum(src, dst);
        assert_eq!(w, b);
        assert!(Packet::new_checked(&b[..7]).is_err());
        assert!(is_error(PACKET_TOO_BIG) && is_error(TIME_EXCEEDED));
        assert!(!is_error(ECHO_REQUEST) && !is_error(ECHO_REPLY));
    }
}
