//! Roaming without the slow path's round trip (`fastpath/src/roaming.rs`): after a worker
//! opens an authenticated packet from a new source, every reply sealed to that peer goes
//! there, in the same batch and the next, before any table publication; a late packet from
//! the old source (older in the sender's counter order) does not move it back, whichever
//! worker opens it and in whatever order the reports reach the slow path. Before the
//! learned endpoint, every reply here went to the old endpoint until the tables were
//! republished.

mod hostile_support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;

use etherparse::{NetHeaders, PacketHeaders};
use fastpath::pipeline::{Batch, Verdict};
use hostile_support::*;
use wgproto::time::Timestamp;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000)
}

/// Where a sealed frame goes: the outer destination address and UDP port.
fn outer_destination(frame: &[u8]) -> SocketAddr {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("a whole frame");
    let ip = match h.net {
        Some(NetHeaders::Ipv4(ip, _)) => IpAddr::from(ip.destination),
        Some(NetHeaders::Ipv6(ip, _)) => IpAddr::from(ip.destination),
        other => panic!("not IP: {other:?}"),
    };
    let Some(etherparse::TransportHeader::Udp(udp)) = h.transport else {
        panic!("not UDP");
    };
    SocketAddr::new(ip, udp.destination_port)
}

/// The client's request from its IPv4 endpoint (the published one), forwarded to the
/// server; the NAT port it got.
fn request_from_ipv4(gw: &mut Gateway, ms: u64) -> u16 {
    let mut f = gw.seal_from_client(at(ms), &client_udp(6000, b"request"), CLIENT_EP);
    let v = gw.process(at(ms), &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).unwrap_or_else(|| panic!("forwarded, got {v:?}"));
    u16::from_be_bytes([tx[14 + 20], tx[14 + 21]])
}

/// The server's reply to NAT port `port`, as a LAN frame.
fn reply(port: u16) -> Frame {
    lan_frame(&ipv4_udp(SERVER, GW_ADDR, 8080, port, b"reply", 64))
}

/// Runs `frame` through `gw`'s pipeline inside `batch` (no end of batch): several frames in
/// one batch, as a worker runs them.
fn in_batch(gw: &mut Gateway, batch: &Batch<'_>, f: &mut Frame) -> Verdict {
    gw.pipeline.process(batch, &mut f.buf, RX_OFFSET, f.len)
}

#[test]
fn a_reply_in_the_same_batch_goes_to_the_new_endpoint() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let port = request_from_ipv4(&mut gw, 0);
    // The client moves to its IPv6 endpoint; the tables still say IPv4 (no publication).
    let mut moved = gw.seal_from_client6(at(1), &client_udp(6000, b"again"), CLIENT_EP6);
    let mut answer = reply(port);
    let tables = gw.tables.clone();
    let routes = routes();
    let batch = Batch {
        tables: &tables,
        routes: &routes,
        now: at(1),
    };
    let v = in_batch(&mut gw, &batch, &mut moved);
    assert!(matches!(v, Verdict::Tx { .. }), "forwarded, got {v:?}");
    let v = in_batch(&mut gw, &batch, &mut answer);
    let tx = tx_bytes(v, &answer).unwrap_or_else(|| panic!("sealed, got {v:?}"));
    assert_eq!(outer_destination(tx), SocketAddr::V6(CLIENT_EP6));
    gw.pipeline.end_batch(&batch);
    assert_eq!(gw.pipeline.counters().endpoint_roamed.load(Relaxed), 1);
    // The slow path is still told, and publishes later.
    assert!(authenticated(&gw.drain_slow_path()).contains(&(GW_INDEX, SocketAddr::V6(CLIENT_EP6))));
    assert_eq!(
        gw.tables.peers[&PEER].endpoint,
        Some(SocketAddr::V4(CLIENT_EP))
    );
}

#[test]
fn another_workers_reply_in_the_next_batch_goes_to_the_new_endpoint() {
    // Worker B has the NAT mapping (the request came in on its queue); worker A opens the
    // packet from the new endpoint; both share the published tables (and so the peer's
    // learned endpoint) as two workers do.
    let mut b = Gateway::new(GatewayOptions::default());
    let port = request_from_ipv4(&mut b, 0);
    let mut a = Gateway::new(GatewayOptions::default());
    a.tables = b.tables.clone();
    let mut moved = b.seal_from_client6(at(1), &client_udp(6000, b"again"), CLIENT_EP6);
    assert!(matches!(
        a.process(at(1), &mut moved.buf, moved.len),
        Verdict::Tx { .. }
    ));
    let mut answer = reply(port);
    let v = b.process(at(2), &mut answer.buf, answer.len);
    let tx = tx_bytes(v, &answer).unwrap_or_else(|| panic!("sealed, got {v:?}"));
    assert_eq!(outer_destination(tx), SocketAddr::V6(CLIENT_EP6));
}

#[test]
fn a_late_packet_from_the_old_endpoint_does_not_move_it_back() {
    // Two workers: A gets the client's packets from its old (IPv4) endpoint, B from its new
    // (IPv6) one. The old one was sealed first, but A opens it after B opened the new one.
    let mut a = Gateway::new(GatewayOptions::default());
    let port = request_from_ipv4(&mut a, 0);
    let mut b = Gateway::new(GatewayOptions::default());
    b.tables = a.tables.clone();
    let mut late = a.seal_from_client(at(1), &client_udp(6000, b"old"), CLIENT_EP);
    let mut newer = a.seal_from_client6(at(1), &client_udp(6000, b"new"), CLIENT_EP6);
    assert!(matches!(
        b.process(at(2), &mut newer.buf, newer.len),
        Verdict::Tx { .. }
    ));
    assert!(matches!(
        a.process(at(2), &mut late.buf, late.len),
        Verdict::Tx { .. }
    ));
    let mut answer = reply(port);
    let v = a.process(at(3), &mut answer.buf, answer.len);
    let tx = tx_bytes(v, &answer).unwrap_or_else(|| panic!("sealed, got {v:?}"));
    assert_eq!(
        outer_destination(tx),
        SocketAddr::V6(CLIENT_EP6),
        "the late packet from the old endpoint moved it back"
    );
    assert_eq!(a.pipeline.counters().endpoint_roamed.load(Relaxed), 0);
    assert_eq!(b.pipeline.counters().endpoint_roamed.load(Relaxed), 1);
    // Both are reported (the late one too: a report is also key confirmation); the slow path
    // roams its device to the learned endpoint, not to the report's source, so the stale
    // report, whichever arrives last, cannot undo the roam (`slowpath/tests/roaming_reports.rs`).
    assert_eq!(
        authenticated(&b.drain_slow_path()),
        vec![(GW_INDEX, SocketAddr::V6(CLIENT_EP6))]
    );
    assert!(authenticated(&a.drain_slow_path()).contains(&(GW_INDEX, SocketAddr::V4(CLIENT_EP))));
    assert_eq!(
        a.tables.peers[&PEER].learned.get(),
        Some(SocketAddr::V6(CLIENT_EP6))
    );
    // The client really goes back: a newer packet from the old endpoint is taken.
    let mut back = a.seal_from_client(at(4), &client_udp(6000, b"back"), CLIENT_EP);
    assert!(matches!(
        a.process(at(4), &mut back.buf, back.len),
        Verdict::Tx { .. }
    ));
    let mut answer = reply(port);
    let v = a.process(at(5), &mut answer.buf, answer.len);
    let tx = tx_bytes(v, &answer).unwrap_or_else(|| panic!("sealed, got {v:?}"));
    assert_eq!(outer_destination(tx), SocketAddr::V4(CLIENT_EP));
}
