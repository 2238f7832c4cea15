//! Typed views over WireGuard messages (whitepaper §5.4), in the smoltcp `wire` style: a view
//! wraps a byte buffer, `new_checked` validates the type byte, the three reserved zero bytes
//! and the exact length once, and the accessors are then cheap and cannot fail.
//!
//! This module owns the byte layouts. It never allocates and never panics on network input;
//! every refusal is a [`MessageError`] naming the reason (which becomes a drop counter).

use crate::constants::{
    AEAD_TAG_LEN, COOKIE_LEN, COOKIE_NONCE_LEN, COOKIE_REPLY_LEN, INITIATION_LEN, KEY_LEN, MAC_LEN,
    MSG_COOKIE_REPLY, MSG_INITIATION, MSG_RESPONSE, MSG_TRANSPORT, RESPONSE_LEN, TAI64N_LEN,
    TRANSPORT_MIN_LEN,
};
use wire::wireguard::TransportPacket;

/// Why a datagram is not a well-formed WireGuard message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// Shorter than the 4-byte type field.
    TooShort { len: usize },
    /// The type byte is not 1..=4.
    UnknownType(u8),
    /// One of the three bytes after the type is not zero.
    ReservedNotZero,
    /// A handshake message of the wrong size (they have exact sizes: 148, 92, 64).
    WrongLength {
        msg_type: u8,
        expected: usize,
        got: usize,
    },
    /// A transport message shorter than header + tag (32 bytes).
    TransportTooShort { len: usize },
    /// The view was asked for a different message type than the buffer holds.
    WrongType { expected: u8, got: u8 },
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageError::TooShort { len } => write!(f, "message of {len} bytes has no header"),
            MessageError::UnknownType(t) => write!(f, "unknown message type {t}"),
            MessageError::ReservedNotZero => f.write_str("reserved header bytes are not zero"),
            MessageError::WrongLength {
                msg_type,
                expected,
                got,
            } => write!(
                f,
                "message type {msg_type} must be {expected} bytes, got {got}"
            ),
            MessageError::TransportTooShort { len } => write!(
                f,
                "transport message of {len} bytes is shorter than {TRANSPORT_MIN_LEN}"
            ),
            MessageError::WrongType { expected, got } => {
                write!(f, "expected message type {expected}, got {got}")
            }
        }
    }
}

impl std::error::Error for MessageError {}

/// Byte ranges of every field, derived from the sizes in [`crate::constants`].
pub mod field {
    use super::*;
    use std::ops::Range;

    /// The type byte and three reserved bytes, common to all messages.
    pub use wire::wireguard::field::{RESERVED, TYPE};

    pub mod initiation {
        use super::*;
        pub const SENDER: Range<usize> = 4..8;
        pub const EPHEMERAL: Range<usize> = SENDER.end..SENDER.end + KEY_LEN;
        pub const STATIC: Range<usize> = EPHEMERAL.end..EPHEMERAL.end + KEY_LEN + AEAD_TAG_LEN;
        pub const TIMESTAMP: Range<usize> = STATIC.end..STATIC.end + TAI64N_LEN + AEAD_TAG_LEN;
        pub const MAC1: Range<usize> = TIMESTAMP.end..TIMESTAMP.end + MAC_LEN;
        pub const MAC2: Range<usize> = MAC1.end..MAC1.end + MAC_LEN;
    }

    pub mod response {
        use super::*;
        pub const SENDER: Range<usize> = 4..8;
        pub const RECEIVER: Range<usize> = 8..12;
        pub const EPHEMERAL: Range<usize> = RECEIVER.end..RECEIVER.end + KEY_LEN;
        pub const EMPTY: Range<usize> = EPHEMERAL.end..EPHEMERAL.end + AEAD_TAG_LEN;
        pub const MAC1: Range<usize> = EMPTY.end..EMPTY.end + MAC_LEN;
        pub const MAC2: Range<usize> = MAC1.end..MAC1.end + MAC_LEN;
    }

    pub mod cookie_reply {
        use super::*;
        pub const RECEIVER: Range<usize> = 4..8;
        pub const NONCE: Range<usize> = RECEIVER.end..RECEIVER.end + COOKIE_NONCE_LEN;
        pub const COOKIE: Range<usize> = NONCE.end..NONCE.end + COOKIE_LEN + AEAD_TAG_LEN;
    }

    /// The transport message's layout is `wire::wireguard`'s.
    pub mod transport {
        pub use wire::wireguard::field::{COUNTER, PAYLOAD, RECEIVER};
    }

    const _: () = assert!(initiation::MAC2.end == INITIATION_LEN);
    const _: () = assert!(response::MAC2.end == RESPONSE_LEN);
    const _: () = assert!(cookie_reply::COOKIE.end == COOKIE_REPLY_LEN);
}

/// Checks the 4-byte header and returns the type byte.
fn check_header(buf: &[u8]) -> Result<u8, MessageError> {
    if buf.len() < 4 {
        return Err(MessageError::TooShort { len: buf.len() });
    }
    let t = buf[field::TYPE];
    if !(MSG_INITIATION..=MSG_TRANSPORT).contains(&t) {
        return Err(MessageError::UnknownType(t));
    }
    if buf[field::RESERVED] != [0, 0, 0] {
        return Err(MessageError::ReservedNotZero);
    }
    Ok(t)
}

/// Checks header, type and exact length of a handshake message.
fn check_exact(buf: &[u8], msg_type: u8, len: usize) -> Result<(), MessageError> {
    let got = check_header(buf)?;
    if got != msg_type {
        return Err(MessageError::WrongType {
            expected: msg_type,
            got,
        });
    }
    if buf.len() != len {
        return Err(MessageError::WrongLength {
            msg_type,
            expected: len,
            got: buf.len(),
        });
    }
    Ok(())
}

fn read_u32(buf: &[u8], r: std::ops::Range<usize>) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[r]);
    u32::from_le_bytes(b)
}

fn array<const N: usize>(buf: &[u8], start: usize) -> &[u8; N] {
    // Callers pass ranges inside a length-checked buffer, so the conversion cannot fail.
    buf[start..start + N]
        .try_into()
        .expect("field inside checked length")
}

/// Writes the type byte and zeroes the reserved bytes.
fn write_header(buf: &mut [u8], msg_type: u8) {
    buf[field::TYPE] = msg_type;
    buf[field::RESERVED].fill(0);
}

macro_rules! view_common {
    ($name:ident, $ty:expr, $len:expr) => {
        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps `buffer` after checking type, reserved bytes and exact length.
            pub fn new_checked(buffer: T) -> Result<Self, MessageError> {
                check_exact(buffer.as_ref(), $ty, $len)?;
                Ok($name { buffer })
            }

            /// Wraps `buffer` without checks. The accessors panic if it is shorter than the
            /// message; use only on buffers you sized yourself (e.g. when building a message).
            pub fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The whole message.
            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Writes the type byte and zero reserved bytes (the start of building a message).
            pub fn fill_header(&mut self) {
                write_header(self.buffer.as_mut(), $ty);
            }
        }
    };
}

/// Handshake initiation, type 1, 148 bytes (whitepaper §5.4.2).
#[derive(Clone, Copy, Debug)]
pub struct Initiation<T: AsRef<[u8]>> {
    buffer: T,
}
view_common!(Initiation, MSG_INITIATION, INITIATION_LEN);

impl<T: AsRef<[u8]>> Initiation<T> {
    pub fn sender_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::initiation::SENDER)
    }
    pub fn ephemeral(&self) -> &[u8; KEY_LEN] {
        array(self.buffer.as_ref(), field::initiation::EPHEMERAL.start)
    }
    /// AEAD of the initiator's static public key: 32 bytes + tag.
    pub fn encrypted_static(&self) -> &[u8; KEY_LEN + AEAD_TAG_LEN] {
        array(self.buffer.as_ref(), field::initiation::STATIC.start)
    }
    /// AEAD of the TAI64N timestamp: 12 bytes + tag.
    pub fn encrypted_timestamp(&self) -> &[u8; TAI64N_LEN + AEAD_TAG_LEN] {
        array(self.buffer.as_ref(), field::initiation::TIMESTAMP.start)
    }
    pub fn mac1(&self) -> &[u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::initiation::MAC1.start)
    }
    pub fn mac2(&self) -> &[u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::initiation::MAC2.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Initiation<T> {
    pub fn set_sender_index(&mut self, v: u32) {
        self.buffer.as_mut()[field::initiation::SENDER].copy_from_slice(&v.to_le_bytes());
    }
    pub fn ephemeral_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::initiation::EPHEMERAL]
    }
    pub fn encrypted_static_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::initiation::STATIC]
    }
    pub fn encrypted_timestamp_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::initiation::TIMESTAMP]
    }
}

/// Handshake response, type 2, 92 bytes (whitepaper §5.4.3).
#[derive(Clone, Copy, Debug)]
pub struct Response<T: AsRef<[u8]>> {
    buffer: T,
}
view_common!(Response, MSG_RESPONSE, RESPONSE_LEN);

impl<T: AsRef<[u8]>> Response<T> {
    pub fn sender_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::response::SENDER)
    }
    /// The initiator's index this response answers.
    pub fn receiver_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::response::RECEIVER)
    }
    pub fn ephemeral(&self) -> &[u8; KEY_LEN] {
        array(self.buffer.as_ref(), field::response::EPHEMERAL.start)
    }
    /// AEAD of the empty string: the tag only.
    pub fn encrypted_nothing(&self) -> &[u8; AEAD_TAG_LEN] {
        array(self.buffer.as_ref(), field::response::EMPTY.start)
    }
    pub fn mac1(&self) -> &[u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::response::MAC1.start)
    }
    pub fn mac2(&self) -> &[u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::response::MAC2.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Response<T> {
    pub fn set_sender_index(&mut self, v: u32) {
        self.buffer.as_mut()[field::response::SENDER].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_receiver_index(&mut self, v: u32) {
        self.buffer.as_mut()[field::response::RECEIVER].copy_from_slice(&v.to_le_bytes());
    }
    pub fn ephemeral_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::response::EPHEMERAL]
    }
    pub fn encrypted_nothing_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::response::EMPTY]
    }
}

/// Cookie reply, type 3, 64 bytes (whitepaper §5.4.7).
#[derive(Clone, Copy, Debug)]
pub struct CookieReply<T: AsRef<[u8]>> {
    buffer: T,
}
view_common!(CookieReply, MSG_COOKIE_REPLY, COOKIE_REPLY_LEN);

impl<T: AsRef<[u8]>> CookieReply<T> {
    /// The sender index of the handshake message this reply answers.
    pub fn receiver_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::cookie_reply::RECEIVER)
    }
    pub fn nonce(&self) -> &[u8; COOKIE_NONCE_LEN] {
        array(self.buffer.as_ref(), field::cookie_reply::NONCE.start)
    }
    /// XAEAD of the 16-byte cookie: 16 bytes + tag.
    pub fn encrypted_cookie(&self) -> &[u8; COOKIE_LEN + AEAD_TAG_LEN] {
        array(self.buffer.as_ref(), field::cookie_reply::COOKIE.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CookieReply<T> {
    pub fn set_receiver_index(&mut self, v: u32) {
        self.buffer.as_mut()[field::cookie_reply::RECEIVER].copy_from_slice(&v.to_le_bytes());
    }
    pub fn nonce_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::cookie_reply::NONCE]
    }
    pub fn encrypted_cookie_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::cookie_reply::COOKIE]
    }
}

/// Transport data message, type 4: a 16-byte header, then the sealed packet (ciphertext and
/// tag, at least 16 bytes) (whitepaper §5.4.6). The layout is `wire::wireguard`'s
/// [`TransportPacket`]; this adds the handshake messages' error reasons.
#[derive(Clone, Copy, Debug)]
pub struct TransportHeader<T: AsRef<[u8]>> {
    packet: TransportPacket<T>,
}

impl<T: AsRef<[u8]>> TransportHeader<T> {
    /// Wraps `buffer` after checking type, reserved bytes and length >= 32.
    pub fn new_checked(buffer: T) -> Result<Self, MessageError> {
        let buf = buffer.as_ref();
        let t = check_header(buf)?;
        if t != MSG_TRANSPORT {
            return Err(MessageError::WrongType {
                expected: MSG_TRANSPORT,
                got: t,
            });
        }
        let len = buf.len();
        // The header was checked above, so only the length can fail here.
        let packet = TransportPacket::new_checked(buffer)
            .map_err(|_| MessageError::TransportTooShort { len })?;
        Ok(TransportHeader { packet })
    }

    /// Wraps `buffer` without checks; accessors panic if it is shorter than 32 bytes.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        TransportHeader {
            packet: TransportPacket::new_unchecked(buffer),
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.packet.into_inner()
    }

    #[inline]
    pub fn receiver_index(&self) -> u32 {
        self.packet.receiver_index()
    }

    /// The 64-bit nonce counter (little-endian on the wire).
    #[inline]
    pub fn counter(&self) -> u64 {
        self.packet.counter()
    }

    /// Ciphertext followed by the 16-byte tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.packet.payload()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TransportHeader<T> {
    /// Writes the whole 16-byte header: type, reserved zeros, receiver index and counter.
    #[inline]
    pub fn fill_header(&mut self, receiver_index: u32, counter: u64) {
        self.packet.fill_header(receiver_index, counter);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.packet.payload_mut()
    }
}

/// A classified datagram: which message it is, as a checked view.
#[derive(Clone, Copy, Debug)]
pub enum Message<'a> {
    Initiation(Initiation<&'a [u8]>),
    Response(Response<&'a [u8]>),
    CookieReply(CookieReply<&'a [u8]>),
    Transport(TransportHeader<&'a [u8]>),
}

/// Classifies a received UDP payload: checks the type byte, the three reserved zero bytes and
/// the exact length (handshake messages) or minimum length (transport). Never panics.
pub fn classify(buf: &[u8]) -> Result<Message<'_>, MessageError> {
    match check_header(buf)? {
        MSG_INITIATION => Initiation::new_checked(buf).map(Message::Initiation),
        MSG_RESPONSE => Response::new_checked(buf).map(Message::Response),
        MSG_COOKIE_REPLY => CookieReply::new_checked(buf).map(Message::CookieReply),
        _ => TransportHeader::new_checked(buf).map(Message::Transport),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_checks_type_reserved_and_length() {
        let mut init = [0u8; INITIATION_LEN];
        init[0] = MSG_INITIATION;
        assert!(matches!(classify(&init), Ok(Message::Initiation(_))));
        assert_eq!(
            classify(&init[..147]).unwrap_err(),
            MessageError::WrongLength {
                msg_type: 1,
                expected: 148,
                got: 147
            }
        );
        init[2] = 1;
        assert_eq!(classify(&init).unwrap_err(), MessageError::ReservedNotZero);
        assert_eq!(
            classify(&[9, 0, 0, 0]).unwrap_err(),
            MessageError::UnknownType(9)
        );
        assert_eq!(
            classify(&[1, 0]).unwrap_err(),
            MessageError::TooShort { len: 2 }
        );
        let mut t = [0u8; 32];
        TransportHeader::new_unchecked(&mut t[..]).fill_header(0x01020304, 7);
        match classify(&t).unwrap() {
            Message::Transport(h) => {
                assert_eq!(h.receiver_index(), 0x01020304);
                assert_eq!(h.counter(), 7);
                assert_eq!(h.payload().len(), 16);
            }
            other => panic!("wrong kind {other:?}"),
        }
        assert_eq!(
            classify(&t[..31]).unwrap_err(),
            MessageError::TransportTooShort { len: 31 }
        );
    }

    #[test]
    fn fields_are_little_endian_at_the_right_offsets() {
        let mut r = [0u8; RESPONSE_LEN];
        let mut v = Response::new_unchecked(&mut r[..]);
        v.fill_header();
        v.set_sender_index(0x11223344);
        v.set_receiver_index(0x55667788);
        assert_eq!(
            &r[..12],
            &[2, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55]
        );
        let v = Response::new_checked(&r[..]).unwrap();
        assert_eq!(v.sender_index(), 0x11223344);
        assert_eq!(v.receiver_index(), 0x55667788);
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the classifier, and whatever it accepts has the exact
        /// length and header its type demands; its accessors then cannot panic either.
        #[test]
        fn classify_never_panics(
            t in 0u8..6,
            reserved in proptest::sample::select(vec![0u8, 0, 0, 1, 0x80]),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            cut in 0usize..204,
        ) {
            // Mostly plausible headers (so the accepted paths are exercised), cut anywhere.
            let mut bytes = vec![t, 0, reserved, 0];
            bytes.extend_from_slice(&body);
            bytes.truncate(cut);
            match classify(&bytes) {
                Ok(Message::Initiation(m)) => {
                    proptest::prop_assert_eq!(bytes.len(), INITIATION_LEN);
                    let _ = (m.sender_index(), m.ephemeral(), m.encrypted_static(),
                             m.encrypted_timestamp(), m.mac1(), m.mac2());
                }
                Ok(Message::Response(m)) => {
                    proptest::prop_assert_eq!(bytes.len(), RESPONSE_LEN);
                    let _ = (m.sender_index(), m.receiver_index(), m.ephemeral(),
                             m.encrypted_nothing(), m.mac1(), m.mac2());
                }
                Ok(Message::CookieReply(m)) => {
                    proptest::prop_assert_eq!(bytes.len(), COOKIE_REPLY_LEN);
                    let _ = (m.receiver_index(), m.nonce(), m.encrypted_cookie());
                }
                Ok(Message::Transport(m)) => {
                    proptest::prop_assert!(bytes.len() >= TRANSPORT_MIN_LEN);
                    let _ = (m.receiver_index(), m.counter(), m.payload());
                }
                Err(_) => {}
            }
            if classify(&bytes).is_ok() {
                proptest::prop_assert_eq!(&bytes[1..4], &[0u8, 0, 0][..]);
            }
        }

        /// Valid headers with every length: exactly one length per handshake type passes.
        #[test]
        fn handshake_types_accept_only_their_length(t in 1u8..=3, len in 4usize..200) {
            let mut buf = vec![0u8; len];
            buf[0] = t;
            let want = [INITIATION_LEN, RESPONSE_LEN, COOKIE_REPLY_LEN][usize::from(t - 1)];
            proptest::prop_assert_eq!(classify(&buf).is_ok(), len == want);
        }
    }
}
