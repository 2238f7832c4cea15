// The move tx() does: copy_within of one packet inside a 4096-byte frame, timed per packet.
use std::hint::black_box;
use std::time::Instant;
fn run(frames: usize, from: usize, to: usize, len: usize, iters: usize) -> f64 {
    let mut pool = vec![0x5au8; frames * 4096];
    let t = Instant::now();
    for i in 0..iters {
        let f = &mut pool[(i % frames) * 4096..][..4096];
        // Back and forth so every pass moves the same bytes.
        if i / frames % 2 == 0 { f.copy_within(from..from + len, to) } else { f.copy_within(to..to + len, from) }
        black_box(&f[to]);
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}
fn main() {
    let n = 20_000_000;
    for (name, from, to, len) in [("forward 1420 B (inner + Ethernet), 300 -> 256", 300, 256, 1434),
                                  ("reverse 1420 B (sealed datagram, IPv4 outer), 212 -> 256", 212, 256, 1498),
                                  ("forward 64 B, 300 -> 256", 300, 256, 78),
                                  ("reverse 64 B, 212 -> 256", 212, 256, 138)] {
        let mut hot = vec![]; let mut pool = vec![];
        for _ in 0..5 { hot.push(run(1, from, to, len, n)); pool.push(run(512, from, to, len, n)); }
        hot.sort_by(|a, b| a.partial_cmp(b).unwrap()); pool.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{name}: one frame (hot) {:.1} ns, 512-frame pool {:.1} ns (median of 5)", hot[2], pool[2]);
    }
}
