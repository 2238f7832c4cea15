//! ICMP for IPv4 (RFC 792): type, code, checksum, the four "rest of header" bytes (query
//! identifier and sequence, or the next-hop MTU of RFC 1191), and the data after them, which for
//! an error is the quoted start of the offending datagram.

use crate::checksum;
use crate::{read_u16, write_u16, Error};

/// Type, code, checksum, rest of header.
pub const HEADER_LEN: usize = 8;

/// Bytes of the offending datagram's data an error quotes after its IP header, at least
/// (RFC 792; RFC 1812 §4.3.2.3 allows more).
pub const QUOTED_DATA_LEN: usize = 8;

/// Message types.
pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;
pub const PARAMETER_PROBLEM: u8 = 12;
pub const TIMESTAMP: u8 = 13;
pub const TIMESTAMP_REPLY: u8 = 14;

/// Destination unreachable codes (RFC 792, RFC 1812 §5.2.7.1).
pub const CODE_HOST_UNREACHABLE: u8 = 1;
pub const CODE_FRAG_NEEDED: u8 = 4;
pub const CODE_ADMIN_PROHIBITED: u8 = 13;
/// Time exceeded code: TTL ran out in transit.
pub const CODE_TTL_EXCEEDED: u8 = 0;

/// Byte offsets and ranges of the header fields.
pub mod field {
    use core::ops::{Range, RangeFrom};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
    /// Query identifier (echo, timestamp).
    pub const IDENT: Range<usize> = 4..6;
    pub const SEQ: Range<usize> = 6..8;
    /// Next-hop MTU of "fragmentation needed" (RFC 1191 §4).
    pub const MTU: Range<usize> = 6..8;
    pub const DATA: RangeFrom<usize> = 8..;
}

/// Queries whose identifier works like a port (RFC 5508 §3.1): echo and timestamp requests.
#[inline]
pub fn is_query_request(t: u8) -> bool {
    matches!(t, ECHO_REQUEST | TIMESTAMP)
}

/// Replies to [`is_query_request`] messages.
#[inline]
pub fn is_query_reply(t: u8) -> bool {
    matches!(t, ECHO_REPLY | TIMESTAMP_REPLY)
}

/// A view of an ICMP message.
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

    /// Wraps `buffer` (the whole message: ICMP has no length field) after checking that it
    /// holds the 8-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
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

    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::REST];
        [b[0], b[1], b[2], b[3]]
    }

    /// The query identifier (echo, timestamp).
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    #[inline]
    pub fn seq(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SEQ.start)
    }

    /// The next-hop MTU of "fragmentation needed".
    #[inline]
    pub fn mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::MTU.start)
    }

    /// What follows the header: for an error, the start of the datagram it is about.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Whether the checksum over the whole message verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.buffer.as_ref())
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

    #[inline]
    pub fn set_rest_of_header(&mut self, v: [u8; 4]) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&v);
    }

    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, v);
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes and stores the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::internet_checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{icmpv4, Icmpv4Header, Icmpv4Type};

    #[test]
    fn reads_what_etherparse_writes() {
        let payload = [0x45u8, 0, 0, 28, 1, 2, 3, 4];
        let h = Icmpv4Header::with_checksum(
            Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1420 },
            ),
            &payload,
        );
        let mut b = h.to_bytes().to_vec();
        b.extend_from_slice(&payload);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), DEST_UNREACHABLE);
        assert_eq!(p.code(), CODE_FRAG_NEEDED);
        assert_eq!(p.mtu(), 1420);
        assert_eq!(p.checksum(), h.checksum);
        assert!(p.verify_checksum());
        assert_eq!(p.data(), &payload);

        let e = Icmpv4Header::with_checksum(
            Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id: 0x1234, seq: 7 }),
            &[],
        );
        let b = e.to_bytes();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.ident(), p.seq()),
            (ECHO_REQUEST, 0x1234, 7)
        );
        assert_eq!(p.rest_of_header(), [0x12, 0x34, 0, 7]);
        assert!(is_query_request(p.msg_type()) && !is_query_reply(p.msg_type()));
        assert!(p.data().is_empty());
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn filled_checksum_verifies_with_etherparse() {
        let mut b = [0u8; 12];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(TIME_EXCEEDED);
        p.set_code(CODE_TTL_EXCEEDED);
        p.set_rest_of_header([0; 4]);
        p.data_mut().copy_from_slice(&[1, 2, 3, 4]);
        p.fill_checksum();
        let (h, rest) = Icmpv4Header::from_slice(&b).unwrap();
        assert!(matches!(h.icmp_type, Icmpv4Type::TimeExceeded(_)));
        assert_eq!(h.checksum, h.icmp_type.calc_checksum(rest));
    }

    proptest::proptest! {
        #[test]
        fn new_checked_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = (p.msg_type(), p.code(), p.rest_of_header(), p.data(), p.verify_checksum());
            }
        }
    }
}
