//! Return traffic longer than the tunnel MTU, through the pipeline (sans-IO): without DF it is
//! cut into fragments that fit the tunnel, each sealed on its own, and they reassemble at the
//! client into the translated datagram (before: dropped, `too_big`). With DF the LAN sender
//! gets "fragmentation needed" as before.

mod hostile_support;

use std::sync::atomic::Ordering::Relaxed;

use fastpath::frame::FRAME_SIZE;
use fastpath::pipeline::{Batch, Verdict};
use hostile_support::*;
use wgproto::time::Timestamp;

fn now() -> Timestamp {
    Timestamp::from_nanos(1_000_000_000)
}

/// The client's first datagram from `sport`; the NAT's external port.
fn map(gw: &mut Gateway, sport: u16) -> u16 {
    let mut f = gw.seal_from_client(now(), &client_udp(sport, b"req"), CLIENT_EP);
    let v = gw.process(now(), &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).unwrap_or_else(|| panic!("outbound: {v:?}"));
    u16::from_be_bytes([tx[34], tx[35]])
}

/// The server's answer to `port` with `payload`, DF as given.
fn answer(port: u16, payload: &[u8], dont_frag: bool) -> Vec<u8> {
    let mut p = ipv4_udp(SERVER, GW_ADDR, 8080, port, payload, 64);
    p[6] = if dont_frag { 0x40 } else { 0 };
    fix_ipv4_checksum(&mut p);
    p
}

#[test]
fn a_return_packet_over_the_tunnel_mtu_is_fragmented_into_it() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let port = map(&mut gw, 40000);
    let payload: Vec<u8> = (0..1472u32).map(|i| (i * 7) as u8).collect();
    let mut f = lan_frame(&answer(port, &payload, false));
    let v = gw.process(now(), &mut f.buf, f.len);
    let Verdict::Fragment { inside, start, len } = v else {
        panic!("expected Fragment, got {v:?}");
    };
    assert_eq!(inside, CLIENT_INNER);
    let packet = f.buf[start..start + len].to_vec();
    let plan = gw.pipeline.fragmenter(&packet).expect("no DF, well formed");
    assert_eq!(plan.count(), 2, "1500 bytes into a 1420-byte tunnel");

    let mut reassembled = vec![0u8; len - 20];
    let mut covered = 0;
    for i in 0..plan.count() {
        let mut out = vec![0u8; FRAME_SIZE];
        let batch = Batch {
            tables: &gw.tables,
            routes: &gw.routes,
            now: now(),
        };
        let v = gw
            .pipeline
            .encrypt_fragment(&batch, &packet, &plan, i, &mut out, inside);
        let Verdict::Tx { start, len, .. } = v else {
            panic!("fragment {i}: {v:?}");
        };
        let mut msg = out[start + 42..start + len].to_vec();
        let opened = gw
            .client
            .open_in_place(now(), &mut msg)
            .expect("client opens the fragment");
        let ip = &msg[opened.plaintext];
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert!(total <= MTU, "fragment {i}: {total} bytes");
        assert_eq!(
            &ip[16..20],
            &CLIENT_INNER.octets(),
            "translated destination"
        );
        assert_eq!(wire::checksum::internet_checksum(&ip[..20]), 0);
        let flags = u16::from_be_bytes([ip[6], ip[7]]);
        let (mf, at) = (flags & 0x2000 != 0, usize::from(flags & 0x1fff) * 8);
        assert_eq!(mf, i == 0, "MF on all but the last");
        reassembled[at..at + total - 20].copy_from_slice(&ip[20..total]);
        covered += total - 20;
    }
    assert_eq!(covered, reassembled.len());
    // The datagram as the NAT reversed it: port and checksum translated, payload intact.
    assert_eq!(u16::from_be_bytes([reassembled[2], reassembled[3]]), 40000);
    assert_eq!(&reassembled[8..], &payload[..]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&SERVER.octets());
    pseudo.extend_from_slice(&CLIENT_INNER.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(reassembled.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&reassembled);
    assert_eq!(
        wire::checksum::internet_checksum(&pseudo),
        0,
        "UDP checksum"
    );
    let c = gw.pipeline.counters();
    assert_eq!(c.fragmented_into_tunnel.load(Relaxed), 1);
    assert_eq!(c.encrypted.load(Relaxed), 2);
}

#[test]
fn with_df_the_sender_is_told_the_tunnel_mtu_instead() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let port = map(&mut gw, 40001);
    let mut f = lan_frame(&answer(port, &[0x5a; 1472], true));
    let v = gw.process(now(), &mut f.buf, f.len);
    let tx = tx_bytes(v, &f).unwrap_or_else(|| panic!("expected an ICMP error, got {v:?}"));
    // ICMP type 3 code 4, next-hop MTU 1420, back to the server.
    assert_eq!(&tx[30..34], &SERVER.octets());
    assert_eq!((tx[34], tx[35]), (3, 4));
    assert_eq!(u16::from_be_bytes([tx[40], tx[41]]), MTU as u16);
    assert_eq!(
        gw.pipeline.counters().fragmented_into_tunnel.load(Relaxed),
        0
    );
}
