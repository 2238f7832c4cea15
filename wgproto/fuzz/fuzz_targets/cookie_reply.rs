//! Mutations of Bob's valid cookie reply to Alice's initiation, consumed by Alice; and the
//! same bytes through Bob's cookie checker, which must refuse anything that is not a whole
//! initiation or response.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use wgproto::cookie::{CookieChecker, CookieState};
use wgproto::messages::{field, CookieReply};
use wgproto::time::Timestamp;
use wgproto_fuzz::{alice_initiation, bob, mutate, unchanged, FuzzRng};

fuzz_target!(|data: &[u8]| {
    let now = Timestamp::from_nanos(1_000_000_000);
    let src = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 51820));
    let mut init = alice_initiation();
    let mut alice = CookieState::new(&bob().public_key());
    alice.add_macs(&mut init, now).expect("initiation length");
    let mut checker = CookieChecker::new(&bob().public_key());
    let mut rng = FuzzRng::new(3);
    let valid = checker
        .create_reply(&init, src, now, &mut rng)
        .expect("valid initiation");

    let msg = mutate(&valid, data);
    if let Ok(reply) = CookieReply::new_checked(&msg[..]) {
        if alice.consume_reply(&reply, now).is_ok() {
            let sealed = field::cookie_reply::NONCE.start..field::cookie_reply::COOKIE.end;
            assert!(
                unchanged(&valid, &msg, sealed),
                "forged cookie reply accepted"
            );
            alice.add_macs(&mut init, now).expect("initiation length");
            checker
                .check_mac2(&init, src, now)
                .expect("cookie from Bob");
        }
    }

    // The raw input through the checker.
    let handshake_sized = data.len() == 148 || data.len() == 92;
    let mac1 = checker.check_mac1(data);
    let _ = checker.check_mac2(data, src, now);
    let reply = checker.create_reply(data, src, now, &mut rng);
    assert_eq!(reply.is_ok(), handshake_sized);
    assert!(mac1.is_err() || handshake_sized);
});
