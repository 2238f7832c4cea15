//! One test per NAT behavioural requirement this crate implements, named after it
//! (RFC 4787 for UDP, RFC 5382 for TCP, RFC 5508 for ICMP). Every translated packet is also
//! checked against etherparse's full checksum recomputation.

mod common;

use std::net::Ipv4Addr;

use common::*;
use nat::{Conntrack, FlowState, Inbound, NatConfig, NatError, Outbound, Protocol};

fn out(ct: &mut Conntrack, now: u64, pkt: &mut [u8]) -> Outbound {
    let v = ct.translate_outbound(now, pkt).expect("outbound");
    check_checksums(pkt).unwrap();
    v
}

fn inb(ct: &mut Conntrack, now: u64, pkt: &mut [u8]) -> Result<Inbound, NatError> {
    let before = pkt.to_vec();
    let v = ct.translate_inbound(now, pkt);
    if matches!(v, Ok(Inbound::Deliver { .. })) {
        check_checksums(pkt).unwrap();
    } else {
        assert_eq!(pkt, &before[..], "untranslated packets are left untouched");
    }
    v
}

/// Opens a UDP mapping for A:port and returns its external port.
fn udp_flow(ct: &mut Conntrack, now: u64, a: [u8; 4], port: u16, dst: [u8; 4]) -> u16 {
    let mut p = udp(a, port, dst, 53, b"query");
    assert_eq!(out(ct, now, &mut p), Outbound::Forward);
    src_of(&p).1
}

// ---------------------------------------------------------------- RFC 4787 (UDP)

#[test]
fn rfc4787_req1_endpoint_independent_mapping() {
    let mut ct = conntrack();
    let x1 = udp_flow(&mut ct, 0, A, 40000, R);
    let x2 = udp_flow(&mut ct, 0, A, 40000, R2);
    let mut p = udp(A, 40000, R2, 9999, b"other port too");
    out(&mut ct, 0, &mut p);
    assert_eq!(x1, x2);
    assert_eq!(src_of(&p), (E, x1));
    assert_eq!(ct.len(), 1);
}

#[test]
fn rfc4787_req2_paired_address_pooling() {
    let egress: Vec<Ipv4Addr> = (1..=4).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
    let cfg = NatConfig {
        egress: egress.clone(),
        ..config()
    };
    let mut ct = Conntrack::new(&cfg, 0).unwrap();
    let mut used = std::collections::BTreeSet::new();
    for host in 2..40u8 {
        let inside = [10, 13, 13, host];
        let mut first = None;
        for port in [1000u16, 2000, 3000] {
            for mut p in [
                udp(inside, port, R, 53, b"x"),
                tcp(inside, port, R, 80, SYN, b""),
            ] {
                out(&mut ct, 0, &mut p);
                let src = src_of(&p).0;
                assert_eq!(
                    *first.get_or_insert(src),
                    src,
                    "one inside host, one external address"
                );
            }
        }
        used.insert(first.unwrap());
    }
    assert!(used.len() >= 3, "hosts spread over the pool: {used:?}");
}

#[test]
fn rfc4787_req3_no_port_overloading() {
    let mut ct = conntrack();
    // Same inside port on two hosts: two distinct external ports, even to the same server.
    let xa = udp_flow(&mut ct, 0, A, 40000, R);
    let xb = udp_flow(&mut ct, 0, B, 40000, R);
    assert_ne!(xa, xb);
    // When every port is taken, a new flow is refused rather than sharing a port.
    let cfg = NatConfig {
        ports: 61000..=61003,
        exclude_ports: vec![],
        ..config()
    };
    let mut ct = Conntrack::new(&cfg, 0).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for port in 0..4 {
        assert!(seen.insert(udp_flow(&mut ct, 0, A, 1000 + port, R)));
    }
    let mut p = udp(A, 2000, R, 53, b"x");
    assert_eq!(ct.translate_outbound(0, &mut p), Err(NatError::NoFreePort));
    assert_eq!(ct.counters().refused, 1);
    assert_eq!(ct.counters().dropped(NatError::NoFreePort), 1);
}

#[test]
fn rfc4787_req3_ports_stay_in_range_and_skip_excluded_ports() {
    let cfg = NatConfig {
        ports: 61990..=62009,
        exclude_ports: vec![62000, 51820],
        ..config()
    };
    let mut ct = Conntrack::new(&cfg, 0).unwrap();
    let mut got = Vec::new();
    // 62000 is excluded: an inside source port 62000 is not preserved.
    got.push(udp_flow(&mut ct, 0, A, 62000, R));
    for i in 0..25u16 {
        let mut p = udp(B, 30000 + i, R, 53, b"x");
        if ct.translate_outbound(0, &mut p).is_ok() {
            got.push(src_of(&p).1);
        }
    }
    assert!(
        got.iter()
            .all(|p| (61990..=62009).contains(p) && *p != 62000),
        "{got:?}"
    );
    assert_eq!(got.len(), 19, "20 ports minus the excluded one");
}

#[test]
fn rfc4787_req5_udp_mapping_timer_at_least_two_minutes() {
    let mut ct = conntrack();
    let x = udp_flow(&mut ct, 0, A, 40000, R);
    // One way only: alive at 120 s (RFC floor), gone a little after.
    ct.expire(120 * SEC, usize::MAX);
    assert!(matches!(
        inb(&mut ct, 120 * SEC, &mut udp(R, 53, E, x, b"late")),
        Ok(Inbound::Deliver { .. })
    ));
    // That inbound packet made it bidirectional (300 s) and refreshed it.
    ct.expire(419 * SEC, usize::MAX);
    assert_eq!(ct.len(), 1);
    assert_eq!(ct.expire(422 * SEC, usize::MAX), 1);
    assert_eq!(
        inb(&mut ct, 422 * SEC, &mut udp(R, 53, E, x, b"too late")),
        Err(NatError::NoMapping)
    );
    assert_eq!(ct.counters().expired, 1);

    // Never answered: expires after 120 s (+ at most the 1 s tick).
    let x = udp_flow(&mut ct, 1000 * SEC, A, 40001, R);
    assert_eq!(ct.expire(1119 * SEC, usize::MAX), 0);
    assert_eq!(ct.expire(1122 * SEC, usize::MAX), 1);
    assert_eq!(
        inb(&mut ct, 1122 * SEC, &mut udp(R, 53, E, x, b"")),
        Err(NatError::NoMapping)
    );
}

#[test]
fn rfc4787_req6_outbound_refresh() {
    let mut ct = conntrack();
    udp_flow(&mut ct, 0, A, 40000, R);
    udp_flow(&mut ct, 100 * SEC, A, 40000, R);
    assert_eq!(ct.expire(200 * SEC, usize::MAX), 0);
    assert_eq!(ct.len(), 1);
    assert_eq!(ct.expire(222 * SEC, usize::MAX), 1);
}

#[test]
fn rfc4787_req6a_inbound_refresh_is_configurable() {
    for refresh in [true, false] {
        let cfg = NatConfig {
            inbound_refresh: refresh,
            ..config()
        };
        let mut ct = Conntrack::new(&cfg, 0).unwrap();
        let x = udp_flow(&mut ct, 0, A, 40000, R);
        inb(&mut ct, 100 * SEC, &mut udp(R, 53, E, x, b"")).unwrap();
        let removed = ct.expire(130 * SEC, usize::MAX);
        assert_eq!(removed, if refresh { 0 } else { 1 }, "refresh={refresh}");
    }
}

#[test]
fn rfc4787_req8_endpoint_independent_filtering() {
    let mut ct = conntrack();
    let x = udp_flow(&mut ct, 0, A, 40000, R);
    // R2 was never contacted, but may reach the live mapping.
    let mut p = udp(R2, 3478, E, x, b"stun");
    assert_eq!(
        inb(&mut ct, SEC, &mut p),
        Ok(Inbound::Deliver { inside: A.into() })
    );
    assert_eq!(dst_of(&p), (A, 40000));
    // An unmapped port is not reachable.
    let unmapped = if x == 65535 { 65534 } else { x + 1 };
    assert_eq!(
        inb(&mut ct, SEC, &mut udp(R2, 3478, E, unmapped, b"")),
        Err(NatError::NoMapping)
    );
}

fn hairpin(proto: Protocol) {
    let mut ct = conntrack();
    let mk = |s: [u8; 4], sp: u16, d: [u8; 4], dp: u16| match proto {
        Protocol::Tcp => tcp(s, sp, d, dp, SYN, b""),
        _ => udp(s, sp, d, dp, b"hairpin"),
    };
    // B has a mapping (it talked to someone first).
    let mut p = mk(B, 5000, R, 80);
    out(&mut ct, 0, &mut p);
    let xb = src_of(&p).1;
    // A reaches B through the egress address.
    let mut p = mk(A, 6000, E, xb);
    let v = out(&mut ct, 0, &mut p);
    assert_eq!(v, Outbound::Hairpin { owner: 0 });
    let (_, xa) = external(&ct, proto, A, 6000);
    assert_eq!(
        inb(&mut ct, 0, &mut p),
        Ok(Inbound::Deliver { inside: B.into() })
    );
    // RFC 4787 REQ-9a / RFC 5382 REQ-8a: B sees A's external address and port.
    assert_eq!(p, mk(E, xa, B, 5000));
    // And B's answer finds its way back to A the same way.
    let mut r = mk(B, 5000, E, xa);
    assert_eq!(out(&mut ct, 0, &mut r), Outbound::Hairpin { owner: 0 });
    assert_eq!(
        inb(&mut ct, 0, &mut r),
        Ok(Inbound::Deliver { inside: A.into() })
    );
    assert_eq!(r, mk(E, xb, A, 6000));
    assert_eq!(ct.counters().hairpinned, 2);
}

#[test]
fn rfc4787_req9_hairpinning_with_external_source_address_and_port() {
    hairpin(Protocol::Udp);
}

#[test]
fn rfc4787_req12_icmp_error_does_not_destroy_the_mapping() {
    let mut ct = conntrack();
    let orig = udp(A, 40000, R, 53, b"query");
    let mut natd = orig.clone();
    out(&mut ct, 0, &mut natd);
    let before = ct.lookup_inside(Protocol::Udp, sock(A, 40000)).unwrap();
    let mut err = icmp_error(R, E, port_unreachable(), &natd);
    assert_eq!(
        inb(&mut ct, 5 * SEC, &mut err),
        Ok(Inbound::Deliver { inside: A.into() })
    );
    assert_eq!(
        ct.lookup_inside(Protocol::Udp, sock(A, 40000)),
        Some(before),
        "neither removed nor refreshed"
    );
}

/// `pkt` (a 20-byte IPv4 header and its payload) cut into fragments of `chunk` payload bytes
/// (a multiple of 8), identification `id`, header checksums valid.
fn fragments(pkt: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    let payload = &pkt[20..];
    let n = payload.len().div_ceil(chunk);
    (0..n)
        .map(|k| {
            let part = &payload[k * chunk..((k + 1) * chunk).min(payload.len())];
            let mut f = pkt[..20].to_vec();
            f.extend_from_slice(part);
            let total = f.len() as u16;
            f[2..4].copy_from_slice(&total.to_be_bytes());
            f[4..6].copy_from_slice(&id.to_be_bytes());
            let mf = if k + 1 < n { 0x2000 } else { 0 };
            f[6..8].copy_from_slice(&(mf | (k * chunk / 8) as u16).to_be_bytes());
            f[10..12].fill(0);
            let mut sum = 0u32;
            for w in f[..20].chunks(2) {
                sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
            }
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            f[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            f
        })
        .collect()
}

/// The datagram the fragments `frags` (in order) make up again.
fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut p = frags[0][..20].to_vec();
    for f in frags {
        p.extend_from_slice(&f[20..]);
    }
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[6..8].fill(0);
    p[10..12].fill(0);
    let mut sum = 0u32;
    for w in p[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p
}

#[test]
fn rfc4787_req14_fragments_are_translated_as_a_chain_both_ways() {
    let mut ct = conntrack();
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let mut out = fragments(&udp(A, 40000, R, 5000, &payload), 1400, 0x1234);
    assert_eq!(out.len(), 3);
    for f in out.iter_mut() {
        assert_eq!(ct.translate_outbound(SEC, f), Ok(Outbound::Forward));
        assert_eq!(
            &f[12..16],
            &E,
            "every fragment leaves from the egress address"
        );
        check_ip_header(f);
    }
    let whole = reassemble(&out);
    check_checksums(&whole).unwrap();
    let (src, ext) = src_of(&whole);
    assert_eq!(src, E);

    // The answer, fragmented too: every piece goes to the inside host, reassembled intact.
    let mut back = fragments(&udp(R, 5000, E, ext, &payload), 1480, 0x4321);
    for f in back.iter_mut() {
        assert_eq!(
            ct.translate_inbound(2 * SEC, f),
            Ok(Inbound::Deliver { inside: A.into() })
        );
        assert_eq!(&f[16..20], &A);
        check_ip_header(f);
    }
    let whole = reassemble(&back);
    check_checksums(&whole).unwrap();
    assert_eq!(dst_of(&whole), (A, 40000));
}

#[test]
fn rfc4787_req14_later_fragments_without_their_first_are_dropped_with_a_reason() {
    let mut ct = conntrack();
    let payload = [9u8; 3000];
    let mut out = fragments(&udp(A, 40000, R, 5000, &payload), 1400, 7);
    // Overtaking its first fragment: not translated, counted, untouched.
    let before = out[1].clone();
    assert_eq!(
        ct.translate_outbound(SEC, &mut out[1]),
        Err(NatError::FragmentUnknown)
    );
    assert_eq!(out[1], before);
    assert_eq!(
        ct.translate_outbound(SEC, &mut out[0]),
        Ok(Outbound::Forward)
    );
    assert_eq!(
        ct.translate_outbound(SEC, &mut out[2]),
        Ok(Outbound::Forward)
    );
    // The chain is forgotten after 30 s (Linux's ipfrag_time).
    let mut late = fragments(&udp(A, 40000, R, 5000, &payload), 1400, 7);
    assert_eq!(
        ct.translate_outbound(31 * SEC, &mut late[2]),
        Err(NatError::FragmentUnknown)
    );
    // Return traffic: a later fragment of a datagram never seen.
    let mut back = fragments(&udp(R, 5000, E, 61000, &payload), 1480, 8);
    assert_eq!(
        ct.translate_inbound(SEC, &mut back[1]),
        Err(NatError::FragmentUnknown)
    );
    assert_eq!(ct.counters().dropped(NatError::FragmentUnknown), 3);
}

fn check_ip_header(f: &[u8]) {
    let hl = usize::from(f[0] & 15) * 4;
    let mut sum = 0u32;
    for w in f[..hl].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(sum, 0xffff, "IP header checksum");
}

// ---------------------------------------------------------------- RFC 5382 (TCP)

#[test]
fn rfc5382_req1_endpoint_independent_mapping() {
    let mut ct = conntrack();
    let mut p1 = tcp(A, 40000, R, 80, SYN, b"");
    let mut p2 = tcp(A, 40000, R2, 443, SYN, b"");
    out(&mut ct, 0, &mut p1);
    out(&mut ct, 0, &mut p2);
    assert_eq!(src_of(&p1), src_of(&p2));
}

#[test]
fn rfc5382_req2_simultaneous_open() {
    let mut ct = conntrack();
    let mut p = tcp(A, 61500, R, 7000, SYN, b"");
    out(&mut ct, 0, &mut p);
    let x = src_of(&p).1;
    // The other side's SYN crosses ours.
    let mut s = tcp(R, 7000, E, x, SYN, b"");
    assert_eq!(
        inb(&mut ct, 0, &mut s),
        Ok(Inbound::Deliver { inside: A.into() })
    );
    let mut sa = tcp(A, 61500, R, 7000, SYN | ACK, b"");
    out(&mut ct, 0, &mut sa);
    let mut sa2 = tcp(R, 7000, E, x, SYN | ACK, b"");
    inb(&mut ct, 0, &mut sa2).unwrap();
    assert_eq!(
        ct.lookup_inside(Protocol::Tcp, sock(A, 61500))
            .unwrap()
            .state,
        FlowState::TcpOpening
    );
    let mut ack = tcp(R, 7000, E, x, ACK, b"data");
    inb(&mut ct, 0, &mut ack).unwrap();
    assert_eq!(
        ct.lookup_inside(Protocol::Tcp, sock(A, 61500))
            .unwrap()
            .state,
        FlowState::TcpEstablished
    );
}

#[test]
fn rfc5382_req3_endpoint_independent_filtering() {
    let mut ct = conntrack();
    let mut p = tcp(A, 40000, R, 80, SYN, b"");
    out(&mut ct, 0, &mut p);
    let x = src_of(&p).1;
    let mut syn = tcp(R2, 5555, E, x, SYN, b"");
    assert_eq!(
        inb(&mut ct, 0, &mut syn),
        Ok(Inbound::Deliver { inside: A.into() })
    );
}

#[test]
fn rfc5382_req4_unsolicited_syn_is_silently_dropped() {
    let mut ct = conntrack();
    let mut syn = tcp(R2, 5555, E, 61234, SYN, b"");
    assert_eq!(inb(&mut ct, 0, &mut syn), Err(NatError::NoMapping));
    assert!(ct.is_empty(), "inbound never creates state");
    assert_eq!(ct.counters().dropped(NatError::NoMapping), 1);
}

#[test]
fn rfc5382_req5_established_idle_timeout_at_least_2h4m_and_transitory_4min() {
    let mut ct = conntrack();
    // Established.
    let mut p = tcp(A, 40000, R, 80, SYN, b"");
    out(&mut ct, 0, &mut p);
    let x = src_of(&p).1;
    inb(&mut ct, 0, &mut tcp(R, 80, E, x, SYN | ACK, b"")).unwrap();
    out(&mut ct, 0, &mut tcp(A, 40000, R, 80, ACK, b"GET /"));
    // Transitory: a SYN nobody answers.
    out(&mut ct, 0, &mut tcp(A, 40001, R, 81, SYN, b""));
    assert_eq!(ct.expire(240 * SEC, usize::MAX), 0);
    assert_eq!(ct.expire(242 * SEC, usize::MAX), 1);
    assert!(ct.lookup_inside(Protocol::Tcp, sock(A, 40001)).is_none());
    let t = 2 * 3600 + 4 * 60;
    assert_eq!(ct.expire(t * SEC, usize::MAX), 0);
    assert!(matches!(
        inb(&mut ct, t * SEC, &mut tcp(R, 80, E, x, ACK, b"late")),
        Ok(Inbound::Deliver { .. })
    ));
    // FIN both ways: TIME_WAIT (4 min), not 2 h.
    out(&mut ct, t * SEC, &mut tcp(A, 40000, R, 80, FIN | ACK, b""));
    inb(&mut ct, t * SEC, &mut tcp(R, 80, E, x, FIN | ACK, b"")).unwrap();
    assert_eq!(
        ct.lookup_inside(Protocol::Tcp, sock(A, 40000))
            .unwrap()
            .state,
        FlowState::TcpTimeWait
    );
    assert_eq!(ct.expire((t + 240) * SEC, usize::MAX), 0);
    assert_eq!(ct.expire((t + 242) * SEC, usize::MAX), 1);
}

#[test]
fn rfc5382_req7_no_port_overloading() {
    let mut ct = conntrack();
    let mut pa = tcp(A, 40000, R, 80, SYN, b"");
    let mut pb = tcp(B, 40000, R, 80, SYN, b"");
    out(&mut ct, 0, &mut pa);
    out(&mut ct, 0, &mut pb);
    assert_ne!(src_of(&pa).1, src_of(&pb).1);
}

#[test]
fn rfc5382_req8_hairpinning_with_external_source_address_and_port() {
    hairpin(Protocol::Tcp);
}

/// RFC 5382 REQ-9 / RFC 5508 REQ-4: an error from outside, quoting what we sent, must reach
/// the inside host quoting what *it* sent: byte for byte what the remote would have sent with
/// no NAT in the path.
fn inbound_error_equals_unnated(
    quoted_len: Option<usize>,
    t: etherparse::Icmpv4Type,
    orig: Vec<u8>,
    proto: Protocol,
) {
    let mut ct = conntrack();
    let mut natd = orig.clone();
    out(&mut ct, 0, &mut natd);
    let cut = |p: &[u8]| p[..quoted_len.unwrap_or(p.len()).min(p.len())].to_vec();
    let mut err = icmp_error(ROUTER, E, t.clone(), &cut(&natd));
    assert_eq!(
        inb(&mut ct, SEC, &mut err),
        Ok(Inbound::Deliver { inside: A.into() }),
        "{proto:?}"
    );
    assert_eq!(
        err,
        icmp_error(ROUTER, A, t, &cut(&orig)),
        "{proto:?} quoted {quoted_len:?}"
    );
    assert_eq!(ct.counters().icmp_errors_inbound, 1);
}

#[test]
fn rfc5382_req9_translates_icmp_destination_unreachable() {
    inbound_error_equals_unnated(
        None,
        port_unreachable(),
        tcp(A, 40000, R, 80, SYN, b""),
        Protocol::Tcp,
    );
    // Routers often quote only the header + 8 bytes: the TCP checksum is then absent.
    inbound_error_equals_unnated(
        Some(28),
        port_unreachable(),
        tcp(A, 40000, R, 80, SYN, b""),
        Protocol::Tcp,
    );
    inbound_error_equals_unnated(
        Some(38),
        frag_needed(1280),
        tcp(A, 40000, R, 80, ACK, &[7; 1400]),
        Protocol::Tcp,
    );
}

#[test]
fn rfc5382_req10_icmp_does_not_terminate_mapping_or_connection() {
    let mut ct = conntrack();
    let orig = tcp(A, 40000, R, 80, SYN, b"");
    let mut natd = orig.clone();
    out(&mut ct, 0, &mut natd);
    let x = src_of(&natd).1;
    inb(&mut ct, 0, &mut tcp(R, 80, E, x, SYN | ACK, b"")).unwrap();
    out(&mut ct, 0, &mut tcp(A, 40000, R, 80, ACK, b""));
    let before = ct.lookup_inside(Protocol::Tcp, sock(A, 40000)).unwrap();
    assert_eq!(before.state, FlowState::TcpEstablished);
    for t in [port_unreachable(), frag_needed(1400), ttl_exceeded()] {
        let mut err = icmp_error(ROUTER, E, t, &natd);
        inb(&mut ct, 10 * SEC, &mut err).unwrap();
    }
    assert_eq!(
        ct.lookup_inside(Protocol::Tcp, sock(A, 40000)),
        Some(before)
    );
}

// ---------------------------------------------------------------- RFC 5508 (ICMP)

#[test]
fn rfc5508_req1_icmp_query_uses_identifier_as_port() {
    let mut ct = conntrack();
    let mut req = echo(A, R2, 7, 1, false, b"ping");
    out(&mut ct, 0, &mut req);
    let (_, x) = external(&ct, Protocol::Icmp, A, 7);
    assert_eq!(req, echo(E, R2, x, 1, false, b"ping"));
    // Another host using the same identifier gets another one.
    let mut req_b = echo(B, R2, 7, 1, false, b"ping");
    out(&mut ct, 0, &mut req_b);
    assert_ne!(external(&ct, Protocol::Icmp, B, 7).1, x);
    let mut rep = echo(R2, E, x, 1, true, b"ping");
    assert_eq!(
        inb(&mut ct, 0, &mut rep),
        Ok(Inbound::Deliver { inside: A.into() })
    );
    assert_eq!(rep, echo(R2, A, 7, 1, true, b"ping"));
}

#[test]
fn rfc5508_req2_icmp_query_timeout_at_least_60s() {
    let mut ct = conntrack();
    out(&mut ct, 0, &mut echo(A, R2, 7, 1, false, b""));
    let (_, x) = external(&ct, Protocol::Icmp, A, 7);
    assert_eq!(ct.expire(60 * SEC, usize::MAX), 0);
    inb(&mut ct, 60 * SEC, &mut echo(R2, E, x, 1, true, b"")).unwrap();
    ct.expire(200 * SEC, usize::MAX);
    assert_eq!(
        inb(&mut ct, 200 * SEC, &mut echo(R2, E, x, 1, true, b"")),
        Err(NatError::NoMapping)
    );
}

#[test]
fn rfc5508_req3_bad_checksums_in_icmp_errors_are_dropped() {
    let mut ct = conntrack();
    let mut natd = udp(A, 40000, R, 53, b"q");
    out(&mut ct, 0, &mut natd);
    let mut err = icmp_error(ROUTER, E, port_unreachable(), &natd);
    let last = err.len() - 1;
    err[last] ^= 0x40; // payload corrupted, ICMP checksum now wrong
    assert_eq!(inb(&mut ct, 0, &mut err), Err(NatError::IcmpBadChecksum));
    // REQ-3 a): quoted IP header checksum wrong (ICMP checksum right).
    let mut bad = natd.clone();
    bad[10] ^= 1;
    let mut err = icmp_error(ROUTER, E, port_unreachable(), &bad);
    assert_eq!(
        inb(&mut ct, 0, &mut err),
        Err(NatError::IcmpErrorBadChecksum)
    );
    assert_eq!(ct.counters().total_dropped(), 2);
}

#[test]
fn rfc5508_req3b_quoted_header_with_ip_options() {
    // The quoted packet carries IP options; the NAT must step over them.
    let mut ct = conntrack();
    let mut orig = udp(A, 40000, R, 53, b"opts");
    // Insert a 4-byte option (NOP NOP NOP EOL) into the header, fixing lengths and checksum.
    orig.splice(20..20, [1u8, 1, 1, 0]);
    orig[0] = 0x46;
    let tl = (orig.len() as u16).to_be_bytes();
    orig[2..4].copy_from_slice(&tl);
    orig[10..12].fill(0);
    let h = etherparse::Ipv4Header::from_slice(&orig).unwrap().0;
    orig[10..12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
    check_checksums(&orig).unwrap();
    let mut natd = orig.clone();
    out(&mut ct, 0, &mut natd);
    let mut err = icmp_error(ROUTER, E, ttl_exceeded(), &natd);
    inb(&mut ct, 0, &mut err).unwrap();
    assert_eq!(err, icmp_error(ROUTER, A, ttl_exceeded(), &orig));
}

#[test]
fn rfc5508_req4_inbound_icmp_errors_revert_the_quoted_packet() {
    inbound_error_equals_unnated(
        None,
        port_unreachable(),
        udp(A, 40000, R, 53, b"query"),
        Protocol::Udp,
    );
    inbound_error_equals_unnated(
        Some(28),
        ttl_exceeded(),
        udp(A, 40000, R, 53, b"query"),
        Protocol::Udp,
    );
    inbound_error_equals_unnated(
        None,
        frag_needed(1280),
        udp(A, 40000, R, 53, &[1; 1300]),
        Protocol::Udp,
    );
    inbound_error_equals_unnated(
        None,
        ttl_exceeded(),
        echo(A, R2, 9, 3, false, b"traceroute"),
        Protocol::Icmp,
    );
    // Zero UDP checksum in the quote stays zero.
    let mut z = udp(A, 40000, R, 53, b"nocsum");
    z[26..28].fill(0);
    inbound_error_equals_unnated(None, port_unreachable(), z, Protocol::Udp);
}

#[test]
fn rfc5508_req4_inbound_error_without_mapping_is_dropped() {
    let mut ct = conntrack();
    let quoted = udp(E, 61777, R, 53, b"never sent");
    let mut err = icmp_error(ROUTER, E, port_unreachable(), &quoted);
    assert_eq!(inb(&mut ct, 0, &mut err), Err(NatError::IcmpErrorNoMapping));
    // About an error: never translated.
    let inner = icmp_error(E, R, port_unreachable(), &udp(R, 53, E, 61000, b""));
    let mut err = icmp_error(ROUTER, E, ttl_exceeded(), &inner);
    assert_eq!(inb(&mut ct, 0, &mut err), Err(NatError::IcmpErrorMalformed));
}

#[test]
fn rfc5508_req5_outbound_icmp_errors_revert_the_quoted_packet() {
    let mut ct = conntrack();
    let x = udp_flow(&mut ct, 0, A, 40000, R);
    // R answers; the NAT delivers it to A; A's socket is gone, A sends port unreachable.
    let sent_by_r = udp(R, 53, E, x, b"answer");
    let mut delivered = sent_by_r.clone();
    inb(&mut ct, 0, &mut delivered).unwrap();
    let mut err = icmp_error(A, R, port_unreachable(), &delivered);
    assert_eq!(out(&mut ct, SEC, &mut err), Outbound::Forward);
    assert_eq!(err, icmp_error(E, R, port_unreachable(), &sent_by_r));
    assert_eq!(ct.counters().icmp_errors_outbound, 1);
    // No mapping for what is quoted: dropped.
    let mut err = icmp_error(A, R, port_unreachable(), &udp(R, 53, A, 1, b""));
    assert_eq!(
        ct.translate_outbound(SEC, &mut err),
        Err(NatError::IcmpErrorNoMapping)
    );
}

#[test]
fn rfc5508_req6_icmp_error_neither_refreshes_nor_removes_the_mapping() {
    let mut ct = conntrack();
    let mut natd = udp(A, 40000, R, 53, b"q");
    out(&mut ct, 0, &mut natd);
    for s in [10, 60, 110] {
        let mut err = icmp_error(ROUTER, E, port_unreachable(), &natd);
        inb(&mut ct, s * SEC, &mut err).unwrap();
    }
    assert_eq!(
        ct.lookup_inside(Protocol::Udp, sock(A, 40000))
            .unwrap()
            .state,
        FlowState::UdpOneWay
    );
    assert_eq!(
        ct.expire(122 * SEC, usize::MAX),
        1,
        "errors did not keep it alive"
    );
}

#[test]
fn rfc5508_req7_hairpinned_icmp_errors() {
    let mut ct = conntrack();
    let xb = udp_flow(&mut ct, 0, B, 5000, R);
    // A -> E:xb (hairpinned to B).
    let orig = udp(A, 6000, E, xb, b"to b");
    let mut p = orig.clone();
    assert_eq!(out(&mut ct, 0, &mut p), Outbound::Hairpin { owner: 0 });
    inb(&mut ct, 0, &mut p).unwrap();
    // B has nothing on port 5000 any more: port unreachable about what it received.
    let mut err = icmp_error(B, E, port_unreachable(), &p);
    assert_eq!(out(&mut ct, 0, &mut err), Outbound::Hairpin { owner: 0 });
    assert_eq!(
        inb(&mut ct, 0, &mut err),
        Ok(Inbound::Deliver { inside: A.into() })
    );
    // A sees an error from the external address quoting exactly what it sent.
    assert_eq!(err, icmp_error(E, A, port_unreachable(), &orig));
}

#[test]
fn rfc5508_req8_refused_flow_can_be_answered_with_admin_prohibited() {
    let cfg = NatConfig {
        capacity_per_worker: 1,
        ..config()
    };
    let mut ct = Conntrack::new(&cfg, 0).unwrap();
    let x = udp_flow(&mut ct, 0, A, 40000, R);
    let refused = udp(B, 1234, R, 53, b"new flow");
    let mut p = refused.clone();
    assert_eq!(ct.translate_outbound(0, &mut p), Err(NatError::TableFull));
    assert_eq!(p, refused);
    assert_eq!(ct.counters().refused, 1);
    // The existing flow is unaffected.
    assert!(matches!(
        inb(&mut ct, 0, &mut udp(R, 53, E, x, b"")),
        Ok(Inbound::Deliver { .. })
    ));
    let gw = Ipv4Addr::new(10, 13, 13, 1);
    let mut buf = [0u8; 600];
    let n = nat::write_admin_prohibited(&refused, gw, &mut buf).unwrap();
    let want = icmp_error(
        gw.octets(),
        B,
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FilterProhibited,
        ),
        &refused,
    );
    check_checksums(&buf[..n]).unwrap();
    assert_eq!(&buf[..n], &want[..]);
    // Never about an ICMP error, never overflowing a small buffer.
    let e = icmp_error(B, R, port_unreachable(), &refused);
    assert!(nat::write_admin_prohibited(&e, gw, &mut buf).is_err());
    assert!(nat::write_admin_prohibited(&refused, gw, &mut buf[..30]).is_err());
}
