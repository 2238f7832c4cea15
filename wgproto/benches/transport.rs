//! Per-packet cost of sealing and opening transport messages at 64, 512 and 1420 bytes, next to
//! the raw ChaCha20-Poly1305 cost of the same bytes, so the protocol's overhead (header, counter,
//! padding, replay window, limits) shows up as the ratio between the two.

use std::hint::black_box;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
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

fn bench_transport(c: &mut Criterion) {
    let now = Timestamp::from_nanos(2);
    let mut group = c.benchmark_group("transport");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));

        // Raw AEAD over exactly the bytes a 1420-MTU seal encrypts.
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&[7; 32]));
        let mut raw = vec![0u8; size];
        let mut counter = 0u64;
        group.bench_with_input(BenchmarkId::new("raw_aead_seal", size), &size, |b, _| {
            b.iter(|| {
                counter += 1;
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&counter.to_le_bytes());
                let tag = cipher
                    .encrypt_in_place_detached(Nonce::from_slice(&n), &[], &mut raw)
                    .unwrap();
                black_box(tag);
            })
        });

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

        let sealed = make(&a);
        let tag = Tag::clone_from_slice(&sealed[sealed.len() - 16..]);
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&sealed[8..16]);
        let rx = ChaCha20Poly1305::new(Key::from_slice(&[7; 32]));
        let body = sealed[16..sealed.len() - 16].to_vec();
        group.bench_with_input(BenchmarkId::new("raw_aead_open", size), &size, |b, _| {
            b.iter_batched_ref(
                || body.clone(),
                |m| {
                    rx.decrypt_in_place_detached(Nonce::from_slice(&n), &[], m, &tag)
                        .unwrap()
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_transport);
criterion_main!(benches);
