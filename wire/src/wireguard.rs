//! WireGuard's message framing (whitepaper §5.4, the kernel's `messages.h`): the four message
//! types, their fixed sizes, and a view of the transport data message the fast path opens and
//! seals in place. The handshake messages' views are `wgproto::messages`, which uses these
//! numbers.
//!
//! Multi-byte fields of WireGuard messages are little-endian.

use crate::Error;

/// Message types (first byte, followed by three zero bytes).
pub const MSG_INITIATION: u8 = 1;
pub const MSG_RESPONSE: u8 = 2;
pub const MSG_COOKIE_REPLY: u8 = 3;
pub const MSG_TRANSPORT: u8 = 4;

/// Exact sizes of the handshake messages.
pub const INITIATION_LEN: usize = 148;
pub const RESPONSE_LEN: usize = 92;
pub const COOKIE_REPLY_LEN: usize = 64;
/// Transport header: type (4) + receiver index (4) + counter (8).
pub const TRANSPORT_HEADER_LEN: usize = 16;
/// Poly1305 tag.
pub const AEAD_TAG_LEN: usize = 16;
/// Smallest transport message: header + tag (an empty keepalive).
pub const TRANSPORT_MIN_LEN: usize = TRANSPORT_HEADER_LEN + AEAD_TAG_LEN;

/// The one size a handshake message of type `kind` has; `None` for other types. A handshake
/// datagram of any other length is not one (the kernel's `prepare_skb_header` checks the same).
pub const fn handshake_len(kind: u8) -> Option<usize> {
    match kind {
        MSG_INITIATION => Some(INITIATION_LEN),
        MSG_RESPONSE => Some(RESPONSE_LEN),
        MSG_COOKIE_REPLY => Some(COOKIE_REPLY_LEN),
        _ => None,
    }
}

/// Byte ranges of the transport message's fields; `TYPE` and `RESERVED` are common to all
/// messages.
pub mod field {
    use core::ops::{Range, RangeFrom};
    pub const TYPE: usize = 0;
    pub const RESERVED: Range<usize> = 1..4;
    pub const RECEIVER: Range<usize> = 4..8;
    pub const COUNTER: Range<usize> = 8..super::TRANSPORT_HEADER_LEN;
    pub const PAYLOAD: RangeFrom<usize> = super::TRANSPORT_HEADER_LEN..;
}

/// A view of a transport data message (type 4): the 16-byte header, then the sealed packet
/// (ciphertext and tag).
#[derive(Clone, Copy, Debug)]
pub struct TransportPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TransportPacket<T> {
    /// Wraps `buffer` without checks; the accessors panic if it is shorter than 16 bytes.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        TransportPacket { buffer }
    }

    /// Wraps `buffer` after checking, in this order, that it holds at least header + tag (32
    /// bytes) and that it starts with type 4 and three zero bytes.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < TRANSPORT_MIN_LEN {
            return Err(Error::Truncated);
        }
        if b[..field::RESERVED.end] != [MSG_TRANSPORT, 0, 0, 0] {
            return Err(Error::NotTransport);
        }
        Ok(TransportPacket { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The index the receiver chose for this session: which keypair opens the message.
    #[inline]
    pub fn receiver_index(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::RECEIVER];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The 64-bit nonce counter.
    #[inline]
    pub fn counter(&self) -> u64 {
        let mut c = [0u8; 8];
        c.copy_from_slice(&self.buffer.as_ref()[field::COUNTER]);
        u64::from_le_bytes(c)
    }

    /// Ciphertext followed by the 16-byte tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TransportPacket<T> {
    /// Writes the whole 16-byte header: type, reserved zeros, receiver index and counter.
    #[inline]
    pub fn fill_header(&mut self, receiver_index: u32, counter: u64) {
        let b = self.buffer.as_mut();
        b[field::TYPE] = MSG_TRANSPORT;
        b[field::RESERVED].fill(0);
        b[field::RECEIVER].copy_from_slice(&receiver_index.to_le_bytes());
        b[field::COUNTER].copy_from_slice(&counter.to_le_bytes());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The receiver index of a datagram that may be a transport message: the 4 bytes after the
/// header's first word, without any other check (for steering before the full check).
#[inline]
pub fn peek_receiver_index(datagram: &[u8]) -> Option<u32> {
    let b = datagram.get(field::RECEIVER)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_little_endian_at_their_offsets() {
        let mut b = [0u8; 40];
        TransportPacket::new_unchecked(&mut b[..]).fill_header(0x11223344, 0x0102030405060708);
        assert_eq!(
            &b[..16],
            &[4, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 8, 7, 6, 5, 4, 3, 2, 1]
        );
        let p = TransportPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), MSG_TRANSPORT);
        assert_eq!(p.receiver_index(), 0x11223344);
        assert_eq!(p.counter(), 0x0102030405060708);
        assert_eq!(p.payload().len(), 24);
        assert_eq!(peek_receiver_index(&b), Some(0x11223344));
        assert_eq!(peek_receiver_index(&b[..7]), None);
    }

    #[test]
    fn handshake_messages_have_one_size_each() {
        assert_eq!(handshake_len(MSG_INITIATION), Some(148));
        assert_eq!(handshake_len(MSG_RESPONSE), Some(92));
        assert_eq!(handshake_len(MSG_COOKIE_REPLY), Some(64));
        assert_eq!(handshake_len(MSG_TRANSPORT), None);
        assert_eq!(handshake_len(0), None);
    }

    #[test]
    fn short_or_other_messages_are_errors() {
        let mut b = [0u8; 32];
        b[0] = MSG_TRANSPORT;
        assert!(TransportPacket::new_checked(&b[..]).is_ok());
        assert_eq!(
            TransportPacket::new_checked(&b[..31]).unwrap_err(),
            Error::Truncated
        );
        b[2] = 1;
        assert_eq!(
            TransportPacket::new_checked(&b[..]).unwrap_err(),
            Error::NotTransport
        );
        b[2] = 0;
        b[0] = MSG_INITIATION;
        assert_eq!(
            TransportPacket::new_checked(&b[..]).unwrap_err(),
            Error::NotTransport
        );
    }

    proptest::proptest! {
        #[test]
        fn new_checked_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = peek_receiver_index(&b);
            if let Ok(p) = TransportPacket::new_checked(&b[..]) {
                proptest::prop_assert!(p.payload().len() >= AEAD_TAG_LEN);
                let _ = (p.receiver_index(), p.counter());
            }
        }
    }
}
