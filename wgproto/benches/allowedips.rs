//! AllowedIPs longest-prefix lookup with 100 000 entries (a large gateway: /32 hosts, /24 site
//! networks and a default route), hits and misses.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, Criterion};
use wgproto::allowedips::AllowedIps;
use wgproto::config::IpPrefix;

/// A small deterministic generator (xorshift64*), so runs compare.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn bench_lookup(c: &mut Criterion) {
    let mut g = Gen(0x1234_5678);
    let mut table = AllowedIps::new();
    let mut hosts = Vec::new();
    for i in 0..100_000u32 {
        let prefix = match i % 10 {
            // 70 % IPv4 hosts in 10/8, 20 % IPv4 /24 networks, 10 % IPv6 /128.
            0..=6 => {
                let a = Ipv4Addr::from(0x0a00_0000 | (g.next() as u32 & 0x00ff_ffff));
                hosts.push(IpAddr::V4(a));
                IpPrefix::new_masked(a.into(), 32)
            }
            7 | 8 => IpPrefix::new_masked(
                Ipv4Addr::from(0xac00_0000 | (g.next() as u32 & 0x00ff_ff00)).into(),
                24,
            ),
            _ => {
                let a = Ipv6Addr::from((0xfd00u128 << 112) | u128::from(g.next()));
                hosts.push(IpAddr::V6(a));
                IpPrefix::new_masked(a.into(), 128)
            }
        };
        table.insert(prefix, i);
    }
    table.insert("0.0.0.0/0".parse().unwrap(), u32::MAX);
    let misses: Vec<IpAddr> = (0..4096)
        .map(|_| {
            IpAddr::V4(Ipv4Addr::from(
                0xc000_0000 | (g.next() as u32 & 0x0fff_ffff),
            ))
        })
        .collect();

    let mut i = 0usize;
    c.bench_function("allowedips_lookup_100k_hit", |b| {
        b.iter(|| {
            i = (i + 1) % hosts.len();
            black_box(table.lookup(black_box(hosts[i])))
        })
    });
    let mut j = 0usize;
    c.bench_function("allowedips_lookup_100k_default_route", |b| {
        b.iter(|| {
            j = (j + 1) % misses.len();
            black_box(table.lookup(black_box(misses[j])))
        })
    });
    let peer = 3u32;
    c.bench_function("allowedips_source_allowed_100k", |b| {
        b.iter(|| {
            i = (i + 1) % hosts.len();
            black_box(table.source_allowed(black_box(hosts[i]), &peer))
        })
    });
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
