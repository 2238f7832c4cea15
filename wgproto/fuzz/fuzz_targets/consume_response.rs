//! Arbitrary bytes as the response to an initiation Alice really sent (fixed keys and RNG, so
//! the receiver index 0x01020304 is known and the fuzzer can get past the index check).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wgproto::cookie::CookieChecker;
use wgproto::messages::Response;
use wgproto_fuzz::{alice_side, FuzzRng};

fuzz_target!(|data: &[u8]| {
    let (id, mut peer) = alice_side();
    let mut rng = FuzzRng::new(1);
    peer.create_initiation(
        &id,
        0x0102_0304,
        Duration::from_secs(1_700_000_000),
        &mut rng,
    )
    .expect("fixed keys are valid");
    let _ = CookieChecker::new(id.public_key()).check_mac1(data);
    let Ok(msg) = Response::new_checked(data) else {
        return;
    };
    match peer.consume_response(&id, &msg) {
        Ok(keys) => assert_eq!(keys.local_index, 0x0102_0304),
        // A failed response must leave the pending handshake in place.
        Err(_) => assert_eq!(peer.pending_local_index(), Some(0x0102_0304)),
    }
});
