//! The pipeline, sans-IO, completes partial UDP/TCP checksums (only the pseudo-header sum, as
//! kernel senders with tx checksum offload leave them on veths and Docker's bridge) in both
//! directions before the NAT rewrites them, counts them in `csum_completed`, and leaves a
//! checksum that is simply wrong as wrong as it came. etherparse checks the results. The
//! root test `gateway_docker_bridge.rs` shows the same with real senders.

mod hostile_support;

use std::sync::atomic::Ordering::Relaxed;

use etherparse::UdpHeader;
use fastpath::pipeline::Verdict;
use hostile_support::*;
use wgproto::time::Timestamp;
use wire::checksum::{fold, sum};

const NOW: Timestamp = Timestamp::from_nanos(1_000_000_000);

/// Replaces the UDP checksum of the IPv4 packet `ip` by the folded pseudo-header sum.
fn make_partial(ip: &mut [u8]) {
    let udp_len = u32::from(u16::from_be_bytes([ip[24], ip[25]]));
    let partial = fold(sum(&ip[12..20]) + 17 + udp_len);
    ip[26..28].copy_from_slice(&partial.to_be_bytes());
}

/// Whether the UDP checksum of the IPv4 packet `ip` is what etherparse computes.
fn udp_checksum_ok(ip: &[u8]) -> bool {
    let (udp, payload) = UdpHeader::from_slice(&ip[20..]).expect("a UDP header");
    let src: [u8; 4] = ip[12..16].try_into().unwrap();
    let dst: [u8; 4] = ip[16..20].try_into().unwrap();
    udp.calc_checksum_ipv4_raw(src, dst, payload).unwrap() == udp.checksum
}

fn completed(gw: &Gateway) -> u64 {
    gw.pipeline.counters().csum_completed.load(Relaxed)
}

/// Sends a client packet through, so the NAT has a mapping; returns its external port.
fn forward(gw: &mut Gateway, inner: &[u8]) -> (Vec<u8>, u16) {
    let mut f = gw.seal_from_client(NOW, inner, CLIENT_EP);
    let v = gw.process(NOW, &mut f.buf, f.len);
    let tx = tx_bytes(v, &f)
        .unwrap_or_else(|| panic!("forwarded to the server, got {v:?}"))
        .to_vec();
    let ip = tx[14..].to_vec();
    let port = u16::from_be_bytes([ip[20], ip[21]]);
    (ip, port)
}

/// The reply `ip` from the LAN through the gateway, opened as the client would; the inner IP.
fn reply(gw: &mut Gateway, ip: &[u8]) -> Vec<u8> {
    let mut f = lan_frame(ip);
    let v = gw.process(NOW, &mut f.buf, f.len);
    let Verdict::Tx { start, len, .. } = v else {
        panic!("sealed to the peer, got {v:?}");
    };
    let mut msg = f.buf[start + 42..start + len].to_vec();
    let opened = gw
        .client
        .open_in_place(NOW, &mut msg)
        .expect("the client opens the reply");
    let inner = msg[opened.plaintext].to_vec();
    let total = usize::from(u16::from_be_bytes([inner[2], inner[3]]));
    inner[..total].to_vec()
}

#[test]
fn partial_checksums_are_completed_both_ways() {
    let mut gw = Gateway::new(GatewayOptions::default());

    let mut request = client_udp(5555, b"partial request");
    make_partial(&mut request);
    assert!(!udp_checksum_ok(&request));
    let (out, port) = forward(&mut gw, &request);
    assert!(
        udp_checksum_ok(&out),
        "completed, then source NATed: the server accepts it"
    );
    assert_eq!(completed(&gw), 1);

    let mut response = ipv4_udp(SERVER, GW_ADDR, 8080, port, b"partial response", 64);
    make_partial(&mut response);
    let inner = reply(&mut gw, &response);
    assert_eq!(&inner[16..20], &CLIENT_INNER.octets());
    assert!(
        udp_checksum_ok(&inner),
        "completed, then un-NATed: the client accepts it"
    );
    assert_eq!(completed(&gw), 2);
}

#[test]
fn full_and_wrong_checksums_are_not_completed() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let (out, port) = forward(&mut gw, &client_udp(5556, b"full"));
    assert!(udp_checksum_ok(&out));

    let inner = reply(&mut gw, &ipv4_udp(SERVER, GW_ADDR, 8080, port, b"full", 64));
    assert!(udp_checksum_ok(&inner));

    let mut wrong = ipv4_udp(SERVER, GW_ADDR, 8080, port, b"wrong", 64);
    wrong[27] ^= 0x5a;
    let inner = reply(&mut gw, &wrong);
    assert!(
        !udp_checksum_ok(&inner),
        "a wrong checksum stays wrong: the receiver decides"
    );
    assert_eq!(completed(&gw), 0);
}
