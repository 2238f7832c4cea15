//! Lookups and translations per second with 1 thousand, 100 thousand and 1 million entries,
//! and bytes of heap per entry measured by a counting global allocator.
//!
//! Run briefly: `cargo bench -p nat --bench conntrack -- --warm-up-time 1 --measurement-time 2`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nat::{Conntrack, Protocol};

#[path = "support/mod.rs"]
mod common;
use common::*;

struct Counting;
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only tracks live bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE_BYTES.fetch_sub(l.size(), Ordering::Relaxed);
        LIVE_BYTES.fetch_add(n, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SIZES: [u32; 3] = [1_000, 100_000, 1_000_000];
/// Packets cycled through per iteration: spread over the table so large tables miss cache.
const BATCH: usize = 1024;

struct Prepared {
    ct: Conntrack,
    keys: Vec<SocketAddrV4>,
    outbound: Vec<Vec<u8>>,
    inbound: Vec<Vec<u8>>,
}

fn prepare(n: u32) -> Prepared {
    let cfg = config(n, 1);
    // Fixed part (per port of the slice, per egress address): the same config with room for
    // one entry. The difference to the full table is the honest per-entry cost.
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let tiny = Conntrack::new(
        &nat::NatConfig {
            capacity_per_worker: 1,
            ..cfg.clone()
        },
        0,
    )
    .unwrap();
    let fixed = LIVE_BYTES.load(Ordering::Relaxed) - before;
    drop(tiny);
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut ct = Conntrack::new(&cfg, 0).unwrap();
    let after_new = LIVE_BYTES.load(Ordering::Relaxed);
    let flows = fill(&mut ct, n);
    let after_fill = LIVE_BYTES.load(Ordering::Relaxed);
    let table_bytes = after_new - before;
    println!(
        "memory n={n}: {} live entries, heap {} B at new() = {:.1} B/entry all-in, \
         {:.1} B/entry marginal over the {} B fixed per-port part \
         (heap_bytes() says {}); filling allocated {} B more; {} egress addresses",
        ct.len(),
        table_bytes,
        table_bytes as f64 / f64::from(n),
        (table_bytes - fixed) as f64 / f64::from(n - 1),
        fixed,
        ct.heap_bytes(),
        after_fill
            .saturating_sub(after_new)
            .saturating_sub(flows.capacity() * 8),
        cfg.egress.len(),
    );
    // Deterministic spread over the table (stride coprime with the length).
    let pick: Vec<usize> = (0..BATCH).map(|i| (i * 7919 + 13) % flows.len()).collect();
    let keys = pick
        .iter()
        .map(|&i| SocketAddrV4::new(flows[i].0.into(), flows[i].1))
        .collect::<Vec<_>>();
    let outbound = pick
        .iter()
        .map(|&i| udp(flows[i].0, flows[i].1, REMOTE, 53))
        .collect();
    let inbound = keys
        .iter()
        .map(|k| {
            let m = ct.lookup_inside(Protocol::Udp, *k).unwrap();
            udp(REMOTE, 53, m.external.ip().octets(), m.external.port())
        })
        .collect();
    Prepared {
        ct,
        keys,
        outbound,
        inbound,
    }
}

fn bench(c: &mut Criterion) {
    for n in SIZES {
        let mut p = prepare(n);
        let mut g = c.benchmark_group("conntrack");
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(BenchmarkId::new("lookup_inside", n), |b| {
            b.iter(|| {
                for k in &p.keys {
                    black_box(p.ct.lookup_inside(Protocol::Udp, *k));
                }
            })
        });
        let mut buf = [0u8; 64];
        g.bench_function(BenchmarkId::new("translate_outbound", n), |b| {
            b.iter(|| {
                for pkt in &p.outbound {
                    buf.copy_from_slice(pkt);
                    black_box(p.ct.translate_outbound(1, &mut buf).unwrap());
                }
            })
        });
        g.bench_function(BenchmarkId::new("translate_inbound", n), |b| {
            b.iter(|| {
                for pkt in &p.inbound {
                    buf.copy_from_slice(pkt);
                    black_box(p.ct.translate_inbound(1, &mut buf).unwrap());
                }
            })
        });
        g.finish();
        drop(p);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
