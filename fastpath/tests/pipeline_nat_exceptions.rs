//! What the pipeline does, masquerading, with the packets from the tunnel the NAT used to
//! pass by: nothing to be forwarded is handed to the kernel (through wg0 it would be forwarded
//! with the client's tunnel address as its source). Other protocols are dropped and counted;
//! IP options are translated like any header.

mod hostile_support;

use fastpath::counters::DropReason;
use fastpath::pipeline::Verdict;
use fastpath::queue::ToSlowPath;
use hostile_support::*;
use wgproto::time::Timestamp;

fn now() -> Timestamp {
    Timestamp::from_nanos(1_000_000_000)
}

fn host_packets(gw: &mut Gateway) -> usize {
    gw.drain_slow_path()
        .iter()
        .filter(|m| matches!(m, ToSlowPath::ForHost(_)))
        .count()
}

/// Runs `inner` from the client through the gateway.
fn from_client(gw: &mut Gateway, inner: &[u8]) -> (Verdict, Frame) {
    let mut f = gw.seal_from_client(now(), inner, CLIENT_EP);
    let v = gw.process(now(), &mut f.buf, f.len);
    (v, f)
}

#[test]
fn other_protocols_are_dropped_and_counted_not_handed_to_the_kernel() {
    let mut gw = Gateway::new(GatewayOptions::default());
    for proto in [47u8, 50, 132] {
        let mut p = client_udp(40000, b"not udp at all");
        p[9] = proto;
        fix_ipv4_checksum(&mut p);
        let (v, _) = from_client(&mut gw, &p);
        assert_eq!(
            v,
            Verdict::Drop(DropReason::NatUnsupportedProtocol),
            "protocol {proto}"
        );
    }
    assert_eq!(gw.dropped(DropReason::NatUnsupportedProtocol), 3);
    assert_eq!(host_packets(&mut gw), 0, "handed to the kernel");
}

#[test]
fn packets_with_ip_options_are_translated() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let plain = client_udp(40000, b"with options");
    // The same datagram with a 4-byte option (NOP NOP NOP EOL) after the header.
    let mut p = Vec::new();
    p.extend_from_slice(&plain[..20]);
    p.extend_from_slice(&[1, 1, 1, 0]);
    p.extend_from_slice(&plain[20..]);
    p[0] = 0x46;
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    fix_ipv4_checksum(&mut p);
    let (v, f) = from_client(&mut gw, &p);
    let tx = tx_bytes(v, &f).unwrap_or_else(|| panic!("not transmitted: {v:?}"));
    let ip = &tx[14..];
    assert_eq!(ip[0], 0x46, "options kept");
    assert_eq!(&ip[12..16], &GW_ADDR.octets(), "source translated");
    assert_eq!(
        wire::checksum::internet_checksum(&ip[..24]),
        0,
        "IP checksum"
    );
    // The UDP checksum still verifies over the new pseudo-header.
    let udp = &ip[24..];
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(udp);
    assert_eq!(
        wire::checksum::internet_checksum(&pseudo),
        0,
        "UDP checksum"
    );
    assert_eq!(host_packets(&mut gw), 0);
}

#[test]
fn packets_for_the_gateway_itself_still_go_to_the_kernel() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let mut p = ipv4_udp(CLIENT_INNER, TUNNEL_ADDR, 40000, 53, b"dns", 64);
    p[9] = 47;
    fix_ipv4_checksum(&mut p);
    let (v, _) = from_client(&mut gw, &p);
    assert_eq!(v, Verdict::Consumed);
    assert_eq!(host_packets(&mut gw), 1);
}

/// `pkt` (20-byte header) cut into fragments of `chunk` payload bytes, identification `id`.
fn fragments(pkt: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    let payload = &pkt[20..];
    let n = payload.len().div_ceil(chunk);
    (0..n)
        .map(|k| {
            let mut f = pkt[..20].to_vec();
            f.extend_from_slice(&payload[k * chunk..((k + 1) * chunk).min(payload.len())]);
            let total = f.len() as u16;
            f[2..4].copy_from_slice(&total.to_be_bytes());
            f[4..6].copy_from_slice(&id.to_be_bytes());
            let mf = if k + 1 < n { 0x2000 } else { 0 };
            f[6..8].copy_from_slice(&(mf | (k * chunk / 8) as u16).to_be_bytes());
            fix_ipv4_checksum(&mut f);
            f
        })
        .collect()
}

#[test]
fn fragments_from_the_tunnel_are_translated_as_a_chain() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let payload = vec![0x5a; 3000];
    let frags = fragments(&client_udp(40000, &payload), 1376, 0x77);
    assert_eq!(frags.len(), 3);
    // A later fragment before its first: dropped, counted, not handed to the kernel.
    let (v, _) = from_client(&mut gw, &frags[2]);
    assert_eq!(v, Verdict::Drop(DropReason::NatFragmentUnknown));
    for (k, f) in frags.iter().enumerate() {
        let (v, frame) = from_client(&mut gw, f);
        let tx = tx_bytes(v, &frame).unwrap_or_else(|| panic!("fragment {k}: {v:?}"));
        let ip = &tx[14..];
        assert_eq!(&ip[12..16], &GW_ADDR.octets(), "fragment {k} source");
        assert_eq!(&ip[4..8], &f[4..8], "identification and offset kept");
        assert_eq!(wire::checksum::internet_checksum(&ip[..20]), 0);
    }
    assert_eq!(host_packets(&mut gw), 0, "handed to the kernel");
}
