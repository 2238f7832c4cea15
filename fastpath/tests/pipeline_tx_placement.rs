//! Where the forward direction leaves a packet in its frame. The AF_XDP edge transmits from
//! wherever the packet starts (its descriptors name the packet's address); the pipeline
//! still decrypts a transport message straight to `forward_plaintext_offset`, so that a
//! forwarded packet's Ethernet header starts at the TX offset and nothing is moved: over an
//! IPv4 and an IPv6 underlay, with IPv4 and IPv6 inside. Before, the plaintext was left where
//! the ciphertext was (the TX offset plus the outer headers), and every forwarded packet was
//! moved back by 44 bytes (64 over IPv6) before it was sent. A message that fails to open
//! leaves zeros from that offset to its end.

mod hostile_support;

use std::net::Ipv6Addr;

use etherparse::{EtherType, LinkSlice, NetSlice, SlicedPacket};
use fastpath::counters::DropReason;
use fastpath::frame::{forward_plaintext_offset, TX_OFFSET};
use fastpath::pipeline::Verdict;
use hostile_support::*;
use wgproto::time::Timestamp;
use wire::ethernet;

const NOW: Timestamp = Timestamp::from_nanos(1_000_000_000);

/// A UDP datagram from the client's IPv6 tunnel address to the server's.
fn client_udp6(payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(&CLIENT_INNER6.octets());
    p.extend_from_slice(&SERVER6.octets());
    p.extend_from_slice(&[0x15, 0xb3, 0x1f, 0x90]);
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// The forwarded packet of `v`: it must start at the TX offset, so the edge sends it as is.
fn sent_from_tx_offset(v: Verdict, f: &Frame) -> &[u8] {
    let Verdict::Tx { start, len, .. } = v else {
        panic!("forwarded, got {v:?}");
    };
    assert_eq!(
        start, TX_OFFSET,
        "the forwarded packet starts where the frame is sent from"
    );
    &f.buf[start..start + len]
}

#[test]
fn the_plaintext_goes_behind_an_ethernet_header_at_the_tx_offset() {
    assert_eq!(
        forward_plaintext_offset(ethernet::HEADER_LEN),
        TX_OFFSET + ethernet::HEADER_LEN
    );
}

#[test]
fn ipv4_inside_ipv4_and_ipv6_underlays_is_sent_from_the_tx_offset() {
    let mut gw = Gateway::new(GatewayOptions::default());
    for (i, body) in [&b"short"[..], &[0x5a; 1300][..]].into_iter().enumerate() {
        let inner = client_udp(6000 + i as u16, body);
        for over_ipv6 in [false, true] {
            let mut f = if over_ipv6 {
                gw.seal_from_client6(NOW, &inner, CLIENT_EP6)
            } else {
                gw.seal_from_client(NOW, &inner, CLIENT_EP)
            };
            let v = gw.process(NOW, &mut f.buf, f.len);
            let tx = sent_from_tx_offset(v, &f);
            let s = SlicedPacket::from_ethernet(tx).unwrap();
            let Some(NetSlice::Ipv4(ip)) = &s.net else {
                panic!("IPv4 to the LAN")
            };
            assert_eq!(ip.header().source_addr(), GW_ADDR, "source NATed");
            assert_eq!(ip.header().destination_addr(), SERVER);
            assert_eq!(ip.header().ttl(), 63);
            assert_eq!(&tx[tx.len() - body.len()..], body, "payload intact");
        }
    }
}

#[test]
fn ipv6_inside_is_sent_from_the_tx_offset() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let inner = client_udp6(b"hello over IPv6");
    let mut f = gw.seal_from_client(NOW, &inner, CLIENT_EP);
    let v = gw.process(NOW, &mut f.buf, f.len);
    let tx = sent_from_tx_offset(v, &f);
    let s = SlicedPacket::from_ethernet(tx).unwrap();
    let Some(LinkSlice::Ethernet2(eth)) = &s.link else {
        panic!("Ethernet")
    };
    assert_eq!(eth.ether_type(), EtherType::IPV6);
    let Some(NetSlice::Ipv6(ip)) = &s.net else {
        panic!("IPv6 to the LAN")
    };
    let dst: Ipv6Addr = ip.header().destination_addr();
    assert_eq!(dst, SERVER6);
    assert_eq!(ip.header().hop_limit(), 63);
    assert!(tx.ends_with(b"hello over IPv6"));
}

#[test]
fn a_message_that_fails_to_open_leaves_zeros_from_the_plaintext_offset() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let mut f = gw.seal_from_client(NOW, &client_udp(6000, &[0x5a; 200]), CLIENT_EP);
    let end = RX_OFFSET + f.len;
    f.buf[end - 1] ^= 1;
    let outer_eth = f.buf[RX_OFFSET..RX_OFFSET + ethernet::HEADER_LEN].to_vec();
    assert_eq!(
        gw.process(NOW, &mut f.buf, f.len),
        Verdict::Drop(DropReason::DecryptAuthFailed)
    );
    let to = forward_plaintext_offset(ethernet::HEADER_LEN);
    assert!(f.buf[to..end].iter().all(|&b| b == 0), "nothing of it left");
    // What is before is the frame's own Ethernet header, as received.
    assert_eq!(f.buf[RX_OFFSET..to], outer_eth[..]);
}
