//! WireGuard over an IPv6 underlay through the pipeline: a peer whose endpoint is IPv6 is
//! served as one over IPv4 is (transport data, keepalives, handshakes screened by their macs,
//! cookie replies under load, the roaming report), and what is sealed towards it leaves with
//! Ethernet/IPv6/UDP outer headers whose UDP checksum holds. etherparse reads what is written.
//! Before the outer IPv6 parse and writer, every one of these frames was dropped as
//! `unsupported`.

mod hostile_support;

use std::net::{SocketAddr, SocketAddrV6};

use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use fastpath::counters::DropReason;
use fastpath::pipeline::Verdict;
use fastpath::queue::ToSlowPath;
use hostile_support::*;
use wgproto::time::Timestamp;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000)
}

/// The client's request over IPv6 is opened, source-checked, NATed and forwarded to the
/// server; returns the NAT port it got.
fn request_over_ipv6(gw: &mut Gateway) -> u16 {
    let mut f = gw.seal_from_client6(at(0), &client_udp(6000, b"request"), CLIENT_EP6);
    let v = gw.process(at(0), &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).unwrap_or_else(|| panic!("forwarded to the server, got {v:?}"));
    let h = PacketHeaders::from_ethernet_slice(tx).unwrap();
    let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
        panic!("the inner IPv4 packet goes to the LAN")
    };
    assert_eq!(
        (ip.source, ip.destination),
        (GW_ADDR.octets(), SERVER.octets())
    );
    u16::from_be_bytes([tx[14 + 20], tx[14 + 21]])
}

#[test]
fn transport_data_from_an_ipv6_endpoint_is_forwarded_and_reported_for_roaming() {
    let mut gw = Gateway::new(GatewayOptions::default());
    request_over_ipv6(&mut gw);
    assert_eq!(gw.opened(), 1);
    // The peer's endpoint is IPv4 in the tables: an authenticated packet from its IPv6 endpoint
    // is the roaming the slow path acts on.
    let reports = authenticated(&gw.drain_slow_path());
    assert_eq!(reports, vec![(GW_INDEX, SocketAddr::V6(CLIENT_EP6))]);
}

#[test]
fn replies_are_sealed_with_ipv6_outer_headers_and_a_valid_udp_checksum() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let port = request_over_ipv6(&mut gw);
    // What the slow path publishes after the roaming report.
    gw.tables.peers.get_mut(&PEER).unwrap().endpoint = Some(SocketAddr::V6(CLIENT_EP6));
    for (i, body) in [&b"reply"[..], &[0x5a; 1300][..]].into_iter().enumerate() {
        let mut f = lan_frame(&ipv4_udp(SERVER, GW_ADDR, 8080, port, body, 64));
        let v = gw.process(at(1 + i as u64), &mut f.buf, f.len);
        let Verdict::Tx { start, len, .. } = v else {
            panic!("sealed to the peer, got {v:?}");
        };
        assert!(start >= 2, "the outer headers fit the headroom");
        let frame = &f.buf[start..start + len];
        assert_eq!(&frame[..6], &[2, 0, 0, 0, 0, 0x76], "to the NDP next hop");
        let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
        let Some(NetHeaders::Ipv6(ip, ext)) = &h.net else {
            panic!("an IPv6 outer header, got {:?}", h.net)
        };
        assert!(ext.is_empty());
        assert_eq!(
            (ip.source, ip.destination),
            (GW_ADDR6.octets(), CLIENT_EP6.ip().octets())
        );
        assert_eq!(ip.hop_limit, 64);
        assert_eq!(usize::from(ip.payload_length), len - 14 - 40);
        let Some(TransportHeader::Udp(udp)) = &h.transport else {
            panic!("not UDP");
        };
        assert_eq!(
            (udp.source_port, udp.destination_port),
            (LISTEN_PORT, CLIENT_EP6.port())
        );
        let payload = h.payload.slice();
        assert_ne!(udp.checksum, 0, "mandatory over IPv6");
        assert_eq!(
            udp.checksum,
            udp.calc_checksum_ipv6(ip, payload).unwrap(),
            "the UDP checksum holds"
        );
        // The client opens it and finds the reply, un-NATed to its tunnel address.
        let mut msg = payload.to_vec();
        let opened = gw.client.open_in_place(at(1), &mut msg).expect("opens");
        let inner = &msg[opened.plaintext];
        let p = PacketHeaders::from_ip_slice(inner).unwrap();
        let Some(NetHeaders::Ipv4(inner_ip, _)) = p.net else {
            panic!("inner IPv4")
        };
        assert_eq!(inner_ip.destination, CLIENT_INNER.octets());
        assert_eq!(p.payload.slice(), body);
    }
}

#[test]
fn keepalives_and_handshakes_over_ipv6_take_their_usual_ways() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let mut f = gw.seal_from_client6(at(0), &[], CLIENT_EP6);
    assert_eq!(gw.process(at(0), &mut f.buf, f.len), Verdict::Consumed);
    let c = gw.pipeline.counters();
    assert_eq!(c.keepalives.load(std::sync::atomic::Ordering::Relaxed), 1);
    gw.drain_slow_path();
    // An initiation (no checker published: straight to the slow path, with its IPv6 source).
    let mut msg = [7u8; 148];
    msg[..4].copy_from_slice(&[1, 0, 0, 0]);
    let gw_ep = SocketAddrV6::new(GW_ADDR6, LISTEN_PORT, 0, 0);
    let mut f = udp6_frame(CLIENT_EP6, gw_ep, &msg);
    assert_eq!(gw.process(at(1), &mut f.buf, f.len), Verdict::Consumed);
    let queued = gw.drain_slow_path();
    let [ToSlowPath::Handshake(d)] = &queued[..] else {
        panic!("one handshake queued, got {} messages", queued.len());
    };
    assert_eq!(d.src, SocketAddr::V6(CLIENT_EP6));
    // A handshake of the wrong size is junk there too.
    let mut f = udp6_frame(CLIENT_EP6, gw_ep, &msg[..100]);
    assert_eq!(
        gw.process(at(1), &mut f.buf, f.len),
        Verdict::Drop(DropReason::HandshakeBadSize)
    );
}

/// Under load the worker answers a valid-mac1 initiation from an IPv6 source with a cookie
/// reply over IPv6, bound to that address and port.
#[test]
fn cookie_replies_go_back_over_ipv6() {
    use rand_core::OsRng;
    use wgproto::cookie::{CookieChecker, CookieState};
    use wgproto::messages::{classify, Message};

    let mut gw = Gateway::new(GatewayOptions::default());
    let gw_public = wgproto::keys::PrivateKey::generate(&mut OsRng).public_key();
    let mut checker = CookieChecker::new(&gw_public);
    checker.rotate_if_stale(at(0), &mut OsRng);
    gw.tables.handshake_macs = Some(std::sync::Arc::new(checker));
    let gw_ep = SocketAddrV6::new(GW_ADDR6, LISTEN_PORT, 0, 0);
    let mut client = CookieState::new(&gw_public);
    let mut reply = None;
    // Fill an eighth of the handshake lane: the slow path is then under load.
    for i in 0..GatewayOptions::default().slow_queue {
        let mut msg = [i as u8; 148];
        msg[..4].copy_from_slice(&[1, 0, 0, 0]);
        client.add_macs(&mut msg, at(1)).unwrap();
        let mut f = udp6_frame(CLIENT_EP6, gw_ep, &msg);
        if let Verdict::Tx { start, len, .. } = gw.process(at(1), &mut f.buf, f.len) {
            reply = Some(f.buf[start..start + len].to_vec());
            break;
        }
    }
    let frame = reply.expect("a cookie reply under load");
    assert_eq!(frame.len(), 14 + 40 + 8 + 64);
    let h = PacketHeaders::from_ethernet_slice(&frame).unwrap();
    let Some(NetHeaders::Ipv6(ip, _)) = &h.net else {
        panic!("not IPv6")
    };
    assert_eq!(
        (ip.source, ip.destination),
        (GW_ADDR6.octets(), CLIENT_EP6.ip().octets())
    );
    let Some(TransportHeader::Udp(udp)) = &h.transport else {
        panic!("not UDP")
    };
    assert_eq!(
        udp.checksum,
        udp.calc_checksum_ipv6(ip, h.payload.slice()).unwrap()
    );
    let Ok(Message::CookieReply(r)) = classify(h.payload.slice()) else {
        panic!("not a cookie reply");
    };
    client
        .consume_reply(&r, at(1))
        .expect("the client takes the cookie");
}

#[test]
fn malformed_and_foreign_ipv6_frames_are_dropped_by_name() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let good = gw.seal_from_client6(at(0), &client_udp(6000, b"x"), CLIENT_EP6);
    // Payload length beyond the frame.
    let mut f = good.clone();
    f.buf[RX_OFFSET + 18..RX_OFFSET + 20].copy_from_slice(&2000u16.to_be_bytes());
    assert_eq!(
        gw.process(at(0), &mut f.buf, f.len),
        Verdict::Drop(DropReason::Malformed)
    );
    // A UDP length beyond the packet.
    let mut f = good.clone();
    f.buf[RX_OFFSET + 58..RX_OFFSET + 60].copy_from_slice(&2000u16.to_be_bytes());
    assert_eq!(
        gw.process(at(0), &mut f.buf, f.len),
        Verdict::Drop(DropReason::Malformed)
    );
    // An extension header (the XDP program passes these to the kernel) and another port.
    let mut f = good.clone();
    f.buf[RX_OFFSET + 20] = 0;
    assert_eq!(
        gw.process(at(0), &mut f.buf, f.len),
        Verdict::Drop(DropReason::Unsupported)
    );
    let mut f = good.clone();
    f.buf[RX_OFFSET + 56..RX_OFFSET + 58].copy_from_slice(&53u16.to_be_bytes());
    assert_eq!(
        gw.process(at(0), &mut f.buf, f.len),
        Verdict::Drop(DropReason::Unsupported)
    );
    // Cut short anywhere: never a panic, never opened.
    for cut in 0..good.len {
        let mut f = Frame::raw(&good.packet()[..cut]);
        assert!(matches!(
            gw.process(at(0), &mut f.buf, f.len),
            Verdict::Drop(_)
        ));
    }
    assert_eq!(gw.opened(), 0);
    // The frame itself was fine.
    let mut f = good;
    assert!(matches!(
        gw.process(at(0), &mut f.buf, f.len),
        Verdict::Tx { .. }
    ));
}
