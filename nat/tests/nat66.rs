//! IPv6 source NAT (ip6tables MASQUERADE): one test per behaviour the IPv4 NAT documents,
//! on packets built by etherparse and checked by it after translation.

mod common6;

use std::net::Ipv6Addr;

use common6::*;
use nat::{Conntrack6, FlowState, Inbound, NatConfig, NatError, Outbound, Protocol};

fn out(ct: &mut Conntrack6, now: u64, pkt: &mut [u8]) -> Outbound {
    let r = ct.translate_outbound(now, pkt).expect("outbound");
    check_checksums(pkt).expect("outbound checksums");
    r
}

fn inb(ct: &mut Conntrack6, now: u64, pkt: &mut [u8]) -> Result<Inbound<Ipv6Addr>, NatError> {
    let before = pkt.to_vec();
    let r = ct.translate_inbound(now, pkt);
    match r {
        Ok(Inbound::Deliver { .. }) => check_checksums(pkt).expect("inbound checksums"),
        _ => assert_eq!(pkt, &before[..], "untouched unless delivered"),
    }
    r
}

fn deliver(a: [u8; 16]) -> Result<Inbound<Ipv6Addr>, NatError> {
    Ok(Inbound::Deliver {
        inside: Ipv6Addr::from(a),
    })
}

/// A UDP flow from `a:port` to `dst:53`; returns the external port.
fn udp_flow(ct: &mut Conntrack6, now: u64, a: [u8; 16], port: u16, dst: [u8; 16]) -> u16 {
    let mut p = udp(a, port, dst, 53, b"query");
    assert_eq!(out(ct, now, &mut p), Outbound::Forward);
    let (src, x) = src_of(&p);
    assert_eq!(src, E, "source is the egress address");
    x
}

#[test]
fn nat66_outbound_source_is_the_egress_address_and_the_reply_is_reverted() {
    let mut ct = conntrack();
    let mut p = udp(A, 40000, R, 8080, b"GET /");
    assert_eq!(out(&mut ct, 0, &mut p), Outbound::Forward);
    let (src, x) = src_of(&p);
    assert_eq!(src, E);
    assert!((61000..=65535).contains(&x) && x != 62000);
    assert_eq!(dst_of(&p), (R, 8080), "destination untouched");
    // Byte-identical to what etherparse builds for the translated endpoints.
    assert_eq!(p, udp(E, x, R, 8080, b"GET /"));
    let mut reply = udp(R, 8080, E, x, b"200 OK");
    assert_eq!(inb(&mut ct, SEC, &mut reply), deliver(A));
    assert_eq!(reply, udp(R, 8080, A, 40000, b"200 OK"));
    let c = ct.counters();
    assert_eq!(
        (c.translated_outbound, c.translated_inbound, c.created),
        (1, 1, 1)
    );
}

#[test]
fn nat66_keeps_the_inside_port_when_it_is_free_in_the_slice() {
    let mut ct = conntrack();
    assert_eq!(udp_flow(&mut ct, 0, A, 61500, R), 61500);
    // Taken by A: B gets another one.
    let x = udp_flow(&mut ct, 0, B, 61500, R);
    assert_ne!(x, 61500);
    // An excluded port is never handed out, even when asked for.
    assert_ne!(udp_flow(&mut ct, 0, A, 62000, R), 62000);
}

#[test]
fn nat66_endpoint_independent_mapping() {
    let mut ct = conntrack();
    let x = udp_flow(&mut ct, 0, A, 40000, R);
    assert_eq!(udp_flow(&mut ct, 0, A, 40000, R2), x);
    let mut t = tcp(A, 40000, R2, 443, SYN, b"");
    out(&mut ct, 0, &mut t);
    assert_eq!(ct.len(), 2, "one UDP mapping, one TCP mapping");
    assert_eq!(external(&ct, Protocol::Udp, A, 40000), (E, x));
}

#[test]
fn nat66_paired_pooling_over_two_egress_addresses() {
    let cfg = NatConfig {
        egress: vec![Ipv6Addr::from(E), Ipv6Addr::from(E2)],
        ..config()
    };
    let mut ct = Conntrack6::new(&cfg, 0).unwrap();
    let mut seen = std::collections::HashSet::new();
    for last in 2..40u8 {
        let mut a = A;
        a[15] = last;
        let first = {
            let mut p = udp(a, 1000, R, 53, b"");
            out(&mut ct, 0, &mut p);
            src_of(&p).0
        };
        for port in 1001..1004 {
            let mut p = udp(a, port, R2, 53, b"");
            out(&mut ct, 0, &mut p);
            assert_eq!(src_of(&p).0, first, "one egress address per inside address");
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "both addresses are used");
}

#[test]
fn nat66_endpoint_independent_filtering_without_refresh_by_untracked_remotes() {
    let mut ct = conntrack();
    let x = udp_flow(&mut ct, 0, A, 40000, R);
    let mut p = udp(R2, 3478, E, x, b"stun");
    assert_eq!(inb(&mut ct, 100 * SEC, &mut p), deliver(A));
    assert_eq!(dst_of(&p), (A, 40000));
    assert_eq!(ct.counters().inbound_untracked, 1);
    // The untracked remote did not refresh it: still the 120 s of the outbound packet.
    let m = ct.lookup_inside(Protocol::Udp, sock(A, 40000)).unwrap();
    assert_eq!(m.expires_at_secs, 121);
    assert_eq!(m.state, FlowState::UdpOneWay);
    // An unmapped port is not reachable.
    let unmapped = if x == 65535 { 65534 } else { x + 1 };
    assert_eq!(
        inb(&mut ct, SEC, &mut udp(R2, 3478, E, unmapped, b"")),
        Err(NatError::NoMapping)
    );
}

#[test]
fn nat66_udp_timeouts_and_expiry_free_the_port() {
    let mut ct = conntrack();
    let x = udp_flow(&mut ct, 0, A, 40000, R);
    assert_eq!(ct.expire(120 * SEC, usize::MAX), 0, "alive for 2 min");
    let mut reply = udp(R, 53, E, x, b"answer");
    inb(&mut ct, 60 * SEC, &mut reply).unwrap();
    let m = ct.lookup_inside(Protocol::Udp, sock(A, 40000)).unwrap();
    assert_eq!(m.state, FlowState::UdpBothWays);
    assert_eq!(m.expires_at_secs, 60 + 300 + 1);
    assert_eq!(ct.expire(362 * SEC, usize::MAX), 1);
    assert!(ct.is_empty());
    assert_eq!(
        inb(&mut ct, 362 * SEC, &mut udp(R, 53, E, x, b"late")),
        Err(NatError::NoMapping)
    );
}

#[test]
fn nat66_tcp_states_and_offpath_rst() {
    let mut ct = conntrack();
    let mut syn = tcp(A, 40000, R, 80, SYN, b"");
    out(&mut ct, 0, &mut syn);
    let x = src_of(&syn).1;
    let state = |ct: &Conntrack6| ct.lookup_inside(Protocol::Tcp, sock(A, 40000)).unwrap();
    assert_eq!(state(&ct).state, FlowState::TcpOpening);
    inb(&mut ct, SEC, &mut tcp(R, 80, E, x, SYN | ACK, b"")).unwrap();
    out(&mut ct, SEC, &mut tcp(A, 40000, R, 80, ACK, b""));
    inb(&mut ct, SEC, &mut tcp(R, 80, E, x, ACK, b"data")).unwrap();
    assert_eq!(state(&ct).state, FlowState::TcpEstablished);
    assert!(state(&ct).expires_at_secs >= 1 + 2 * 3600 + 4 * 60);
    // A RST from an endpoint the host does not talk to is a spoof: dropped, state kept.
    assert_eq!(
        inb(&mut ct, 2 * SEC, &mut tcp(R2, 80, E, x, RST, b"")),
        Err(NatError::OffPathRst)
    );
    assert_eq!(state(&ct).state, FlowState::TcpEstablished);
    out(&mut ct, 3 * SEC, &mut tcp(A, 40000, R, 80, FIN | ACK, b""));
    inb(&mut ct, 3 * SEC, &mut tcp(R, 80, E, x, FIN | ACK, b"")).unwrap();
    assert_eq!(state(&ct).state, FlowState::TcpTimeWait);
    assert_eq!(state(&ct).expires_at_secs, 3 + 240 + 1);
}

#[test]
fn nat66_icmpv6_echo_uses_the_identifier_as_the_port() {
    let mut ct = conntrack();
    let mut req = echo(A, R, 7, 1, false, b"ping");
    assert_eq!(out(&mut ct, 0, &mut req), Outbound::Forward);
    let (src, id) = src_of(&req);
    assert_eq!(src, E);
    assert_eq!(req, echo(E, R, id, 1, false, b"ping"));
    let mut rep = echo(R, E, id, 1, true, b"ping");
    assert_eq!(inb(&mut ct, SEC, &mut rep), deliver(A));
    assert_eq!(rep, echo(R, A, 7, 1, true, b"ping"));
    assert_eq!(
        ct.lookup_inside(Protocol::Icmp, sock(A, 7)).unwrap().state,
        FlowState::IcmpQuery
    );
    // A ping of the gateway from inside, and one from outside, are the kernel's.
    assert_eq!(
        out(&mut ct, 0, &mut echo(A, E, 9, 1, false, b"")),
        Outbound::Local
    );
    assert_eq!(
        inb(&mut ct, 0, &mut echo(R, E, id, 1, false, b"")),
        Ok(Inbound::NotNat)
    );
}

#[test]
fn nat66_traffic_for_the_gateway_and_non_nat_traffic_is_left_to_the_kernel() {
    let mut ct = conntrack();
    // To the egress address at a port outside the NAT range (ssh): local.
    assert_eq!(
        out(&mut ct, 0, &mut tcp(A, 40000, E, 22, SYN, b"")),
        Outbound::Local
    );
    // Inbound to another address, or to a port outside the range: not NAT.
    assert_eq!(
        inb(&mut ct, 0, &mut udp(R, 53, R2, 61000, b"")),
        Ok(Inbound::NotNat)
    );
    assert_eq!(
        inb(&mut ct, 0, &mut udp(R, 53, E, 22, b"")),
        Ok(Inbound::NotNat)
    );
    // Neighbour solicitation to the egress address (type 135): the kernel's.
    let mut ns = echo(R, E, 0, 0, false, b"");
    ns[40] = 135;
    assert_eq!(inb(&mut ct, 0, &mut ns), Ok(Inbound::NotNat));
    assert_eq!(ct.counters().not_nat, 3);
}

/// An IPv6 packet with one extension header (8 bytes) between the fixed header and UDP.
fn with_extension(next: u8) -> Vec<u8> {
    let p = udp(A, 40000, R, 53, b"x");
    let mut v = p[..40].to_vec();
    v[6] = next;
    let plen = u16::from_be_bytes([v[4], v[5]]) + 8;
    v[4..6].copy_from_slice(&plen.to_be_bytes());
    v.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&p[40..]);
    v
}

#[test]
fn nat66_extension_headers_and_other_protocols_are_refused_by_name() {
    let mut ct = conntrack();
    for next in [0u8, 43, 44, 60] {
        let mut p = with_extension(next);
        let before = p.clone();
        assert_eq!(
            ct.translate_outbound(0, &mut p),
            Err(NatError::Ipv6ExtensionHeader),
            "next header {next}"
        );
        assert_eq!(p, before, "untouched");
    }
    // ESP (50), SCTP (132): not translated.
    let mut esp = udp(A, 40000, R, 53, b"x");
    esp[6] = 50;
    assert_eq!(
        ct.translate_outbound(0, &mut esp),
        Err(NatError::UnsupportedProtocol)
    );
    // An IPv4 packet given to the IPv6 NAT.
    let mut v4 = udp(A, 40000, R, 53, b"xxxxxxxxxxxxxxxxxxxx");
    v4[0] = 0x45;
    assert_eq!(ct.translate_outbound(0, &mut v4), Err(NatError::NotIpv6));
    // Payload Length past the end.
    let mut short = udp(A, 40000, R, 53, b"x");
    short.truncate(45);
    assert_eq!(
        ct.translate_outbound(0, &mut short),
        Err(NatError::Truncated)
    );
    // ICMPv6 other than echo and the four errors (router solicitation) is not forwarded.
    let mut rs = echo(A, R, 0, 0, false, b"");
    rs[40] = 133;
    assert_eq!(
        ct.translate_outbound(0, &mut rs),
        Err(NatError::UnsupportedIcmp)
    );
    let c = ct.counters();
    assert_eq!(c.dropped(NatError::Ipv6ExtensionHeader), 4);
    assert_eq!(c.dropped(NatError::NotIpv6), 1);
    // Inbound, a packet with an extension header is not NAT traffic: the kernel's.
    let mut p = with_extension(44);
    p[8..24].copy_from_slice(&R);
    p[24..40].copy_from_slice(&E);
    assert_eq!(ct.translate_inbound(0, &mut p), Ok(Inbound::NotNat));
    assert!(ct.is_empty());
}

#[test]
fn nat66_inbound_icmpv6_errors_revert_the_quoted_packet() {
    for t in errors() {
        for (proto, flow) in [
            (Protocol::Udp, udp(A, 40000, R, 53, b"query")),
            (Protocol::Tcp, tcp(A, 40000, R, 80, SYN, b"")),
            (Protocol::Icmp, echo(A, R, 40000, 1, false, b"ping")),
        ] {
            let mut ct = conntrack();
            let mut natd = flow.clone();
            out(&mut ct, 0, &mut natd);
            let before = ct.lookup_inside(proto, sock(A, 40000)).unwrap();
            let mut err = icmp_error(ROUTER, E, t, &natd);
            assert_eq!(
                inb(&mut ct, 10 * SEC, &mut err),
                deliver(A),
                "{t:?} {proto:?}"
            );
            // Exactly the error the router would have sent to A about A's own packet.
            assert_eq!(err, icmp_error(ROUTER, A, t, &flow), "{t:?} {proto:?}");
            // RFC 4787 REQ-12 / RFC 5508 REQ-6: neither refreshed nor removed.
            assert_eq!(ct.lookup_inside(proto, sock(A, 40000)), Some(before));
            assert_eq!(ct.counters().icmp_errors_inbound, 1);
        }
    }
}

#[test]
fn nat66_inbound_icmpv6_error_with_a_short_quote_is_translated() {
    let mut ct = conntrack();
    let flow = tcp(A, 40000, R, 80, SYN, b"");
    let mut natd = flow.clone();
    out(&mut ct, 0, &mut natd);
    // Fixed header + 8 bytes of TCP: the TCP checksum is not quoted.
    let mut err = icmp_error(ROUTER, E, hop_limit_exceeded(), &natd[..48]);
    assert_eq!(inb(&mut ct, SEC, &mut err), deliver(A));
    assert_eq!(
        err,
        icmp_error(ROUTER, A, hop_limit_exceeded(), &flow[..48])
    );
}

#[test]
fn nat66_inbound_icmpv6_errors_that_do_not_verify_are_dropped_by_name() {
    let mut ct = conntrack();
    let mut natd = udp(A, 40000, R, 53, b"query");
    out(&mut ct, 0, &mut natd);
    let x = src_of(&natd).1;
    let good = icmp_error(ROUTER, E, port_unreachable(), &natd);
    let mut bad = good.clone();
    bad[42] ^= 1;
    assert_eq!(inb(&mut ct, SEC, &mut bad), Err(NatError::IcmpBadChecksum));
    // Quoting a packet to a remote the mapping never talked to: forged.
    let mut forged_quote = natd.clone();
    forged_quote[24..40].copy_from_slice(&R2);
    let mut forged = icmp_error(ROUTER, E, port_unreachable(), &forged_quote);
    assert_eq!(
        inb(&mut ct, SEC, &mut forged),
        Err(NatError::IcmpErrorOffPath)
    );
    // About a port with no mapping.
    let mut other = natd.clone();
    let y = if x == 65535 { 65534 } else { x + 1 };
    other[40..42].copy_from_slice(&y.to_be_bytes());
    let mut none = icmp_error(ROUTER, E, port_unreachable(), &other);
    assert_eq!(
        inb(&mut ct, SEC, &mut none),
        Err(NatError::IcmpErrorNoMapping)
    );
    // A quote too short for the ports, a quoted extension header, a quoted error.
    let mut short = icmp_error(ROUTER, E, port_unreachable(), &natd[..44]);
    assert_eq!(
        inb(&mut ct, SEC, &mut short),
        Err(NatError::IcmpErrorMalformed)
    );
    let mut q = natd.clone();
    q[6] = 44;
    let mut frag = icmp_error(ROUTER, E, port_unreachable(), &q);
    assert_eq!(
        inb(&mut ct, SEC, &mut frag),
        Err(NatError::IcmpErrorMalformed)
    );
    let mut about_error = icmp_error(ROUTER, E, port_unreachable(), &good);
    assert_eq!(
        inb(&mut ct, SEC, &mut about_error),
        Err(NatError::IcmpErrorMalformed)
    );
    assert_eq!(ct.len(), 1);
}

#[test]
fn nat66_outbound_icmpv6_errors_revert_the_quoted_packet() {
    for t in errors() {
        let mut ct = conntrack();
        let x = udp_flow(&mut ct, 0, A, 40000, R);
        // R's packet to the mapping, delivered to A...
        let original = udp(R, 53, E, x, b"answer");
        let mut delivered = original.clone();
        inb(&mut ct, SEC, &mut delivered).unwrap();
        // ...which A answers with an error quoting what it received.
        let mut err = icmp_error(A, R, t, &delivered);
        assert_eq!(out(&mut ct, 2 * SEC, &mut err), Outbound::Forward);
        // What R must see: the error from the egress address quoting R's own packet.
        assert_eq!(err, icmp_error(E, R, t, &original), "{t:?}");
        assert_eq!(ct.counters().icmp_errors_outbound, 1);
    }
    // An error about a packet we never delivered.
    let mut ct = conntrack();
    let mut err = icmp_error(A, R, port_unreachable(), &udp(R, 53, A, 40000, b""));
    assert_eq!(
        ct.translate_outbound(0, &mut err),
        Err(NatError::IcmpErrorNoMapping)
    );
}

#[test]
fn nat66_hairpinning_with_the_external_source() {
    let mut ct = conntrack();
    // B listens through its mapping.
    let xb = udp_flow(&mut ct, 0, B, 50000, R);
    let mut p = udp(A, 40000, E, xb, b"hello B");
    assert_eq!(out(&mut ct, SEC, &mut p), Outbound::Hairpin { owner: 0 });
    let xa = external(&ct, Protocol::Udp, A, 40000).1;
    assert_eq!(inb(&mut ct, SEC, &mut p), deliver(B));
    assert_eq!(
        p,
        udp(E, xa, B, 50000, b"hello B"),
        "B sees A's external endpoint"
    );
}

#[test]
fn nat66_full_table_refuses_new_flows_but_keeps_existing_ones() {
    let cfg = NatConfig {
        capacity_per_worker: 4,
        ..config()
    };
    let mut ct = Conntrack6::new(&cfg, 0).unwrap();
    for port in 0..4 {
        udp_flow(&mut ct, 0, A, 1000 + port, R);
    }
    let mut p = udp(A, 2000, R, 53, b"");
    let before = p.clone();
    assert_eq!(ct.translate_outbound(0, &mut p), Err(NatError::TableFull));
    assert_eq!(p, before);
    assert_eq!(ct.counters().refused, 1);
    udp_flow(&mut ct, SEC, A, 1000, R);
    // Once they expire, room again.
    assert!(udp_flow(&mut ct, 200 * SEC, A, 2000, R) >= 61000);
}

fn two_workers() -> Vec<Conntrack6> {
    let cfg = NatConfig {
        workers: 2,
        ..config()
    };
    (0..2).map(|w| Conntrack6::new(&cfg, w).unwrap()).collect()
}

#[test]
fn nat66_workers_own_inside_hosts_and_port_slices_and_hand_off_the_rest() {
    let mut w = two_workers();
    let part = *w[0].partition();
    // An inside host each worker owns.
    let host = |owner: u16| {
        (2..200u8)
            .map(|i| {
                let mut a = A;
                a[15] = i;
                a
            })
            .find(|a| part.owner_of_inside6(Ipv6Addr::from(*a)) == owner)
            .unwrap()
    };
    let (h0, h1) = (host(0), host(1));
    let mut p = udp(h1, 40000, R, 53, b"");
    let before = p.clone();
    assert_eq!(
        w[0].translate_outbound(0, &mut p),
        Ok(Outbound::Handoff { owner: 1 })
    );
    assert_eq!(p, before, "handed off untouched");
    assert_eq!(w[1].translate_outbound(0, &mut p), Ok(Outbound::Forward));
    let x1 = src_of(&p).1;
    assert!(
        part.slice(1).contains(&x1),
        "worker 1 maps onto its own slice"
    );
    let mut q = udp(h0, 40000, R, 53, b"");
    assert_eq!(w[0].translate_outbound(0, &mut q), Ok(Outbound::Forward));
    assert!(part.slice(0).contains(&src_of(&q).1));
    // Return traffic to worker 1's port, arriving on worker 0.
    let mut r = udp(R, 53, E, x1, b"");
    assert_eq!(
        w[0].translate_inbound(0, &mut r),
        Ok(Inbound::Handoff { owner: 1 })
    );
    assert_eq!(w[1].translate_inbound(0, &mut r), deliver(h1));
    // An ICMPv6 error about worker 1's flow, arriving on worker 0: handed off by the quote.
    let mut err = icmp_error(ROUTER, E, packet_too_big(1280), &p);
    assert_eq!(
        w[0].translate_inbound(0, &mut err),
        Ok(Inbound::Handoff { owner: 1 })
    );
    assert_eq!(w[1].translate_inbound(0, &mut err), deliver(h1));
    check_checksums(&err).unwrap();
}

#[test]
fn nat66_memory_is_fixed_at_construction() {
    let mut ct = conntrack();
    let heap = ct.heap_bytes();
    for i in 0..2000u16 {
        let mut p = udp(A, 1000 + i, R, 53, b"");
        let _ = ct.translate_outbound(u64::from(i) * SEC, &mut p);
        ct.expire(u64::from(i) * SEC, 64);
    }
    assert_eq!(ct.heap_bytes(), heap);
    assert!(ct.len() <= ct.capacity());
}
