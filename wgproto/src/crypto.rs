//! The cryptographic primitives of the whitepaper (§5.4, "Protocol Messages" notation) as small
//! functions over byte arrays: HASH, MAC, HMAC, KDF1/2/3, AEAD, XAEAD and DH.
//!
//! This module owns the mapping from the whitepaper's names to the crates that implement them:
//! `ring` for ChaCha20-Poly1305 (the data path and the handshake; several times faster than the
//! RustCrypto crate on x86-64 without compile-time AVX2), RustCrypto for XChaCha20-Poly1305
//! (cookie replies; `ring` has no XChaCha) and BLAKE2s, `x25519-dalek` for X25519. It must never
//! hand-roll a primitive, and never accept an all-zero Diffie-Hellman result (a low-order public
//! key, whitepaper §5.4.3 / RFC 7748 §6.1).

use blake2::digest::consts::U16;
use blake2::digest::{FixedOutput, KeyInit, Mac as _, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::XChaCha20Poly1305;
use hmac::SimpleHmac;
use ring::aead::{Aad, LessSafeKey, UnboundKey, CHACHA20_POLY1305};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey as DalekPublic, StaticSecret};
use zeroize::Zeroize;

use crate::constants::{AEAD_TAG_LEN, COOKIE_NONCE_LEN, KEY_LEN, MAC_LEN};

/// Why a cryptographic operation refused its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// The Poly1305 tag did not verify: wrong key, tampered bytes or a replayed nonce.
    AeadAuthFailed,
    /// A buffer was shorter than the AEAD tag or did not match the plaintext length.
    BufferLength,
    /// X25519 gave the all-zero result: the peer's point has low order (RFC 7748 §6.1).
    LowOrderPoint,
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CryptoError::AeadAuthFailed => "AEAD authentication failed",
            CryptoError::BufferLength => "AEAD buffer has the wrong length",
            CryptoError::LowOrderPoint => "Diffie-Hellman result is all zero (low-order key)",
        })
    }
}

impl std::error::Error for CryptoError {}

/// HASH(parts[0] || parts[1] || ...): BLAKE2s-256.
pub fn hash(parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut h = Blake2s256::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

/// MAC(key, data): keyed BLAKE2s with a 16-byte output (not HMAC). `key` is at most 32 bytes
/// (a HASH output for mac1, a 16-byte cookie for mac2).
pub fn mac(key: &[u8], data: &[u8]) -> [u8; MAC_LEN] {
    // Keys are at most 32 bytes by construction in this crate; BLAKE2s accepts 1..=32.
    let mut m =
        <Blake2sMac<U16> as KeyInit>::new_from_slice(key).expect("MAC key length is 1..=32 bytes");
    Update::update(&mut m, data);
    m.finalize_fixed().into()
}

/// HMAC(key, parts...): HMAC-BLAKE2s-256 (RFC 2104 over BLAKE2s).
pub fn hmac(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut m = <SimpleHmac<Blake2s256> as KeyInit>::new_from_slice(key)
        .expect("HMAC accepts any key length");
    for p in parts {
        Update::update(&mut m, p);
    }
    m.finalize().into_bytes().into()
}

/// KDF1(key, input): the first output of HKDF with HMAC-BLAKE2s.
pub fn kdf1(key: &[u8; KEY_LEN], input: &[u8]) -> [u8; KEY_LEN] {
    let mut prk = hmac(key, &[input]);
    let t1 = hmac(&prk, &[&[1]]);
    prk.zeroize();
    t1
}

/// KDF2(key, input): the first two outputs of HKDF with HMAC-BLAKE2s.
pub fn kdf2(key: &[u8; KEY_LEN], input: &[u8]) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
    let mut prk = hmac(key, &[input]);
    let t1 = hmac(&prk, &[&[1]]);
    let t2 = hmac(&prk, &[&t1, &[2]]);
    prk.zeroize();
    (t1, t2)
}

/// KDF3(key, input): the first three outputs of HKDF with HMAC-BLAKE2s.
pub fn kdf3(key: &[u8; KEY_LEN], input: &[u8]) -> ([u8; KEY_LEN], [u8; KEY_LEN], [u8; KEY_LEN]) {
    let mut prk = hmac(key, &[input]);
    let t1 = hmac(&prk, &[&[1]]);
    let t2 = hmac(&prk, &[&t1, &[2]]);
    let t3 = hmac(&prk, &[&t2, &[3]]);
    prk.zeroize();
    (t1, t2, t3)
}

/// The 96-bit ChaCha20-Poly1305 nonce of the whitepaper: 32 zero bits, then the 64-bit counter
/// in little-endian (§5.4.6).
pub fn counter_nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

/// AEAD(key, counter, plaintext, aad), in place: encrypts `buffer` and returns the detached
/// 16-byte tag, which the caller writes right after the ciphertext.
#[inline]
pub fn aead_seal_in_place(
    key: &[u8; KEY_LEN],
    counter: u64,
    aad: &[u8],
    buffer: &mut [u8],
) -> [u8; AEAD_TAG_LEN] {
    chacha20poly1305_seal_in_place(key, &counter_nonce(counter), aad, buffer)
}

/// `ring`'s key for one call. Built from our bytes every time rather than kept: a kept one
/// would be freed without being wiped, and for ChaCha20-Poly1305 building it is a plain copy of
/// the 32 bytes (about 15 ns a packet here, lost in the noise above 64 bytes).
#[inline]
fn ring_key(key: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key).expect("ChaCha20-Poly1305 takes 32-byte keys"),
    )
}

/// RFC 8439 §2.8 ChaCha20-Poly1305 with an arbitrary 96-bit nonce, in place, detached tag.
/// WireGuard only uses [`counter_nonce`]s; this form exists for the RFC's known-answer test.
#[inline]
pub fn chacha20poly1305_seal_in_place(
    key: &[u8; KEY_LEN],
    nonce: &[u8; 12],
    aad: &[u8],
    buffer: &mut [u8],
) -> [u8; AEAD_TAG_LEN] {
    let tag = ring_key(key)
        .seal_in_place_separate_tag(
            ring::aead::Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            buffer,
        )
        // Only fails past ChaCha20's 256 GiB per-nonce limit, far above any datagram.
        .expect("buffer below the ChaCha20 length limit");
    let mut out = [0u8; AEAD_TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Inverse of [`chacha20poly1305_seal_in_place`]. On failure `buffer` is zeroed: the cipher
/// may have decrypted it before the tag check failed, and unauthenticated plaintext must not
/// reach anyone.
#[inline]
pub fn chacha20poly1305_open_in_place(
    key: &[u8; KEY_LEN],
    nonce: &[u8; 12],
    aad: &[u8],
    buffer: &mut [u8],
    tag: &[u8; AEAD_TAG_LEN],
) -> Result<(), CryptoError> {
    let opened = ring_key(key).open_in_place_separate_tag(
        ring::aead::Nonce::assume_unique_for_key(*nonce),
        Aad::from(aad),
        (*tag).into(),
        buffer,
        0..,
    );
    match opened {
        Ok(_) => Ok(()),
        Err(_) => {
            // ring zeroes it too today; not relied upon.
            buffer.fill(0);
            Err(CryptoError::AeadAuthFailed)
        }
    }
}

/// RFC 8439 §2.8 open that moves the plaintext towards the front of the buffer in the same pass
/// as it decrypts: `in_out[from..]` holds the ciphertext then the 16-byte tag, and the plaintext
/// is written to `in_out[..len]`, `len` being the ciphertext's length, which is returned. Used
/// to decrypt a packet straight to where it will be transmitted rather than in place and then
/// moved (`fastpath::frame`). On failure, or when `in_out[from..]` is shorter than a tag, all
/// of `in_out` is zeroed: plaintext may have been written before the tag check failed.
#[inline]
pub fn chacha20poly1305_open_within(
    key: &[u8; KEY_LEN],
    nonce: &[u8; 12],
    aad: &[u8],
    in_out: &mut [u8],
    from: usize,
) -> Result<usize, CryptoError> {
    let opened = ring_key(key).open_within(
        ring::aead::Nonce::assume_unique_for_key(*nonce),
        Aad::from(aad),
        in_out,
        from..,
    );
    match opened {
        Ok(plain) => Ok(plain.len()),
        Err(_) => {
            // ring zeroes the plaintext's place too today; not relied upon. The rest (the
            // ciphertext's shifted tail and the tag) is cleared as well, so nothing of the
            // message is left for anyone downstream to misread.
            in_out.fill(0);
            Err(CryptoError::AeadAuthFailed)
        }
    }
}

/// [`chacha20poly1305_open_within`] with WireGuard's counter nonce: the transport data path's
/// open.
#[inline]
pub fn aead_open_within(
    key: &[u8; KEY_LEN],
    counter: u64,
    aad: &[u8],
    in_out: &mut [u8],
    from: usize,
) -> Result<usize, CryptoError> {
    chacha20poly1305_open_within(key, &counter_nonce(counter), aad, in_out, from)
}

/// Inverse of [`aead_seal_in_place`]: verifies `tag` and decrypts `buffer` in place. On failure
/// `buffer` is zeroed.
#[inline]
pub fn aead_open_in_place(
    key: &[u8; KEY_LEN],
    counter: u64,
    aad: &[u8],
    buffer: &mut [u8],
    tag: &[u8; AEAD_TAG_LEN],
) -> Result<(), CryptoError> {
    chacha20poly1305_open_in_place(key, &counter_nonce(counter), aad, buffer, tag)
}

/// AEAD(key, counter, plaintext, aad) into `out`, which must be exactly
/// `plaintext.len() + 16` bytes (ciphertext then tag).
pub fn aead_seal(
    key: &[u8; KEY_LEN],
    counter: u64,
    plaintext: &[u8],
    aad: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    if out.len() != plaintext.len() + AEAD_TAG_LEN {
        return Err(CryptoError::BufferLength);
    }
    let (ct, tag_out) = out.split_at_mut(plaintext.len());
    ct.copy_from_slice(plaintext);
    let tag = aead_seal_in_place(key, counter, aad, ct);
    tag_out.copy_from_slice(&tag);
    Ok(())
}

/// Inverse of [`aead_seal`]: `sealed` is ciphertext then tag, `out` must be exactly
/// `sealed.len() - 16` bytes. On failure `out` is zeroed.
pub fn aead_open(
    key: &[u8; KEY_LEN],
    counter: u64,
    sealed: &[u8],
    aad: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let (ct, tag) = split_tag(sealed, out.len())?;
    out.copy_from_slice(ct);
    aead_open_in_place(key, counter, aad, out, &tag).inspect_err(|_| out.zeroize())
}

/// XAEAD(key, nonce, plaintext, aad): XChaCha20-Poly1305 with a 24-byte random nonce, used only
/// for the cookie reply (whitepaper §5.4.7). `out` is exactly `plaintext.len() + 16` bytes.
pub fn xaead_seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; COOKIE_NONCE_LEN],
    plaintext: &[u8],
    aad: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    if out.len() != plaintext.len() + AEAD_TAG_LEN {
        return Err(CryptoError::BufferLength);
    }
    let (ct, tag_out) = out.split_at_mut(plaintext.len());
    ct.copy_from_slice(plaintext);
    let cipher = XChaCha20Poly1305::new(key.into());
    let tag = cipher
        .encrypt_in_place_detached(nonce.into(), aad, ct)
        .map_err(|_| CryptoError::BufferLength)?;
    tag_out.copy_from_slice(&tag);
    Ok(())
}

/// Inverse of [`xaead_seal`]: `sealed` is ciphertext then tag, `out` is exactly
/// `sealed.len() - 16` bytes. On failure `out` is zeroed.
pub fn xaead_open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; COOKIE_NONCE_LEN],
    sealed: &[u8],
    aad: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let (ct, tag) = split_tag(sealed, out.len())?;
    out.copy_from_slice(ct);
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt_in_place_detached(nonce.into(), aad, out, (&tag).into())
        .map_err(|_| {
            out.zeroize();
            CryptoError::AeadAuthFailed
        })
}

fn split_tag(sealed: &[u8], plain_len: usize) -> Result<(&[u8], [u8; AEAD_TAG_LEN]), CryptoError> {
    if sealed.len() != plain_len + AEAD_TAG_LEN {
        return Err(CryptoError::BufferLength);
    }
    let (ct, tag) = sealed.split_at(plain_len);
    let mut t = [0u8; AEAD_TAG_LEN];
    t.copy_from_slice(tag);
    Ok((ct, t))
}

/// DH(private, public): X25519 (RFC 7748 §5). Returns [`CryptoError::LowOrderPoint`] when the
/// result is all zero, which happens exactly for the low-order public keys (RFC 7748 §6.1 says a
/// protocol may check this; WireGuard must, or an attacker could force a known shared secret).
pub fn dh(private: &[u8; KEY_LEN], public: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN], CryptoError> {
    let secret = StaticSecret::from(*private);
    let shared = secret.diffie_hellman(&DalekPublic::from(*public));
    let out = *shared.as_bytes();
    if bool::from(out.ct_eq(&[0u8; KEY_LEN])) {
        return Err(CryptoError::LowOrderPoint);
    }
    Ok(out)
}

/// The X25519 public key of `private` (RFC 7748 §6.1: scalar multiplication of the base point;
/// the scalar is clamped as the RFC requires).
pub fn dh_public(private: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let secret = StaticSecret::from(*private);
    DalekPublic::from(&secret).to_bytes()
}

/// Constant-time equality for MACs and keys.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_outputs_chain_and_differ() {
        let key = [7u8; 32];
        let (a1, a2) = kdf2(&key, b"input");
        let (b1, b2, b3) = kdf3(&key, b"input");
        assert_eq!(kdf1(&key, b"input"), a1);
        assert_eq!((a1, a2), (b1, b2));
        assert_ne!(b2, b3);
        // T2 = HMAC(PRK, T1 || 0x2): recompute by hand from the HMAC primitive.
        let prk = hmac(&key, &[b"input"]);
        assert_eq!(hmac(&prk, &[&a1, &[2]]), a2);
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        let key = [3u8; 32];
        let mut out = [0u8; 5 + 16];
        aead_seal(&key, 9, b"hello", b"ad", &mut out).unwrap();
        let mut back = [0u8; 5];
        aead_open(&key, 9, &out, b"ad", &mut back).unwrap();
        assert_eq!(&back, b"hello");
        assert_eq!(
            aead_open(&key, 10, &out, b"ad", &mut back),
            Err(CryptoError::AeadAuthFailed)
        );
        assert_eq!(back, [0u8; 5]);
        out[0] ^= 1;
        assert!(aead_open(&key, 9, &out, b"ad", &mut back).is_err());
        assert_eq!(
            aead_open(&key, 9, &out[..3], b"ad", &mut back),
            Err(CryptoError::BufferLength)
        );
    }

    #[test]
    fn dh_rejects_low_order_points() {
        let private = [0x42u8; 32];
        // The identity point (0) and the point of order 2... (1) both give an all-zero result.
        assert_eq!(dh(&private, &[0u8; 32]), Err(CryptoError::LowOrderPoint));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(dh(&private, &one), Err(CryptoError::LowOrderPoint));
        let other = [0x24u8; 32];
        let ab = dh(&private, &dh_public(&other)).unwrap();
        let ba = dh(&other, &dh_public(&private)).unwrap();
        assert_eq!(ab, ba);
    }
}
