//! The handshake, cookies and rate limiter end to end: both roles of our own implementation,
//! and every rule that makes a handshake message fail (replay, flood, wrong psk, low-order
//! keys, tampering, bad mac1/mac2), cookie replies bound to the source address, the cookie
//! secret's rotation, and the per-source rate limiter.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rand_core::OsRng;
use wgproto::constants::{
    COOKIE_REPLY_LEN, COOKIE_SECRET_MAX_AGE, INITIATION_LEN, MSG_COOKIE_REPLY, MSG_INITIATION,
    MSG_RESPONSE, RATELIMIT_MAX_ENTRIES, RESPONSE_LEN,
};
use wgproto::cookie::{CookieChecker, CookieError, CookieState};
use wgproto::crypto;
use wgproto::keys::{PresharedKey, PrivateKey, PublicKey};
use wgproto::messages::{classify, field, CookieReply, Initiation, Message, Response};
use wgproto::noise::{HandshakeError, PeerHandshake, SessionKeys, StaticIdentity};
use wgproto::ratelimiter::{RateLimitError, RateLimiter};
use wgproto::time::Timestamp;

const WALL: Duration = Duration::from_secs(1_700_000_000);

fn secs(s: u64) -> Timestamp {
    Timestamp::ZERO + Duration::from_secs(s)
}

fn ms(m: u64) -> Timestamp {
    Timestamp::ZERO + Duration::from_millis(m)
}

/// One side of a test pair: identity, the handshake and macs for the other side, and the
/// checker for messages addressed to us.
struct Side {
    identity: StaticIdentity,
    peer: PeerHandshake,
    macs: CookieState,
    checker: CookieChecker,
}

fn pair_with_psks(psk_a: PresharedKey, psk_b: PresharedKey) -> (Side, Side) {
    let ka = PrivateKey::generate(&mut OsRng);
    let kb = PrivateKey::generate(&mut OsRng);
    let (pa, pb) = (ka.public_key(), kb.public_key());
    let ia = StaticIdentity::new(ka);
    let ib = StaticIdentity::new(kb);
    let a = Side {
        peer: PeerHandshake::new(&ia, pb, psk_a),
        macs: CookieState::new(&pb),
        checker: CookieChecker::new(&pa),
        identity: ia,
    };
    let b = Side {
        peer: PeerHandshake::new(&ib, pa, psk_b),
        macs: CookieState::new(&pa),
        checker: CookieChecker::new(&pb),
        identity: ib,
    };
    (a, b)
}

fn pair() -> (Side, Side) {
    let psk = PresharedKey::generate(&mut OsRng);
    pair_with_psks(psk.clone(), psk)
}

fn initiation(a: &mut Side, index: u32, wall: Duration, now: Timestamp) -> [u8; INITIATION_LEN] {
    let mut m = a
        .peer
        .create_initiation(&a.identity, index, wall, &mut OsRng)
        .unwrap();
    a.macs.add_macs(&mut m, now).unwrap();
    m
}

/// Responder side of steps 1-3 for one initiation.
fn receive_initiation(b: &mut Side, msg: &[u8], now: Timestamp) -> Result<(), HandshakeError> {
    b.checker.check_mac1(msg).expect("mac1");
    let pending = b
        .identity
        .consume_initiation(&Initiation::new_checked(msg).unwrap())?;
    assert_eq!(pending.remote_static(), b.peer.remote_static());
    b.peer.accept_initiation(pending, now).map(|_| ())
}

fn full_handshake(a: &mut Side, b: &mut Side) -> (SessionKeys, SessionKeys) {
    let init = initiation(a, 11, WALL, ms(0));
    receive_initiation(b, &init, ms(0)).unwrap();
    let (mut resp, kb) = b.peer.create_response(22, &mut OsRng).unwrap();
    b.macs.add_macs(&mut resp, ms(0)).unwrap();
    a.checker.check_mac1(&resp).unwrap();
    let ka = a
        .peer
        .consume_response(&a.identity, &Response::new_checked(&resp[..]).unwrap())
        .unwrap();
    (ka, kb)
}

#[test]
fn both_roles_agree_on_keys_and_indices() {
    let (mut a, mut b) = pair();
    let (ka, kb) = full_handshake(&mut a, &mut b);
    assert!(ka.is_initiator && !kb.is_initiator);
    assert_eq!((ka.local_index, ka.remote_index), (11, 22));
    assert_eq!((kb.local_index, kb.remote_index), (22, 11));
    assert_eq!(ka.sending_key, kb.receiving_key);
    assert_eq!(ka.receiving_key, kb.sending_key);
    assert_ne!(ka.sending_key, ka.receiving_key);

    let mut sealed = [0u8; 5 + 16];
    crypto::aead_seal(&ka.sending_key, 0, b"hello", &[], &mut sealed).unwrap();
    let mut out = [0u8; 5];
    crypto::aead_open(&kb.receiving_key, 0, &sealed, &[], &mut out).unwrap();
    assert_eq!(&out, b"hello");

    // State is wiped after use on both sides.
    assert_eq!(a.peer.pending_local_index(), None);
    assert!(!b.peer.has_accepted_initiation());
    assert!(matches!(
        b.peer.create_response(23, &mut OsRng),
        Err(HandshakeError::NoPendingHandshake)
    ));
}

#[test]
fn a_second_handshake_yields_fresh_keys() {
    let (mut a, mut b) = pair();
    let (k1, _) = full_handshake(&mut a, &mut b);
    let init = initiation(&mut a, 12, WALL + Duration::from_secs(1), ms(100));
    receive_initiation(&mut b, &init, ms(100)).unwrap();
    let (resp, _) = b.peer.create_response(23, &mut OsRng).unwrap();
    let k2 = a
        .peer
        .consume_response(&a.identity, &Response::new_checked(&resp[..]).unwrap())
        .unwrap();
    assert_ne!(k1.sending_key, k2.sending_key);
}

#[test]
fn replayed_or_older_initiation_is_rejected() {
    let (mut a, mut b) = pair();
    let first = initiation(&mut a, 1, WALL, ms(0));
    receive_initiation(&mut b, &first, ms(0)).unwrap();
    // Byte-identical replay, well past the flood spacing.
    assert_eq!(
        receive_initiation(&mut b, &first, ms(5_000)),
        Err(HandshakeError::TimestampNotIncreasing)
    );
    // An initiation with an older wall clock.
    let older = initiation(&mut a, 2, WALL - Duration::from_secs(1), ms(5_000));
    assert_eq!(
        receive_initiation(&mut b, &older, ms(6_000)),
        Err(HandshakeError::TimestampNotIncreasing)
    );
    // A newer one is fine.
    let newer = initiation(&mut a, 3, WALL + Duration::from_secs(1), ms(7_000));
    receive_initiation(&mut b, &newer, ms(7_000)).unwrap();
    assert!(b
        .peer
        .latest_timestamp()
        .is_after(&wgproto::tai64n::Tai64n::for_initiation(WALL)));
}

#[test]
fn more_than_fifty_initiations_per_second_are_refused() {
    let (mut a, mut b) = pair();
    let first = initiation(&mut a, 1, WALL, ms(0));
    receive_initiation(&mut b, &first, ms(1_000)).unwrap();
    // Newer timestamp but only 10 ms later on the responder's clock: flood.
    let second = initiation(&mut a, 2, WALL + Duration::from_millis(30), ms(0));
    assert_eq!(
        receive_initiation(&mut b, &second, ms(1_010)),
        Err(HandshakeError::InitiationFlood)
    );
    // The refused one did not update the replay memory, so after 20 ms it is accepted.
    receive_initiation(&mut b, &second, ms(1_020)).unwrap();
}

#[test]
fn wrong_psk_fails_the_response() {
    let (mut a, mut b) = pair_with_psks(
        PresharedKey::generate(&mut OsRng),
        PresharedKey::generate(&mut OsRng),
    );
    let init = initiation(&mut a, 1, WALL, ms(0));
    // psk2: the initiation does not depend on the psk, the response does.
    receive_initiation(&mut b, &init, ms(0)).unwrap();
    let (resp, _) = b.peer.create_response(2, &mut OsRng).unwrap();
    assert_eq!(
        a.peer
            .consume_response(&a.identity, &Response::new_checked(&resp[..]).unwrap())
            .unwrap_err(),
        HandshakeError::DecryptFailed
    );
}

#[test]
fn no_psk_on_both_sides_works() {
    let (mut a, mut b) = pair_with_psks(PresharedKey::none(), PresharedKey::none());
    let (ka, kb) = full_handshake(&mut a, &mut b);
    assert_eq!(ka.sending_key, kb.receiving_key);
}

/// A point of order 8 on Curve25519 (its X25519 product with any clamped scalar is zero).
fn low_order_point() -> [u8; 32] {
    let v =
        hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800").unwrap();
    v.try_into().unwrap()
}

#[test]
fn low_order_keys_are_rejected() {
    for bad in [[0u8; 32], low_order_point()] {
        let (mut a, mut b) = pair();
        // Initiation with a low-order ephemeral: the first DH is all zero.
        let mut init = initiation(&mut a, 1, WALL, ms(0));
        init[field::initiation::EPHEMERAL].copy_from_slice(&bad);
        assert!(matches!(
            b.identity
                .consume_initiation(&Initiation::new_checked(&init[..]).unwrap()),
            Err(HandshakeError::LowOrderPoint)
        ));

        // Response with a low-order ephemeral.
        let init = initiation(&mut a, 5, WALL, ms(0));
        receive_initiation(&mut b, &init, ms(0)).unwrap();
        let (mut resp, _) = b.peer.create_response(6, &mut OsRng).unwrap();
        resp[field::response::EPHEMERAL].copy_from_slice(&bad);
        assert_eq!(
            a.peer
                .consume_response(&a.identity, &Response::new_checked(&resp[..]).unwrap())
                .unwrap_err(),
            HandshakeError::LowOrderPoint
        );
    }

    // A peer configured with a low-order static key can never handshake.
    let id = StaticIdentity::new(PrivateKey::generate(&mut OsRng));
    let mut p = PeerHandshake::new(
        &id,
        PublicKey::from_bytes(low_order_point()),
        PresharedKey::none(),
    );
    assert_eq!(
        p.create_initiation(&id, 1, WALL, &mut OsRng).unwrap_err(),
        HandshakeError::LowOrderPoint
    );
}

#[test]
fn every_tampered_noise_byte_is_rejected() {
    let (mut a, mut b) = pair();
    let init = initiation(&mut a, 1, WALL, ms(0));
    // Bytes 8..116 are the Noise payload: ephemeral, encrypted static, encrypted timestamp.
    for i in field::initiation::EPHEMERAL.start..field::initiation::MAC1.start {
        let mut t = init;
        t[i] ^= 0x01;
        // mac1 catches it first...
        assert_eq!(
            b.checker.check_mac1(&t),
            Err(CookieError::InvalidMac1),
            "byte {i}"
        );
        // ...and without mac1 the AEADs still do.
        let r = b
            .identity
            .consume_initiation(&Initiation::new_checked(&t[..]).unwrap())
            .and_then(|p| b.peer.accept_initiation(p, secs(1)).map(|_| ()));
        assert!(r.is_err(), "tampered initiation byte {i} accepted");
    }
    receive_initiation(&mut b, &init, secs(2)).unwrap();
    let (resp, _) = b.peer.create_response(2, &mut OsRng).unwrap();
    for i in field::response::EPHEMERAL.start..field::response::MAC1.start {
        let mut t = resp;
        t[i] ^= 0x80;
        assert_eq!(
            a.checker.check_mac1(&t),
            Err(CookieError::InvalidMac1),
            "byte {i}"
        );
        assert!(
            a.peer
                .consume_response(&a.identity, &Response::new_checked(&t[..]).unwrap())
                .is_err(),
            "tampered response byte {i} accepted"
        );
        assert_eq!(
            a.peer.pending_local_index(),
            Some(1),
            "forged response kept state"
        );
    }
    // The untampered response still completes.
    a.peer
        .consume_response(&a.identity, &Response::new_checked(&resp[..]).unwrap())
        .unwrap();
}

#[test]
fn response_to_another_index_or_without_initiation_is_refused() {
    let (mut a, mut b) = pair();
    let init = initiation(&mut a, 1, WALL, ms(0));
    receive_initiation(&mut b, &init, ms(0)).unwrap();
    let (mut resp, _) = b.peer.create_response(2, &mut OsRng).unwrap();
    Response::new_unchecked(&mut resp[..]).set_receiver_index(99);
    assert_eq!(
        a.peer
            .consume_response(&a.identity, &Response::new_checked(&resp[..]).unwrap())
            .unwrap_err(),
        HandshakeError::IndexMismatch
    );
    let (mut c, _) = pair();
    assert_eq!(
        c.peer
            .consume_response(&c.identity, &Response::new_checked(&resp[..]).unwrap())
            .unwrap_err(),
        HandshakeError::NoPendingHandshake
    );
}

#[test]
fn pending_initiation_for_another_peer_is_refused() {
    let (mut a, b) = pair();
    let init = initiation(&mut a, 1, WALL, ms(0));
    let pending = b
        .identity
        .consume_initiation(&Initiation::new_checked(&init[..]).unwrap())
        .unwrap();
    let mut stranger = PeerHandshake::new(
        &b.identity,
        PrivateKey::generate(&mut OsRng).public_key(),
        PresharedKey::none(),
    );
    assert_eq!(
        stranger.accept_initiation(pending, ms(0)).unwrap_err(),
        HandshakeError::WrongPeer
    );
}

#[test]
fn mac1_for_someone_else_or_modified_is_rejected() {
    let (mut a, b) = pair();
    let init = initiation(&mut a, 1, WALL, ms(0));
    b.checker.check_mac1(&init).unwrap();
    // mac1 keyed for a third party's public key.
    let other = CookieChecker::new(&PrivateKey::generate(&mut OsRng).public_key());
    assert_eq!(other.check_mac1(&init), Err(CookieError::InvalidMac1));
    let mut t = init;
    t[field::initiation::MAC1.start] ^= 1;
    assert_eq!(b.checker.check_mac1(&t), Err(CookieError::InvalidMac1));
    // mac2 is not covered by mac1.
    let mut t = init;
    t[field::initiation::MAC2.start] ^= 1;
    b.checker.check_mac1(&t).unwrap();
    // Not a handshake message at all.
    assert_eq!(
        b.checker.check_mac1(&init[..100]),
        Err(CookieError::NotAHandshakeMessage)
    );
}

fn src_v4(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), port)
}

#[test]
fn cookie_reply_round_trip_binds_mac2_to_source_address() {
    let (mut a, mut b) = pair();
    let src = src_v4(40000);
    let now = secs(10);

    let init = initiation(&mut a, 77, WALL, now);
    b.checker.check_mac1(&init).unwrap();
    assert_eq!(
        b.checker.check_mac2(&init, src, now),
        Err(CookieError::InvalidMac2),
        "no cookie yet"
    );
    let reply = b.checker.create_reply(&init, src, now, &mut OsRng).unwrap();
    assert_eq!(reply.len(), COOKIE_REPLY_LEN);
    let view = match classify(&reply).unwrap() {
        Message::CookieReply(v) => v,
        other => panic!("not a cookie reply: {other:?}"),
    };
    assert_eq!(
        view.receiver_index(),
        77,
        "reply addressed to the initiation's sender"
    );
    a.macs.consume_reply(&view, now).unwrap();
    assert!(a.macs.has_fresh_cookie(now));
    // Each sent message accepts one reply.
    assert_eq!(
        a.macs.consume_reply(&view, now),
        Err(CookieError::UnexpectedReply)
    );

    // The retried initiation carries mac2 and passes from the same address and port only.
    let retry = initiation(&mut a, 78, WALL + Duration::from_secs(1), now);
    b.checker.check_mac1(&retry).unwrap();
    b.checker.check_mac2(&retry, src, now).unwrap();
    assert_eq!(
        b.checker.check_mac2(&retry, src_v4(40001), now),
        Err(CookieError::InvalidMac2)
    );
    let other_ip = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8)), 40000);
    assert_eq!(
        b.checker.check_mac2(&retry, other_ip, now),
        Err(CookieError::InvalidMac2)
    );
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 40000);
    assert_eq!(
        b.checker.check_mac2(&retry, v6, now),
        Err(CookieError::InvalidMac2)
    );
    // The handshake itself still completes with the mac'd message.
    receive_initiation(&mut b, &retry, now).unwrap();
}

/// A copy of the checker (what a fast-path worker holds) seals replies that the initiator
/// accepts, checks the resulting mac2 as the original does, and stops sealing or accepting once
/// its secret is older than COOKIE_SECRET_MAX_AGE; only the original rotates.
#[test]
fn a_copy_of_the_checker_answers_and_checks_until_its_secret_expires() {
    let (mut a, mut b) = pair();
    let src = src_v4(40000);
    let now = secs(10);
    assert!(b.checker.rotate_if_stale(now, &mut OsRng));
    assert!(!b.checker.rotate_if_stale(now, &mut OsRng), "fresh: kept");
    let copy = b.checker.clone();
    let init = initiation(&mut a, 5, WALL, now);
    copy.check_mac1(&init).unwrap();
    let reply = copy.seal_reply(&init, src, now, &[9; 24]).unwrap();
    let Message::CookieReply(view) = classify(&reply).unwrap() else {
        panic!("not a cookie reply")
    };
    a.macs.consume_reply(&view, now).unwrap();
    let retry = initiation(&mut a, 6, WALL + Duration::from_secs(1), now);
    copy.check_mac2(&retry, src, now).unwrap();
    b.checker.check_mac2(&retry, src, now).unwrap();
    let expired = now + COOKIE_SECRET_MAX_AGE;
    assert_eq!(
        copy.seal_reply(&init, src, expired, &[9; 24]),
        Err(CookieError::StaleSecret)
    );
    assert_eq!(
        copy.check_mac2(&retry, src, expired),
        Err(CookieError::InvalidMac2)
    );
    // The original rotates; a cookie of the old secret no longer passes.
    assert!(b.checker.rotate_if_stale(expired, &mut OsRng));
    assert_eq!(
        b.checker.check_mac2(&retry, src, expired),
        Err(CookieError::InvalidMac2)
    );
}

#[test]
fn cookie_reply_must_match_the_last_sent_mac1() {
    let (mut a, mut b) = pair();
    let src = src_v4(1);
    let first = initiation(&mut a, 1, WALL, secs(1));
    let reply_to_first = b
        .checker
        .create_reply(&first, src, secs(1), &mut OsRng)
        .unwrap();
    // We send another message before the reply arrives: the reply is bound to the old mac1.
    let _second = initiation(&mut a, 2, WALL + Duration::from_secs(1), secs(1));
    assert_eq!(
        a.macs.consume_reply(
            &CookieReply::new_checked(&reply_to_first[..]).unwrap(),
            secs(1)
        ),
        Err(CookieError::DecryptFailed)
    );
    // A tampered reply does not decrypt either.
    let mut fake = b
        .checker
        .create_reply(&first, src, secs(1), &mut OsRng)
        .unwrap();
    fake[field::cookie_reply::COOKIE.start] ^= 1;
    assert_eq!(
        a.macs
            .consume_reply(&CookieReply::new_checked(&fake[..]).unwrap(), secs(1)),
        Err(CookieError::DecryptFailed)
    );
}

#[test]
fn cookie_secret_rotates_after_120_seconds() {
    let (mut a, mut b) = pair();
    let src = src_v4(5555);
    let t0 = secs(1_000);
    let m = initiation(&mut a, 1, WALL, t0);
    let reply = b.checker.create_reply(&m, src, t0, &mut OsRng).unwrap();
    a.macs
        .consume_reply(&CookieReply::new_checked(&reply[..]).unwrap(), t0)
        .unwrap();

    // 110 s later the initiator still uses the cookie (fresh below 120 - 5 s) and it passes.
    let t1 = t0 + Duration::from_secs(110);
    let m1 = initiation(&mut a, 2, WALL + Duration::from_secs(110), t1);
    b.checker.check_mac2(&m1, src, t1).unwrap();
    // At 120 s the secret has expired: the same bytes no longer pass.
    let t2 = t0 + Duration::from_secs(120);
    assert_eq!(
        b.checker.check_mac2(&m1, src, t2),
        Err(CookieError::InvalidMac2)
    );
    // A new reply rotates the secret; the old cookie stays invalid, the new one works.
    let reply2 = b.checker.create_reply(&m1, src, t2, &mut OsRng).unwrap();
    assert_eq!(
        b.checker.check_mac2(&m1, src, t2),
        Err(CookieError::InvalidMac2)
    );
    a.macs
        .consume_reply(&CookieReply::new_checked(&reply2[..]).unwrap(), t2)
        .unwrap();
    let m2 = initiation(&mut a, 3, WALL + Duration::from_secs(121), t2);
    b.checker.check_mac2(&m2, src, t2).unwrap();

    // The initiator stops using a cookie 115 s after receiving it (mac2 is then zero).
    let late = t2 + Duration::from_secs(115);
    assert!(!a.macs.has_fresh_cookie(late));
    let m3 = initiation(&mut a, 4, WALL + Duration::from_secs(240), late);
    assert_eq!(&m3[field::initiation::MAC2], &[0u8; 16]);
}

#[test]
fn response_macs_use_the_initiators_key() {
    let (mut a, mut b) = pair();
    let init = initiation(&mut a, 1, WALL, ms(0));
    receive_initiation(&mut b, &init, ms(0)).unwrap();
    let (mut resp, _) = b.peer.create_response(2, &mut OsRng).unwrap();
    assert_eq!(
        a.checker.check_mac1(&resp),
        Err(CookieError::InvalidMac1),
        "macs unset"
    );
    b.macs.add_macs(&mut resp, ms(0)).unwrap();
    a.checker.check_mac1(&resp).unwrap();
    // The initiator under load can cookie the responder too.
    let src = src_v4(51820);
    let reply = a
        .checker
        .create_reply(&resp, src, ms(0), &mut OsRng)
        .unwrap();
    assert_eq!(
        CookieReply::new_checked(&reply[..])
            .unwrap()
            .receiver_index(),
        2
    );
    b.macs
        .consume_reply(&CookieReply::new_checked(&reply[..]).unwrap(), ms(0))
        .unwrap();
}

#[test]
fn message_layouts_are_exact() {
    let (mut a, mut b) = pair();
    let init = initiation(&mut a, 0x01020304, WALL, ms(0));
    assert_eq!(init.len(), 148);
    assert_eq!(&init[..8], &[MSG_INITIATION, 0, 0, 0, 4, 3, 2, 1]);
    assert!(matches!(classify(&init), Ok(Message::Initiation(_))));
    receive_initiation(&mut b, &init, ms(0)).unwrap();
    let (resp, _) = b.peer.create_response(0x0a0b0c0d, &mut OsRng).unwrap();
    assert_eq!(resp.len(), 92);
    assert_eq!(RESPONSE_LEN, 92);
    assert_eq!(
        &resp[..12],
        &[MSG_RESPONSE, 0, 0, 0, 0x0d, 0x0c, 0x0b, 0x0a, 4, 3, 2, 1]
    );
    assert!(matches!(classify(&resp), Ok(Message::Response(_))));
    let reply = b
        .checker
        .create_reply(&init, src_v4(1), ms(0), &mut OsRng)
        .unwrap();
    assert_eq!(reply.len(), 64);
    assert_eq!(&reply[..8], &[MSG_COOKIE_REPLY, 0, 0, 0, 4, 3, 2, 1]);
    // One byte more or less is refused.
    let mut long = init.to_vec();
    long.push(0);
    assert!(classify(&long).is_err());
    assert!(classify(&resp[..91]).is_err());
    assert!(classify(&reply[..63]).is_err());
}

#[test]
fn rate_limiter_allows_burst_of_5_then_20_per_second() {
    let mut rl = RateLimiter::new();
    let ip: IpAddr = "198.51.100.1".parse().unwrap();
    let t = secs(100);
    for _ in 0..5 {
        rl.allow(ip, t).unwrap();
    }
    assert_eq!(rl.allow(ip, t), Err(RateLimitError::RateExceeded));
    // 49 ms later still nothing, at 50 ms one token.
    assert_eq!(
        rl.allow(ip, t + Duration::from_millis(49)),
        Err(RateLimitError::RateExceeded)
    );
    rl.allow(ip, t + Duration::from_millis(50)).unwrap();
    assert_eq!(
        rl.allow(ip, t + Duration::from_millis(50)),
        Err(RateLimitError::RateExceeded)
    );
    // Steady state over one second at a 1 ms offered rate: exactly 20 pass.
    let start = t + Duration::from_millis(50);
    let passed = (1..=1000u64)
        .filter(|i| rl.allow(ip, start + Duration::from_millis(*i)).is_ok())
        .count();
    assert_eq!(passed, 20);
    // Another address has its own bucket.
    rl.allow("198.51.100.2".parse().unwrap(), t).unwrap();
}

#[test]
fn rate_limiter_groups_ipv6_by_64_and_maps_v4_in_v6() {
    let mut rl = RateLimiter::new();
    let t = secs(1);
    let same64: [IpAddr; 5] = [
        "2001:db8:1:2::1".parse().unwrap(),
        "2001:db8:1:2::2".parse().unwrap(),
        "2001:db8:1:2:ffff::9".parse().unwrap(),
        "2001:db8:1:2:1:2:3:4".parse().unwrap(),
        "2001:db8:1:2::5".parse().unwrap(),
    ];
    for ip in same64 {
        rl.allow(ip, t).unwrap();
    }
    assert_eq!(
        rl.allow("2001:db8:1:2::abcd".parse().unwrap(), t),
        Err(RateLimitError::RateExceeded)
    );
    rl.allow("2001:db8:1:3::1".parse().unwrap(), t).unwrap();
    // ::ffff:192.0.2.1 is 192.0.2.1.
    for _ in 0..5 {
        rl.allow("192.0.2.1".parse().unwrap(), t).unwrap();
    }
    assert_eq!(
        rl.allow("::ffff:192.0.2.1".parse().unwrap(), t),
        Err(RateLimitError::RateExceeded)
    );
    assert_eq!(rl.len(), 3);
}

#[test]
fn rate_limiter_fails_closed_when_full_and_recovers_after_gc() {
    let mut rl = RateLimiter::with_max_entries(4);
    let t = secs(10);
    for i in 0..4u8 {
        rl.allow(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), t).unwrap();
    }
    let newcomer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 200));
    assert_eq!(rl.allow(newcomer, t), Err(RateLimitError::TableFull));
    // Known sources keep their buckets while the table is full.
    rl.allow(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), t).unwrap();
    // Half a second later entries are still live: still refused.
    assert_eq!(
        rl.allow(newcomer, t + Duration::from_millis(500)),
        Err(RateLimitError::TableFull)
    );
    // After the entry timeout, the amortised collection frees the table.
    rl.allow(newcomer, t + Duration::from_secs(2)).unwrap();
    assert_eq!(rl.len(), 1);
    // Explicit gc empties idle entries.
    rl.gc(t + Duration::from_secs(10));
    assert!(rl.is_empty());
}

#[test]
fn rate_limiter_default_bound_is_enforced() {
    let mut rl = RateLimiter::new();
    let t = secs(1);
    for i in 0..RATELIMIT_MAX_ENTRIES as u32 {
        rl.allow(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), t)
            .unwrap();
    }
    assert_eq!(rl.len(), RATELIMIT_MAX_ENTRIES);
    assert_eq!(
        rl.allow(IpAddr::V4(Ipv4Addr::new(11, 0, 0, 1)), t),
        Err(RateLimitError::TableFull)
    );
    assert_eq!(rl.len(), RATELIMIT_MAX_ENTRIES);
}

#[test]
fn simultaneous_initiations_resolve_and_create_response_needs_an_accepted_one() {
    let (mut a, mut b) = pair();
    let from_a = initiation(&mut a, 1, WALL, ms(0));
    let from_b = initiation(&mut b, 2, WALL, ms(0));
    // Without an accepted initiation, create_response refuses and keeps our own initiation.
    assert!(matches!(
        a.peer.create_response(3, &mut OsRng),
        Err(HandshakeError::NoPendingHandshake)
    ));
    assert_eq!(a.peer.pending_local_index(), Some(1));
    // a accepts b's initiation: a's own pending initiation is replaced.
    receive_initiation(&mut a, &from_b, ms(1)).unwrap();
    assert_eq!(a.peer.pending_local_index(), None);
    let (resp, ka) = a.peer.create_response(3, &mut OsRng).unwrap();
    let kb = b
        .peer
        .consume_response(&b.identity, &Response::new_checked(&resp[..]).unwrap())
        .unwrap();
    assert_eq!(ka.sending_key, kb.receiving_key);
    // b still answers a's initiation afterwards; a has no pending initiation any more, so
    // that response is refused on a's side.
    receive_initiation(&mut b, &from_a, ms(1)).unwrap();
    let (resp_b, _) = b.peer.create_response(4, &mut OsRng).unwrap();
    assert_eq!(
        a.peer
            .consume_response(&a.identity, &Response::new_checked(&resp_b[..]).unwrap())
            .unwrap_err(),
        HandshakeError::NoPendingHandshake
    );
}
