//! Two workers (two threads, each with its own partitioned `Conntrack`) against one: the
//! per-worker tables share nothing, so the aggregate rate should roughly double on two free
//! cores. Each iteration runs `ROUNDS` x 1024 outbound + 1024 inbound translations per worker.
//!
//! Run briefly: `cargo bench -p nat --bench multicore -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nat::{Conntrack, Protocol};

#[path = "support/mod.rs"]
mod common;
use common::*;

const ENTRIES_PER_WORKER: u32 = 100_000;
const BATCH: usize = 1024;
const ROUNDS: usize = 50;

struct Worker {
    ct: Conntrack,
    outbound: Vec<Vec<u8>>,
    inbound: Vec<Vec<u8>>,
}

fn worker(index: u16, workers: u16) -> Worker {
    let cfg = config(ENTRIES_PER_WORKER * u32::from(workers), workers);
    let cfg = nat::NatConfig {
        capacity_per_worker: ENTRIES_PER_WORKER,
        ..cfg
    };
    let mut ct = Conntrack::new(&cfg, index).unwrap();
    let flows = fill(&mut ct, ENTRIES_PER_WORKER);
    let pick: Vec<usize> = (0..BATCH).map(|i| (i * 7919 + 13) % flows.len()).collect();
    let outbound = pick
        .iter()
        .map(|&i| udp(flows[i].0, flows[i].1, REMOTE, 53))
        .collect();
    let inbound = pick
        .iter()
        .map(|&i| {
            let k = std::net::SocketAddrV4::new(flows[i].0.into(), flows[i].1);
            let m = ct.lookup_inside(Protocol::Udp, k).unwrap();
            udp(REMOTE, 53, m.external.ip().octets(), m.external.port())
        })
        .collect();
    Worker {
        ct,
        outbound,
        inbound,
    }
}

fn run(w: &mut Worker) {
    let mut buf = [0u8; 64];
    for _ in 0..ROUNDS {
        for pkt in &w.outbound {
            buf.copy_from_slice(pkt);
            black_box(w.ct.translate_outbound(1, &mut buf).unwrap());
        }
        for pkt in &w.inbound {
            buf.copy_from_slice(pkt);
            black_box(w.ct.translate_inbound(1, &mut buf).unwrap());
        }
        w.ct.expire(1, 64);
    }
}

/// Control: pure arithmetic, no memory traffic, the same thread pattern. If this does not
/// scale either, the machine (shared cores, other jobs) is the limit, not the NAT.
fn spin() -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2_000_000 {
        x = black_box(x.rotate_left(7) ^ x.wrapping_mul(0xff51_afd7_ed55_8ccd));
    }
    x
}

/// Nanoseconds this thread has spent on a CPU (Linux schedstat), so a crowded machine does
/// not hide whether workers slow each other down.
fn on_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Translations per on-CPU second of each worker, 1 worker vs 2 running at once. With
/// nothing shared this stays flat; locks or false sharing would make it drop.
fn per_cpu_second_rates() {
    for workers in [1u16, 2] {
        let mut ws: Vec<Worker> = (0..workers).map(|i| worker(i, workers)).collect();
        let rates: Vec<f64> = std::thread::scope(|s| {
            let hs: Vec<_> = ws
                .iter_mut()
                .map(|w| {
                    s.spawn(move || {
                        let t0 = on_cpu_ns();
                        for _ in 0..20 {
                            run(w);
                        }
                        let cpu = (on_cpu_ns() - t0) as f64 / 1e9;
                        (20 * ROUNDS * BATCH * 2) as f64 / cpu / 1e6
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        println!("per on-CPU second, {workers} worker(s): {rates:.2?} M translations/s each");
    }
}

fn bench(c: &mut Criterion) {
    per_cpu_second_rates();
    let mut g = c.benchmark_group("control_spin");
    for threads in [1u64, 2] {
        g.throughput(Throughput::Elements(threads * 2_000_000));
        g.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter(|| {
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(spin);
                    }
                })
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("multicore");
    for workers in [1u16, 2] {
        let mut ws: Vec<Worker> = (0..workers).map(|i| worker(i, workers)).collect();
        g.throughput(Throughput::Elements(
            (usize::from(workers) * ROUNDS * BATCH * 2) as u64,
        ));
        g.bench_function(BenchmarkId::new("workers", workers), |b| {
            b.iter(|| {
                std::thread::scope(|s| {
                    for w in ws.iter_mut() {
                        s.spawn(move || run(w));
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
