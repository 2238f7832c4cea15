//! Nothing allocates per packet: after `Conntrack::new`, creating mappings, translating both
//! ways, ICMP errors and expiry run without a single heap allocation (counted by a global
//! allocator wrapper in this test binary).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use nat::{Conntrack, NatConfig};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System.alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The count is process-wide: the tests of this binary take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn steady_state_churn_never_allocates() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = NatConfig {
        capacity_per_worker: 4096,
        ..config()
    };
    let mut ct = Conntrack::new(&cfg, 0).unwrap();
    // Packets are built before counting starts; the loop only copies into a fixed buffer.
    let flows: Vec<(Vec<u8>, u16)> = (0..3000u16)
        .map(|i| {
            (
                udp(
                    [10, 13, (i / 250) as u8, (i % 250) as u8 + 2],
                    1000 + i,
                    R,
                    53,
                    b"x",
                ),
                1000 + i,
            )
        })
        .collect();
    let tcps: Vec<Vec<u8>> = (0..1000u16)
        .map(|i| tcp(A, 20000 + i, R, 80, SYN, b""))
        .collect();
    let frag = udp(A, 999, R, 53, &[7u8; 64]);
    let mut buf = [0u8; 256];
    let mut replies = Vec::with_capacity(4096);
    for round in 0..6u64 {
        replies.clear();
        let now = round * 400 * SEC; // every round, the previous round's flows expire
        let start = ALLOCS.load(Ordering::Relaxed);
        while ct.expire(now, 64) > 0 {}
        assert!(round == 0 || ct.is_empty());
        for (p, _) in &flows {
            let b = &mut buf[..p.len()];
            b.copy_from_slice(p);
            ct.translate_outbound(now, b).unwrap();
            let (_, x) = src_of(b);
            replies.push(x);
        }
        for p in &tcps {
            let b = &mut buf[..p.len()];
            b.copy_from_slice(p);
            ct.translate_outbound(now, b).unwrap();
        }
        // Fragment chains: more first fragments than the chain table holds, each followed by
        // a later fragment (the IP header of `frag` with offset 1 and another ID each time).
        for id in 0..2000u16 {
            let b = &mut buf[..frag.len()];
            b.copy_from_slice(&frag);
            set_frag(b, id, 0x2000);
            ct.translate_outbound(now, b).unwrap();
            b.copy_from_slice(&frag);
            set_frag(b, id, 1);
            ct.translate_outbound(now, b).unwrap();
        }
        for x in &replies {
            let mut r = [0u8; 29];
            // A reply, built by hand (no allocation): R:53 -> E:x, UDP, checksum 0.
            r[..20].copy_from_slice(&[
                0x45, 0, 0, 29, 0, 0, 0x40, 0, 64, 17, 0, 0, 172, 23, 0, 2, 172, 23, 0, 3,
            ]);
            let c = !fold(&r[..20]);
            r[10..12].copy_from_slice(&c.to_be_bytes());
            r[20..22].copy_from_slice(&53u16.to_be_bytes());
            r[22..24].copy_from_slice(&x.to_be_bytes());
            r[24..26].copy_from_slice(&9u16.to_be_bytes());
            ct.translate_inbound(now, &mut r).unwrap();
        }
        assert_eq!(
            ALLOCS.load(Ordering::Relaxed) - start,
            0,
            "round {round} allocated"
        );
    }
    assert_eq!(ct.counters().expired, 5 * 4001);
    assert_eq!(ct.counters().created, 6 * 4001);
}

fn fold(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Sets the identification and the flags/offset word of the IPv4 header at the start of `b`,
/// with a fresh header checksum (no allocation).
fn set_frag(b: &mut [u8], id: u16, flags_offset: u16) {
    b[4..6].copy_from_slice(&id.to_be_bytes());
    b[6..8].copy_from_slice(&flags_offset.to_be_bytes());
    b[10..12].fill(0);
    let c = !fold(&b[..20]);
    b[10..12].copy_from_slice(&c.to_be_bytes());
}

mod common6;

/// The same for the IPv6 NAT: mappings, replies, ICMPv6 errors and expiry, round after round.
#[test]
fn steady_state_churn_never_allocates_ipv6() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use common6 as c6;
    let cfg = nat::NatConfig {
        capacity_per_worker: 4096,
        ..c6::config()
    };
    let mut ct = nat::Conntrack6::new(&cfg, 0).unwrap();
    let flows: Vec<Vec<u8>> = (0..3000u16)
        .map(|i| {
            let mut a = c6::A;
            a[14..16].copy_from_slice(&i.to_be_bytes());
            c6::udp(a, 1000 + i, c6::R, 53, b"x")
        })
        .collect();
    let mut buf = [0u8; 256];
    let mut done = Vec::with_capacity(4096);
    for round in 0..4u64 {
        let now = round * 400 * SEC;
        while ct.expire(now, 64) > 0 {}
        // Built before counting: each flow's reply and an error quoting the translated packet.
        done.clear();
        for p in &flows {
            let mut b = p.clone();
            ct.translate_outbound(now, &mut b).unwrap();
            let (_, x) = c6::src_of(&b);
            let reply = c6::udp(c6::R, 53, c6::E, x, b"y");
            let err = c6::icmp_error(c6::ROUTER, c6::E, c6::packet_too_big(1280), &b);
            done.push((reply, err));
        }
        let start = ALLOCS.load(Ordering::Relaxed);
        for p in &flows {
            let b = &mut buf[..p.len()];
            b.copy_from_slice(p);
            ct.translate_outbound(now + SEC, b).unwrap();
        }
        for (reply, err) in &done {
            let b = &mut buf[..reply.len()];
            b.copy_from_slice(reply);
            assert!(matches!(
                ct.translate_inbound(now + SEC, b),
                Ok(nat::Inbound::Deliver { .. })
            ));
            let b = &mut buf[..err.len()];
            b.copy_from_slice(err);
            assert!(matches!(
                ct.translate_inbound(now + SEC, b),
                Ok(nat::Inbound::Deliver { .. })
            ));
        }
        assert_eq!(
            ALLOCS.load(Ordering::Relaxed) - start,
            0,
            "round {round} allocated"
        );
    }
    assert_eq!(ct.counters().created, 4 * 3000);
}
