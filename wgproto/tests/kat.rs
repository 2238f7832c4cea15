//! Known-answer tests of the primitives in `wgproto::crypto`, with the vectors typed in from
//! the specifications: RFC 8439 §2.8.2 (ChaCha20-Poly1305), draft-irtf-cfrg-xchacha-03
//! §A.3.1 (XChaCha20-Poly1305), RFC 7693 Appendix B (BLAKE2s-256 of "abc"; Appendix A is the
//! BLAKE2b example) and RFC 7748 §5.2 and §6.1 (X25519).

use wgproto::crypto;

fn h<const N: usize>(s: &str) -> [u8; N] {
    let v = hex::decode(s.split_whitespace().collect::<String>()).expect("test vector is hex");
    v.try_into().expect("test vector has the right length")
}

fn hv(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).expect("test vector is hex")
}

const SUNSCREEN: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";

/// Key 80 81 .. 9f, used by both AEAD vectors.
fn key_80_9f() -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = 0x80 + i as u8;
    }
    k
}

#[test]
fn rfc8439_chacha20_poly1305_aead() {
    let key = key_80_9f();
    // 32-bit constant 07 00 00 00 then IV 40 .. 47.
    let nonce: [u8; 12] = h("07000000 4041424344454647");
    let aad = hv("50515253c0c1c2c3c4c5c6c7");
    let expected_ct = hv("
        d3 1a 8d 34 64 8e 60 db 7b 86 af bc 53 ef 7e c2
        a4 ad ed 51 29 6e 08 fe a9 e2 b5 a7 36 ee 62 d6
        3d be a4 5e 8c a9 67 12 82 fa fb 69 da 92 72 8b
        1a 71 de 0a 9e 06 0b 29 05 d6 a5 b6 7e cd 3b 36
        92 dd bd 7f 2d 77 8b 8c 98 03 ae e3 28 09 1b 58
        fa b3 24 e4 fa d6 75 94 55 85 80 8b 48 31 d7 bc
        3f f4 de f0 8e 4b 7a 9d e5 76 d2 65 86 ce c6 4b
        61 16");
    let expected_tag: [u8; 16] = h("1a e1 0b 59 4f 09 e2 6a 7e 90 2e cb d0 60 06 91");

    let mut buf = SUNSCREEN.to_vec();
    let tag = crypto::chacha20poly1305_seal_in_place(&key, &nonce, &aad, &mut buf);
    assert_eq!(buf, expected_ct);
    assert_eq!(tag, expected_tag);

    crypto::chacha20poly1305_open_in_place(&key, &nonce, &aad, &mut buf, &tag).unwrap();
    assert_eq!(buf, SUNSCREEN);

    // A flipped tag bit must be refused.
    let mut bad = expected_tag;
    bad[15] ^= 0x80;
    let mut ct = expected_ct.clone();
    assert!(crypto::chacha20poly1305_open_in_place(&key, &nonce, &aad, &mut ct, &bad).is_err());
    // ...and leave no plaintext behind.
    assert!(ct.iter().all(|&b| b == 0));
}

#[test]
fn rfc8439_chacha20_poly1305_open_within() {
    // The §2.8.2 vector opened the way the data path opens transport data: ciphertext and tag
    // `shift` bytes into the buffer, the plaintext written to its front in the same pass.
    let key = key_80_9f();
    let nonce: [u8; 12] = h("07000000 4041424344454647");
    let aad = hv("50515253c0c1c2c3c4c5c6c7");
    let mut sealed = SUNSCREEN.to_vec();
    let tag = crypto::chacha20poly1305_seal_in_place(&key, &nonce, &aad, &mut sealed);
    sealed.extend_from_slice(&tag);
    for shift in [0usize, 1, 15, 16, 44, 64, 200] {
        let mut buf = vec![0xEEu8; shift];
        buf.extend_from_slice(&sealed);
        let n = crypto::chacha20poly1305_open_within(&key, &nonce, &aad, &mut buf, shift).unwrap();
        assert_eq!(n, SUNSCREEN.len());
        assert_eq!(&buf[..n], SUNSCREEN, "shift {shift}");

        // A flipped tag bit is refused and leaves nothing of the message in the buffer.
        let mut bad = vec![0xEEu8; shift];
        bad.extend_from_slice(&sealed);
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        assert!(crypto::chacha20poly1305_open_within(&key, &nonce, &aad, &mut bad, shift).is_err());
        assert!(bad.iter().all(|&b| b == 0), "shift {shift}");
    }
    // Shorter than a tag after `from`: refused, not a panic.
    let mut short = vec![1u8; 20];
    assert!(crypto::chacha20poly1305_open_within(&key, &nonce, &aad, &mut short, 8).is_err());
    assert!(crypto::chacha20poly1305_open_within(&key, &nonce, &aad, &mut short, 30).is_err());
}

#[test]
fn rfc8439_vector_through_the_counter_nonce_form() {
    // WireGuard's nonce is 4 zero bytes then the LE counter; 0x4746454443424140 as a counter
    // encodes IV 40..47, so only the 07 constant differs from §2.8.2: the ciphertext must
    // differ, and the wrapper must agree with the raw-nonce function.
    let key = key_80_9f();
    let counter = u64::from_le_bytes(h("4041424344454647"));
    assert_eq!(
        crypto::counter_nonce(counter),
        h::<12>("00000000 4041424344454647")
    );
    let mut a = SUNSCREEN.to_vec();
    let tag_a = crypto::aead_seal_in_place(&key, counter, b"", &mut a);
    let mut b = SUNSCREEN.to_vec();
    let tag_b =
        crypto::chacha20poly1305_seal_in_place(&key, &h("00000000 4041424344454647"), b"", &mut b);
    assert_eq!((a, tag_a), (b, tag_b));
}

#[test]
fn xchacha20_poly1305_draft_a31() {
    let key = key_80_9f();
    let nonce: [u8; 24] = h("404142434445464748494a4b4c4d4e4f5051525354555657");
    let aad = hv("50515253c0c1c2c3c4c5c6c7");
    let expected = hv("
        bd 6d 17 9d 3e 83 d4 3b 95 76 57 94 93 c0 e9 39
        57 2a 17 00 25 2b fa cc be d2 90 2c 21 39 6c bb
        73 1c 7f 1b 0b 4a a6 44 0b f3 a8 2f 4e da 7e 39
        ae 64 c6 70 8c 54 c2 16 cb 96 b7 2e 12 13 b4 52
        2f 8c 9b a4 0d b5 d9 45 b1 1b 69 b9 82 c1 bb 9e
        3f 3f ac 2b c3 69 48 8f 76 b2 38 35 65 d3 ff f9
        21 f9 66 4c 97 63 7d a9 76 88 12 f6 15 c6 8b 13
        b5 2e
        c0 87 59 24 c1 c7 98 79 47 de af d8 78 0a cf 49");

    let mut out = vec![0u8; SUNSCREEN.len() + 16];
    crypto::xaead_seal(&key, &nonce, SUNSCREEN, &aad, &mut out).unwrap();
    assert_eq!(out, expected);

    let mut back = vec![0u8; SUNSCREEN.len()];
    crypto::xaead_open(&key, &nonce, &expected, &aad, &mut back).unwrap();
    assert_eq!(back, SUNSCREEN);

    let mut tampered = expected.clone();
    tampered[0] ^= 1;
    assert!(crypto::xaead_open(&key, &nonce, &tampered, &aad, &mut back).is_err());
}

#[test]
fn rfc7693_blake2s_abc() {
    let expected: [u8; 32] = h("
        50 8C 5E 8C 32 7C 14 E2 E1 A7 2B A3 4E EB 45 2F
        37 45 8B 20 9E D6 3A 29 4D 99 9B 4C 86 67 59 82");
    assert_eq!(crypto::hash(&[b"abc"]), expected);
    // HASH over parts is HASH over their concatenation.
    assert_eq!(crypto::hash(&[b"a", b"", b"bc"]), expected);
}

#[test]
fn rfc7748_x25519_section_5_2() {
    let cases = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            // The RFC prints the u-coordinate with its top bit set; X25519 masks it (§5).
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ];
    for (scalar, u, out) in cases {
        assert_eq!(crypto::dh(&h(scalar), &h(u)).unwrap(), h::<32>(out));
    }
}

#[test]
fn rfc7748_x25519_section_5_2_iterated_once_and_1000_times() {
    // k = u = 9; repeatedly k, u = X25519(k, u), k.
    let mut k = [0u8; 32];
    k[0] = 9;
    let mut u = k;
    let step = |k: &mut [u8; 32], u: &mut [u8; 32]| {
        let r = crypto::dh(k, u).unwrap();
        *u = *k;
        *k = r;
    };
    step(&mut k, &mut u);
    assert_eq!(
        k,
        h::<32>("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
    );
    for _ in 1..1000 {
        step(&mut k, &mut u);
    }
    assert_eq!(
        k,
        h::<32>("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
    );
}

#[test]
fn rfc7748_diffie_hellman_section_6_1() {
    let alice_private: [u8; 32] =
        h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let alice_public: [u8; 32] =
        h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    let bob_private: [u8; 32] =
        h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let bob_public: [u8; 32] =
        h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let shared: [u8; 32] = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

    assert_eq!(crypto::dh_public(&alice_private), alice_public);
    assert_eq!(crypto::dh_public(&bob_private), bob_public);
    assert_eq!(crypto::dh(&alice_private, &bob_public).unwrap(), shared);
    assert_eq!(crypto::dh(&bob_private, &alice_public).unwrap(), shared);
    // The same through the key types.
    let alice = wgproto::keys::PrivateKey::from_bytes(alice_private);
    assert_eq!(alice.public_key().as_bytes(), &alice_public);
}
