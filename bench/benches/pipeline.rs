//! Criterion view of the pipeline benchmark: per packet, forward (WireGuard in -> NAT ->
//! LAN) and reverse (LAN -> NAT reverse -> WireGuard out) at 64, 512, 1420 bytes and IMIX,
//! next to raw ChaCha20-Poly1305 over the same bytes. Frames are re-sealed between passes
//! outside the timed region (see `bench::pipeline`). Short measurement times by default: the
//! machine is shared.
//!
//! `cargo bench -p bench --bench pipeline -- --warm-up-time 1 --measurement-time 2`

use std::sync::Arc;
use std::time::Duration;

use bench::fixture::Fixture;
use bench::packets::STANDARD_MIXES;
use bench::pipeline::{Direction, Lane, RawAead};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const POOL: usize = 512;

fn bench_pipeline(c: &mut Criterion) {
    let fixture = Arc::new(Fixture::new(1).expect("in-memory gateway"));
    let mut group = c.benchmark_group("pipeline");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for mix in STANDARD_MIXES {
        let label = mix.label().replace(' ', "");
        group.throughput(Throughput::Elements(1));
        for (name, dir) in [
            ("forward", Direction::Forward),
            ("reverse", Direction::Reverse),
        ] {
            let mut lane = Lane::new(fixture.clone(), 0, mix, POOL).expect("lane");
            group.bench_function(BenchmarkId::new(name, &label), |b| {
                b.iter_custom(|iters| lane.time(dir, iters).expect("pipeline pass"))
            });
            lane.check().expect("every packet transmitted");
        }
        let mut raw = RawAead::new(mix, POOL);
        group.bench_function(BenchmarkId::new("raw_aead_open", &label), |b| {
            b.iter_custom(|iters| raw.time_open(iters).expect("raw open"))
        });
        group.bench_function(BenchmarkId::new("raw_aead_seal", &label), |b| {
            b.iter_custom(|iters| raw.time_seal(iters).expect("raw seal"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
