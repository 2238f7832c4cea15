//! The worker's screening of handshake initiations and responses (whitepaper §5.3, §5.4.7),
//! before any of them reaches the slow path.
//!
//! With the copy of the cookie checker the slow path publishes ([`crate::tables`]), a worker
//! sorts each message into one of three: mac1 invalid (it can never be accepted: dropped here),
//! mac1 and mac2 valid (its sender received our cookie reply at this address: the slow path's
//! mac2 lane, which junk cannot fill), or mac1 valid without mac2 (the handshake lane; under
//! load the worker answers it with a cookie reply itself, so that a genuine sender gets its
//! cookie however full the lane is, and retries with mac2). Cookie replies are limited per
//! source as handshakes are (RATELIMIT_PACKETS_PER_SECOND, burst RATELIMIT_BURST; the worker's
//! own table): a flood from few addresses costs a reply per source and burst, not one per
//! datagram, while a genuine sender (one initiation per REKEY_TIMEOUT) always gets its reply.
//! Only handshake-type datagrams pay for this: up to three BLAKE2s MACs, and an
//! XChaCha20-Poly1305 seal of 16 bytes per cookie reply.
//!
//! This module owns the verdict and the nonces of the worker's cookie replies; it never
//! rotates the secret (the slow path does) and never allocates.

use std::net::SocketAddr;

use wgproto::constants::{COOKIE_NONCE_LEN, COOKIE_REPLY_LEN, MAC_LEN};
use wgproto::cookie::{CookieChecker, CookieError};
use wgproto::time::Timestamp;

/// What the macs of a whole initiation or response say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screened {
    /// Not made with our public key, or tampered with: drop.
    BadMac1,
    /// mac2 made with the cookie we hand this source address and port now.
    Mac2Valid,
    /// mac1 valid, mac2 absent or not valid for this source (or under an expired secret).
    NoMac2,
}

/// Checks mac1 and then mac2 of `msg` (a whole initiation or response) from `src`.
pub fn screen(macs: &CookieChecker, msg: &[u8], src: SocketAddr, now: Timestamp) -> Screened {
    if macs.check_mac1(msg).is_err() {
        return Screened::BadMac1;
    }
    // A sender without a cookie sends zeros (§5.4.4): no MAC to compute for it.
    if msg.len() >= MAC_LEN && msg[msg.len() - MAC_LEN..].iter().all(|&b| b == 0) {
        return Screened::NoMac2;
    }
    match macs.check_mac2(msg, src, now) {
        Ok(()) => Screened::Mac2Valid,
        Err(_) => Screened::NoMac2,
    }
}

/// Nonces of one worker's cookie replies: a random prefix of its own and a counter, so that no
/// two replies under one cookie key share a nonce (which is all XChaCha20-Poly1305 asks) without
/// a system call per reply.
#[derive(Clone, Debug)]
pub struct CookieNonces {
    prefix: [u8; COOKIE_NONCE_LEN - 8],
    counter: u64,
}

impl CookieNonces {
    /// `seed` must be random and differ between workers (the runtime draws it from the OS).
    pub fn new(seed: [u8; COOKIE_NONCE_LEN - 8]) -> Self {
        CookieNonces {
            prefix: seed,
            counter: 0,
        }
    }

    fn next(&mut self) -> [u8; COOKIE_NONCE_LEN] {
        self.counter = self.counter.wrapping_add(1);
        let mut n = [0u8; COOKIE_NONCE_LEN];
        n[..self.prefix.len()].copy_from_slice(&self.prefix);
        n[self.prefix.len()..].copy_from_slice(&self.counter.to_le_bytes());
        n
    }

    /// The cookie reply to `msg` from `src` (call after [`screen`] said [`Screened::NoMac2`]).
    pub fn reply(
        &mut self,
        macs: &CookieChecker,
        msg: &[u8],
        src: SocketAddr,
        now: Timestamp,
    ) -> Result<[u8; COOKIE_REPLY_LEN], CookieError> {
        macs.seal_reply(msg, src, now, &self.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;
    use wgproto::cookie::CookieState;
    use wgproto::keys::PrivateKey;
    use wgproto::messages::{classify, Message};

    fn initiation(macs: &mut CookieState, now: Timestamp) -> [u8; 148] {
        let mut m = [7u8; 148];
        m[..4].copy_from_slice(&[1, 0, 0, 0]);
        macs.add_macs(&mut m, now).unwrap();
        m
    }

    #[test]
    fn sorts_by_mac1_and_mac2_and_answers_with_distinct_nonces() {
        let gw = PrivateKey::generate(&mut OsRng).public_key();
        let mut checker = CookieChecker::new(&gw);
        let now = Timestamp::from_nanos(1_000_000_000);
        checker.rotate_if_stale(now, &mut OsRng);
        let src: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        let mut client = CookieState::new(&gw);
        let init = initiation(&mut client, now);
        assert_eq!(screen(&checker, &init, src, now), Screened::NoMac2);
        let mut forged = init;
        forged[120] ^= 1;
        assert_eq!(screen(&checker, &forged, src, now), Screened::BadMac1);
        let other = CookieChecker::new(&PrivateKey::generate(&mut OsRng).public_key());
        assert_eq!(screen(&other, &init, src, now), Screened::BadMac1);

        let mut nonces = CookieNonces::new([3; 16]);
        let reply = nonces.reply(&checker, &init, src, now).unwrap();
        let again = nonces.reply(&checker, &init, src, now).unwrap();
        assert_ne!(reply[8..32], again[8..32], "nonces repeat");
        let Message::CookieReply(view) = classify(&reply).unwrap() else {
            panic!("not a cookie reply");
        };
        client.consume_reply(&view, now).unwrap();
        let retry = initiation(&mut client, now);
        assert_eq!(screen(&checker, &retry, src, now), Screened::Mac2Valid);
        let elsewhere: SocketAddr = "192.0.2.9:40001".parse().unwrap();
        assert_eq!(screen(&checker, &retry, elsewhere, now), Screened::NoMac2);
    }
}
