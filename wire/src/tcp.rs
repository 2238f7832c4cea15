//! TCP headers (RFC 9293 §3.1), as far as the NAT reads and rewrites them: ports, flags and the
//! checksum. The data offset and options are not interpreted, so a view needs only the fixed
//! 20 bytes.

use crate::{read_u16, write_u16, Error};

/// The header without options.
pub const HEADER_LEN: usize = 20;

/// Flag bits of [`Packet::flags`].
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_SYN: u8 = 0x02;
pub const FLAG_RST: u8 = 0x04;
pub const FLAG_PSH: u8 = 0x08;
pub const FLAG_ACK: u8 = 0x10;

/// Byte offsets and ranges of the header fields.
pub mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// A view of a TCP segment's fixed header.
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks; the accessors panic if it is shorter than 20 bytes.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking that it holds the fixed 20-byte header.
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
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    #[inline]
    pub fn seq_number(&self) -> u32 {
        u32::from_be_bytes(word(&self.buffer.as_ref()[field::SEQ]))
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        u32::from_be_bytes(word(&self.buffer.as_ref()[field::ACK]))
    }

    /// The header length the data offset claims, in bytes (not validated).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// FIN, SYN, RST, PSH, ACK, URG, ECE, CWR ([`FLAG_FIN`] ...).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    #[inline]
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW.start)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
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
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }
}

#[inline]
fn word(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::TcpHeader;

    #[test]
    fn reads_what_etherparse_writes() {
        let mut h = TcpHeader::new(40000, 443, 0x01020304, 512);
        h.syn = true;
        h.ack = true;
        h.fin = true;
        h.acknowledgment_number = 0x0a0b0c0d;
        h.checksum = 0xabcd;
        let b = h.to_bytes();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 443);
        assert_eq!(p.seq_number(), 0x01020304);
        assert_eq!(p.ack_number(), 0x0a0b0c0d);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.flags(), FLAG_SYN | FLAG_ACK | FLAG_FIN);
        assert_eq!(p.window(), 512);
        assert_eq!(p.checksum(), 0xabcd);
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
    }

    proptest::proptest! {
        #[test]
        fn new_checked_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = (p.src_port(), p.dst_port(), p.flags(), p.checksum(), p.header_len());
            }
        }
    }
}
