//! Per-packet cost of sealing and opening transport messages at 64, 512 and 1420 bytes, next to
//! the raw ChaCha20-Poly1305 cost of the same bytes in each implementation we could use, so the
//! choice of cipher and the protocol's overhead (header, counter, padding, replay window,
//! limits) both show up as ratios.
//!
//! `cipher/*` rows: `rustcrypto` is the `chacha20poly1305` crate with its key schedule held;
//! `ring_held` keeps a `ring` `LessSafeKey`; `ring_per_call` builds the `LessSafeKey` from the
//! raw 32-byte key for every packet, which is what `Keypair` does so that no unwiped copy of
//! the key outlives the call.

use std::hint::black_box;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ring::aead::{Aad, LessSafeKey, UnboundKey, CHACHA20_POLY1305};
use wgproto::keypair::{sealed_len, Keypair};
use wgproto::noise::SessionKeys;
use wgproto::peer::PeerId;
use wgproto::time::Timestamp;

const SIZES: [usize; 3] = [64, 512, 1420];
const MTU: usize = 1420;

fn keypairs() -> (Keypair, Keypair) {
    let a = SessionKeys {
        local_index: 1,
        remote_index: 2,
        sending_key: [7; 32],
        receiving_key: [9; 32],
        is_initiator: true,
    };
    let b = SessionKeys {
        local_index: 2,
        remote_index: 1,
        sending_key: [9; 32],
        receiving_key: [7; 32],
        is_initiator: false,
    };
    let now = Timestamp::from_nanos(1);
    (
        Keypair::new(PeerId::new(1), &a, now),
        Keypair::new(PeerId::new(2), &b, now),
    )
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

fn ring_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).unwrap())
}

fn ring_nonce(counter: u64) -> ring::aead::Nonce {
    ring::aead::Nonce::assume_unique_for_key(nonce(counter))
}

/// The raw AEAD over exactly the bytes a 1420-MTU seal encrypts, per implementation.
fn bench_cipher(c: &mut Criterion) {
    let key = [7u8; 32];
    let mut group = c.benchmark_group("cipher");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0u8; size];
        let mut counter = 0u64;

        let rc = ChaCha20Poly1305::new(Key::from_slice(&key));
        group.bench_with_input(BenchmarkId::new("rustcrypto_seal", size), &size, |b, _| {
            b.iter(|| {
                counter += 1;
                let n = nonce(counter);
                black_box(
                    rc.encrypt_in_place_detached(Nonce::from_slice(&n), &[], &mut buf)
                        .unwrap(),
                )
            })
        });
        let held = ring_key(&key);
        group.bench_with_input(BenchmarkId::new("ring_held_seal", size), &size, |b, _| {
            b.iter(|| {
                counter += 1;
                black_box(
                    held.seal_in_place_separate_tag(ring_nonce(counter), Aad::empty(), &mut buf)
                        .unwrap(),
                )
            })
        });
        group.bench_with_input(
            BenchmarkId::new("ring_per_call_seal", size),
            &size,
            |b, _| {
                b.iter(|| {
                    counter += 1;
                    let k = ring_key(black_box(&key));
                    black_box(
                        k.seal_in_place_separate_tag(ring_nonce(counter), Aad::empty(), &mut buf)
                            .unwrap(),
                    )
                })
            },
        );

        // Open: fresh ciphertext for every iteration (made outside the timed part), all
        // implementations on the same bytes.
        let mut ct = vec![0x5au8; size];
        let tag: [u8; 16] = held
            .seal_in_place_separate_tag(ring_nonce(1), Aad::empty(), &mut ct)
            .unwrap()
            .as_ref()
            .try_into()
            .unwrap();
        group.bench_with_input(BenchmarkId::new("rustcrypto_open", size), &size, |b, _| {
            let t = Tag::clone_from_slice(&tag);
            b.iter_batched_ref(
                || ct.clone(),
                |m| {
                    rc.decrypt_in_place_detached(Nonce::from_slice(&nonce(1)), &[], m, &t)
                        .unwrap()
                },
                criterion::BatchSize::SmallInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("ring_held_open", size), &size, |b, _| {
            b.iter_batched_ref(
                || ct.clone(),
                |m| {
                    black_box(
                        held.open_in_place_separate_tag(
                            ring_nonce(1),
                            Aad::empty(),
                            tag.into(),
                            m,
                            0..,
                        )
                        .unwrap()
                        .len(),
                    )
                },
                criterion::BatchSize::SmallInput,
            )
        });
        group.bench_with_input(
            BenchmarkId::new("ring_per_call_open", size),
            &size,
            |b, _| {
                b.iter_batched_ref(
                    || ct.clone(),
                    |m| {
                        let k = ring_key(black_box(&key));
                        black_box(
                            k.open_in_place_separate_tag(
                                ring_nonce(1),
                                Aad::empty(),
                                tag.into(),
                                m,
                                0..,
                            )
                            .unwrap()
                            .len(),
                        )
                    },
                    criterion::BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

fn bench_transport(c: &mut Criterion) {
    let now = Timestamp::from_nanos(2);
    let mut group = c.benchmark_group("transport");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));

        let (a, bk) = keypairs();
        let mut buf = vec![0u8; sealed_len(size, MTU)];
        group.bench_with_input(
            BenchmarkId::new("seal_in_place", size),
            &size,
            |b, &size| b.iter(|| black_box(a.seal_in_place(now, &mut buf, size, MTU).unwrap())),
        );

        // Open: a pool of distinct sealed messages (each counter is accepted once), re-made
        // outside the timed loop when exhausted.
        let make = |a: &Keypair| {
            let mut m = vec![0u8; sealed_len(size, MTU)];
            let s = a.seal_in_place(now, &mut m, size, MTU).unwrap();
            m.truncate(s.len);
            m
        };
        group.bench_with_input(BenchmarkId::new("open_in_place", size), &size, |b, _| {
            b.iter_batched_ref(
                || make(&a),
                |m| black_box(bk.open_in_place(now, m).unwrap()),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_cipher, bench_transport);
criterion_main!(benches);
