//! The benchmark's packets are what a real peer sends: the gateway pipeline decrypts them and
//! transmits exactly the NATed packet expected, and the return packets come back sealed for the
//! client, who opens them to the original flow. A tampered frame is refused.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use bench::fixture::{
    Fixture, CLIENT_MAC, GATEWAY_ADDR, GATEWAY_MAC, LISTEN_PORT, SERVER_ADDR, SERVER_MAC,
    SERVER_PORT,
};
use bench::packets::{check_payload, seal_frame, SizeMix, FRAME_SIZE, HEADROOM, STANDARD_MIXES};
use bench::pipeline::{Direction, Lane, FIRST_FLOW_PORT, FLOWS};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use fastpath::counters::DropReason;
use fastpath::pipeline::Verdict;

struct Parsed {
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ttl: u8,
    payload: Vec<u8>,
}

/// Parses an Ethernet/IPv4/UDP frame and checks its IPv4 header checksum and (when present)
/// its UDP checksum against a full recomputation.
fn parse(frame: &[u8]) -> Parsed {
    let p = SlicedPacket::from_ethernet(frame).expect("a parseable frame");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("no Ethernet header")
    };
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "IPv4 header checksum"
    );
    let Some(TransportSlice::Udp(udp)) = p.transport else {
        panic!("not UDP")
    };
    let u = udp.to_header();
    if u.checksum != 0 {
        let want = u
            .calc_checksum_ipv4(&h, udp.payload())
            .expect("checksum computable");
        assert_eq!(u.checksum, want, "UDP checksum");
    }
    Parsed {
        eth_src: eth.source(),
        eth_dst: eth.destination(),
        src: SocketAddrV4::new(h.source.into(), u.source_port),
        dst: SocketAddrV4::new(h.destination.into(), u.destination_port),
        ttl: h.time_to_live,
        payload: udp.payload().to_vec(),
    }
}

#[test]
fn forward_frames_come_out_as_the_expected_natted_packets() {
    let fixture = Arc::new(Fixture::new(1).unwrap());
    for mix in STANDARD_MIXES {
        let pool = 2 * FLOWS;
        // Lane::new seals every frame and runs it through the pipeline once, failing unless
        // every verdict is Tx.
        let lane = Lane::new(fixture.clone(), 0, mix, pool).unwrap();
        let client = lane.client().tunnel_addr;
        let nat = lane.pipeline().nat().unwrap();
        for i in 0..pool {
            let (inner, _) = lane.packets(i);
            let out = parse(lane.transmitted(i));
            assert_eq!(out.eth_src, GATEWAY_MAC);
            assert_eq!(out.eth_dst, SERVER_MAC);
            assert_eq!(out.dst, SocketAddrV4::new(SERVER_ADDR, SERVER_PORT));
            assert_eq!(*out.src.ip(), GATEWAY_ADDR, "source NAT to the LAN address");
            let inside = SocketAddrV4::new(client, FIRST_FLOW_PORT + (i % FLOWS) as u16);
            let m = nat.lookup_inside(nat::Protocol::Udp, inside).unwrap();
            assert_eq!(out.src, m.external, "the mapping the NAT recorded");
            assert!((61000..=65535).contains(&out.src.port()));
            assert_eq!(out.ttl, 63, "one hop");
            assert_eq!(out.payload, inner[28..], "payload unchanged ({mix:?}, {i})");
            assert_eq!(check_payload(&out.payload), Some(i as u64));
            assert_eq!(lane.transmitted(i).len(), 14 + mix.size(i));
        }
    }
}

#[test]
fn return_frames_are_sealed_for_the_client_and_open_to_the_original_flow() {
    let fixture = Arc::new(Fixture::new(1).unwrap());
    for mix in [SizeMix::Fixed(64), SizeMix::Imix] {
        let pool = FLOWS;
        let mut lane = Lane::new(fixture.clone(), 0, mix, pool).unwrap();
        lane.time(Direction::Reverse, pool as u64).unwrap();
        lane.check().unwrap();
        let c = lane.client();
        for i in 0..pool {
            let out = parse(lane.transmitted(i));
            assert_eq!(out.eth_src, GATEWAY_MAC);
            assert_eq!(out.eth_dst, CLIENT_MAC);
            assert_eq!(out.src, SocketAddrV4::new(GATEWAY_ADDR, LISTEN_PORT));
            assert_eq!(std::net::SocketAddr::V4(out.dst), c.endpoint);
            let mut msg = out.payload.clone();
            let opened = c
                .keypair
                .open_in_place(fixture.now, &mut msg)
                .expect("the client opens what the gateway sealed");
            let inner = parse_inner(&msg[opened.plaintext]);
            assert_eq!(inner.0, SocketAddrV4::new(SERVER_ADDR, SERVER_PORT));
            assert_eq!(
                inner.1,
                SocketAddrV4::new(c.tunnel_addr, FIRST_FLOW_PORT + (i % FLOWS) as u16),
                "NAT reverse restored the client's flow"
            );
            assert_eq!(check_payload(&inner.2), Some(i as u64));
        }
    }
}

/// The IPv6-underlay fixture (the bench's `IPv6 underlay` rows): both directions transmit, and
/// what is sealed back leaves with outer IPv6 whose UDP checksum holds and opens for the client.
#[test]
fn ipv6_underlay_lanes_seal_with_outer_ipv6() {
    let fixture = Arc::new(Fixture::ipv6_underlay(1).unwrap());
    for mix in [SizeMix::Fixed(64), SizeMix::Fixed(1420)] {
        let pool = FLOWS;
        let mut lane = Lane::new(fixture.clone(), 0, mix, pool).unwrap();
        lane.time(Direction::Reverse, pool as u64).unwrap();
        lane.check().unwrap();
        let c = lane.client();
        for i in 0..pool {
            let frame = lane.transmitted(i);
            let h = etherparse::PacketHeaders::from_ethernet_slice(frame).unwrap();
            let Some(etherparse::NetHeaders::Ipv6(ip, _)) = &h.net else {
                panic!("outer IPv6 expected");
            };
            assert_eq!(std::net::IpAddr::from(ip.destination), c.endpoint.ip());
            let Some(etherparse::TransportHeader::Udp(udp)) = &h.transport else {
                panic!("UDP expected");
            };
            let payload = h.payload.slice();
            assert_eq!(udp.checksum, udp.calc_checksum_ipv6(ip, payload).unwrap());
            let mut msg = payload.to_vec();
            let opened = c.keypair.open_in_place(fixture.now, &mut msg).unwrap();
            assert_eq!(
                check_payload(&parse_inner(&msg[opened.plaintext]).2),
                Some(i as u64)
            );
        }
    }
}

/// (source, destination, UDP payload) of a decrypted inner packet (padding after it ignored).
fn parse_inner(p: &[u8]) -> (SocketAddrV4, SocketAddrV4, Vec<u8>) {
    let total = u16::from_be_bytes([p[2], p[3]]) as usize;
    let ip = etherparse::Ipv4Slice::from_slice(&p[..total]).unwrap();
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let udp = etherparse::UdpSlice::from_slice(ip.payload().payload).unwrap();
    (
        SocketAddrV4::new(h.source.into(), udp.source_port()),
        SocketAddrV4::new(h.destination.into(), udp.destination_port()),
        udp.payload().to_vec(),
    )
}

#[test]
fn a_corrupted_or_replayed_frame_is_refused() {
    let fixture = Fixture::new(1).unwrap();
    let c = &fixture.clients[0];
    let mut pipeline = fixture.pipeline(0).unwrap();
    let inner = bench::packets::inner_udp(
        SocketAddrV4::new(c.tunnel_addr, 40000),
        SocketAddrV4::new(SERVER_ADDR, SERVER_PORT),
        512,
        7,
    )
    .unwrap();
    let mut frame = vec![0u8; FRAME_SIZE];
    let seal = |frame: &mut [u8]| {
        seal_frame(
            frame,
            &c.keypair,
            fixture.now,
            1420,
            c.wire_to_gateway(),
            &inner,
        )
        .unwrap()
    };
    let len = seal(&mut frame);
    let original = frame.clone();
    frame[HEADROOM + len - 20] ^= 1;
    assert_eq!(
        pipeline.process(&fixture.batch(), &mut frame, HEADROOM, len),
        Verdict::Drop(DropReason::DecryptAuthFailed)
    );
    let mut again = original.clone();
    assert!(matches!(
        pipeline.process(&fixture.batch(), &mut again, HEADROOM, len),
        Verdict::Tx { .. }
    ));
    let mut replay = original;
    assert_eq!(
        pipeline.process(&fixture.batch(), &mut replay, HEADROOM, len),
        Verdict::Drop(DropReason::DecryptReplayed),
        "the same counter twice"
    );
    // A source the client's AllowedIPs do not cover.
    let spoofed = bench::packets::inner_udp(
        SocketAddrV4::new(Ipv4Addr::new(10, 13, 13, 250), 40000),
        SocketAddrV4::new(SERVER_ADDR, SERVER_PORT),
        64,
        1,
    )
    .unwrap();
    let mut frame = vec![0u8; FRAME_SIZE];
    let len = seal_frame(
        &mut frame,
        &c.keypair,
        fixture.now,
        1420,
        c.wire_to_gateway(),
        &spoofed,
    )
    .unwrap();
    assert_eq!(
        pipeline.process(&fixture.batch(), &mut frame, HEADROOM, len),
        Verdict::Drop(DropReason::SourceNotAllowed)
    );
}

#[test]
fn two_worker_fixture_gives_each_worker_a_client_it_owns() {
    let fixture = Fixture::new(2).unwrap();
    let part = nat::Partition::new(&fixture.nat);
    assert_eq!(fixture.clients.len(), 2);
    for (w, c) in fixture.clients.iter().enumerate() {
        assert_eq!(c.worker, w as u16);
        assert_eq!(part.owner_of_inside(c.tunnel_addr), w as u16);
    }
}

/// The IPv6-inside fixtures (the bench's `IPv6 inside` rows): routed, the client's IPv6 packet
/// leaves untranslated with its hop limit decremented; through NAT66 it leaves from the
/// gateway's IPv6 address, and the return packet is sealed back (outer IPv6) and opens to the
/// client's own IPv6 flow. A routed lane has no reverse direction in the pipeline.
#[test]
fn ipv6_inside_lanes_route_translate_and_seal_back() {
    use bench::fixture::{Inside, GATEWAY_ADDR6, SERVER_ADDR6};
    use std::net::{IpAddr, SocketAddrV6};
    let inner6 = |p: &[u8]| {
        let h = etherparse::PacketHeaders::from_ip_slice(p).unwrap();
        let Some(etherparse::NetHeaders::Ipv6(ip, _)) = &h.net else {
            panic!("inner IPv6 expected");
        };
        let Some(etherparse::TransportHeader::Udp(udp)) = &h.transport else {
            panic!("UDP expected");
        };
        let payload = &h.payload.slice()[..usize::from(udp.length) - 8];
        assert_eq!(udp.checksum, udp.calc_checksum_ipv6(ip, payload).unwrap());
        (
            SocketAddrV6::new(ip.source.into(), udp.source_port, 0, 0),
            SocketAddrV6::new(ip.destination.into(), udp.destination_port, 0, 0),
            ip.hop_limit,
            payload.to_vec(),
        )
    };
    let server = SocketAddrV6::new(SERVER_ADDR6, SERVER_PORT, 0, 0);
    for (inside, translated) in [(Inside::Ipv6Routed, false), (Inside::Ipv6Nat66, true)] {
        let fixture = Arc::new(Fixture::ipv6_inside(1, inside).unwrap());
        for mix in [SizeMix::Fixed(64), SizeMix::Fixed(1420)] {
            let pool = FLOWS;
            let mut lane = Lane::new(fixture.clone(), 0, mix, pool).unwrap();
            let c = lane.client();
            let addr6 = c.tunnel_addr6;
            for i in 0..pool {
                let frame = lane.transmitted(i);
                assert_eq!(frame.len(), 14 + mix.size(i), "{inside:?} {mix:?}");
                let (src, dst, hops, payload) = inner6(&frame[14..]);
                let want_src = if translated { GATEWAY_ADDR6 } else { addr6 };
                assert_eq!(*src.ip(), want_src, "{inside:?}");
                assert_eq!((dst, hops), (server, 63));
                assert_eq!(check_payload(&payload), Some(i as u64));
            }
            if !translated {
                assert!(
                    lane.time(Direction::Reverse, 1).is_err(),
                    "no routed reverse"
                );
                continue;
            }
            lane.time(Direction::Reverse, pool as u64).unwrap();
            lane.check().unwrap();
            let c = lane.client();
            for i in 0..pool {
                let h =
                    etherparse::PacketHeaders::from_ethernet_slice(lane.transmitted(i)).unwrap();
                let Some(etherparse::NetHeaders::Ipv6(ip, _)) = &h.net else {
                    panic!("outer IPv6 expected");
                };
                assert_eq!(IpAddr::from(ip.destination), c.endpoint.ip());
                let mut msg = h.payload.slice().to_vec();
                let opened = c.keypair.open_in_place(fixture.now, &mut msg).unwrap();
                let (src, dst, hops, payload) = inner6(&msg[opened.plaintext]);
                assert_eq!(src, server);
                let flow = FIRST_FLOW_PORT + (i % FLOWS) as u16;
                assert_eq!(dst, SocketAddrV6::new(addr6, flow, 0, 0), "NAT66 reversed");
                assert_eq!(hops, 63);
                assert_eq!(check_payload(&payload), Some(i as u64));
            }
        }
    }
}
