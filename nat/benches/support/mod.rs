//! Shared by the benches: table filling and hand-built packets (no etherparse in the timed
//! path; packets are built once, copied into a frame-sized buffer per translation).

use std::net::Ipv4Addr;

use nat::{Conntrack, NatConfig};

pub const REMOTE: [u8; 4] = [93, 184, 216, 34];

pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// A 64-byte IPv4/UDP datagram with valid IP and UDP checksums.
pub fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let payload = [0xabu8; 36];
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    p[..20].copy_from_slice(
        &[0x45, 0, 0, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0]
            .iter()
            .chain(src.iter())
            .chain(dst.iter())
            .copied()
            .collect::<Vec<u8>>(),
    );
    let c = !fold(sum(&p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(&payload);
    let pseudo = sum(&src) + sum(&dst) + 17 + (8 + payload.len()) as u32;
    let c = match !fold(pseudo + sum(&p[20..])) {
        0 => 0xffff,
        c => c,
    };
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// Egress addresses enough for `entries` UDP mappings with paired pooling's imbalance.
pub fn config(entries: u32, workers: u16) -> NatConfig {
    let naddrs = entries / 25_000 + 1;
    NatConfig {
        egress: (0..naddrs)
            .map(|i| Ipv4Addr::from(0xc633_6400u32 + i))
            .collect(),
        ports: 1024..=65535,
        capacity_per_worker: entries,
        workers,
        ..NatConfig::default()
    }
}

/// Inside endpoints: 500 ports on each of consecutive 10.x.y.z hosts.
pub fn inside(i: u32) -> ([u8; 4], u16) {
    (
        (0x0a00_0000 + i / 500).to_be_bytes(),
        1024 + (i % 500) as u16,
    )
}

/// Fills `ct` with up to `n` UDP mappings of inside hosts it owns; returns the endpoints.
pub fn fill(ct: &mut Conntrack, n: u32) -> Vec<([u8; 4], u16)> {
    let mut out = Vec::with_capacity(n as usize);
    let mut buf = [0u8; 64];
    let mut i = 0;
    while (out.len() as u32) < n && i < n * 4 {
        let (a, p) = inside(i);
        i += 1;
        if ct.partition().owner_of_inside(a.into()) != ct.worker() {
            continue;
        }
        buf.copy_from_slice(&udp(a, p, REMOTE, 53));
        if ct.translate_outbound(0, &mut buf).is_ok() {
            out.push((a, p));
        }
    }
    out
}
