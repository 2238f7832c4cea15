//! Off-path senders must not steer NAT state: only the remote a mapping tracks (the outside
//! endpoint its inside host talked to) refreshes it or moves its TCP state; a RST or an ICMP
//! error about anyone else is dropped. With endpoint-independent filtering (RFC 4787 REQ-8,
//! RFC 5382 REQ-3) other remotes' packets are still delivered, they just change nothing.

mod common;

use common::*;
use nat::{Conntrack, FlowState, Inbound, NatError, Outbound, Protocol};

fn out(ct: &mut Conntrack, now: u64, pkt: &mut [u8]) {
    assert_eq!(ct.translate_outbound(now, pkt), Ok(Outbound::Forward));
}

/// An attacker's address: never talked to by any inside host.
const ATTACKER: [u8; 4] = [203, 0, 113, 66];

/// A TCP connection A:40000 <-> R:80, established at `now`; returns its external port.
fn established(ct: &mut Conntrack, now: u64) -> u16 {
    let mut syn = tcp(A, 40000, R, 80, SYN, b"");
    out(ct, now, &mut syn);
    let x = src_of(&syn).1;
    ct.translate_inbound(now, &mut tcp(R, 80, E, x, SYN | ACK, b""))
        .unwrap();
    out(ct, now, &mut tcp(A, 40000, R, 80, ACK, b""));
    let m = ct.lookup_inside(Protocol::Tcp, sock(A, 40000)).unwrap();
    assert_eq!(m.state, FlowState::TcpEstablished);
    x
}

#[test]
fn offpath_rst_sweep_leaves_mapping_established() {
    let mut ct = conntrack();
    let x = established(&mut ct, 0);
    let before = ct.lookup_inside(Protocol::Tcp, sock(A, 40000)).unwrap();
    // Every NAT port, from the attacker, and from the server's address with a wrong port.
    let mut delivered = 0;
    for (src, sport) in [(ATTACKER, 80), (R, 81), (R, 443)] {
        for port in 61000..=65535u16 {
            let mut rst = tcp(src, sport, E, port, RST, b"");
            if ct.translate_inbound(10 * SEC, &mut rst).is_ok() {
                delivered += 1;
            }
        }
    }
    assert_eq!(delivered, 0, "no spoofed RST reaches the inside host");
    assert_eq!(
        ct.lookup_inside(Protocol::Tcp, sock(A, 40000)),
        Some(before),
        "neither closed nor refreshed"
    );
    assert_eq!(ct.counters().dropped(NatError::OffPathRst), 3);
    // The idle connection outlives the 240 s a RST would have left it.
    assert_eq!(ct.expire(300 * SEC, usize::MAX), 0);
    // The tracked remote's RST still counts (RFC 7857 §2.2: it shortens the timeout).
    let mut rst = tcp(R, 80, E, x, RST, b"");
    assert!(matches!(
        ct.translate_inbound(400 * SEC, &mut rst),
        Ok(Inbound::Deliver { .. })
    ));
    assert_eq!(
        ct.lookup_inside(Protocol::Tcp, sock(A, 40000))
            .unwrap()
            .state,
        FlowState::TcpClosed
    );
}

#[test]
fn offpath_junk_does_not_keep_mapping_alive() {
    // TCP: an idle established connection, junk to its port every 200 s.
    let mut ct = conntrack();
    let x = established(&mut ct, 0);
    let t = 2 * 3600 + 4 * 60;
    let mut now = 200;
    while now < t {
        for flags in [ACK, SYN, FIN | ACK] {
            let mut junk = tcp(ATTACKER, 80, E, x, flags, b"junk");
            // Endpoint-independent filtering: delivered, but it changes nothing.
            assert!(matches!(
                ct.translate_inbound(now * SEC, &mut junk),
                Ok(Inbound::Deliver { .. })
            ));
        }
        ct.expire(now * SEC, usize::MAX);
        now += 200;
    }
    let m = ct.lookup_inside(Protocol::Tcp, sock(A, 40000)).unwrap();
    assert_eq!(m.state, FlowState::TcpEstablished, "no FIN from off path");
    assert_eq!(ct.expire((t + 2) * SEC, usize::MAX), 1, "expired on time");

    // UDP (inbound refresh on): one-way mapping, junk from another remote at 100 s.
    let mut ct = conntrack();
    let mut q = udp(A, 40000, R, 53, b"query");
    out(&mut ct, 0, &mut q);
    let x = src_of(&q).1;
    let mut junk = udp(ATTACKER, 53, E, x, b"junk");
    assert!(matches!(
        ct.translate_inbound(100 * SEC, &mut junk),
        Ok(Inbound::Deliver { .. })
    ));
    assert_eq!(
        ct.lookup_inside(Protocol::Udp, sock(A, 40000))
            .unwrap()
            .state,
        FlowState::UdpOneWay,
        "junk does not make it bidirectional"
    );
    assert_eq!(ct.expire(122 * SEC, usize::MAX), 1, "expired after 120 s");
    assert_eq!(ct.counters().inbound_untracked, 1);
}

#[test]
fn offpath_icmp_error_quoting_another_remote_is_dropped() {
    let mut ct = conntrack();
    let mut q = udp(A, 40000, R, 53, b"query");
    out(&mut ct, 0, &mut q);
    let x = src_of(&q).1;
    // An error "about" a datagram our mapping never sent: to the attacker, or to R's other
    // port.
    for (dst, dport) in [(ATTACKER, 53), (R, 54)] {
        let forged = udp(E, x, dst, dport, b"query");
        let mut err = icmp_error(ROUTER, E, port_unreachable(), &forged);
        assert_eq!(
            ct.translate_inbound(SEC, &mut err),
            Err(NatError::IcmpErrorOffPath)
        );
    }
    assert_eq!(ct.counters().dropped(NatError::IcmpErrorOffPath), 2);
    // The real one still goes through.
    let mut err = icmp_error(ROUTER, E, port_unreachable(), &q);
    assert_eq!(
        ct.translate_inbound(SEC, &mut err),
        Ok(Inbound::Deliver { inside: A.into() })
    );
}

#[test]
fn offpath_mapping_tracks_its_opener_and_its_latest_remote() {
    let mut ct = conntrack();
    // A's socket opens its session with R, then talks to R2, then to ROUTER (as a server).
    let mut p = udp(A, 40000, R, 53, b"1");
    out(&mut ct, 0, &mut p);
    let x = src_of(&p).1;
    out(&mut ct, 0, &mut udp(A, 40000, R2, 3478, b"2"));
    out(&mut ct, 0, &mut udp(A, 40000, ROUTER, 9, b"3"));
    let refreshes = |ct: &mut Conntrack, now: u64, src: [u8; 4], sport: u16| {
        let before = ct.lookup_inside(Protocol::Udp, sock(A, 40000)).unwrap();
        ct.translate_inbound(now * SEC, &mut udp(src, sport, E, x, b"in"))
            .unwrap();
        let after = ct.lookup_inside(Protocol::Udp, sock(A, 40000)).unwrap();
        after.expires_at_secs != before.expires_at_secs
    };
    assert!(refreshes(&mut ct, 10, R, 53), "the opener");
    assert!(refreshes(&mut ct, 20, ROUTER, 9), "the latest");
    assert!(!refreshes(&mut ct, 30, R2, 3478), "neither");

    // TCP: a new connection through the same mapping tracks its own remote only.
    let mut ct = conntrack();
    let x = established(&mut ct, 0);
    out(&mut ct, SEC, &mut tcp(A, 40000, R, 80, RST, b""));
    out(&mut ct, 2 * SEC, &mut tcp(A, 40000, R2, 443, SYN, b""));
    let mut old_rst = tcp(R, 80, E, x, RST, b"");
    assert_eq!(
        ct.translate_inbound(3 * SEC, &mut old_rst),
        Err(NatError::OffPathRst)
    );
    let mut rst = tcp(R2, 443, E, x, RST, b"");
    assert!(ct.translate_inbound(3 * SEC, &mut rst).is_ok());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any sequence of packets from endpoints the inside host never talked to (any
        /// address but R's, or R's address with another port; any TCP flags, UDP or ICMP
        /// errors; any times within the UDP mapping's 120 s) leaves the mapping exactly as it was.
        #[test]
        fn offpath_packets_never_change_a_mapping(
            pkts in proptest::collection::vec(
                (any::<[u8; 4]>(), any::<u16>(), 0u8..32, 0u8..3, 0u64..120),
                1..60,
            ),
        ) {
            let mut ct = conntrack();
            let x = established(&mut ct, 0);
            let mut q = udp(A, 40000, R, 53, b"query");
            out(&mut ct, 0, &mut q);
            let xu = src_of(&q).1;
            let tcp_before = ct.lookup_inside(Protocol::Tcp, sock(A, 40000)).unwrap();
            let udp_before = ct.lookup_inside(Protocol::Udp, sock(A, 40000)).unwrap();
            for (addr, port, flags, kind, t) in pkts {
                // Off path: not R at all, or R with a port A never used.
                let (src, sport) = if addr == R { (R, 1000 + port % 1000) } else { (addr, port) };
                let flags = flags & (SYN | ACK | FIN | RST);
                let mut p = match kind {
                    0 => tcp(src, sport, E, x, flags, b"x"),
                    1 => udp(src, sport, E, xu, b"x"),
                    _ => icmp_error(ROUTER, E, port_unreachable(), &udp(E, xu, src, sport, b"q")),
                };
                let r = ct.translate_inbound(t * SEC, &mut p);
                if kind == 0 && flags & RST != 0 {
                    prop_assert_eq!(r, Err(NatError::OffPathRst));
                }
                if kind == 2 {
                    prop_assert_eq!(r, Err(NatError::IcmpErrorOffPath));
                }
            }
            prop_assert_eq!(ct.lookup_inside(Protocol::Tcp, sock(A, 40000)), Some(tcp_before));
            prop_assert_eq!(ct.lookup_inside(Protocol::Udp, sock(A, 40000)), Some(udp_before));
        }
    }
}
