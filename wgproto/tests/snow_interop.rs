//! Our handshake against an independent Noise implementation, the `snow` crate, in both roles:
//! Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s with WireGuard's identifier as the prologue and the
//! pre-shared key at position 2 (whitepaper §5.4). WireGuard wraps the Noise payloads in type,
//! indices and macs, so snow sees only the Noise part of each message: the ephemeral, the
//! encrypted static and the encrypted timestamp of the initiation (bytes 8..116), and the
//! ephemeral and encrypted empty payload of the response (bytes 12..60). Both sides then
//! exchange transport data at counters 0 and 1 in both directions.

use std::time::Duration;

use rand_core::OsRng;
use wgproto::constants::{IDENTIFIER, INITIATION_LEN, RESPONSE_LEN};
use wgproto::cookie::{CookieChecker, CookieState};
use wgproto::crypto;
use wgproto::keys::{PresharedKey, PrivateKey};
use wgproto::messages::{field, Initiation, Response};
use wgproto::noise::{PeerHandshake, SessionKeys, StaticIdentity};
use wgproto::tai64n::Tai64n;
use wgproto::time::Timestamp;

const PATTERN: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";

fn snow_builder<'a>(local: &'a PrivateKey, psk: &'a PresharedKey) -> snow::Builder<'a> {
    snow::Builder::new(PATTERN.parse().expect("pattern parses"))
        .local_private_key(local.as_bytes())
        .prologue(IDENTIFIER)
        .psk(2, psk.as_bytes())
}

/// Transport data both ways at counters 0 and 1: snow's stateless transport against our
/// session keys with the whitepaper's counter nonce.
fn exchange_data(ours: &SessionKeys, theirs: &snow::StatelessTransportState) {
    for counter in 0..2u64 {
        // Ours -> snow.
        let msg = format!("from wgproto #{counter}");
        let mut sealed = vec![0u8; msg.len() + 16];
        crypto::aead_seal(&ours.sending_key, counter, msg.as_bytes(), &[], &mut sealed).unwrap();
        let mut plain = vec![0u8; sealed.len()];
        let n = theirs
            .read_message(counter, &sealed, &mut plain)
            .expect("snow opens our transport data");
        assert_eq!(&plain[..n], msg.as_bytes());

        // snow -> ours.
        let msg = format!("from snow #{counter}");
        let mut sealed = vec![0u8; msg.len() + 16];
        let n = theirs
            .write_message(counter, msg.as_bytes(), &mut sealed)
            .unwrap();
        let mut plain = vec![0u8; n - 16];
        crypto::aead_open(&ours.receiving_key, counter, &sealed[..n], &[], &mut plain)
            .expect("we open snow's transport data");
        assert_eq!(plain, msg.as_bytes());
        // The same bytes as the data path opens them: behind headroom (a transport header's
        // worth and the outer headers'), the plaintext moved to the front as it is decrypted.
        let mut frame = vec![0u8; 44];
        frame.extend_from_slice(&sealed[..n]);
        let len = crypto::aead_open_within(&ours.receiving_key, counter, &[], &mut frame, 44)
            .expect("we open snow's transport data within the frame");
        assert_eq!(&frame[..len], msg.as_bytes());
        // And the wrong counter must not open.
        assert!(crypto::aead_open(
            &ours.receiving_key,
            counter + 7,
            &sealed[..n],
            &[],
            &mut plain
        )
        .is_err());
    }
}

#[test]
fn wgproto_initiator_with_snow_responder() {
    let psk = PresharedKey::generate(&mut OsRng);
    let i_static = PrivateKey::generate(&mut OsRng);
    let r_static = PrivateKey::generate(&mut OsRng);
    let identity = StaticIdentity::new(i_static.clone());
    let mut peer = PeerHandshake::new(&identity, r_static.public_key(), psk.clone());
    let mut macs = CookieState::new(&r_static.public_key());

    let wall = Duration::new(1_700_000_000, 123_456_789);
    let mut init = peer
        .create_initiation(&identity, 0xdead_beef, wall, &mut OsRng)
        .unwrap();
    macs.add_macs(&mut init, Timestamp::ZERO).unwrap();
    assert_eq!(init.len(), INITIATION_LEN);
    CookieChecker::new(&r_static.public_key())
        .check_mac1(&init)
        .unwrap();

    let rpub = r_static.public_key();
    let mut responder = snow_builder(&r_static, &psk)
        .remote_public_key(rpub.as_bytes()) // ignored by a responder; harmless
        .build_responder()
        .unwrap();
    let noise_part = &init[field::initiation::EPHEMERAL.start..field::initiation::MAC1.start];
    let mut payload = [0u8; 64];
    let n = responder
        .read_message(noise_part, &mut payload)
        .expect("snow accepts our initiation");
    assert_eq!(&payload[..n], Tai64n::for_initiation(wall).as_bytes());
    assert_eq!(
        responder.get_remote_static().unwrap(),
        i_static.public_key().as_bytes()
    );

    let mut noise_resp = [0u8; 48];
    assert_eq!(responder.write_message(&[], &mut noise_resp).unwrap(), 48);
    let mut resp = [0u8; RESPONSE_LEN];
    {
        let mut v = Response::new_unchecked(&mut resp[..]);
        v.fill_header();
        v.set_sender_index(0x0102_0304);
        v.set_receiver_index(0xdead_beef);
    }
    resp[field::response::EPHEMERAL.start..field::response::MAC1.start]
        .copy_from_slice(&noise_resp);
    CookieState::new(&i_static.public_key())
        .add_macs(&mut resp, Timestamp::ZERO)
        .unwrap();

    let keys = peer
        .consume_response(&identity, &Response::new_checked(&resp[..]).unwrap())
        .expect("we accept snow's response");
    assert!(keys.is_initiator);
    assert_eq!(keys.local_index, 0xdead_beef);
    assert_eq!(keys.remote_index, 0x0102_0304);
    assert_eq!(peer.pending_local_index(), None, "state wiped after use");

    exchange_data(&keys, &responder.into_stateless_transport_mode().unwrap());
}

#[test]
fn snow_initiator_with_wgproto_responder() {
    let psk = PresharedKey::generate(&mut OsRng);
    let i_static = PrivateKey::generate(&mut OsRng);
    let r_static = PrivateKey::generate(&mut OsRng);
    let identity = StaticIdentity::new(r_static.clone());
    let mut peer = PeerHandshake::new(&identity, i_static.public_key(), psk.clone());
    let checker = CookieChecker::new(&r_static.public_key());

    let rpub = r_static.public_key();
    let mut initiator = snow_builder(&i_static, &psk)
        .remote_public_key(rpub.as_bytes())
        .build_initiator()
        .unwrap();
    let ts = Tai64n::from_unix(Duration::new(1_700_000_123, 0));
    let mut noise_init = [0u8; 108];
    assert_eq!(
        initiator
            .write_message(ts.as_bytes(), &mut noise_init)
            .unwrap(),
        108
    );
    let mut init = [0u8; INITIATION_LEN];
    {
        let mut v = Initiation::new_unchecked(&mut init[..]);
        v.fill_header();
        v.set_sender_index(0x00c0_ffee);
    }
    init[field::initiation::EPHEMERAL.start..field::initiation::MAC1.start]
        .copy_from_slice(&noise_init);
    CookieState::new(&r_static.public_key())
        .add_macs(&mut init, Timestamp::ZERO)
        .unwrap();
    checker.check_mac1(&init).unwrap();

    let pending = identity
        .consume_initiation(&Initiation::new_checked(&init[..]).unwrap())
        .expect("we decrypt snow's static key");
    assert_eq!(pending.remote_static(), &i_static.public_key());
    assert_eq!(pending.sender_index(), 0x00c0_ffee);
    let accepted = peer
        .accept_initiation(pending, Timestamp::from_nanos(1))
        .unwrap();
    assert_eq!(accepted, ts);

    let (resp, keys) = peer.create_response(0x0bad_cafe, &mut OsRng).unwrap();
    assert!(!keys.is_initiator);
    assert_eq!(keys.remote_index, 0x00c0_ffee);
    assert_eq!(keys.local_index, 0x0bad_cafe);
    let mut payload = [0u8; 16];
    let n = initiator
        .read_message(
            &resp[field::response::EPHEMERAL.start..field::response::MAC1.start],
            &mut payload,
        )
        .expect("snow accepts our response");
    assert_eq!(n, 0);
    assert!(initiator.is_handshake_finished());

    exchange_data(&keys, &initiator.into_stateless_transport_mode().unwrap());
}

#[test]
fn snow_rejects_our_initiation_under_a_different_psk() {
    // The psk enters only at the response (psk2): snow still reads the initiation, but its
    // response then fails on our side.
    let i_static = PrivateKey::generate(&mut OsRng);
    let r_static = PrivateKey::generate(&mut OsRng);
    let identity = StaticIdentity::new(i_static.clone());
    let mut peer = PeerHandshake::new(
        &identity,
        r_static.public_key(),
        PresharedKey::generate(&mut OsRng),
    );
    let init = peer
        .create_initiation(&identity, 1, Duration::from_secs(1_700_000_000), &mut OsRng)
        .unwrap();
    let other_psk = PresharedKey::generate(&mut OsRng);
    let mut responder = snow_builder(&r_static, &other_psk)
        .build_responder()
        .unwrap();
    let mut payload = [0u8; 64];
    responder
        .read_message(&init[8..116], &mut payload)
        .expect("initiation does not depend on the psk");
    let mut noise_resp = [0u8; 48];
    responder.write_message(&[], &mut noise_resp).unwrap();
    let mut resp = [0u8; RESPONSE_LEN];
    {
        let mut v = Response::new_unchecked(&mut resp[..]);
        v.fill_header();
        v.set_sender_index(2);
        v.set_receiver_index(1);
    }
    resp[12..60].copy_from_slice(&noise_resp);
    assert!(peer
        .consume_response(&identity, &Response::new_checked(&resp[..]).unwrap())
        .is_err());
    assert_eq!(
        peer.pending_local_index(),
        Some(1),
        "a bad response keeps the handshake"
    );
}
