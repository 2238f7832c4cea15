//! The outer IPv4 header of what the pipeline seals towards a peer is the one kernel WireGuard
//! sends: DF clear, so that a router on a path with a smaller MTU fragments the datagram
//! instead of dropping it, and an identification that changes with every packet, so that
//! the peer can reassemble those fragments (RFC 6864). etherparse reads the headers.

mod hostile_support;

use etherparse::{NetHeaders, PacketHeaders};
use fastpath::pipeline::Verdict;
use hostile_support::*;
use wgproto::time::Timestamp;

const NOW: Timestamp = Timestamp::from_nanos(1_000_000_000);

/// (DF, identification) of the outer IPv4 header of each reply sealed to the client.
fn outer_headers(gw: &mut Gateway, replies: usize) -> Vec<(bool, u16)> {
    let mut f = gw.seal_from_client(NOW, &client_udp(6000, b"request"), CLIENT_EP);
    let v = gw.process(NOW, &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).expect("the request is forwarded");
    let port = u16::from_be_bytes([tx[14 + 20], tx[14 + 21]]);
    (0..replies)
        .map(|_| {
            let mut f = lan_frame(&ipv4_udp(SERVER, GW_ADDR, 8080, port, b"reply", 64));
            let v = gw.process(NOW, &mut f.buf, f.len);
            let Verdict::Tx { start, len, .. } = v else {
                panic!("sealed to the peer, got {v:?}");
            };
            let h = PacketHeaders::from_ethernet_slice(&f.buf[start..start + len]).unwrap();
            let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
                panic!("an IPv4 outer header")
            };
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            (ip.dont_fragment, ip.identification)
        })
        .collect()
}

#[test]
fn outer_packets_may_be_fragmented_and_carry_a_changing_identification() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let headers = outer_headers(&mut gw, 4);
    assert!(headers.iter().all(|(df, _)| !df), "DF clear: {headers:?}");
    for pair in headers.windows(2) {
        assert_eq!(
            pair[1].1,
            pair[0].1.wrapping_add(1),
            "one identification per packet: {headers:?}"
        );
    }
}
