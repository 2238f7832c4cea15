//! The gateway's own datagrams to a peer's IPv6 endpoint on a path narrower than they are (a
//! router sent Packet Too Big; the route cache publishes the learned MTU as `NextHop::mtu`):
//! the pipeline says `FragmentOuter6`, and the fragments it writes each fit the path MTU, carry
//! a Fragment header with one identification per packet (a new one for the next packet), and
//! reassemble by offset into the datagram the peer opens (etherparse checks the IPv6 and UDP
//! headers and the checksum, and reads every Fragment header as the byte checks do; versions
//! before 0.20 misread it). Before, the sealed datagram left whole and the router dropped
//! it: a TCP download to the peer stalled. Plus the fragmenter alone, property-tested against
//! a reassembly by offset.

mod hostile_support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;

use etherparse::{PacketHeaders, TransportHeader};
use fastpath::fragmentation6::Fragmenter6;
use fastpath::pipeline::Verdict;
use fastpath::route::{Link, Mac, NextHop, Resolution, RouteSnapshot};
use hostile_support::*;
use proptest::prelude::*;
use wgproto::time::Timestamp;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000)
}

const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x76];

/// The server on the LAN, and the client's IPv6 endpoint with a path MTU of `pmtu`.
fn routes_with_path_mtu(pmtu: u32) -> RouteSnapshot {
    let hop = |dst_mac, src: IpAddr, mtu| NextHop {
        ifindex: IFINDEX,
        src_mac: Mac(GW_MAC),
        dst_mac: Mac(dst_mac),
        gateway: None,
        src_addr: Some(src),
        mtu,
    };
    RouteSnapshot::from_entries(
        [
            (
                IpAddr::V4(SERVER),
                Resolution::Ready(hop(LAN_MAC, IpAddr::V4(GW_ADDR), 1500)),
            ),
            (
                IpAddr::V6(*CLIENT_EP6.ip()),
                Resolution::Ready(hop(PEER_MAC, IpAddr::V6(GW_ADDR6), pmtu)),
            ),
        ],
        [Link {
            index: IFINDEX,
            name: "eth0".into(),
            mac: Some(Mac(GW_MAC)),
            mtu: 1500,
            up: true,
        }],
    )
}

/// A gateway whose client sits on its IPv6 endpoint behind a `pmtu`-byte path, with a NAT
/// mapping for the client's request; the mapped port.
fn gateway(pmtu: u32) -> (Gateway, u16) {
    let mut gw = Gateway::new(GatewayOptions::default());
    gw.routes = routes_with_path_mtu(pmtu);
    gw.tables.peers.get_mut(&PEER).unwrap().endpoint = Some(SocketAddr::V6(CLIENT_EP6));
    let mut f = gw.seal_from_client6(at(0), &client_udp(6000, b"request"), CLIENT_EP6);
    let v = gw.process(at(0), &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).unwrap_or_else(|| panic!("forwarded to the server, got {v:?}"));
    (gw, u16::from_be_bytes([tx[14 + 20], tx[14 + 21]]))
}

/// The server's `body` back to the client through the gateway: its verdict and frame.
fn reply(gw: &mut Gateway, port: u16, body: &[u8], ms: u64) -> (Verdict, Frame) {
    let mut f = lan_frame(&ipv4_udp(SERVER, GW_ADDR, 8080, port, body, 64));
    let v = gw.process(at(ms), &mut f.buf, f.len);
    (v, f)
}

/// The frames the worker would send for a `FragmentOuter6` verdict on `f`.
fn fragments(gw: &mut Gateway, v: Verdict, f: &Frame) -> Vec<Vec<u8>> {
    let Verdict::FragmentOuter6 {
        ifindex,
        start,
        len,
        mtu,
    } = v
    else {
        panic!("expected the sealed datagram to be fragmented, got {v:?}");
    };
    assert_eq!(ifindex, IFINDEX);
    let sealed = &f.buf[start..start + len];
    let plan = gw.pipeline.outer_fragmenter6(sealed, mtu).expect("plan");
    (0..plan.count())
        .map(|i| {
            let mut out = vec![0u8; FRAME_SIZE];
            let v = gw
                .pipeline
                .write_outer_fragment6(sealed, &plan, i, &mut out, ifindex);
            let Verdict::Tx { start, len, .. } = v else {
                panic!("fragment {i}: {v:?}");
            };
            out[start..start + len].to_vec()
        })
        .collect()
}

/// Reads the Fragment header of the IPv6 fragment `ip` with etherparse and asserts it says what
/// the tests read by hand: (byte offset, more fragments, identification, the header after it)
/// and the fragment's data.
fn assert_fragment_by_etherparse(ip: &[u8], want: (usize, bool, u32, u8), data: &[u8]) {
    let (header, rest) = etherparse::Ipv6Header::from_slice(ip).expect("an IPv6 header");
    let (exts, next, after) = etherparse::Ipv6Extensions::from_slice(header.next_header, rest)
        .expect("extension headers etherparse reads");
    let f = exts.fragment.expect("a Fragment header");
    assert_eq!(f.next_header, next, "nothing but the Fragment header");
    let got = (
        usize::from(f.fragment_offset.byte_offset()),
        f.more_fragments,
        f.identification,
        f.next_header.0,
    );
    assert_eq!(got, want, "the Fragment header as etherparse reads it");
    assert!(after == data, "the fragment's data as etherparse sees it");
}

/// Reassembles the Ethernet/IPv6 fragments `frames` by offset (RFC 8200 §4.5: the fixed
/// header, then the Fragment header, then data); the fragmentable part (UDP header and
/// message) and the identification they share.
fn reassemble(frames: &[Vec<u8>]) -> (Vec<u8>, u32) {
    let mut data: Vec<Option<u8>> = Vec::new();
    let mut ids = Vec::new();
    let mut last_end = None;
    for frame in frames {
        let ip = &frame[14..];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(
            usize::from(u16::from_be_bytes([ip[4], ip[5]])),
            ip.len() - 40
        );
        assert_eq!(ip[6], 44, "a Fragment header");
        assert_eq!(ip[40], 17, "UDP in the fragmentable part");
        let word = u16::from_be_bytes([ip[42], ip[43]]);
        let (offset, more) = (usize::from(word & !7), word & 1 == 1);
        ids.push(u32::from_be_bytes([ip[44], ip[45], ip[46], ip[47]]));
        let piece = &ip[48..];
        assert_fragment_by_etherparse(ip, (offset, more, ids[ids.len() - 1], 17), piece);
        if more {
            assert_eq!(
                piece.len() % 8,
                0,
                "only the last may end off an 8-byte boundary"
            );
        } else {
            last_end = Some(offset + piece.len());
        }
        if data.len() < offset + piece.len() {
            data.resize(offset + piece.len(), None);
        }
        for (k, b) in piece.iter().enumerate() {
            assert!(
                data[offset + k].replace(*b).is_none(),
                "byte {} twice",
                offset + k
            );
        }
    }
    assert_eq!(
        last_end,
        Some(data.len()),
        "the last fragment ends the datagram"
    );
    ids.dedup();
    assert_eq!(ids.len(), 1, "one identification per packet: {ids:?}");
    let whole = data
        .into_iter()
        .map(|b| b.expect("every byte carried"))
        .collect();
    (whole, ids[0])
}

#[test]
fn a_full_size_reply_to_an_ipv6_endpoint_behind_a_1400_byte_path_leaves_in_fragments() {
    let (mut gw, port) = gateway(1400);
    let body = vec![0x5a; 1392]; // a 1420-byte inner packet: a 1500-byte outer one
    let (v, f) = reply(&mut gw, port, &body, 1);
    let frames = fragments(&mut gw, v, &f);
    assert_eq!(frames.len(), 2);
    for (i, frame) in frames.iter().enumerate() {
        assert!(
            frame.len() - 14 <= 1400,
            "fragment {i}: {} bytes",
            frame.len()
        );
        assert_eq!(&frame[..6], &PEER_MAC, "to the endpoint's next hop");
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
    }
    let (dgram, id1) = reassemble(&frames);
    // The datagram as a whole: UDP from the listen port to the client's, checksum over all of
    // it, and a message the client opens to the server's reply.
    let Verdict::FragmentOuter6 { start, len, .. } = v else {
        unreachable!()
    };
    assert_eq!(&dgram[..], &f.buf[start + 14 + 40..start + len]);
    let ip = etherparse::Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: dgram.len() as u16,
        next_header: etherparse::IpNumber::UDP,
        hop_limit: 64,
        source: GW_ADDR6.octets(),
        destination: CLIENT_EP6.ip().octets(),
    };
    let (udp, msg) = etherparse::UdpHeader::from_slice(&dgram).unwrap();
    assert_eq!(
        (udp.source_port, udp.destination_port),
        (LISTEN_PORT, CLIENT_EP6.port())
    );
    assert_eq!(udp.checksum, udp.calc_checksum_ipv6(&ip, msg).unwrap());
    let mut msg = msg.to_vec();
    let opened = gw.client.open_in_place(at(1), &mut msg).expect("opens");
    let inner = PacketHeaders::from_ip_slice(&msg[opened.plaintext]).unwrap();
    let Some(TransportHeader::Udp(_)) = inner.transport else {
        panic!("the server's UDP reply inside")
    };
    assert_eq!(inner.payload.slice(), &body[..]);
    let c = gw.pipeline.counters().clone();
    assert_eq!(c.outer_fragmented_ipv6.load(Relaxed), 1);
    assert_eq!(c.encrypted.load(Relaxed), 1);
    // The next packet: a new identification.
    let (v, f) = reply(&mut gw, port, &body, 2);
    let (_, id2) = reassemble(&fragments(&mut gw, v, &f));
    assert_ne!(id1, id2);
    assert_eq!(c.outer_fragmented_ipv6.load(Relaxed), 2);
}

#[test]
fn what_fits_the_path_and_ipv4_endpoints_are_sent_whole() {
    let (mut gw, port) = gateway(1400);
    // 1300 + 28 inner, 1360 sealed, 1408 outer: over. 1200: 1308 outer, under.
    let (v, _) = reply(&mut gw, port, &[1; 1200], 1);
    assert!(matches!(v, Verdict::Tx { .. }), "{v:?}");
    let (mut gw, port) = gateway(1500);
    let (v, _) = reply(&mut gw, port, &[1; 1392], 1);
    assert!(
        matches!(v, Verdict::Tx { .. }),
        "1500 bytes fit a 1500-byte path: {v:?}"
    );
    // An IPv4 endpoint is never fragmented by the gateway (DF is clear: routers may).
    let (mut gw, port) = gateway(1400);
    gw.tables.peers.get_mut(&PEER).unwrap().endpoint = Some(SocketAddr::V4(CLIENT_EP));
    gw.routes = RouteSnapshot::from_entries(
        [(
            IpAddr::V4(*CLIENT_EP.ip()),
            Resolution::Ready(NextHop {
                ifindex: IFINDEX,
                src_mac: Mac(GW_MAC),
                dst_mac: Mac(PEER_MAC),
                gateway: None,
                src_addr: Some(IpAddr::V4(GW_ADDR)),
                mtu: 1400,
            }),
        )],
        [],
    );
    let (v, _) = reply(&mut gw, port, &[1; 1392], 1);
    assert!(matches!(v, Verdict::Tx { .. }), "{v:?}");
    assert_eq!(
        gw.pipeline.counters().outer_fragmented_ipv6.load(Relaxed),
        0
    );
}

/// Reassembles by offset what [`Fragmenter6`] wrote, checking each fragment on the way.
fn reassemble_by_offset(packet: &[u8], mtu: usize, plan: &Fragmenter6) -> Vec<u8> {
    let mut data = vec![None; packet.len() - 40];
    let mut out = vec![0u8; 4096];
    let n = plan.count();
    for i in 0..n {
        let len = plan.write(packet, i, &mut out).unwrap();
        let f = &out[..len];
        if n == 1 {
            assert_eq!(f, packet, "a packet that fits is sent as it is");
            return f[40..].to_vec();
        }
        assert!(len <= mtu.max(1280), "fragment {i}: {len} > {mtu}");
        assert_eq!(&f[..4], &packet[..4]);
        assert_eq!(&f[7..40], &packet[7..40], "hop limit and addresses kept");
        assert_eq!(f[6], 44, "a Fragment header follows");
        assert_eq!(usize::from(u16::from_be_bytes([f[4], f[5]])), len - 40);
        assert_eq!(f[40], packet[6], "the original Next Header");
        let word = u16::from_be_bytes([f[42], f[43]]);
        let (offset, more) = (usize::from(word & !7), word & 1 == 1);
        assert_eq!(more, i + 1 < n, "M on all but the last");
        assert_eq!(
            u32::from_be_bytes([f[44], f[45], f[46], f[47]]),
            plan.ident()
        );
        let piece = &f[48..];
        assert_fragment_by_etherparse(f, (offset, more, plan.ident(), packet[6]), piece);
        if more {
            assert_eq!(piece.len() % 8, 0, "fragment {i}: {} bytes", piece.len());
        }
        for (k, b) in piece.iter().enumerate() {
            assert!(data[offset + k].is_none(), "byte {} twice", offset + k);
            data[offset + k] = Some(*b);
        }
    }
    data.into_iter()
        .map(|b| b.expect("every byte carried"))
        .collect()
}

proptest! {
    /// Any packet length a frame holds and any MTU: the fragments fit, carry the original's
    /// header and identification, and put every byte back exactly once.
    #[test]
    fn fragments_fit_and_reassemble_to_the_original(
        data_len in 0usize..3900,
        mtu in 0usize..2000,
        ident in any::<u32>(),
        next in prop_oneof![Just(17u8), Just(58u8), Just(6u8)],
    ) {
        let mut packet = vec![0u8; 40 + data_len];
        packet[0] = 0x60;
        packet[4..6].copy_from_slice(&(data_len as u16).to_be_bytes());
        packet[6] = next;
        packet[7] = 64;
        for (i, b) in packet[8..].iter_mut().enumerate() {
            *b = (i * 31 % 251) as u8;
        }
        let plan = Fragmenter6::new(&packet, mtu, ident).unwrap();
        prop_assert_eq!(plan.count() == 1, packet.len() <= mtu.max(1280));
        let data = reassemble_by_offset(&packet, mtu, &plan);
        prop_assert_eq!(&data[..], &packet[40..]);
    }

    /// Any bytes: a plan or a refusal, never a panic, and fragments stay within `out`.
    #[test]
    fn arbitrary_input_never_panics(b in proptest::collection::vec(any::<u8>(), 0..3000),
                                    mtu in 0usize..3000, out_len in 0usize..3000) {
        if let Ok(plan) = Fragmenter6::new(&b, mtu, 1) {
            let mut out = vec![0u8; out_len];
            for i in 0..plan.count() + 1 {
                if let Some(n) = plan.write(&b, i, &mut out) {
                    prop_assert!(n <= out_len);
                }
            }
        }
    }
}
