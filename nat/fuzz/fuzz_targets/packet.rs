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
    // Split the input into packets: [flags+len byte][len bytes]... Bit 7: direction; bit 6:
    // fix the IPv4 header checksum first, so mutations get past that gate.
    let mut rest = data;
    let mut now = 0u64;
    while let Some((&hdr, tail)) = rest.split_first() {
        let len = usize::from(hdr & 0x3f).min(tail.len()) * 2;
        let len = len.min(tail.len());
        let mut pkt = tail[..len].to_vec();
        if hdr & 0x40 != 0 && pkt.len() >= 20 {
            let hl = (usize::from(pkt[0] & 15) * 4).clamp(20, pkt.len());
            pkt[10..12].fill(0);
            let mut s: u32 = pkt[..hl]
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
                .sum();
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            pkt[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
        }
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
