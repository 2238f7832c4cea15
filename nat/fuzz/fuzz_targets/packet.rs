//! Arbitrary bytes through both translation directions of a conntrack that already holds
//! mappings (so lookups hit), then expiry. Must never panic; a rejected packet must be left
//! untouched.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use nat::{Conntrack, NatConfig};

fn seeded() -> Conntrack {
    let cfg = NatConfig {
        egress: vec![Ipv4Addr::new(172, 23, 0, 3), Ipv4Addr::new(172, 23, 0, 4)],
        ports: 61000..=61063,
        exclude_ports: vec![61010],
        capacity_per_worker: 64,
        workers: 2,
        ..NatConfig::default()
    };
    Conntrack::new(&cfg, 0).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let mut ct = seeded();
    // Split the input into packets: [dir+len byte][len bytes]...
    let mut rest = data;
    let mut now = 0u64;
    while let Some((&hdr, tail)) = rest.split_first() {
        let len = usize::from(hdr & 0x7f).min(tail.len());
        let mut pkt = tail[..len].to_vec();
        rest = &tail[len..];
        let before = pkt.clone();
        let rejected = if hdr & 0x80 == 0 {
            ct.translate_outbound(now, &mut pkt).is_err()
        } else {
            ct.translate_inbound(now, &mut pkt).is_err()
        };
        if rejected {
            assert_eq!(pkt, before);
        }
        now += u64::from(hdr) * 1_000_000_000;
        ct.expire(now, 8);
        assert!(ct.len() <= ct.capacity());
    }
});
