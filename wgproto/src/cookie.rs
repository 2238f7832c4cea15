//! mac1, mac2 and cookie replies: WireGuard's DoS mitigation (whitepaper §5.3, §5.4.4, §5.4.7).
//!
//! [`CookieChecker`] is the receiving side, one per device: it checks mac1 (keyed by our own
//! public key) on every handshake message, checks mac2 when the device is under load, and
//! builds cookie replies whose cookie is bound to the sender's IP address and UDP port, under a
//! secret that changes every COOKIE_SECRET_MAX_AGE. [`CookieState`] is the sending side, one
//! per peer: it writes mac1 (keyed by the peer's public key) on every handshake message we send,
//! and mac2 while it holds a fresh cookie from that peer.
//!
//! Both work on whole handshake messages (initiation or response): mac1 covers everything
//! before it, mac2 everything before it. Deciding "under load" is the device's job. No clock is
//! read here; randomness is passed in.
//!
//! A checker is `Clone`: the slow path publishes a copy to the fast-path workers after each
//! rotation of the secret, so that they check mac1 and mac2 and answer with cookie replies
//! themselves ([`CookieChecker::seal_reply`] never rotates; only the owner's copy does).

use std::net::{IpAddr, SocketAddr};

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::constants::{
    COOKIE_LEN, COOKIE_NONCE_LEN, COOKIE_REPLY_LEN, COOKIE_SECRET_LATENCY, COOKIE_SECRET_MAX_AGE,
    INITIATION_LEN, KEY_LEN, LABEL_COOKIE, LABEL_MAC1, MAC_LEN, RESPONSE_LEN,
};
use crate::crypto;
use crate::keys::PublicKey;
use crate::messages::CookieReply;
use crate::time::Timestamp;

/// Why a mac or cookie reply was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieError {
    /// Not a whole initiation (148 bytes) or response (92 bytes).
    NotAHandshakeMessage,
    /// mac1 does not match: not addressed to us, or tampered.
    InvalidMac1,
    /// mac2 missing or wrong for this source (or made under an expired secret).
    InvalidMac2,
    /// A cookie reply we did not ask for (no handshake message sent, or already answered).
    UnexpectedReply,
    /// The cookie reply did not decrypt (wrong peer, or not bound to our last mac1).
    DecryptFailed,
    /// No cookie reply can be sealed: the secret is older than COOKIE_SECRET_MAX_AGE (a copy
    /// that missed a rotation).
    StaleSecret,
}

impl std::fmt::Display for CookieError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CookieError::NotAHandshakeMessage => "not an initiation or response",
            CookieError::InvalidMac1 => "mac1 invalid",
            CookieError::InvalidMac2 => "mac2 invalid or no cookie",
            CookieError::UnexpectedReply => "cookie reply without a pending handshake message",
            CookieError::DecryptFailed => "cookie reply failed to decrypt",
            CookieError::StaleSecret => "cookie secret expired",
        })
    }
}

impl std::error::Error for CookieError {}

/// Offsets of mac1 and mac2 in a whole handshake message: the last 32 bytes.
fn mac_offsets(len: usize) -> Result<(usize, usize), CookieError> {
    if len != INITIATION_LEN && len != RESPONSE_LEN {
        return Err(CookieError::NotAHandshakeMessage);
    }
    Ok((len - 2 * MAC_LEN, len - MAC_LEN))
}

/// The sender index of an initiation or response (bytes 4..8, both layouts agree).
fn sender_index(msg: &[u8]) -> u32 {
    u32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]])
}

/// The bytes a cookie is bound to: the source IP address then the UDP port (big-endian).
fn source_bytes(src: SocketAddr, out: &mut [u8; 18]) -> &[u8] {
    let port = src.port().to_be_bytes();
    match src.ip() {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            out[4..6].copy_from_slice(&port);
            &out[..6]
        }
        IpAddr::V6(a) => {
            out[..16].copy_from_slice(&a.octets());
            out[16..18].copy_from_slice(&port);
            &out[..18]
        }
    }
}

/// Receiving side, one per device (and a copy per fast-path worker).
#[derive(Clone)]
pub struct CookieChecker {
    /// HASH(LABEL_MAC1 || our public key).
    mac1_key: [u8; KEY_LEN],
    /// HASH(LABEL_COOKIE || our public key): the XAEAD key of our cookie replies.
    cookie_key: [u8; KEY_LEN],
    /// The random secret cookies are MACed with, and when it was made.
    secret: [u8; KEY_LEN],
    secret_birth: Option<Timestamp>,
}

impl Drop for CookieChecker {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl std::fmt::Debug for CookieChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieChecker")
            .field("secret_birth", &self.secret_birth)
            .finish_non_exhaustive()
    }
}

impl CookieChecker {
    pub fn new(own_public: &PublicKey) -> Self {
        CookieChecker {
            mac1_key: crypto::hash(&[LABEL_MAC1, own_public.as_bytes()]),
            cookie_key: crypto::hash(&[LABEL_COOKIE, own_public.as_bytes()]),
            secret: [0; KEY_LEN],
            secret_birth: None,
        }
    }

    /// Checks mac1 of a whole initiation or response (always done, §5.4.4).
    pub fn check_mac1(&self, msg: &[u8]) -> Result<(), CookieError> {
        let (m1, _) = mac_offsets(msg.len())?;
        let want = crypto::mac(&self.mac1_key, &msg[..m1]);
        if crypto::ct_eq(&want, &msg[m1..m1 + MAC_LEN]) {
            Ok(())
        } else {
            Err(CookieError::InvalidMac1)
        }
    }

    fn secret_is_fresh(&self, now: Timestamp) -> bool {
        matches!(self.secret_birth, Some(b) if now.since(b) < COOKIE_SECRET_MAX_AGE)
    }

    /// The cookie we would hand `src` now: MAC(secret, source IP || port).
    fn cookie_for(&self, src: SocketAddr) -> [u8; COOKIE_LEN] {
        let mut buf = [0u8; 18];
        crypto::mac(&self.secret, source_bytes(src, &mut buf))
    }

    /// Checks mac2 of a whole initiation or response from `src` (done under load, §5.3): it
    /// must be MAC(cookie, message up to mac2) with the cookie we give `src` under the current
    /// secret. Call [`Self::check_mac1`] first.
    pub fn check_mac2(
        &self,
        msg: &[u8],
        src: SocketAddr,
        now: Timestamp,
    ) -> Result<(), CookieError> {
        let (_, m2) = mac_offsets(msg.len())?;
        if !self.secret_is_fresh(now) {
            // No cookie handed out under the current secret can exist.
            return Err(CookieError::InvalidMac2);
        }
        let mut cookie = self.cookie_for(src);
        let want = crypto::mac(&cookie, &msg[..m2]);
        cookie.zeroize();
        if crypto::ct_eq(&want, &msg[m2..]) {
            Ok(())
        } else {
            Err(CookieError::InvalidMac2)
        }
    }

    /// Replaces the secret with a random one when it is older than COOKIE_SECRET_MAX_AGE (or
    /// was never made); whether it did. Cookies handed out under the old secret stop being
    /// accepted, as §5.4.7 wants.
    pub fn rotate_if_stale(
        &mut self,
        now: Timestamp,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> bool {
        if self.secret_is_fresh(now) {
            return false;
        }
        rng.fill_bytes(&mut self.secret);
        self.secret_birth = Some(now);
        true
    }

    /// When the current secret was made (`None`: never).
    pub fn secret_birth(&self) -> Option<Timestamp> {
        self.secret_birth
    }

    /// Builds the cookie reply to a whole initiation or response from `src` (§5.4.7): the
    /// cookie for `src`, sealed with XChaCha20-Poly1305 under a random nonce and bound to the
    /// message's mac1 as associated data. Rotates the secret when it is older than
    /// COOKIE_SECRET_MAX_AGE. Call only after [`Self::check_mac1`] succeeded.
    pub fn create_reply(
        &mut self,
        msg: &[u8],
        src: SocketAddr,
        now: Timestamp,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<[u8; COOKIE_REPLY_LEN], CookieError> {
        self.rotate_if_stale(now, rng);
        let mut nonce = [0u8; COOKIE_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        self.seal_reply(msg, src, now, &nonce)
    }

    /// [`Self::create_reply`] with the nonce given and without rotating: for a copy of the
    /// checker (a worker's), which refuses with [`CookieError::StaleSecret`] once its secret
    /// is older than COOKIE_SECRET_MAX_AGE. The nonce must never repeat under this checker's
    /// cookie key (random, or a random prefix and a counter).
    pub fn seal_reply(
        &self,
        msg: &[u8],
        src: SocketAddr,
        now: Timestamp,
        nonce: &[u8; COOKIE_NONCE_LEN],
    ) -> Result<[u8; COOKIE_REPLY_LEN], CookieError> {
        let (m1, _) = mac_offsets(msg.len())?;
        if !self.secret_is_fresh(now) {
            return Err(CookieError::StaleSecret);
        }
        let mut out = [0u8; COOKIE_REPLY_LEN];
        let mut reply = CookieReply::new_unchecked(&mut out[..]);
        reply.fill_header();
        reply.set_receiver_index(sender_index(msg));
        reply.nonce_mut().copy_from_slice(nonce);
        let mut cookie = self.cookie_for(src);
        let sealed = crypto::xaead_seal(
            &self.cookie_key,
            nonce,
            &cookie,
            &msg[m1..m1 + MAC_LEN],
            reply.encrypted_cookie_mut(),
        );
        cookie.zeroize();
        sealed.map_err(|_| CookieError::DecryptFailed)?;
        Ok(out)
    }
}

/// Sending side, one per peer: the macs of the handshake messages we send to that peer.
pub struct CookieState {
    /// HASH(LABEL_MAC1 || peer's public key).
    mac1_key: [u8; KEY_LEN],
    /// HASH(LABEL_COOKIE || peer's public key): decrypts the peer's cookie replies.
    cookie_key: [u8; KEY_LEN],
    /// mac1 of the last handshake message sent, awaiting at most one cookie reply.
    last_mac1: Option<[u8; MAC_LEN]>,
    /// The cookie from the peer's last reply and when we received it.
    cookie: Option<([u8; COOKIE_LEN], Timestamp)>,
}

impl Drop for CookieState {
    fn drop(&mut self) {
        if let Some((c, _)) = self.cookie.as_mut() {
            c.zeroize();
        }
    }
}

impl std::fmt::Debug for CookieState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieState")
            .field("awaiting_reply", &self.last_mac1.is_some())
            .field(
                "cookie_received_at",
                &self.cookie.as_ref().map(|(_, at)| *at),
            )
            .finish_non_exhaustive()
    }
}

impl CookieState {
    pub fn new(peer_public: &PublicKey) -> Self {
        CookieState {
            mac1_key: crypto::hash(&[LABEL_MAC1, peer_public.as_bytes()]),
            cookie_key: crypto::hash(&[LABEL_COOKIE, peer_public.as_bytes()]),
            last_mac1: None,
            cookie: None,
        }
    }

    /// True while we hold a cookie received less than COOKIE_SECRET_MAX_AGE minus
    /// COOKIE_SECRET_LATENCY ago (the peer's secret may rotate while our message travels).
    pub fn has_fresh_cookie(&self, now: Timestamp) -> bool {
        matches!(self.cookie, Some((_, at))
            if now.since(at) < COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY)
    }

    /// Writes mac1 (always) and mac2 (with a fresh cookie; zero otherwise) into a whole
    /// initiation or response just built by [`crate::noise`], and remembers mac1 so that a
    /// cookie reply to this message can be verified.
    pub fn add_macs(&mut self, msg: &mut [u8], now: Timestamp) -> Result<(), CookieError> {
        let (m1, m2) = mac_offsets(msg.len())?;
        let mac1 = crypto::mac(&self.mac1_key, &msg[..m1]);
        msg[m1..m2].copy_from_slice(&mac1);
        self.last_mac1 = Some(mac1);
        let mac2 = match &self.cookie {
            Some((cookie, _)) if self.has_fresh_cookie(now) => crypto::mac(cookie, &msg[..m2]),
            _ => [0u8; MAC_LEN],
        };
        msg[m2..].copy_from_slice(&mac2);
        Ok(())
    }

    /// Consumes the peer's cookie reply to our last handshake message (the device found this
    /// peer by the reply's receiver index). The reply must decrypt with the mac1 we last sent
    /// as associated data; each sent message accepts at most one reply.
    pub fn consume_reply(
        &mut self,
        reply: &CookieReply<&[u8]>,
        now: Timestamp,
    ) -> Result<(), CookieError> {
        let last_mac1 = self.last_mac1.ok_or(CookieError::UnexpectedReply)?;
        let mut cookie = [0u8; COOKIE_LEN];
        crypto::xaead_open(
            &self.cookie_key,
            reply.nonce(),
            reply.encrypted_cookie(),
            &last_mac1,
            &mut cookie,
        )
        .map_err(|_| CookieError::DecryptFailed)?;
        if let Some((old, _)) = self.cookie.as_mut() {
            old.zeroize();
        }
        self.cookie = Some((cookie, now));
        cookie.zeroize();
        self.last_mac1 = None;
        Ok(())
    }
}
