use std::hint::black_box;
use std::time::Instant;
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use ring::aead::{LessSafeKey, UnboundKey, Nonce, Aad, CHACHA20_POLY1305, Tag};

fn nonce(c: u64) -> [u8; 12] { let mut n = [0u8; 12]; n[4..].copy_from_slice(&c.to_le_bytes()); n }

fn main() {
    let key = [7u8; 32];
    let rk = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).unwrap());
    let cipher = Cipher::chacha20_poly1305();
    let mut ectx = CipherCtx::new().unwrap();
    ectx.encrypt_init(Some(cipher), Some(&key), None).unwrap();
    let mut dctx = CipherCtx::new().unwrap();
    dctx.decrypt_init(Some(cipher), Some(&key), None).unwrap();
    for &size in &[64usize, 512, 1420] {
        let n = 2_000_000usize / (1 + size / 256);
        let mut buf = vec![0u8; size];
        // ring seal
        let t = Instant::now();
        for i in 0..n { let tag = rk.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce(i as u64)), Aad::empty(), &mut buf).unwrap(); black_box(tag); }
        let ring_seal = t.elapsed().as_nanos() as f64 / n as f64;
        // openssl seal
        let mut tag = [0u8; 16];
        let t = Instant::now();
        for i in 0..n {
            ectx.encrypt_init(None, None, Some(&nonce(i as u64))).unwrap();
            ectx.cipher_update_inplace(&mut buf, size).unwrap();
            ectx.cipher_final(&mut []).unwrap();
            ectx.tag(&mut tag).unwrap();
            black_box(&tag);
        }
        let ossl_seal = t.elapsed().as_nanos() as f64 / n as f64;
        // prepare a sealed message for opens (counter 0)
        let mut ct = vec![0u8; size + 16];
        let tg = rk.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce(0)), Aad::empty(), &mut ct[..size]).unwrap();
        ct[size..].copy_from_slice(tg.as_ref());
        let mut work = ct.clone();
        let t = Instant::now();
        for _ in 0..n { work.copy_from_slice(&ct); let p = rk.open_in_place(Nonce::assume_unique_for_key(nonce(0)), Aad::empty(), &mut work).unwrap(); black_box(p); }
        let ring_open = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            work.copy_from_slice(&ct);
            dctx.decrypt_init(None, None, Some(&nonce(0))).unwrap();
            let (body, tagb) = work.split_at_mut(size);
            dctx.set_tag(tagb).unwrap();
            dctx.cipher_update_inplace(body, size).unwrap();
            dctx.cipher_final(&mut []).unwrap();
            black_box(&work);
        }
        let ossl_open = t.elapsed().as_nanos() as f64 / n as f64;
        let _ = Tag::try_from(&[0u8;16][..]);
        println!("{size} B: ring seal {ring_seal:.0} open {ring_open:.0} | openssl seal {ossl_seal:.0} open {ossl_open:.0} ns");
    }
}
