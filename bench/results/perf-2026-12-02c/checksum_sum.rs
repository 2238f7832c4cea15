use std::hint::black_box;
use std::time::Instant;
fn fold64(mut acc: u64) -> u32 { while acc > 0xffff_ffff { acc = (acc & 0xffff_ffff) + (acc >> 32); } acc as u32 }
fn fold(mut s: u32) -> u16 { while s > 0xffff { s = (s & 0xffff) + (s >> 16); } s as u16 }
fn old(bytes: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks { acc += u64::from(u16::from_be_bytes([c[0], c[1]])); }
    if let [last] = chunks.remainder() { acc += u64::from(u16::from_be_bytes([*last, 0])); }
    fold64(acc)
}
fn new(bytes: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks { acc += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]])); }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_ne_bytes(tail));
    u32::from(u16::from_be(fold(fold64(acc))))
}
fn main() {
    let data: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    for n in [0usize,1,2,3,5,7,64,1463,1464,4095] { assert_eq!(fold(old(&data[..n])), fold(new(&data[..n])), "n={n}"); }
    for len in [28usize, 1464] {
        for (name, f) in [("old", old as fn(&[u8]) -> u32), ("new", new)] {
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                let mut x = 0u32;
                for i in 0..2_000_000 { x = x.wrapping_add(f(black_box(&data[(i & 7)..(i & 7) + len]))); }
                black_box(x);
                best = best.min(t.elapsed().as_nanos() as f64 / 2e6);
            }
            println!("{len} B {name}: {best:.1} ns");
        }
    }
}
