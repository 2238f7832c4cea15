//! ICMP error path: a real mapping is created, then an ICMP error with a *valid* ICMP
//! checksum quoting fuzzer-chosen bytes (often a mutated copy of the translated packet) is
//! fed inbound and outbound, so the fuzzer gets past the checksum gate into the quoted-packet
//! parser and rewriter.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use nat::{Conntrack, NatConfig};

fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0u8; 12];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = csum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn icmp_error(src: [u8; 4], dst: [u8; 4], t: u8, quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![t, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quoted);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 1, &m)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let e = [172, 23, 0, 3];
    let a = [10, 13, 13, 2];
    let cfg = NatConfig {
        egress: vec![Ipv4Addr::from(e)],
        capacity_per_worker: 16,
        ..NatConfig::default()
    };
    let mut ct = Conntrack::new(&cfg, 0).unwrap();
    // A UDP flow A:40000 -> 198.51.100.9:53 (checksum 0 = none).
    let mut udp = vec![0x9c, 0x40, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4];
    let mut flow = ipv4(a, [198, 51, 100, 9], 17, &udp);
    ct.translate_outbound(0, &mut flow).unwrap();
    udp.clear();

    let t = [3u8, 11, 12][usize::from(data[0] % 3)];
    // Quote: the translated packet with fuzzer bytes XORed over it, then fuzzer bytes appended.
    let mut quoted = flow.clone();
    for (q, d) in quoted.iter_mut().zip(&data[2..]) {
        *q ^= *d;
    }
    if data.len() > 2 + flow.len() {
        quoted.extend_from_slice(&data[2 + flow.len()..]);
    }
    quoted.truncate(usize::from(data[1]).max(8));
    let mut inbound = icmp_error([203, 0, 113, 1], e, t, &quoted);
    let before = inbound.clone();
    if ct.translate_inbound(1, &mut inbound).is_err() {
        assert_eq!(inbound, before);
    }
    let mut outbound = icmp_error(a, [198, 51, 100, 9], t, &quoted);
    let before = outbound.clone();
    if ct.translate_outbound(1, &mut outbound).is_err() {
        assert_eq!(outbound, before);
    }
    assert_eq!(ct.len(), 1, "ICMP errors never add or remove mappings");
});
