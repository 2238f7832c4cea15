//! IPv6 NAT property tests, etherparse the independent checker: every rewritten packet equals
//! the packet etherparse builds for the translated endpoints (addresses, ports, and so every
//! checksum over the pseudo-header), ICMPv6 errors of every type and quote length revert
//! exactly, and arbitrary bytes never panic nor change a rejected packet.

mod common6;

use std::net::Ipv6Addr;

use common6::*;
use nat::{Inbound, Outbound, Protocol};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Kind {
    Udp,
    Tcp { flags: u8 },
    Echo,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Udp),
        (0u8..32).prop_map(|f| Kind::Tcp {
            flags: f & (SYN | ACK | FIN | RST)
        }),
        Just(Kind::Echo),
    ]
}

fn build(
    k: &Kind,
    src: [u8; 16],
    sp: u16,
    dst: [u8; 16],
    dp: u16,
    payload: &[u8],
    reply: bool,
) -> Vec<u8> {
    match k {
        Kind::Udp => udp(src, sp, dst, dp, payload),
        Kind::Tcp { flags } => tcp(src, sp, dst, dp, *flags, payload),
        Kind::Echo => echo(src, dst, if reply { dp } else { sp }, 77, reply, payload),
    }
}

fn proto(k: &Kind) -> Protocol {
    match k {
        Kind::Udp => Protocol::Udp,
        Kind::Tcp { .. } => Protocol::Tcp,
        Kind::Echo => Protocol::Icmp,
    }
}

fn addr() -> impl Strategy<Value = [u8; 16]> {
    any::<[u8; 16]>().prop_filter("not egress", |d| *d != E)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Outbound equals what etherparse builds for the translated endpoints, the reply is
    /// un-NATed to exactly what the remote would have sent to the inside host, and
    /// translate-then-reverse of the very same bytes yields the original.
    #[test]
    fn translate_then_reverse_yields_the_original(
        k in kind(),
        a in addr(),
        sport in 1u16..,
        dst in addr(),
        dport in 1u16..,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut ct = conntrack();
        let orig = build(&k, a, sport, dst, dport, &payload, false);
        let mut p = orig.clone();
        prop_assert_eq!(ct.translate_outbound(0, &mut p), Ok(Outbound::Forward));
        let (ea, x) = external(&ct, proto(&k), a, sport);
        prop_assert_eq!(ea, E);
        prop_assert_eq!(&p, &build(&k, E, x, dst, dport, &payload, false));
        check_checksums(&p).unwrap();

        let mut reply = build(&k, dst, dport, E, x, &payload, true);
        prop_assert_eq!(
            ct.translate_inbound(0, &mut reply),
            Ok(Inbound::Deliver { inside: Ipv6Addr::from(a) })
        );
        prop_assert_eq!(&reply, &build(&k, dst, dport, a, sport, &payload, true));
        check_checksums(&reply).unwrap();

        if !matches!(k, Kind::Echo) {
            let mut back = p.clone();
            swap_endpoints(&mut back);
            ct.translate_inbound(0, &mut back).unwrap();
            swap_endpoints(&mut back);
            prop_assert_eq!(back, orig);
        }
    }

    /// Every ICMPv6 error type, any cut of the quoted packet (fixed header + at least 8
    /// bytes): the error delivered inside equals the error the router would have sent with no
    /// NAT, and the error an inside host sends out equals the one the remote would have got.
    #[test]
    fn icmpv6_errors_revert_exactly_for_any_quote_length(
        k in kind(),
        sport in 1u16..,
        dport in 1u16..,
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        cut in 48usize..600,
        t in 0usize..4,
        mtu in 1280u32..9000,
    ) {
        let ty = [port_unreachable(), packet_too_big(mtu), hop_limit_exceeded(), parameter_problem(mtu % 48)][t];
        let mut ct = conntrack();
        let orig = build(&k, A, sport, R2, dport, &payload, false);
        let mut natd = orig.clone();
        ct.translate_outbound(0, &mut natd).unwrap();
        // Whole 16-bit words only (see rewrite.rs on quotes ending inside a checksum).
        let n = cut.min(natd.len()) & !1;
        let mut err = icmp_error(ROUTER, E, ty, &natd[..n]);
        prop_assert_eq!(ct.translate_inbound(0, &mut err), Ok(Inbound::Deliver { inside: Ipv6Addr::from(A) }));
        prop_assert_eq!(&err, &icmp_error(ROUTER, A, ty, &orig[..n]));
        check_checksums(&err).unwrap();

        // The other way: R2's reply delivered to A, and A's error about it.
        let x = external(&ct, proto(&k), A, sport).1;
        let sent = build(&k, R2, dport, E, x, &payload, true);
        let mut delivered = sent.clone();
        let r = ct.translate_inbound(0, &mut delivered);
        prop_assert_eq!(r, Ok(Inbound::Deliver { inside: Ipv6Addr::from(A) }));
        let n = cut.min(delivered.len()) & !1;
        let mut err = icmp_error(A, R2, ty, &delivered[..n]);
        prop_assert_eq!(ct.translate_outbound(0, &mut err), Ok(Outbound::Forward));
        prop_assert_eq!(&err, &icmp_error(E, R2, ty, &sent[..n]));
        check_checksums(&err).unwrap();
    }

    /// Arbitrary bytes never panic, and a rejected packet is never modified.
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..160), inbound: bool, v6: bool) {
        let mut ct = conntrack();
        if v6 && bytes.len() >= 40 {
            // Past the version and length gates, so the rest of the parser is exercised.
            bytes[0] = 0x60;
            let plen = (bytes.len() - 40) as u16;
            bytes[4..6].copy_from_slice(&plen.to_be_bytes());
            if inbound {
                bytes[24..40].copy_from_slice(&E);
            }
        }
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
