//! Arbitrary bytes as a cookie reply to an initiation Alice sent, and as input to Bob's
//! cookie checker (mac1, mac2 and reply creation must refuse anything not 148/92 bytes).
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wgproto::cookie::{CookieChecker, CookieState};
use wgproto::messages::CookieReply;
use wgproto::time::Timestamp;
use wgproto_fuzz::{alice_side, bob, FuzzRng};

fuzz_target!(|data: &[u8]| {
    let (id, mut peer) = alice_side();
    let mut rng = FuzzRng::new(3);
    let mut init = peer
        .create_initiation(&id, 9, Duration::from_secs(1_700_000_000), &mut rng)
        .expect("fixed keys are valid");
    let mut state = CookieState::new(&bob().public_key());
    let now = Timestamp::from_nanos(1_000_000_000);
    state.add_macs(&mut init, now).expect("initiation length");
    if let Ok(reply) = CookieReply::new_checked(data) {
        if state.consume_reply(&reply, now).is_ok() {
            // Only Bob's cookie key can have produced it; then mac2 gets written.
            state.add_macs(&mut init, now).expect("initiation length");
        }
    }
    let mut checker = CookieChecker::new(&bob().public_key());
    let src = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 51820));
    let mac1 = checker.check_mac1(data);
    let _ = checker.check_mac2(data, src, now);
    let reply = checker.create_reply(data, src, now, &mut rng);
    let handshake_sized = data.len() == 148 || data.len() == 92;
    assert_eq!(reply.is_ok(), handshake_sized);
    assert!(mac1.is_err() || handshake_sized);
});
