//! NAT exhaustion through the pipeline, sans-IO: a tunnel client opens more flows
//! than the NAT table holds. New flows are refused and counted (`nat_table_full`), flows already
//! mapped keep working both ways, and the table takes new flows again once old ones expire.

mod hostile_support;

use std::collections::HashMap;
use std::time::Duration;

use fastpath::counters::DropReason;
use fastpath::pipeline::Verdict;
use hostile_support::*;
use wgproto::time::Timestamp;

const CAPACITY: u32 = 64;
const UDP_TIMEOUT: Duration = Duration::from_secs(30);

fn at(secs: f64) -> Timestamp {
    Timestamp::from_nanos(((1.0 + secs) * 1e9) as u64)
}

/// Sends one UDP packet of flow `sport` from the client; the NAT's external port if forwarded.
fn outbound(gw: &mut Gateway, now: Timestamp, sport: u16) -> Result<u16, DropReason> {
    let mut f = gw.seal_from_client(now, &client_udp(sport, b"req"), CLIENT_EP);
    let v = gw.process(now, &mut f.buf, f.len);
    match (v, tx_bytes(v, &f)) {
        (_, Some(tx)) => {
            assert_eq!(&tx[26..30], &GW_ADDR.octets());
            Ok(u16::from_be_bytes([tx[34], tx[35]]))
        }
        (Verdict::Drop(r), None) => Err(r),
        (other, None) => panic!("unexpected verdict {other:?}"),
    }
}

/// The server's reply to external port `port`; the inner destination port if it was sealed
/// into the tunnel (decrypted here with the client's key to check).
fn reply(gw: &mut Gateway, now: Timestamp, port: u16) -> Result<u16, DropReason> {
    let mut f = lan_frame(&ipv4_udp(SERVER, GW_ADDR, 8080, port, b"resp", 64));
    let v = gw.process(now, &mut f.buf, f.len);
    match v {
        Verdict::Tx { start, len, .. } => {
            let mut msg = f.buf[start + 42..start + len].to_vec();
            let opened = gw
                .client
                .open_in_place(now, &mut msg)
                .expect("client opens the reply");
            let inner = &msg[opened.plaintext];
            assert_eq!(&inner[16..20], &CLIENT_INNER.octets());
            Ok(u16::from_be_bytes([inner[22], inner[23]]))
        }
        Verdict::Drop(r) => Err(r),
        other => panic!("unexpected verdict {other:?}"),
    }
}

#[test]
fn more_flows_than_the_table_holds_are_refused_counted_and_recovered() {
    let mut gw = Gateway::new(GatewayOptions {
        nat_capacity: CAPACITY,
        nat_ports: (61000, 61999),
        slow_queue: 1024,
        udp_timeout: UDP_TIMEOUT,
        ..GatewayOptions::default()
    });
    // Fill the table.
    let mut mapped: HashMap<u16, u16> = HashMap::new();
    for i in 0..CAPACITY as u16 {
        let sport = 10_000 + i;
        let ext = outbound(&mut gw, at(0.0), sport).expect("room for the first flows");
        assert!(mapped.insert(sport, ext).is_none());
    }
    assert_eq!(gw.pipeline.nat().unwrap().len(), CAPACITY as usize);

    // Ten times as many new flows: all refused and counted, nothing evicted.
    for i in 0..10 * CAPACITY as u16 {
        assert_eq!(
            outbound(&mut gw, at(1.0), 20_000 + i),
            Err(DropReason::NatTableFull)
        );
    }
    assert_eq!(
        gw.dropped(DropReason::NatTableFull),
        10 * u64::from(CAPACITY)
    );
    assert_eq!(gw.pipeline.nat().unwrap().len(), CAPACITY as usize);

    // Existing flows are unaffected: same mapping outbound, replies delivered inbound.
    for (&sport, &ext) in &mapped {
        assert_eq!(outbound(&mut gw, at(2.0), sport), Ok(ext));
        assert_eq!(reply(&mut gw, at(2.0), ext), Ok(sport));
    }
    // Return traffic to a port nobody mapped is counted, not delivered.
    let unmapped = (61000..=61999)
        .find(|p| !mapped.values().any(|e| e == p))
        .unwrap();
    assert_eq!(
        reply(&mut gw, at(2.0), unmapped),
        Err(DropReason::NatNoMapping)
    );

    // Keep half the flows alive, let the other half idle out.
    let keep: Vec<u16> = mapped.keys().copied().filter(|s| s % 2 == 0).collect();
    let mut now = 2.0;
    while now < 2.0 + UDP_TIMEOUT.as_secs_f64() * 4.0 {
        now += 5.0;
        for &s in &keep {
            assert_eq!(outbound(&mut gw, at(now), s), Ok(mapped[&s]));
        }
        gw.pipeline.expire(at(now), 1024);
    }
    assert_eq!(gw.pipeline.nat().unwrap().len(), keep.len());
    // The freed half takes new flows again; the next one past capacity is refused again.
    let refused_before = gw.dropped(DropReason::NatTableFull);
    for i in 0..(CAPACITY as usize - keep.len()) as u16 {
        outbound(&mut gw, at(now), 30_000 + i).expect("recovered capacity");
    }
    assert_eq!(
        outbound(&mut gw, at(now), 40_000),
        Err(DropReason::NatTableFull)
    );
    assert_eq!(gw.dropped(DropReason::NatTableFull), refused_before + 1);
    for &s in &keep {
        assert_eq!(reply(&mut gw, at(now), mapped[&s]), Ok(s));
    }
}

/// Fails when every reply asked for a handshake: while the peer has no sending keypair, a
/// stream of replies queued one `HandshakeNeeded` each and filled the event lane.
#[test]
fn replies_without_a_keypair_ask_for_a_handshake_once_per_retry_interval() {
    use fastpath::queue::ToSlowPath;
    let mut gw = Gateway::new(GatewayOptions::default());
    let ext = outbound(&mut gw, at(0.0), 10_000).expect("forwarded");
    gw.drain_slow_path();
    gw.tables.peers.get_mut(&PEER).unwrap().sending = None;
    let requests = |msgs: Vec<ToSlowPath>| {
        msgs.iter()
            .filter(|m| matches!(m, ToSlowPath::HandshakeNeeded { .. }))
            .count()
    };
    for i in 0..1000 {
        let now = at(0.1 + f64::from(i) * 1e-6);
        assert_eq!(reply(&mut gw, now, ext), Err(DropReason::NoKeypair));
    }
    assert_eq!(requests(gw.drain_slow_path()), 1);
    let later = 0.1 + fastpath::pipeline::REPORT_RETRY.as_secs_f64();
    assert_eq!(reply(&mut gw, at(later), ext), Err(DropReason::NoKeypair));
    assert_eq!(requests(gw.drain_slow_path()), 1);
    let lost = gw
        .pipeline
        .counters()
        .events_lost
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(lost, 0);
}
