//! Key types: the Curve25519 private and public keys and the optional pre-shared key, with the
//! text forms operators use (base64 in config files and `wg`, lowercase hex in the UAPI).
//!
//! Secrets here are zeroed when dropped and never printed by `Debug`. This module does no
//! cryptography beyond deriving a public key.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::constants::KEY_LEN;
use crate::crypto;

/// Why a key's text form was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyParseError {
    /// Not valid base64 (standard alphabet, with padding, as `wg genkey` prints it).
    NotBase64,
    /// Not valid hexadecimal (the UAPI form: 64 hex digits).
    NotHex,
    /// Decoded to the wrong number of bytes; a key is 32 bytes (44 base64 or 64 hex chars).
    WrongLength { got: usize },
}

impl fmt::Display for KeyParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyParseError::NotBase64 => {
                f.write_str("key is not valid base64 (expected 44 characters ending in '=')")
            }
            KeyParseError::NotHex => f.write_str("key is not valid hex (expected 64 hex digits)"),
            KeyParseError::WrongLength { got } => write!(
                f,
                "key decodes to {got} bytes, expected {KEY_LEN} (44 base64 characters)"
            ),
        }
    }
}

impl std::error::Error for KeyParseError {}

fn decode_base64(s: &str) -> Result<[u8; KEY_LEN], KeyParseError> {
    let mut v = STANDARD
        .decode(s.trim())
        .map_err(|_| KeyParseError::NotBase64)?;
    let r = <[u8; KEY_LEN]>::try_from(v.as_slice())
        .map_err(|_| KeyParseError::WrongLength { got: v.len() });
    v.zeroize();
    r
}

fn decode_hex(s: &str) -> Result<[u8; KEY_LEN], KeyParseError> {
    let s = s.trim().as_bytes();
    if s.len() % 2 != 0 {
        return Err(KeyParseError::NotHex);
    }
    if s.len() != 2 * KEY_LEN {
        // Validate the digits first so "zz" reports NotHex, not a length.
        if !s.iter().all(u8::is_ascii_hexdigit) {
            return Err(KeyParseError::NotHex);
        }
        return Err(KeyParseError::WrongLength { got: s.len() / 2 });
    }
    let mut out = [0u8; KEY_LEN];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0]).ok_or(KeyParseError::NotHex)?;
        let lo = hex_digit(pair[1]).ok_or(KeyParseError::NotHex)?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn encode_hex(bytes: &[u8; KEY_LEN]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * KEY_LEN);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// A Curve25519 static or ephemeral private key. Zeroed on drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; KEY_LEN]);

impl PrivateKey {
    /// A fresh random key, clamped as `wg genkey` does (RFC 7748 §5).
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut k = [0u8; KEY_LEN];
        rng.fill_bytes(&mut k);
        k[0] &= 248;
        k[31] &= 127;
        k[31] |= 64;
        PrivateKey(k)
    }

    /// Wraps raw bytes (clamping is applied by X25519 itself when the key is used).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PrivateKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(crypto::dh_public(&self.0))
    }

    pub fn from_base64(s: &str) -> Result<Self, KeyParseError> {
        decode_base64(s).map(PrivateKey)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self, KeyParseError> {
        decode_hex(s).map(PrivateKey)
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }
}

/// Parses the base64 form.
impl FromStr for PrivateKey {
    type Err = KeyParseError;
    fn from_str(s: &str) -> Result<Self, KeyParseError> {
        Self::from_base64(s)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// A Curve25519 public key: a peer's identity. `Display` prints base64, as `wg show` does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn from_base64(s: &str) -> Result<Self, KeyParseError> {
        decode_base64(s).map(PublicKey)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self, KeyParseError> {
        decode_hex(s).map(PublicKey)
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }
}

/// Parses the base64 form.
impl FromStr for PublicKey {
    type Err = KeyParseError;
    fn from_str(s: &str) -> Result<Self, KeyParseError> {
        Self::from_base64(s)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// The optional symmetric pre-shared key mixed into the handshake (whitepaper §5.2). All zero
/// means "none", as in `wg`. Zeroed on drop; `Debug` is redacted.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey([u8; KEY_LEN]);

impl PresharedKey {
    /// No pre-shared key (32 zero bytes).
    pub fn none() -> Self {
        PresharedKey([0u8; KEY_LEN])
    }

    /// A fresh random key (`wg genpsk`).
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut k = [0u8; KEY_LEN];
        rng.fill_bytes(&mut k);
        PresharedKey(k)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PresharedKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// True for the all-zero key, i.e. no pre-shared key configured.
    pub fn is_none(&self) -> bool {
        crypto::ct_eq(&self.0, &[0u8; KEY_LEN])
    }

    pub fn from_base64(s: &str) -> Result<Self, KeyParseError> {
        decode_base64(s).map(PresharedKey)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self, KeyParseError> {
        decode_hex(s).map(PresharedKey)
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }
}

/// Parses the base64 form.
impl FromStr for PresharedKey {
    type Err = KeyParseError;
    fn from_str(s: &str) -> Result<Self, KeyParseError> {
        Self::from_base64(s)
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            f.write_str("PresharedKey(none)")
        } else {
            f.write_str("PresharedKey(<redacted>)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex_round_trip() {
        let k = PrivateKey::from_bytes([0xab; 32]);
        assert_eq!(
            PrivateKey::from_base64(&k.to_base64()).unwrap().as_bytes(),
            k.as_bytes()
        );
        assert_eq!(k.to_hex(), "ab".repeat(32));
        assert_eq!(
            PrivateKey::from_hex(&"AB".repeat(32)).unwrap().as_bytes(),
            k.as_bytes()
        );
        let p = k.public_key();
        assert_eq!(p.to_string().parse::<PublicKey>().unwrap(), p);
        assert_eq!(PublicKey::from_hex(&p.to_hex()).unwrap(), p);
        assert_eq!(p.to_base64().len(), 44);
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert_eq!(
            PublicKey::from_base64("not base64!"),
            Err(KeyParseError::NotBase64)
        );
        assert_eq!(
            PublicKey::from_base64("AAAA"),
            Err(KeyParseError::WrongLength { got: 3 })
        );
        assert_eq!(PublicKey::from_hex("abc"), Err(KeyParseError::NotHex));
        assert_eq!(PublicKey::from_hex("zz"), Err(KeyParseError::NotHex));
        assert_eq!(
            PublicKey::from_hex("abcd"),
            Err(KeyParseError::WrongLength { got: 2 })
        );
        assert_eq!(
            PublicKey::from_hex(&format!("{}zz", "a".repeat(62))),
            Err(KeyParseError::NotHex)
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let k = PrivateKey::from_bytes([1; 32]);
        assert!(!format!("{k:?}").contains(&k.to_base64()));
        assert!(PresharedKey::none().is_none());
        assert!(!PresharedKey::from_bytes([1; 32]).is_none());
    }
}
