//! The iptables MASQUERADE behaviours the article's gateway relies on
//! (`-t nat -A POSTROUTING -o eth+ -j MASQUERADE` plus conntrack), and the multi-worker
//! contract (partitioned ports, handoff).

mod common;

use std::net::Ipv4Addr;

use common::*;
use nat::{Conntrack, Inbound, NatConfig, NatError, Outbound, Protocol};

#[test]
fn masquerade_article_flow_peer_to_nginx_and_back() {
    // 10.13.13.2 -> 172.23.0.2:80 leaves eth0 from 172.23.0.3; the reply is un-NATed to the
    // peer, byte for byte what nginx would have sent to the peer without a NAT.
    let mut ct = conntrack();
    let mut syn = tcp(A, 43512, R, 80, SYN, b"");
    assert_eq!(ct.translate_outbound(0, &mut syn), Ok(Outbound::Forward));
    let (ea, x) = src_of(&syn);
    assert_eq!(ea, E);
    assert_eq!(syn, tcp(E, x, R, 80, SYN, b""));
    let mut synack = tcp(R, 80, E, x, SYN | ACK, b"");
    assert_eq!(
        ct.translate_inbound(0, &mut synack),
        Ok(Inbound::Deliver { inside: A.into() })
    );
    assert_eq!(synack, tcp(R, 80, A, 43512, SYN | ACK, b""));
    let mut get = tcp(A, 43512, R, 80, ACK, b"GET / HTTP/1.1\r\n\r\n");
    ct.translate_outbound(0, &mut get).unwrap();
    assert_eq!(get, tcp(E, x, R, 80, ACK, b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(ct.counters().translated_outbound, 2);
    assert_eq!(ct.counters().translated_inbound, 1);
    assert_eq!(ct.counters().created, 1);
}

#[test]
fn masquerade_keeps_the_source_port_when_it_is_free() {
    let mut ct = conntrack();
    let mut p = udp(A, 61234, R, 53, b"q");
    ct.translate_outbound(0, &mut p).unwrap();
    assert_eq!(src_of(&p), (E, 61234));
    // Taken by A already: B's 61234 gets another port.
    let mut p = udp(B, 61234, R, 53, b"q");
    ct.translate_outbound(0, &mut p).unwrap();
    assert_ne!(src_of(&p).1, 61234);
}

#[test]
fn masquerade_unsolicited_inbound_is_not_forwarded() {
    let mut ct = conntrack();
    for mut p in [
        udp(R2, 1, E, 61000, b""),
        tcp(R2, 1, E, 65535, SYN, b""),
        echo(R2, E, 61000, 1, true, b""),
    ] {
        assert_eq!(ct.translate_inbound(0, &mut p), Err(NatError::NoMapping));
    }
    assert!(ct.is_empty());
}

#[test]
fn masquerade_traffic_for_the_gateway_itself_is_left_to_the_kernel() {
    let mut ct = conntrack();
    // Inside host to the gateway's own SSH, and a ping to the gateway.
    for mut p in [tcp(A, 5000, E, 22, SYN, b""), echo(A, E, 1, 1, false, b"")] {
        let before = p.clone();
        assert_eq!(ct.translate_outbound(0, &mut p), Ok(Outbound::Local));
        assert_eq!(p, before);
    }
    // From outside: SSH, ping, WireGuard port, other destinations, other protocols.
    let mut gre = udp(R2, 1, E, 61000, b"");
    gre[9] = 47;
    gre[10..12].fill(0);
    let c = etherparse::Ipv4Header::from_slice(&gre)
        .unwrap()
        .0
        .calc_header_checksum();
    gre[10..12].copy_from_slice(&c.to_be_bytes());
    for mut p in [
        tcp(R2, 5000, E, 22, SYN, b""),
        echo(R2, E, 61000, 1, false, b""),
        udp(R2, 5000, E, 51820, b"wg"),
        udp(R2, 5000, R, 61000, b"not ours"),
        gre,
    ] {
        let before = p.clone();
        assert_eq!(ct.translate_inbound(0, &mut p), Ok(Inbound::NotNat));
        assert_eq!(p, before);
    }
    assert!(ct.is_empty());
    assert_eq!(ct.counters().local, 2);
    assert_eq!(ct.counters().not_nat, 5);
}

#[test]
fn masquerade_other_protocols_and_malformed_packets_are_dropped_with_a_reason() {
    let mut ct = conntrack();
    let mut p = udp(A, 1, R, 2, b"x");
    p[9] = 47; // GRE: not translated
    p[10..12].fill(0);
    let c = etherparse::Ipv4Header::from_slice(&p)
        .unwrap()
        .0
        .calc_header_checksum();
    p[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        ct.translate_outbound(0, &mut p),
        Err(NatError::UnsupportedProtocol)
    );
    let mut p = udp(A, 1, R, 2, b"x");
    p[10] ^= 0xff;
    assert_eq!(
        ct.translate_outbound(0, &mut p),
        Err(NatError::BadIpChecksum)
    );
    assert_eq!(
        ct.translate_outbound(0, &mut [0x45, 0, 0]),
        Err(NatError::Truncated)
    );
    assert_eq!(
        ct.translate_outbound(0, &mut [0x65; 40]),
        Err(NatError::NotIpv4)
    );
    let mut short = udp(A, 1, R, 2, b"x");
    short.truncate(25);
    assert_eq!(
        ct.translate_outbound(0, &mut short),
        Err(NatError::Truncated)
    );
    assert_eq!(ct.counters().total_dropped(), 5);
    assert!(ct.is_empty());
}

#[test]
fn masquerade_new_connection_after_close_reuses_the_mapping() {
    let mut ct = conntrack();
    let mut p = tcp(A, 40000, R, 80, SYN, b"");
    ct.translate_outbound(0, &mut p).unwrap();
    let x = src_of(&p).1;
    ct.translate_inbound(0, &mut tcp(R, 80, E, x, RST | ACK, b""))
        .unwrap();
    let mut p = tcp(A, 40000, R, 80, SYN, b"");
    ct.translate_outbound(SEC, &mut p).unwrap();
    assert_eq!(src_of(&p).1, x);
    assert_eq!(ct.counters().created, 1);
}

#[test]
fn masquerade_full_table_refuses_new_flows_but_keeps_existing_ones() {
    let cfg = NatConfig {
        capacity_per_worker: 8,
        ..config()
    };
    let mut ct = Conntrack::new(&cfg, 0).unwrap();
    let mut ext = Vec::new();
    for i in 0..8 {
        let mut p = udp(A, 1000 + i, R, 53, b"");
        ct.translate_outbound(0, &mut p).unwrap();
        ext.push(src_of(&p).1);
    }
    for i in 0..100 {
        let mut p = udp(B, 2000 + i, R, 53, b"");
        assert_eq!(ct.translate_outbound(0, &mut p), Err(NatError::TableFull));
    }
    assert_eq!(ct.len(), 8);
    assert_eq!(ct.counters().refused, 100);
    for (i, x) in ext.iter().enumerate() {
        let mut r = udp(R, 53, E, *x, b"");
        ct.translate_inbound(0, &mut r).unwrap();
        assert_eq!(dst_of(&r), (A, 1000 + i as u16));
    }
    // Once they expire, room comes back even without an explicit expire() call (bounded
    // reclaim on the refusal path).
    let mut p = udp(B, 3000, R, 53, b"");
    assert_eq!(
        ct.translate_outbound(400 * SEC, &mut p),
        Ok(Outbound::Forward)
    );
}

#[test]
fn expiry_does_bounded_work_per_call() {
    let cfg = NatConfig {
        capacity_per_worker: 50_000,
        egress: (1..=4).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect(),
        ports: 1024..=65535,
        ..config()
    };
    let mut ct = Conntrack::new(&cfg, 0).unwrap();
    for i in 0..50_000u32 {
        let inside = (0x0a00_0000u32 + i / 500).to_be_bytes();
        let mut p = udp(inside, 1000 + (i % 500) as u16, R, 53, b"");
        ct.translate_outbound(0, &mut p).unwrap();
    }
    let mut calls = 0;
    while !ct.is_empty() {
        let n = ct.expire(1000 * SEC, 64);
        assert!(n <= 64);
        calls += 1;
        assert!(calls < 10_000);
    }
    assert!(calls >= 50_000 / 64);
    assert_eq!(ct.counters().expired, 50_000);
}

// ---------------------------------------------------------------- several workers

fn two_workers() -> (NatConfig, Vec<Conntrack>) {
    let cfg = NatConfig {
        workers: 2,
        ..config()
    };
    let w = (0..2).map(|i| Conntrack::new(&cfg, i).unwrap()).collect();
    (cfg, w)
}

/// Runs the data plane's loop in miniature: a packet goes to the worker RSS picked and hops
/// to the owner when told to.
fn run_outbound(w: &mut [Conntrack], first: usize, pkt: &mut [u8]) -> (usize, Outbound) {
    let mut at = first;
    loop {
        match w[at].translate_outbound(0, pkt).unwrap() {
            Outbound::Handoff { owner } => at = usize::from(owner),
            v => return (at, v),
        }
    }
}

fn run_inbound(
    w: &mut [Conntrack],
    first: usize,
    pkt: &mut [u8],
) -> (usize, Result<Inbound, NatError>) {
    let mut at = first;
    loop {
        match w[at].translate_inbound(0, pkt) {
            Ok(Inbound::Handoff { owner }) => at = usize::from(owner),
            v => return (at, v),
        }
    }
}

#[test]
fn workers_map_only_onto_their_own_port_slice_and_hand_off_the_rest() {
    let (cfg, mut w) = two_workers();
    let part = nat::Partition::new(&cfg);
    for host in 2..30u8 {
        let inside = [10, 13, 13, host];
        for rss_queue in 0..2 {
            let mut p = udp(inside, 40000 + rss_queue as u16, R, 53, b"");
            let (owner, v) = run_outbound(&mut w, rss_queue, &mut p);
            assert_eq!(v, Outbound::Forward);
            assert_eq!(owner, usize::from(part.owner_of_inside(inside.into())));
            let x = src_of(&p).1;
            assert_eq!(
                part.owner_of_port(x),
                Some(owner as u16),
                "port {x} from worker {owner}'s slice"
            );
            // The reply lands on the other queue: handed to the owner, then delivered.
            let mut r = udp(R, 53, E, x, b"");
            let first = 1 - owner;
            let before = r.clone();
            assert_eq!(
                w[first].translate_inbound(0, &mut r),
                Ok(Inbound::Handoff {
                    owner: owner as u16
                })
            );
            assert_eq!(r, before, "handoff leaves the packet untouched");
            let (_, v) = run_inbound(&mut w, first, &mut r);
            assert_eq!(
                v,
                Ok(Inbound::Deliver {
                    inside: inside.into()
                })
            );
        }
    }
    assert!(
        w.iter().all(|c| !c.is_empty()),
        "both workers hold mappings"
    );
}

#[test]
fn endpoint_independent_mapping_holds_across_workers_when_a_peer_roams() {
    let (_, mut w) = two_workers();
    let mut p = tcp(A, 40000, R, 80, SYN, b"");
    run_outbound(&mut w, 0, &mut p);
    let x = src_of(&p);
    // The peer roams; its packets now arrive on the other queue.
    let mut p = tcp(A, 40000, R2, 443, SYN, b"");
    run_outbound(&mut w, 1, &mut p);
    assert_eq!(src_of(&p), x);
    assert_eq!(w[0].len() + w[1].len(), 1);
}

#[test]
fn hairpin_and_icmp_errors_across_workers() {
    let (_, mut w) = two_workers();
    // Find two inside hosts owned by different workers.
    let part = *w[0].partition();
    let a = (2..200u8)
        .map(|h| [10, 13, 13, h])
        .find(|h| part.owner_of_inside((*h).into()) == 0)
        .unwrap();
    let b = (2..200u8)
        .map(|h| [10, 13, 13, h])
        .find(|h| part.owner_of_inside((*h).into()) == 1)
        .unwrap();
    let mut p = udp(b, 5000, R, 53, b"");
    run_outbound(&mut w, 0, &mut p);
    let xb = src_of(&p).1;
    let orig = udp(a, 6000, E, xb, b"hi b");
    let mut p = orig.clone();
    let (_, v) = run_outbound(&mut w, 1, &mut p);
    assert_eq!(v, Outbound::Hairpin { owner: 1 });
    let (_, v) = run_inbound(&mut w, 1, &mut p);
    assert_eq!(
        v,
        Ok(Inbound::Deliver {
            inside: Ipv4Addr::from(b)
        })
    );
    // An error from outside about a's flow arriving on worker 1 is handed to worker 0.
    let mut natd = udp(a, 7000, R, 53, b"q");
    run_outbound(&mut w, 0, &mut natd);
    let mut err = icmp_error(ROUTER, E, port_unreachable(), &natd);
    let (at, v) = run_inbound(&mut w, 1, &mut err);
    assert_eq!(
        (at, v),
        (
            0,
            Ok(Inbound::Deliver {
                inside: Ipv4Addr::from(a)
            })
        )
    );
    assert_eq!(
        err,
        icmp_error(ROUTER, a, port_unreachable(), &udp(a, 7000, R, 53, b"q"))
    );
    let _ = Protocol::Udp;
}

// ---------------------------------------------------------------- the live-port observer

/// Records what a [`nat::PortObserver`] is told.
#[derive(Debug, Default, Clone)]
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<(bool, Protocol, u16)>>>);

impl nat::PortObserver for Recorder {
    fn mapped(&self, protocol: Protocol, port: u16) {
        self.0.lock().unwrap().push((true, protocol, port));
    }
    fn unmapped(&self, protocol: Protocol, port: u16) {
        self.0.lock().unwrap().push((false, protocol, port));
    }
}

#[test]
fn the_observer_hears_every_port_a_mapping_takes_and_releases_once() {
    let mut ct = conntrack();
    let rec = Recorder::default();
    ct.observe_ports(Box::new(rec.clone()));
    let mut a = udp(A, 61234, R, 53, b"q");
    ct.translate_outbound(0, &mut a).unwrap();
    let mut again = udp(A, 61234, R, 53, b"q");
    ct.translate_outbound(0, &mut again).unwrap();
    let mut syn = tcp(B, 40000, R, 80, SYN, b"");
    ct.translate_outbound(0, &mut syn).unwrap();
    let mut ping = echo(A, R, 7, 1, false, b"");
    ct.translate_outbound(0, &mut ping).unwrap();
    let udp_port = src_of(&a).1;
    let tcp_port = src_of(&syn).1;
    let echo_id = u16::from_be_bytes([ping[24], ping[25]]);
    assert_eq!(
        *rec.0.lock().unwrap(),
        vec![
            (true, Protocol::Udp, udp_port),
            (true, Protocol::Tcp, tcp_port),
            (true, Protocol::Icmp, echo_id),
        ],
        "one report per new mapping, none for a packet on an existing one"
    );
    while !ct.is_empty() {
        ct.expire(100_000 * SEC, 64);
    }
    let events = rec.0.lock().unwrap().clone();
    let released: Vec<_> = events[3..]
        .iter()
        .map(|&(m, p, port)| (m, p, port))
        .collect();
    assert_eq!(released.len(), 3, "{events:?}");
    for (p, port) in [
        (Protocol::Udp, udp_port),
        (Protocol::Tcp, tcp_port),
        (Protocol::Icmp, echo_id),
    ] {
        assert!(
            released.contains(&(false, p, port)),
            "{p:?} {port} not released: {events:?}"
        );
    }
}
