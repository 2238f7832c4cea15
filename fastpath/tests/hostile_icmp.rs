//! The gateway must not be a reflector: ICMP errors it originates answer only packets the NAT
//! would deliver, and no more of them leave than Linux would send (a token bucket per worker
//! and one per destination, `fastpath::icmp_ratelimit`), whatever sources an attacker spoofs.

mod hostile_support;

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

use fastpath::counters::DropReason;
use fastpath::icmp_ratelimit::{GLOBAL_BURST, PER_DESTINATION_BURST};
use fastpath::pipeline::Verdict;
use hostile_support::*;
use wgproto::time::Timestamp;

/// Spoofed sources the kernel would route back out of the LAN (198.18.0.0/15, benchmarking).
const SPOOFED: u32 = 2000;

fn spoofed(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xc612_0000 + i)
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_nanos((1 + secs) * 1_000_000_000)
}

fn gateway() -> Gateway {
    let mut gw = Gateway::new(GatewayOptions::default());
    gw.routes = routes_with((0..SPOOFED).map(spoofed).chain([SERVER]));
    gw
}

/// The client sends one UDP datagram to the server; returns its external port.
fn open_mapping(gw: &mut Gateway, now: Timestamp) -> u16 {
    let mut f = gw.seal_from_client(now, &client_udp(5000, b"req"), CLIENT_EP);
    let v = gw.process(now, &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).expect("forwarded");
    u16::from_be_bytes([tx[34], tx[35]])
}

/// An oversized DF datagram from `src` to the egress address at `port`: larger than the tunnel
/// carries, so it earns a "fragmentation needed" if anything.
fn oversized(src: Ipv4Addr, port: u16) -> Frame {
    // `ipv4_udp` sets DF.
    lan_frame(&ipv4_udp(src, GW_ADDR, 9999, port, &[0u8; MTU + 40], 64))
}

/// Whether `v` sent an ICMP error back to the LAN.
fn icmp_sent(v: Verdict, f: &Frame) -> bool {
    tx_bytes(v, f).is_some_and(|p| p[14 + 9] == 1)
}

#[test]
fn spoofed_df_flood_to_a_mapped_port_gets_at_most_a_bucket_of_icmp() {
    let mut gw = gateway();
    let port = open_mapping(&mut gw, at(0));
    let flood = |gw: &mut Gateway, now| {
        (0..SPOOFED)
            .filter(|&i| {
                let mut f = oversized(spoofed(i), port);
                let v = gw.process(now, &mut f.buf, f.len);
                icmp_sent(v, &f)
            })
            .count() as u64
    };
    assert_eq!(flood(&mut gw, at(1)), GLOBAL_BURST, "the worker's burst");
    // Ten seconds later the bucket is full again, but no fuller.
    assert_eq!(flood(&mut gw, at(11)), GLOBAL_BURST);
    let c = gw.pipeline.counters();
    assert_eq!(
        c.icmp_ratelimited.load(Relaxed),
        2 * (u64::from(SPOOFED) - GLOBAL_BURST)
    );
    // The rest is dropped as too big for the tunnel, like any packet it cannot carry.
    assert_eq!(
        gw.dropped(DropReason::TooBig),
        2 * (u64::from(SPOOFED) - GLOBAL_BURST)
    );

    // One source, many packets: its own burst, then nothing until it earns more.
    let mut sent = 0;
    for _ in 0..100 {
        let mut f = oversized(SERVER, port);
        let v = gw.process(at(21), &mut f.buf, f.len);
        sent += u64::from(icmp_sent(v, &f));
    }
    assert_eq!(sent, PER_DESTINATION_BURST);
}

#[test]
fn df_packet_to_a_nat_port_with_no_mapping_gets_no_icmp() {
    let mut gw = gateway();
    let port = open_mapping(&mut gw, at(0));
    let unmapped = if port == 61999 { 61998 } else { port + 1 };
    for i in 0..10 {
        let mut f = oversized(spoofed(i), unmapped);
        let v = gw.process(at(1), &mut f.buf, f.len);
        assert_eq!(v, Verdict::Drop(DropReason::NatNoMapping));
    }
    assert_eq!(gw.dropped(DropReason::NatNoMapping), 10);
    assert_eq!(gw.pipeline.counters().icmp_ratelimited.load(Relaxed), 0);
}

#[test]
fn errors_into_the_tunnel_are_rate_limited_too() {
    let mut gw = gateway();
    let mut sent = 0;
    for _ in 0..100 {
        // TTL 1: time exceeded, sealed back to the client.
        let inner = ipv4_udp(CLIENT_INNER, SERVER, 5000, 8080, b"x", 1);
        let mut f = gw.seal_from_client(at(1), &inner, CLIENT_EP);
        match gw.process(at(1), &mut f.buf, f.len) {
            Verdict::Tx { .. } => sent += 1,
            v => assert_eq!(v, Verdict::Drop(DropReason::TtlExceeded)),
        }
    }
    assert_eq!(sent, PER_DESTINATION_BURST);
}
