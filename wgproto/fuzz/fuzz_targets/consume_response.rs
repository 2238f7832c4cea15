//! Mutations of Bob's valid response to Alice's initiation, consumed by Alice. Must never
//! panic, must never accept a changed Noise part (ephemeral, empty AEAD), and a refused
//! response must leave Alice's pending handshake in place.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgproto::messages::{field, Initiation, Response};
use wgproto::time::Timestamp;
use wgproto_fuzz::{alice_initiation_from, alice_side, bob_side, mutate, unchanged, FuzzRng};

fuzz_target!(|data: &[u8]| {
    let (a_id, mut alice) = alice_side();
    let init = alice_initiation_from(&a_id, &mut alice);
    let (b_id, mut bob) = bob_side();
    let pending = b_id
        .consume_initiation(&Initiation::new_checked(&init[..]).expect("valid"))
        .expect("valid initiation");
    bob.accept_initiation(pending, Timestamp::ZERO)
        .expect("fresh peer");
    let mut rng = FuzzRng::new(9);
    let (valid, _) = bob
        .create_response(0x0a0b_0c0d, &mut rng)
        .expect("response");

    let msg = mutate(&valid, data);
    let Ok(view) = Response::new_checked(&msg[..]) else {
        return;
    };
    match alice.consume_response(&a_id, &view) {
        Ok(keys) => {
            let noise = field::response::EPHEMERAL.start..field::response::MAC1.start;
            assert!(unchanged(&valid, &msg, noise), "forged response accepted");
            assert_eq!(keys.local_index, 0x0102_0304);
        }
        Err(_) => assert_eq!(alice.pending_local_index(), Some(0x0102_0304)),
    }
});
