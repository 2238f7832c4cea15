//! The end-to-end benchmark's readers of iperf3 and ping output, on real output of the tools.

use bench::e2e::{latency_of, parse_iperf3, parse_ping_times};

#[test]
fn iperf3_udp_report_counts_what_the_server_received() {
    // iperf3 3.12 -u -b 0 -l 36 -J, 1 s on loopback: the server got 23972 - 16044 datagrams.
    let json: serde_json::Value = serde_json::from_str(include_str!("iperf3_udp.json")).unwrap();
    let r = parse_iperf3(&json, true).unwrap();
    let received = (23972.0 - 16044.0) / 1.023245;
    assert!((r.received_pps - received).abs() < 1.0, "{r:?}");
    assert!((r.sent_pps - 24850.0 / 1.018736).abs() < 1.0, "{r:?}");
    assert!((r.lost_percent - 64.56).abs() < 0.01);
    // The received bit rate is the server's: bytes it got, not bytes sent.
    assert!((r.received_bps - 2_231_395.2).abs() < 1.0);
    assert!(parse_iperf3(&serde_json::json!({"error": "x"}), true).is_err());
}

#[test]
fn iperf3_tcp_report_uses_the_receiver_sum() {
    let json = serde_json::json!({"end": {
        "sum_sent": {"bits_per_second": 9e8},
        "sum_received": {"bits_per_second": 4.2e8}}});
    assert_eq!(parse_iperf3(&json, false).unwrap().received_bps, 4.2e8);
}

#[test]
fn ping_times_and_percentiles() {
    let out = "PING 172.23.0.2 (172.23.0.2) 36(64) bytes of data.\n\
               64 bytes from 172.23.0.2: icmp_seq=1 ttl=63 time=0.250 ms\n\
               64 bytes from 172.23.0.2: icmp_seq=2 ttl=63 time=1.50 ms\n\
               64 bytes from 172.23.0.2: icmp_seq=4 ttl=63 time=0.300 ms\n\
               \n--- 172.23.0.2 ping statistics ---\n\
               4 packets transmitted, 3 received, 25% packet loss, time 31ms\n\
               rtt min/avg/max/mdev = 0.250/0.683/1.500/0.578 ms\n";
    let t = parse_ping_times(out);
    assert_eq!(t, vec![250.0, 1500.0, 300.0]);
    let l = latency_of(4, &t).unwrap();
    assert_eq!((l.sent, l.received), (4, 3));
    assert!((l.p50_us - 300.0).abs() < 1.0, "{l:?}");
    assert!((l.p99_us - 1500.0).abs() < 2.0, "{l:?}");
    assert!(
        latency_of(4, &[]).is_err(),
        "all lost is an error, not a zero latency"
    );
}
