//! IPv6 source NAT through the pipeline (`[nat] masquerade_ipv6`): a decrypted IPv6 packet
//! from the client leaves with the gateway's IPv6 LAN address and a NAT port, the reply from
//! the LAN (a partial checksum, as a veth sender leaves it) comes back to the client's inside
//! address sealed, and what the NAT does not translate is dropped by name instead of going to
//! the kernel. A reply longer than the tunnel carries earns its LAN sender an ICMPv6 packet
//! too big. etherparse checks every checksum it reads.

mod hostile_support;

use std::net::Ipv6Addr;
use std::sync::atomic::Ordering::Relaxed;

use etherparse::{Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use fastpath::counters::DropReason;
use fastpath::pipeline::Verdict;
use fastpath::queue::ToSlowPath;
use hostile_support::*;
use wgproto::time::Timestamp;

const NOW: Timestamp = Timestamp::from_nanos(1_000_000_000);

fn nat66_gateway() -> Gateway {
    Gateway::new(GatewayOptions {
        nat66: true,
        ..GatewayOptions::default()
    })
}

fn udp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(src.octets(), dst.octets(), 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// An IPv6 packet from the LAN, in an Ethernet frame to the gateway.
fn lan_frame6(ip: &[u8]) -> Frame {
    let mut p = Vec::with_capacity(14 + ip.len());
    p.extend_from_slice(&GW_MAC);
    p.extend_from_slice(&LAN_MAC);
    p.extend_from_slice(&0x86ddu16.to_be_bytes());
    p.extend_from_slice(ip);
    Frame::raw(&p)
}

/// The UDP datagram of an IPv6 packet, its checksum verified by etherparse:
/// (source, source port, destination, destination port, hop limit).
fn read_udp6(ip: &[u8]) -> (Ipv6Addr, u16, Ipv6Addr, u16, u8) {
    let s = SlicedPacket::from_ip(ip).expect("an IPv6 packet");
    let Some(NetSlice::Ipv6(v6)) = &s.net else {
        panic!("not IPv6")
    };
    let h = v6.header();
    let Some(TransportSlice::Udp(u)) = &s.transport else {
        panic!("not UDP")
    };
    let want = u
        .to_header()
        .calc_checksum_ipv6_raw(h.source(), h.destination(), u.payload())
        .unwrap();
    assert_eq!(
        u.checksum(),
        want,
        "UDP checksum over the IPv6 pseudo-header"
    );
    (
        h.source_addr(),
        u.source_port(),
        h.destination_addr(),
        u.destination_port(),
        h.hop_limit(),
    )
}

/// The client's view of what the gateway sealed back: the inner packet.
fn opened_by_client(gw: &Gateway, v: Verdict, f: &Frame) -> Vec<u8> {
    let tx = tx_bytes(v, f).unwrap_or_else(|| panic!("sealed back to the client, got {v:?}"));
    let mut msg = tx[42..].to_vec();
    let opened = gw
        .client
        .open_in_place(NOW, &mut msg)
        .expect("the client opens it");
    msg[opened.plaintext].to_vec()
}

#[test]
fn nat66_translates_outbound_and_the_reply_reaches_the_client() {
    let mut gw = nat66_gateway();
    let inner = udp6(CLIENT_INNER6, 5555, SERVER6, 8080, b"hello NAT66");
    let mut f = gw.seal_from_client(NOW, &inner, CLIENT_EP);
    let v = gw.process(NOW, &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).expect("forwarded to the LAN").to_vec();
    assert_eq!(u16::from_be_bytes([tx[12], tx[13]]), 0x86dd);
    let (src, sport, dst, dport, hops) = read_udp6(&tx[14..]);
    assert_eq!(src, GW_ADDR6, "source translated to the egress address");
    assert!((61000..=61999).contains(&sport), "a NAT port: {sport}");
    assert_eq!((dst, dport, hops), (SERVER6, 8080, 63));
    assert_eq!(
        gw.pipeline.nat6().unwrap().counters().translated_outbound,
        1
    );

    // The reply, with the partial checksum a veth sender with tx offload leaves.
    let mut reply = udp6(SERVER6, 8080, GW_ADDR6, sport, b"hello back");
    let mut words = reply[8..40].to_vec();
    words.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 17]);
    words.extend_from_slice(&((reply.len() - 40) as u32).to_be_bytes());
    let partial = wire::checksum::fold(wire::checksum::sum(&words));
    reply[46..48].copy_from_slice(&partial.to_be_bytes());
    let mut r = lan_frame6(&reply);
    let v = gw.process(NOW, &mut r.buf, r.len);
    let back = opened_by_client(&gw, v, &r);
    let (src, sport, dst, dport, hops) = read_udp6(&back);
    assert_eq!((src, sport), (SERVER6, 8080));
    assert_eq!(
        (dst, dport),
        (CLIENT_INNER6, 5555),
        "reverted to the inside endpoint"
    );
    assert_eq!(hops, 63, "a hop from the LAN into the tunnel");
    let c = gw.pipeline.counters();
    assert_eq!(c.csum_completed.load(Relaxed), 1);
    assert_eq!(gw.pipeline.nat6().unwrap().counters().translated_inbound, 1);
}

#[test]
fn nat66_drops_what_it_does_not_translate_instead_of_leaking_it() {
    let mut gw = nat66_gateway();
    // A fragment header (44) after the fixed header.
    let mut inner = udp6(CLIENT_INNER6, 5555, SERVER6, 8080, b"x");
    inner[6] = 44;
    let mut f = gw.seal_from_client(NOW, &inner, CLIENT_EP);
    assert_eq!(
        gw.process(NOW, &mut f.buf, f.len),
        Verdict::Drop(DropReason::NatIpv6ExtensionHeader)
    );
    // SCTP (132): not translated.
    inner[6] = 132;
    let mut f = gw.seal_from_client(NOW, &inner, CLIENT_EP);
    assert_eq!(
        gw.process(NOW, &mut f.buf, f.len),
        Verdict::Drop(DropReason::NatUnsupportedProtocol)
    );
    assert!(
        gw.drain_slow_path()
            .iter()
            .all(|m| !matches!(m, ToSlowPath::ForHost(_))),
        "nothing went to the kernel"
    );
    // Return traffic to a port no mapping holds.
    let mut r = lan_frame6(&udp6(SERVER6, 8080, GW_ADDR6, 61500, b"?"));
    assert_eq!(
        gw.process(NOW, &mut r.buf, r.len),
        Verdict::Drop(DropReason::NatNoMapping)
    );
}

#[test]
fn without_nat66_ipv6_stays_routed_and_lan_ipv6_is_not_taken() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let inner = udp6(CLIENT_INNER6, 5555, SERVER6, 8080, b"routed");
    let mut f = gw.seal_from_client(NOW, &inner, CLIENT_EP);
    let v = gw.process(NOW, &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).expect("forwarded").to_vec();
    assert_eq!(read_udp6(&tx[14..]).0, CLIENT_INNER6, "not translated");
    let mut r = lan_frame6(&udp6(SERVER6, 8080, GW_ADDR6, 61500, b"?"));
    assert_eq!(
        gw.process(NOW, &mut r.buf, r.len),
        Verdict::Drop(DropReason::Unsupported)
    );
}

/// The client's first datagram from `sport` to the server, through the NAT: the external port.
fn map6(gw: &mut Gateway, sport: u16) -> u16 {
    let inner = udp6(CLIENT_INNER6, sport, SERVER6, 8080, b"request");
    let mut f = gw.seal_from_client(NOW, &inner, CLIENT_EP);
    let v = gw.process(NOW, &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).unwrap_or_else(|| panic!("outbound: {v:?}"));
    read_udp6(&tx[14..]).1
}

/// The ICMPv6 error in an Ethernet frame to the LAN, checked by etherparse (addresses,
/// length, checksum over the pseudo-header): its type and quote.
fn icmpv6_to_lan(frame: &[u8]) -> (Icmpv6Type, Vec<u8>) {
    assert_eq!(&frame[..6], &LAN_MAC, "to the LAN sender's MAC");
    assert_eq!(&frame[6..12], &GW_MAC);
    assert_eq!(u16::from_be_bytes([frame[12], frame[13]]), 0x86dd);
    let ip = &frame[14..];
    let s = SlicedPacket::from_ip(ip).expect("an IPv6 packet");
    let Some(NetSlice::Ipv6(v6)) = &s.net else {
        panic!("not IPv6")
    };
    let h = v6.header();
    assert_eq!(h.source_addr(), GW_LAN_ADDR6, "from the route's source");
    assert_eq!(h.destination_addr(), SERVER6, "to the sender");
    assert_eq!(usize::from(h.payload_length()) + 40, ip.len());
    let Some(TransportSlice::Icmpv6(m)) = s.transport else {
        panic!("not ICMPv6")
    };
    let want = m
        .header()
        .icmp_type
        .calc_checksum(h.source(), h.destination(), m.payload())
        .unwrap();
    assert_eq!(m.checksum(), want, "ICMPv6 checksum");
    (m.icmp_type(), m.payload().to_vec())
}

#[test]
fn nat66_return_traffic_over_the_tunnel_mtu_earns_the_lan_sender_packet_too_big() {
    let mut gw = nat66_gateway();
    let port = map6(&mut gw, 5555);
    // A full 1500-byte segment from the server: 80 bytes more than the tunnel carries.
    let payload: Vec<u8> = (0..1452u32).map(|i| (i * 7) as u8).collect();
    let reply = udp6(SERVER6, 8080, GW_ADDR6, port, &payload);
    assert_eq!(reply.len(), 1500);
    let mut r = lan_frame6(&reply);
    let v = gw.process(NOW, &mut r.buf, r.len);
    let Verdict::Tx { ifindex, .. } = v else {
        panic!("packet too big to the LAN, got {v:?}");
    };
    assert_eq!(ifindex, IFINDEX);
    let frame = tx_bytes(v, &r).unwrap();
    assert_eq!(frame.len(), 14 + 1280, "the error is at most 1280 bytes");
    let (t, quote) = icmpv6_to_lan(frame);
    assert_eq!(t, Icmpv6Type::PacketTooBig { mtu: MTU as u32 });
    assert_eq!(
        quote,
        reply[..1280 - 48],
        "quoted as the server sent it, before the reverse translation"
    );
    let c = gw.pipeline.counters();
    assert_eq!(c.icmpv6_packet_too_big.load(Relaxed), 1);
    assert_eq!(c.encrypted.load(Relaxed), 0, "nothing went into the tunnel");

    // Exactly the tunnel MTU is sealed to the client as before.
    let fits = udp6(SERVER6, 8080, GW_ADDR6, port, &payload[..MTU - 48]);
    let mut r = lan_frame6(&fits);
    let v = gw.process(NOW, &mut r.buf, r.len);
    assert_eq!(opened_by_client(&gw, v, &r).len(), MTU);
}

#[test]
fn nat66_packet_too_big_only_for_mapped_traffic_and_rate_limited() {
    let mut gw = nat66_gateway();
    // Too big to a port no mapping holds: a spoofer earns no answer.
    let mut r = lan_frame6(&udp6(SERVER6, 8080, GW_ADDR6, 61500, &[0; 1452]));
    assert_eq!(
        gw.process(NOW, &mut r.buf, r.len),
        Verdict::Drop(DropReason::NatNoMapping)
    );
    assert_eq!(
        gw.pipeline.counters().icmpv6_packet_too_big.load(Relaxed),
        0
    );
    // Through the shared ICMP rate limiter, per destination.
    let port = map6(&mut gw, 5556);
    let sent = (0..20)
        .filter(|_| {
            let mut r = lan_frame6(&udp6(SERVER6, 8080, GW_ADDR6, port, &[1; 1452]));
            matches!(gw.process(NOW, &mut r.buf, r.len), Verdict::Tx { .. })
        })
        .count() as u64;
    let burst = fastpath::icmp_ratelimit::PER_DESTINATION_BURST;
    assert_eq!(sent, burst);
    let c = gw.pipeline.counters();
    assert_eq!(c.icmpv6_packet_too_big.load(Relaxed), burst);
    assert_eq!(c.icmp_ratelimited.load(Relaxed), 20 - burst);
    assert_eq!(gw.dropped(DropReason::TooBig), 20 - burst);
}
