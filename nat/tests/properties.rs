//! Property tests: translation is exactly reversible, incremental checksums equal a full
//! recomputation by etherparse (an independent implementation), ICMP errors are reverted
//! exactly, and no sequence of operations takes the table past its capacity.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use common::*;
use nat::{Conntrack, Inbound, NatConfig, NatError, Outbound, Protocol};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Kind {
    Udp { zero_csum: bool },
    Tcp { flags: u8 },
    Echo,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        any::<bool>().prop_map(|zero_csum| Kind::Udp { zero_csum }),
        (0u8..32).prop_map(|f| Kind::Tcp {
            flags: f & (SYN | ACK | FIN | RST)
        }),
        Just(Kind::Echo),
    ]
}

fn build(
    k: &Kind,
    src: [u8; 4],
    sp: u16,
    dst: [u8; 4],
    dp: u16,
    payload: &[u8],
    reply: bool,
) -> Vec<u8> {
    match k {
        Kind::Udp { zero_csum } => {
            let mut p = udp(src, sp, dst, dp, payload);
            if *zero_csum {
                p[26..28].fill(0);
            }
            p
        }
        Kind::Tcp { flags } => tcp(src, sp, dst, dp, *flags, payload),
        // For echo the "port" is the identifier, the same in both directions.
        Kind::Echo => echo(src, dst, if reply { dp } else { sp }, 77, reply, payload),
    }
}

fn proto(k: &Kind) -> Protocol {
    match k {
        Kind::Udp { .. } => Protocol::Udp,
        Kind::Tcp { .. } => Protocol::Tcp,
        Kind::Echo => Protocol::Icmp,
    }
}

fn swap_endpoints(p: &mut [u8]) {
    // Swapping source and destination (addresses and ports) leaves every checksum valid:
    // one's-complement sums do not depend on word order.
    let h = usize::from(p[0] & 15) * 4;
    let (s, d) = (p[12..16].to_vec(), p[16..20].to_vec());
    p[12..16].copy_from_slice(&d);
    p[16..20].copy_from_slice(&s);
    let (sp, dp) = ([p[h], p[h + 1]], [p[h + 2], p[h + 3]]);
    p[h..h + 2].copy_from_slice(&dp);
    p[h + 2..h + 4].copy_from_slice(&sp);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Outbound equals what etherparse builds for the translated endpoints (so every
    /// incrementally updated checksum equals a full recomputation), the reply is un-NATed to
    /// exactly what the remote would have sent to the inside host, and translate-then-reverse
    /// of the very same bytes yields the original.
    #[test]
    fn translate_then_reverse_yields_the_original(
        k in kind(),
        host in 2u8..250,
        sport in 1u16..,
        dst in any::<[u8; 4]>().prop_filter("not egress", |d| *d != E),
        dport in 1u16..,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut ct = conntrack();
        let a = [10, 13, 13, host];
        let orig = build(&k, a, sport, dst, dport, &payload, false);
        let mut p = orig.clone();
        prop_assert_eq!(ct.translate_outbound(0, &mut p), Ok(Outbound::Forward));
        let (ea, x) = external(&ct, proto(&k), a, sport);
        prop_assert_eq!(ea, E);
        prop_assert_eq!(&p, &build(&k, E, x, dst, dport, &payload, false));
        check_checksums(&p).unwrap();

        let mut reply = build(&k, dst, dport, E, x, &payload, true);
        prop_assert_eq!(ct.translate_inbound(0, &mut reply), Ok(Inbound::Deliver { inside: Ipv4Addr::from(a) }));
        prop_assert_eq!(&reply, &build(&k, dst, dport, a, sport, &payload, true));

        if !matches!(k, Kind::Echo) {
            let mut back = p.clone();
            swap_endpoints(&mut back);
            ct.translate_inbound(0, &mut back).unwrap();
            swap_endpoints(&mut back);
            prop_assert_eq!(back, orig);
        }
    }

    /// Any cut of the quoted packet (header + at least 8 bytes): the error delivered inside
    /// equals the error the router would have sent with no NAT.
    #[test]
    fn icmp_errors_revert_exactly_for_any_quote_length(
        k in kind(),
        sport in 1u16..,
        dport in 1u16..,
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        cut in 28usize..600,
        t in 0u8..3,
    ) {
        let mut ct = conntrack();
        let orig = build(&k, A, sport, R2, dport, &payload, false);
        let mut natd = orig.clone();
        ct.translate_outbound(0, &mut natd).unwrap();
        // Whole 16-bit words only (see rewrite.rs on quotes ending inside a checksum).
        let n = cut.min(natd.len()) & !1;
        let ty = [port_unreachable(), ttl_exceeded(), frag_needed(1280)][usize::from(t)].clone();
        let mut err = icmp_error(ROUTER, E, ty.clone(), &natd[..n]);
        prop_assert_eq!(ct.translate_inbound(0, &mut err), Ok(Inbound::Deliver { inside: A.into() }));
        prop_assert_eq!(&err, &icmp_error(ROUTER, A, ty, &orig[..n]));
        check_checksums(&err).unwrap();
    }

    /// Random flows, replies, clock steps and expiry budgets: the table never holds more than
    /// its capacity, counters add up, and no external port is ever shared by two live mappings.
    #[test]
    fn random_operations_never_exceed_capacity(
        ops in proptest::collection::vec((0u8..4, 0u8..12, 0u16..40, 0u32..400), 1..400),
    ) {
        let cfg = NatConfig { capacity_per_worker: 16, ports: 61000..=61039, exclude_ports: vec![61007], ..config() };
        let mut ct = Conntrack::new(&cfg, 0).unwrap();
        let mut now = 0u64;
        let mut seen: BTreeMap<(u8, [u8; 4], u16), ()> = BTreeMap::new();
        for (op, host, port, arg) in ops {
            let inside = [10, 13, 13, host + 2];
            match op {
                0 | 1 => {
                    let mut p = if op == 0 { udp(inside, port, R, 53, b"") } else { tcp(inside, port, R, 80, SYN, b"") };
                    match ct.translate_outbound(now, &mut p) {
                        Ok(Outbound::Forward) => { seen.insert((op, inside, port), ()); }
                        Err(NatError::TableFull) | Err(NatError::NoFreePort) => {}
                        other => prop_assert!(false, "unexpected {:?}", other),
                    }
                }
                2 => {
                    let mut r = udp(R, 53, E, 61000 + (arg % 40) as u16, b"");
                    let _ = ct.translate_inbound(now, &mut r);
                }
                _ => {
                    now += u64::from(arg) * SEC;
                    ct.expire(now, (arg % 50) as usize);
                }
            }
            prop_assert!(ct.len() <= 16);
            let c = ct.counters();
            prop_assert_eq!(c.created - c.expired, ct.len() as u64);
            let mut ext = std::collections::BTreeSet::new();
            for &(op, a, p) in seen.keys() {
                let proto = if op == 0 { Protocol::Udp } else { Protocol::Tcp };
                if let Some(m) = ct.lookup_inside(proto, sock(a, p)) {
                    prop_assert!(m.external.port() != 61007);
                    prop_assert!(ext.insert((op, m.external.port())), "port shared");
                }
            }
        }
    }

    /// Arbitrary bytes never panic, and a rejected packet is never modified.
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..120), inbound: bool) {
        let mut ct = conntrack();
        let before = bytes.clone();
        let r = if inbound {
            ct.translate_inbound(0, &mut bytes).map(|_| ())
        } else {
            ct.translate_outbound(0, &mut bytes).map(|_| ())
        };
        if r.is_err() {
            prop_assert_eq!(bytes, before);
        }
    }
}
