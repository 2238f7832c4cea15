//! The pipeline's capture taps and latency sampling, sans-IO (the fixture of the hostile-input
//! tests: a real session with one client, NAT to 172.23.0.3): what each capture point holds
//! after a request and its reply, that a full capture ring skips and counts without touching
//! forwarding, and that exactly one frame in 64 is timed, stage by stage.

mod hostile_support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fastpath::capture::{CapturePoint, CaptureRing};
use fastpath::latency::SAMPLE_EVERY;
use fastpath::pipeline::Verdict;
use hostile_support::*;
use wgproto::time::Timestamp;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000)
}

fn attach(gw: &Gateway, point: CapturePoint, slots: usize) -> Arc<CaptureRing> {
    let ring = Arc::new(CaptureRing::new(point, slots, 2048));
    gw.pipeline.counters().capture.attach(ring.clone());
    ring
}

fn drain(ring: &CaptureRing) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| ring.pop_with(|f| f.data.to_vec())).collect()
}

/// (source, destination, source port, destination port, payload) of a bare IPv4/UDP packet.
fn udp_of(ip: &[u8]) -> (Ipv4Addr, Ipv4Addr, u16, u16, Vec<u8>) {
    let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
    let port = |at: usize| u16::from_be_bytes([ip[at], ip[at + 1]]);
    assert_eq!(ip[0], 0x45, "an IPv4 header without options");
    assert_eq!(
        usize::from(port(2)),
        ip.len(),
        "the whole packet, no padding"
    );
    (addr(12), addr(16), port(20), port(22), ip[28..].to_vec())
}

/// Sends `payload` from the client and returns the NAT port it left with.
fn request(gw: &mut Gateway, ms: u64, payload: &[u8]) -> u16 {
    let mut f = gw.seal_from_client(at(ms), &client_udp(5000, payload), CLIENT_EP);
    let v = gw.process(at(ms), &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).expect("the request is forwarded");
    u16::from_be_bytes([tx[34], tx[35]])
}

/// The server's reply to the NAT port; must be sealed towards the client.
fn reply(gw: &mut Gateway, ms: u64, nat_port: u16, payload: &[u8]) {
    let mut f = udp_frame(
        SocketAddrV4::new(SERVER, 8080),
        SocketAddrV4::new(GW_ADDR, nat_port),
        payload,
    );
    let v = gw.process(at(ms), &mut f.buf, f.len);
    assert!(
        matches!(v, Verdict::Tx { .. }),
        "the reply is sealed and sent: {v:?}"
    );
}

#[test]
fn decrypted_and_nat_points_show_the_tunnel_and_lan_sides_of_both_directions() {
    let mut gw = Gateway::new(GatewayOptions::default());

    // Decrypted: the request as the client sent it, without WireGuard's padding, and the
    // reply after the NAT reverse, just before sealing.
    let decrypted = attach(&gw, CapturePoint::Decrypted, 16);
    let port = request(&mut gw, 0, b"hello");
    reply(&mut gw, 1, port, b"world!");
    let got = drain(&decrypted);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], client_udp(5000, b"hello"));
    assert_eq!(
        udp_of(&got[1]),
        (SERVER, CLIENT_INNER, 8080, 5000, b"world!".to_vec())
    );
    gw.pipeline.counters().capture.detach();

    // NAT: the request after the source rewrite, the reply before its reverse.
    let nat = attach(&gw, CapturePoint::Nat, 16);
    let port2 = request(&mut gw, 2, b"again");
    assert_eq!(port2, port, "same flow, same mapping");
    reply(&mut gw, 3, port, b"back");
    let got = drain(&nat);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        udp_of(&got[0]),
        (GW_ADDR, SERVER, port, 8080, b"again".to_vec())
    );
    assert_eq!(
        udp_of(&got[1]),
        (SERVER, GW_ADDR, 8080, port, b"back".to_vec())
    );
    // The wire points are the worker loop's (worker/io.rs), never the pipeline's.
    gw.pipeline.counters().capture.detach();
    let wire = attach(&gw, CapturePoint::WireIn, 16);
    request(&mut gw, 4, b"x");
    assert!(wire.is_empty());
    assert_eq!(
        gw.pipeline
            .counters()
            .capture_skipped
            .load(Ordering::Relaxed),
        0
    );
}

#[test]
fn a_full_ring_skips_and_counts_while_forwarding_goes_on() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let ring = attach(&gw, CapturePoint::Decrypted, 2);
    for i in 0..5 {
        request(&mut gw, i, &[i as u8; 3]);
    }
    let counters = gw.pipeline.counters();
    assert_eq!(counters.capture_skipped.load(Ordering::Relaxed), 3);
    assert_eq!(counters.decrypted.load(Ordering::Relaxed), 5);
    assert_eq!(counters.total_dropped(), 0);
    let got = drain(&ring);
    assert_eq!(
        got,
        vec![client_udp(5000, &[0; 3]), client_udp(5000, &[1; 3])],
        "the oldest are kept"
    );
}

#[test]
fn one_frame_in_sample_every_is_timed_in_each_stage_it_passes() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let n = u64::from(SAMPLE_EVERY) * 4;
    // Requests first, then replies: the sampled frames are four of each direction.
    let mut port = 0;
    for i in 0..n {
        port = request(&mut gw, i, b"ping");
    }
    for i in 0..n {
        reply(&mut gw, n + i, port, b"pong");
    }
    let counters = gw.pipeline.counters().clone();
    assert!(
        counters.latency.summaries().is_empty(),
        "nothing published yet"
    );
    gw.pipeline.publish_latency(&counters.latency);
    let s = counters.latency.summaries();
    let count = |stage: &str| s[stage].count;
    assert_eq!(count("frame"), 8);
    assert_eq!(count("decrypt"), 4);
    assert_eq!(count("encrypt"), 4);
    // Forwarding is timed in both directions: NAT, route and rewrite, or their reverse.
    assert_eq!(count("nat_route_rewrite"), 8);
    for (stage, l) in &s {
        assert!(l.p50_ns > 0 && l.p50_ns <= l.p99_ns, "{stage}: {l:?}");
        let buckets: Vec<u64> = l.buckets.iter().map(|(_, n)| *n).collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{stage}: {l:?}");
        assert!(buckets.last().copied().unwrap_or(0) <= l.count);
    }
    // A whole frame takes at least as long as any one stage within it.
    assert!(s["frame"].sum_ns >= s["decrypt"].sum_ns);
    assert!(s["frame"].sum_ns >= s["encrypt"].sum_ns);

    // Published samples are moved, not copied: a second publish adds nothing.
    gw.pipeline.publish_latency(&counters.latency);
    assert_eq!(counters.latency.summaries()["frame"].count, 8);
}
