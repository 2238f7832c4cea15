//! The three 32-byte keys the UAPI carries, and their text form: 64 hex digits (the UAPI uses
//! hex, not the base64 of config files). Lowercase on output; either case accepted on input, as
//! wireguard-go's `hex.DecodeString` does.
//!
//! These are local newtypes: `wgproto` had no `keys` module when this was written. They convert
//! to and from `[u8; 32]` so the slow path can hand the bytes to the protocol core's own types.

use std::fmt;

use zeroize::Zeroize;

/// Key text that is not exactly 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key must be 64 hex digits")]
pub struct KeyError;

fn decode_hex32(text: &str) -> Result<[u8; 32], KeyError> {
    let mut out = [0u8; 32];
    // `decode_to_slice` checks both the length (64) and every digit.
    hex::decode_to_slice(text, &mut out).map_err(|_| KeyError)?;
    Ok(out)
}

fn write_hex32(bytes: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A peer's (or this device's) static public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        decode_hex32(text).map(PublicKey)
    }
}

impl fmt::Display for PublicKey {
    /// Lowercase hex, the UAPI form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex32(&self.0, f)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        write_hex32(&self.0, f)?;
        write!(f, ")")
    }
}

/// The device's static private key. All zeroes means "no key" (wireguard-go accepts a zero key
/// in `set` to clear it). Wiped from memory on drop; `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(pub [u8; 32]);

impl PrivateKey {
    /// Parses 64 hex digits (zero allowed).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        decode_hex32(text).map(PrivateKey)
    }

    /// True for the all-zero key, which stands for "no private key".
    pub fn is_zero(&self) -> bool {
        self.0 == [0u8; 32]
    }

    /// Writes the key as lowercase hex. A method, not `Display`, so that a secret is never
    /// formatted by accident.
    pub fn write_hex(&self, out: &mut impl fmt::Write) -> fmt::Result {
        for b in &self.0 {
            write!(out, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<hidden>)")
    }
}

/// A peer's optional preshared key. All zeroes means "none" (whitepaper §5.2: the PSK defaults
/// to 32 zero bytes). Wiped on drop; `Debug` does not print it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PresharedKey(pub [u8; 32]);

impl PresharedKey {
    /// Parses 64 hex digits (zero allowed: it clears the PSK).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        decode_hex32(text).map(PresharedKey)
    }

    /// True for the all-zero key, i.e. no preshared key.
    pub fn is_zero(&self) -> bool {
        self.0 == [0u8; 32]
    }

    /// Writes the key as lowercase hex (see [`PrivateKey::write_hex`]).
    pub fn write_hex(&self, out: &mut impl fmt::Write) -> fmt::Result {
        for b in &self.0 {
            write!(out, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Drop for PresharedKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            f.write_str("PresharedKey(<none>)")
        } else {
            f.write_str("PresharedKey(<hidden>)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_round_trips_through_lowercase_hex() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0xa5;
        }
        let text = PublicKey(bytes).to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(PublicKey::from_hex(&text), Ok(PublicKey(bytes)));
        assert_eq!(
            PublicKey::from_hex(&text.to_uppercase()),
            Ok(PublicKey(bytes))
        );
    }

    #[test]
    fn bad_key_text_is_rejected() {
        let good = "11".repeat(32);
        assert!(PublicKey::from_hex(&good).is_ok());
        assert_eq!(PublicKey::from_hex(&good[..62]), Err(KeyError));
        assert_eq!(PublicKey::from_hex(&format!("{good}00")), Err(KeyError));
        assert_eq!(
            PublicKey::from_hex(&format!("{}zz", &good[..62])),
            Err(KeyError)
        );
        assert_eq!(PublicKey::from_hex(""), Err(KeyError));
        // Base64 (the config-file form) is not the UAPI form.
        assert_eq!(
            PublicKey::from_hex("ESERERERERERERERERERERERERERERERERERERERERE="),
            Err(KeyError)
        );
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let k = PrivateKey([0x42; 32]);
        assert!(!format!("{k:?}").contains("42"));
        let p = PresharedKey([0x42; 32]);
        assert!(!format!("{p:?}").contains("42"));
        let mut s = String::new();
        k.write_hex(&mut s).unwrap();
        assert_eq!(s, "42".repeat(32));
        assert!(PresharedKey::default().is_zero());
        assert!(!p.is_zero());
    }
}
