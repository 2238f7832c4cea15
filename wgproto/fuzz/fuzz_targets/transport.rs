//! Data packets: arbitrary bytes, and mutations of a valid transport message, through
//! `Keypair::open_in_place`. Nothing may panic; a mutated message must never open unless the
//! mutation left it intact, and no counter may be accepted twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgproto::keypair::Keypair;
use wgproto::noise::SessionKeys;
use wgproto::peer::PeerId;
use wgproto::time::Timestamp;

fn pair() -> (Keypair, Keypair) {
    let keys = |local, remote, send, recv, initiator| SessionKeys {
        local_index: local,
        remote_index: remote,
        sending_key: send,
        receiving_key: recv,
        is_initiator: initiator,
    };
    let sender = Keypair::new(
        PeerId::new(1),
        &keys(7, 9, [3; 32], [4; 32], true),
        Timestamp::ZERO,
    );
    let receiver = Keypair::new(
        PeerId::new(2),
        &keys(9, 7, [4; 32], [3; 32], false),
        Timestamp::ZERO,
    );
    (sender, receiver)
}

fuzz_target!(|data: &[u8]| {
    let (sender, receiver) = pair();
    let now = Timestamp::from_nanos(1);
    // Arbitrary bytes first. The key is fixed, so libFuzzer's comparison tracing can learn a
    // valid tag; what must hold is that no panic occurs and nothing opens twice.
    let mut raw = data.to_vec();
    if receiver.open_in_place(now, &mut raw).is_ok() {
        let mut again = data.to_vec();
        assert!(
            receiver.open_in_place(now, &mut again).is_err(),
            "replay accepted"
        );
        return;
    }

    // Then a valid message, mutated by the input.
    let plain_len = data.len().min(64);
    let mut valid = vec![0u8; 16 + plain_len + 16 + 16];
    valid[16..16 + plain_len].copy_from_slice(&data[..plain_len]);
    let sealed = sender
        .seal_in_place(now, &mut valid, plain_len, 0)
        .expect("seal");
    valid.truncate(sealed.len);
    let mut mutated = wgproto_fuzz::mutate(&valid, data);
    let intact = mutated == valid;
    let opened = receiver.open_in_place(now, &mut mutated);
    assert_eq!(
        opened.is_ok(),
        intact,
        "a changed message opened, or the intact one did not"
    );
    if intact {
        let mut again = valid.clone();
        assert!(
            receiver.open_in_place(now, &mut again).is_err(),
            "replay accepted"
        );
    }
});
