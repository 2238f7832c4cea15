//! WireGuard keys as they appear in configuration files: 32 bytes in standard base64 (44
//! characters with one `=` of padding), the encoding `wg genkey` prints.
//!
//! These are configuration-side types: they parse (with messages that say what is allowed),
//! compare (duplicate detection, round-trip tests) and print keys. The protocol crate owns the
//! cryptographic types (`wgproto::keys`, zeroized, no `PartialEq` on secrets);
//! `InterfaceConfig::to_wgproto` / `PeerConfig::to_wgproto` hand keys over to it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Length of every WireGuard key (Curve25519 scalars and points, and the PSK), whitepaper §5.4.
pub const KEY_LEN: usize = 32;

/// Decodes a base64 WireGuard key. The error says what is allowed, for config messages.
pub fn decode_key(text: &str) -> Result<[u8; KEY_LEN], String> {
    let text = text.trim();
    // The decoded bytes may be a secret: wiped when dropped.
    let bytes = Zeroizing::new(STANDARD.decode(text).map_err(|_| {
        "is not a base64 key; expected 44 characters of base64 ending in '=' (as printed by `wg genkey`)"
            .to_string()
    })?);
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "decodes to {} bytes; a WireGuard key is 32 bytes (44 characters of base64 ending in '=')",
            bytes.len()
        )
    })
}

/// Encodes a key the way `wg` prints it.
pub fn encode_key(key: &[u8; KEY_LEN]) -> String {
    STANDARD.encode(key)
}

macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident, $debug_shows_key:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            /// Wraps raw key bytes.
            pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                Self(bytes)
            }

            /// The raw key bytes.
            pub fn bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }

            /// Parses base64 text; the error says what is allowed.
            pub fn from_base64(text: &str) -> Result<Self, String> {
                decode_key(text).map(Self)
            }

            /// The key in base64, as `wg` prints it.
            pub fn to_base64(&self) -> String {
                encode_key(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if $debug_shows_key {
                    write!(f, "{}({})", stringify!($name), self.to_base64())
                } else {
                    write!(f, "{}(<redacted>)", stringify!($name))
                }
            }
        }
    };
}

key_type!(
    /// A Curve25519 private key. `Debug` never prints it.
    PrivateKey,
    false
);
key_type!(
    /// A Curve25519 public key (a peer's identity).
    PublicKey,
    true
);
key_type!(
    /// A 32-byte pre-shared key mixed into the handshake (whitepaper §5.2). `Debug` never prints it.
    PresharedKey,
    false
);

// Secrets are wiped from memory when the config holding them is dropped (a reload drops the
// old one); copies handed to `wgproto` are zeroized there.
impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for PresharedKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_key() {
        let text = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
        let key = PublicKey::from_base64(text).unwrap();
        assert_eq!(key.to_base64(), text);
    }

    #[test]
    fn rejects_wrong_length_and_garbage() {
        let short = decode_key("AAAA").unwrap_err();
        assert!(short.contains("3 bytes"), "{short}");
        let bad = decode_key("not base64!").unwrap_err();
        assert!(bad.contains("not a base64 key"), "{bad}");
    }

    #[test]
    fn secrets_are_wiped_on_drop_public_keys_need_not_be() {
        // Only a type with drop glue can wipe itself; a bare byte array never would.
        assert!(std::mem::needs_drop::<PrivateKey>());
        assert!(std::mem::needs_drop::<PresharedKey>());
        assert!(!std::mem::needs_drop::<PublicKey>());
    }

    #[test]
    fn debug_hides_private_keys() {
        let key = PrivateKey::from_bytes([7; 32]);
        assert_eq!(format!("{key:?}"), "PrivateKey(<redacted>)");
    }
}
