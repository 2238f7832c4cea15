//! The sink and its tally tell intact, lost, duplicated, reordered and corrupted probes apart,
//! and time each intact one: on the [`Arrivals`] tally directly, and through a real [`Sink`]
//! on loopback (no root needed) fed with crafted datagrams.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::loadgen::{inner_udp_payload, write_inner};
use bench::probe::{
    read_probe, write_probe, Arrival, Arrivals, ProbeError, SendTimes, INNER_IP_UDP,
    MIN_PROBE_PACKET,
};
use bench::sink::Sink;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

fn probe(seq: u64, len: usize, stamp: u64) -> Vec<u8> {
    let mut b = vec![0; len];
    assert!(write_probe(&mut b, seq, stamp));
    b
}

#[test]
fn gaps_duplicates_reorder_and_corruption_are_counted() {
    let mut a = Arrivals::new(100, 10);
    let at = |_: &bench::probe::Probe| Some(1_000u64);
    // 100, 101, then 103 (102 missing so far), then 102 late, 101 again.
    assert_eq!(
        a.record(&probe(100, 36, 0), 64, 2_000, at),
        Arrival::InOrder
    );
    assert_eq!(
        a.record(&probe(101, 36, 0), 64, 2_000, at),
        Arrival::InOrder
    );
    assert_eq!(
        a.record(&probe(103, 36, 0), 64, 2_000, at),
        Arrival::InOrder
    );
    assert_eq!(
        a.record(&probe(102, 36, 0), 64, 2_000, at),
        Arrival::Reordered
    );
    assert_eq!(
        a.record(&probe(101, 36, 0), 64, 2_000, at),
        Arrival::Duplicate
    );
    // One byte flipped in the pattern, one in the sequence number: corrupted, not delivered
    // (104 and 105 never count as received).
    let mut bad = probe(104, 36, 0);
    bad[30] ^= 0x01;
    assert_eq!(
        a.record(&bad, 64, 2_000, at),
        Arrival::Corrupted(ProbeError::BadChecksum)
    );
    let mut bad = probe(105, 36, 0);
    bad[11] ^= 0x80;
    assert!(matches!(
        a.record(&bad, 64, 2_000, at),
        Arrival::Corrupted(_)
    ));
    assert!(matches!(
        a.record(b"not a probe at all, just bytes", 58, 2_000, at),
        Arrival::Corrupted(ProbeError::BadMagic)
    ));
    // Outside 100..110: an earlier run's straggler.
    assert_eq!(a.record(&probe(7, 36, 0), 64, 2_000, at), Arrival::Foreign);

    let t = a.tally();
    assert_eq!(t.received, 9);
    assert_eq!(t.unique, 4, "{t:?}");
    assert_eq!(t.duplicates, 1);
    assert_eq!(t.reordered, 1);
    assert_eq!(t.corrupted, 3);
    assert_eq!(t.foreign, 1);
    assert_eq!(t.unique_bytes, 4 * 64);
    // 10 sent (100..110): 6 lost, whatever else arrived.
    assert_eq!(t.lost(10), 6);
    assert!((t.loss_percent(10) - 60.0).abs() < 1e-9);
    // Every intact first copy was timed: 1 µs each.
    assert_eq!(t.latency_samples, 4);
    assert!(
        (t.p50_us - 1.0).abs() < 0.01 && (t.max_us - 1.0).abs() < 0.01,
        "{t:?}"
    );
}

#[test]
fn latency_percentiles_follow_the_send_times() {
    let mut a = Arrivals::new(0, 1000);
    // Packet i took (i + 1) µs: p50 ~500 µs, p99 ~990 µs, max 1000 µs.
    for i in 0..1000u64 {
        let sent = 1_000_000;
        let arrived = sent + (i + 1) * 1_000;
        a.record(&probe(i, 40, 0), 68, arrived, |_| Some(sent));
    }
    let t = a.tally();
    assert_eq!(t.latency_samples, 1000);
    assert!((t.p50_us - 500.0).abs() <= 1.0, "{t:?}");
    assert!((t.p99_us - 990.0).abs() <= 1.0, "{t:?}");
    assert!((t.max_us - 1000.0).abs() <= 1.0, "{t:?}");
    // Without a send time there is no sample, but the packet still counts.
    let mut b = Arrivals::new(0, 4);
    b.record(&probe(0, 40, 0), 68, 5, |_| None);
    assert_eq!((b.tally().unique, b.tally().latency_samples), (1, 0));
}

/// Sends each payload from `from` to the sink, then waits until it counted them all.
fn send_all(from: &UdpSocket, sink: &Sink, to: SocketAddr, payloads: &[Vec<u8>]) {
    for p in payloads {
        from.send_to(p, to).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.tally().received < payloads.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "the sink received {} of {} datagrams",
            sink.tally().received,
            payloads.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_sink_counts_loss_duplicates_and_corruption_on_a_real_socket() {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let sink = Sink::on_socket(socket).unwrap();
    let to = sink.local_addr().unwrap();
    let from = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();

    // 50 probes expected (seq 1000..1050), with send times in the table.
    let times = Arc::new(SendTimes::new(1 << 10));
    sink.expect(1000, 50, Some(times.clone()));
    let now = bench::udp_batch::monotonic_ns();
    let mut payloads = Vec::new();
    for seq in 1000..1050u64 {
        times.set(seq, now);
        // Lost: 1010..1015 never sent.
        if (1010..1015).contains(&seq) {
            continue;
        }
        payloads.push(probe(seq, 200 - INNER_IP_UDP, now));
    }
    // Duplicated: 1020 twice more.
    payloads.push(probe(1020, 200 - INNER_IP_UDP, now));
    payloads.push(probe(1020, 200 - INNER_IP_UDP, now));
    // Corrupted in flight: 1049 with one flipped byte, instead of the intact one.
    let last = payloads
        .iter()
        .position(|p| read_probe(p).unwrap().seq == 1049)
        .unwrap();
    payloads[last][150] ^= 0x20;
    send_all(&from, &sink, to, &payloads);

    let t = sink.expect(0, 0, None).tally();
    assert_eq!(t.received, 47);
    assert_eq!(t.unique, 44, "{t:?}");
    assert_eq!(t.duplicates, 2);
    assert_eq!(t.corrupted, 1);
    assert_eq!(t.lost(50), 6, "5 never sent + 1 corrupted");
    assert_eq!(t.unique_bytes, 44 * 200, "sizes are the inner IPv4 packet");
    assert_eq!(t.latency_samples, 44);
    assert!(t.p99_us < 5e6, "{t:?}");
    // It saw where they came from: the address it answers in the reverse direction.
    assert_eq!(sink.last_source(), Some(from.local_addr().unwrap()));
}

#[test]
fn the_generators_inner_packets_are_valid_ipv4_udp_with_a_probe() {
    let src = SocketAddrV4::new(Ipv4Addr::new(10, 13, 13, 4), 40_000);
    let dst = SocketAddrV4::new(Ipv4Addr::new(172, 23, 0, 2), 9_000);
    for size in [MIN_PROBE_PACKET - 10, 64, 512, 1420] {
        let mut buf = vec![0u8; 1500];
        let n = write_inner(&mut buf, src, dst, size, 77, 1234);
        assert_eq!(n, size.max(MIN_PROBE_PACKET));
        let p = SlicedPacket::from_ip(&buf[..n]).expect("parseable IPv4");
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.total_len as usize, n);
        assert_eq!(h.source, src.ip().octets());
        let Some(TransportSlice::Udp(u)) = &p.transport else {
            panic!("not UDP")
        };
        let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
        assert_eq!(u.to_header().checksum, want, "UDP checksum at {size}");
        let probe = read_probe(u.payload()).expect("an intact probe");
        assert_eq!((probe.seq, probe.stamp_ns), (77, 1234));
        // The receiver's view: padding after the IPv4 total length is ignored, another
        // destination is not ours.
        let mut padded = buf[..n].to_vec();
        padded.extend_from_slice(&[0; 12]);
        let (payload, len) = inner_udp_payload(&padded, dst).expect("our flow");
        assert_eq!((payload.len(), len), (n - INNER_IP_UDP, n));
        let other = SocketAddrV4::new(*dst.ip(), 9_001);
        assert!(inner_udp_payload(&padded, other).is_none());
        assert!(inner_udp_payload(&padded[..10], dst).is_none());
    }
}
