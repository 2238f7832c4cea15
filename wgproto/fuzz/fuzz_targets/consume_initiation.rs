//! Arbitrary bytes as a handshake initiation to Bob: mac1 check, static-key decryption, then
//! the timestamp/flood checks and a response. The mac1 check's verdict is ignored so the fuzzer
//! reaches the Noise code; it must never panic, and a forged initiation must never be accepted
//! (that would need Alice's key), so any accepted input must be a real one from Alice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgproto::cookie::CookieChecker;
use wgproto::messages::Initiation;
use wgproto::time::Timestamp;
use wgproto_fuzz::{bob_side, FuzzRng};

fuzz_target!(|data: &[u8]| {
    let (id, mut peer) = bob_side();
    let _ = CookieChecker::new(id.public_key()).check_mac1(data);
    let Ok(msg) = Initiation::new_checked(data) else {
        return;
    };
    let Ok(pending) = id.consume_initiation(&msg) else {
        return;
    };
    if pending.remote_static() != peer.remote_static() {
        return;
    }
    if peer
        .accept_initiation(pending, Timestamp::from_nanos(1))
        .is_ok()
    {
        let mut rng = FuzzRng::new(7);
        let _ = peer.create_response(1, &mut rng);
    }
});
