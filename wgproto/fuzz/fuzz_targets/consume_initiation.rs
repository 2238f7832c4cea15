//! Mutations of a valid initiation from Alice to Bob, through mac1, static-key decryption, the
//! timestamp/flood checks and the response. Must never panic, and must never accept a message
//! whose authenticated Noise part (ephemeral, static, timestamp) was changed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgproto::cookie::CookieChecker;
use wgproto::messages::{field, Initiation};
use wgproto::time::Timestamp;
use wgproto_fuzz::{alice_initiation, bob_side, mutate, unchanged, FuzzRng};

fuzz_target!(|data: &[u8]| {
    let valid = alice_initiation();
    let msg = mutate(&valid, data);
    let (id, mut peer) = bob_side();
    let mac1_ok = CookieChecker::new(id.public_key()).check_mac1(&msg).is_ok();
    if mac1_ok {
        assert!(unchanged(&valid, &msg, 0..field::initiation::MAC1.end));
    }
    let Ok(view) = Initiation::new_checked(&msg[..]) else {
        return;
    };
    let Ok(pending) = id.consume_initiation(&view) else {
        return;
    };
    if pending.remote_static() != peer.remote_static() {
        return;
    }
    if peer
        .accept_initiation(pending, Timestamp::from_nanos(1))
        .is_ok()
    {
        let noise = field::initiation::EPHEMERAL.start..field::initiation::MAC1.start;
        assert!(unchanged(&valid, &msg, noise), "forged initiation accepted");
        let mut rng = FuzzRng::new(7);
        peer.create_response(1, &mut rng)
            .expect("accepted initiation answers");
    }
});
