//! The IPv6 NAT: arbitrary bytes through both directions of a conntrack that holds mappings
//! (so lookups hit), then expiry; a byte of each packet picks whether its version, Payload
//! Length and (inbound) destination are fixed first, and an ICMPv6 checksum can be made valid,
//! so mutations get past those gates into the ICMPv6 error parser and rewriter. Must never
//! panic; a rejected packet must be left untouched.
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use nat::{Conntrack6, NatConfig};

const EGRESS: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];

fn seeded() -> Conntrack6 {
    let cfg = NatConfig {
        egress: vec![Ipv6Addr::from(EGRESS)],
        ports: 61000..=61063,
        exclude_ports: vec![61010],
        capacity_per_worker: 64,
        workers: 2,
        ..NatConfig::default()
    };
    Conntrack6::new(&cfg, 0).unwrap()
}

fn sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// Makes the ICMPv6 checksum of `pkt` (fixed header then ICMPv6) valid.
fn fix_icmpv6(pkt: &mut [u8]) {
    pkt[6] = 58;
    pkt[42..44].fill(0);
    let len = (pkt.len() - 40) as u32;
    let mut s = sum(&pkt[8..40]) + (len >> 16) + (len & 0xffff) + 58 + sum(&pkt[40..]);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    pkt[42..44].copy_from_slice(&(!(s as u16)).to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let mut ct = seeded();
    // [flags][len][len * 4 bytes]...: bit 7 direction, bit 6 fix the header, bit 5 fix an
    // ICMPv6 checksum.
    let mut rest = data;
    let mut now = 0u64;
    while let [hdr, n, tail @ ..] = rest {
        let len = (usize::from(*n) * 4).min(tail.len());
        let mut pkt = tail[..len].to_vec();
        rest = &tail[len..];
        let inbound = hdr & 0x80 != 0;
        if hdr & 0x40 != 0 && pkt.len() >= 48 {
            pkt[0] = 0x60 | (pkt[0] & 0x0f);
            let plen = (pkt.len() - 40) as u16;
            pkt[4..6].copy_from_slice(&plen.to_be_bytes());
            if inbound {
                pkt[24..40].copy_from_slice(&EGRESS);
            }
            if hdr & 0x20 != 0 {
                fix_icmpv6(&mut pkt);
            }
        }
        let before = pkt.clone();
        let rejected = if inbound {
            ct.translate_inbound(now, &mut pkt).is_err()
        } else {
            ct.translate_outbound(now, &mut pkt).is_err()
        };
        if rejected {
            assert_eq!(pkt, before);
        }
        now += u64::from(hdr & 0x1f) * 1_000_000_000;
        ct.expire(now, 8);
        assert!(ct.len() <= ct.capacity());
    }
});
