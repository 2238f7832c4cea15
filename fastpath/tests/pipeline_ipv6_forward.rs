//! IPv6 inside the tunnel, routed by the fast path: a decrypted IPv6 packet from the client is
//! forwarded with the route cache's next hop (hop limit decremented, Ethernet type 0x86DD), or
//! answered into the tunnel with ICMPv6 time exceeded (hop limit 1) or packet too big (larger
//! than the next hop's MTU), or handed to the kernel through wg0 when it is the host's
//! (link-local, multicast, the gateway's own addresses, Hop-by-Hop options, other extension
//! headers). etherparse reads what is written, ICMPv6 checksums included.

mod hostile_support;

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::Ordering::Relaxed;

use etherparse::{
    EtherType, Icmpv6Type, IpNumber, Ipv6Header, LinkSlice, NetSlice, SlicedPacket, TransportSlice,
};
use fastpath::counters::DropReason;
use fastpath::pipeline::{Batch, Resume, Verdict};
use fastpath::queue::ToSlowPath;
use fastpath::route::{Link, Mac, Resolution, RouteSnapshot};
use hostile_support::*;
use wgproto::time::Timestamp;

const NOW: Timestamp = Timestamp::from_nanos(1_000_000_000);

/// An IPv6 packet `src` -> `dst` with hop limit `hop_limit`, next header `next` and `payload`.
fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, next: u8, payload: &[u8]) -> Vec<u8> {
    let h = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: payload.len() as u16,
        next_header: IpNumber(next),
        hop_limit,
        source: src.octets(),
        destination: dst.octets(),
    };
    let mut p = h.to_bytes().to_vec();
    p.extend_from_slice(payload);
    p
}

/// A UDP datagram from the client to the server's port 8080 (the checksum is not the
/// gateway's business when it routes).
fn client_udp6(hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let mut udp = vec![0x15, 0xb3, 0x1f, 0x90];
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    ipv6(CLIENT_INNER6, SERVER6, hop_limit, 17, &udp)
}

/// Seals `inner` from the client and runs it through the gateway.
fn from_client(gw: &mut Gateway, inner: &[u8]) -> (Verdict, Frame) {
    let mut f = gw.seal_from_client(NOW, inner, CLIENT_EP);
    let v = gw.process(NOW, &mut f.buf, f.len);
    (v, f)
}

/// The client's view of what the gateway sealed back: the inner packet.
fn opened_by_client(gw: &Gateway, v: Verdict, f: &Frame) -> Vec<u8> {
    let Verdict::Tx {
        start,
        len,
        ifindex,
    } = v
    else {
        panic!("sealed back to the client, got {v:?}");
    };
    assert_eq!(ifindex, IFINDEX);
    let tx = &f.buf[start..start + len];
    let h = SlicedPacket::from_ethernet(tx).unwrap();
    let Some(NetSlice::Ipv4(outer)) = &h.net else {
        panic!("an outer IPv4 header")
    };
    assert_eq!(outer.header().destination_addr(), *CLIENT_EP.ip());
    let mut msg = tx[42..].to_vec();
    let opened = gw
        .client
        .open_in_place(NOW, &mut msg)
        .expect("the client opens it");
    msg[opened.plaintext].to_vec()
}

/// Reads an ICMPv6 error with etherparse and checks its addresses, checksum and length:
/// (type, quoted bytes).
fn icmpv6_error(packet: &[u8]) -> (Icmpv6Type, Vec<u8>) {
    let s = SlicedPacket::from_ip(packet).expect("an IPv6 packet");
    let Some(NetSlice::Ipv6(ip)) = &s.net else {
        panic!("not IPv6: {packet:x?}")
    };
    let h = ip.header();
    assert_eq!(h.source_addr(), TUNNEL_ADDR6, "from wg0's IPv6 address");
    assert_eq!(h.destination_addr(), CLIENT_INNER6, "to the sender");
    assert!(packet.len() <= 1280, "{} bytes", packet.len());
    let Some(TransportSlice::Icmpv6(m)) = s.transport else {
        panic!("not ICMPv6")
    };
    let expected = m
        .header()
        .icmp_type
        .calc_checksum(h.source(), h.destination(), m.payload())
        .unwrap();
    assert_eq!(m.checksum(), expected, "ICMPv6 checksum (pseudo-header)");
    (m.icmp_type(), m.payload().to_vec())
}

#[test]
fn a_packet_to_the_lan_is_routed_with_its_hop_limit_decremented() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let inner = client_udp6(64, b"hello over IPv6");
    let (v, f) = from_client(&mut gw, &inner);
    let tx = tx_bytes(v, &f).expect("forwarded by the fast path");
    let Verdict::Tx { ifindex, .. } = v else {
        unreachable!()
    };
    assert_eq!(ifindex, IFINDEX);
    let s = SlicedPacket::from_ethernet(tx).unwrap();
    let Some(LinkSlice::Ethernet2(eth)) = &s.link else {
        panic!("Ethernet")
    };
    assert_eq!(eth.ether_type(), EtherType::IPV6);
    assert_eq!((eth.source(), eth.destination()), (GW_MAC, LAN_MAC));
    let Some(NetSlice::Ipv6(ip)) = &s.net else {
        panic!("IPv6")
    };
    assert_eq!(ip.header().hop_limit(), 63);
    assert_eq!(
        ip.header().source_addr(),
        CLIENT_INNER6,
        "routed, not translated"
    );
    assert_eq!(ip.header().destination_addr(), SERVER6);
    assert_eq!(&tx[14 + 8..], &inner[8..], "nothing else changed");
    let c = gw.pipeline.counters();
    assert_eq!(c.forwarded_ipv6.load(Relaxed), 1);
    assert_eq!(c.to_slowpath.load(Relaxed), 0, "not through wg0");
    assert!(gw
        .drain_slow_path()
        .iter()
        .all(|m| !matches!(m, ToSlowPath::ForHost(_))));
}

#[test]
fn a_source_the_peer_does_not_own_is_dropped() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let spoofed = "fd13::99".parse().unwrap();
    let (v, _) = from_client(&mut gw, &ipv6(spoofed, SERVER6, 64, 17, &[0; 8]));
    assert_eq!(v, Verdict::Drop(DropReason::SourceNotAllowed));
    assert_eq!(gw.pipeline.counters().forwarded_ipv6.load(Relaxed), 0);
}

#[test]
fn hop_limit_one_is_answered_with_time_exceeded_into_the_tunnel() {
    let mut gw = Gateway::new(GatewayOptions::default());
    // An echo request, as `ping -6 -t 1` sends.
    let inner = ipv6(
        CLIENT_INNER6,
        SERVER6,
        1,
        58,
        &[128, 0, 0x12, 0x34, 0, 7, 0, 1, 9, 9],
    );
    let (v, f) = from_client(&mut gw, &inner);
    let reply = opened_by_client(&gw, v, &f);
    let (t, quote) = icmpv6_error(&reply);
    assert!(
        matches!(
            t,
            Icmpv6Type::TimeExceeded(etherparse::icmpv6::TimeExceededCode::HopLimitExceeded)
        ),
        "{t:?}"
    );
    assert_eq!(quote, inner, "the whole offending packet, as it arrived");
    let c = gw.pipeline.counters();
    assert_eq!(c.icmpv6_time_exceeded.load(Relaxed), 1);
    assert_eq!(c.forwarded_ipv6.load(Relaxed), 0);
    // Hop limit 0 is no better; an ICMPv6 error is never answered with one.
    let (v, f) = from_client(&mut gw, &client_udp6(0, b"x"));
    assert!(matches!(
        icmpv6_error(&opened_by_client(&gw, v, &f)).0,
        Icmpv6Type::TimeExceeded(_)
    ));
    let error = ipv6(CLIENT_INNER6, SERVER6, 1, 58, &[1, 0, 0, 0, 0, 0, 0, 0]);
    let (v, _) = from_client(&mut gw, &error);
    assert_eq!(v, Verdict::Drop(DropReason::HopLimitExceeded));
}

#[test]
fn time_exceeded_is_rate_limited_per_destination() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let sent = (0..20)
        .filter(|_| {
            matches!(
                from_client(&mut gw, &client_udp6(1, b"x")).0,
                Verdict::Tx { .. }
            )
        })
        .count();
    assert_eq!(
        sent,
        fastpath::icmp_ratelimit::PER_DESTINATION_BURST as usize
    );
    assert_eq!(gw.dropped(DropReason::HopLimitExceeded), 20 - sent as u64);
    assert_eq!(
        gw.pipeline.counters().icmp_ratelimited.load(Relaxed),
        20 - sent as u64
    );
}

#[test]
fn too_big_for_the_next_hop_is_answered_with_packet_too_big() {
    let mut gw = Gateway::new(GatewayOptions::default());
    // The LAN link is 1280 bytes wide; the tunnel carries 1420.
    gw.routes = RouteSnapshot::from_entries(
        [
            (IpAddr::V6(SERVER6), Resolution::Ready(lan_hop(1280))),
            (
                IpAddr::V4(*CLIENT_EP.ip()),
                Resolution::Ready(NextHopOn::wan()),
            ),
        ],
        [],
    );
    let inner = client_udp6(64, &[0x5a; 1300]);
    assert!(inner.len() > 1280 && inner.len() <= MTU);
    let (v, f) = from_client(&mut gw, &inner);
    let reply = opened_by_client(&gw, v, &f);
    assert_eq!(
        reply.len(),
        1280,
        "as much of the packet as fits in 1280 bytes"
    );
    let (t, quote) = icmpv6_error(&reply);
    assert_eq!(t, Icmpv6Type::PacketTooBig { mtu: 1280 });
    assert_eq!(quote, inner[..1280 - 48], "quoted as it arrived");
    assert_eq!(
        gw.pipeline.counters().icmpv6_packet_too_big.load(Relaxed),
        1
    );
    // Exactly the link's MTU goes through.
    let (v, f) = from_client(&mut gw, &client_udp6(64, &[0x5a; 1280 - 48]));
    assert_eq!(tx_bytes(v, &f).map(<[u8]>::len), Some(14 + 1280));
}

#[test]
fn what_is_the_hosts_goes_to_the_kernel_through_wg0() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
    let cases = [
        // Neighbour solicitation to wg0's solicited-node group, and to a link-local address.
        ipv6(
            CLIENT_INNER6,
            "ff02::1:ff00:1".parse().unwrap(),
            255,
            58,
            &[135, 0, 0, 0],
        ),
        ipv6(CLIENT_INNER6, link_local, 64, 17, &[0; 8]),
        // Multicast beyond the link.
        ipv6(CLIENT_INNER6, "ff0e::1".parse().unwrap(), 64, 17, &[0; 8]),
        // The gateway's own addresses (wg0's and the LAN NIC's).
        ipv6(
            CLIENT_INNER6,
            TUNNEL_ADDR6,
            64,
            58,
            &[128, 0, 0, 0, 0, 1, 0, 1],
        ),
        ipv6(CLIENT_INNER6, GW_ADDR6, 64, 6, &[0; 20]),
        // Hop-by-Hop options (an MLD report carries Router Alert), even to the LAN, and hop
        // limit 1: the kernel reads them first.
        ipv6(CLIENT_INNER6, SERVER6, 1, 0, &[58, 0, 5, 2, 0, 0, 1, 0]),
        // A fragment to the LAN: the kernel forwards it as it is.
        ipv6(
            CLIENT_INNER6,
            SERVER6,
            64,
            44,
            &[17, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0],
        ),
    ];
    for inner in &cases {
        let (v, _) = from_client(&mut gw, inner);
        assert_eq!(v, Verdict::Consumed, "{inner:x?}");
        let host: Vec<_> = gw
            .drain_slow_path()
            .into_iter()
            .filter_map(|m| match m {
                ToSlowPath::ForHost(p) => Some(p.bytes().to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(host, vec![inner.clone()], "unchanged, into wg0");
    }
    let c = gw.pipeline.counters();
    assert_eq!(c.forwarded_ipv6.load(Relaxed), 0);
    assert_eq!(c.icmpv6_time_exceeded.load(Relaxed), 0);
}

#[test]
fn an_unresolved_next_hop_parks_the_packet_until_it_is_known() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let elsewhere: Ipv6Addr = "2001:db8:99::1".parse().unwrap();
    let inner = ipv6(CLIENT_INNER6, elsewhere, 64, 17, &[1, 2, 3, 4, 0, 8, 0, 0]);
    let (v, mut f) = from_client(&mut gw, &inner);
    let Verdict::Park {
        resume: Resume::Forward6,
        start,
        len,
    } = v
    else {
        panic!("parked while the route is asked of the kernel, got {v:?}");
    };
    assert_eq!(&f.buf[start..start + len], &inner[..]);
    // The kernel answered: the next hop is a router on the LAN.
    let ready = Resolution::Ready(NextHopOn::router());
    gw.routes = RouteSnapshot::from_entries(
        [(IpAddr::V6(elsewhere), ready)],
        [Link {
            index: IFINDEX,
            name: "eth0".into(),
            mac: Some(Mac(GW_MAC)),
            mtu: 1500,
            up: true,
        }],
    );
    let batch = Batch {
        tables: &gw.tables,
        routes: &gw.routes,
        now: NOW,
    };
    let v = gw
        .pipeline
        .resume(&batch, &mut f.buf, Resume::Forward6, start, len);
    let tx = tx_bytes(v, &f).expect("forwarded once resolved");
    assert_eq!(&tx[..6], &[2, 0, 0, 0, 0, 0x01], "to the router's MAC");
    assert_eq!(tx[14 + 7], 63, "hop limit decremented once");
    // Unreachable destinations are dropped, counted.
    gw.routes = RouteSnapshot::from_entries(
        [(
            IpAddr::V6(elsewhere),
            Resolution::Unreachable { errno: 101 },
        )],
        [],
    );
    assert_eq!(
        from_client(&mut gw, &inner).0,
        Verdict::Drop(DropReason::NoRoute)
    );
}

/// Next hops these tests need beyond the fixture's.
struct NextHopOn;

impl NextHopOn {
    /// The client's endpoint, reached from the gateway's IPv4 address.
    fn wan() -> fastpath::route::NextHop {
        fastpath::route::NextHop {
            src_addr: Some(IpAddr::V4(GW_ADDR)),
            ..lan_hop(1500)
        }
    }

    /// A router on the LAN (MAC 02:00:00:00:00:01).
    fn router() -> fastpath::route::NextHop {
        fastpath::route::NextHop {
            dst_mac: Mac([2, 0, 0, 0, 0, 1]),
            gateway: Some(IpAddr::V6("2001:db8:23::1".parse().unwrap())),
            ..lan_hop(1500)
        }
    }
}
