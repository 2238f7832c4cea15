//! IPv6 test helpers: packets built by etherparse (an independent implementation), and a
//! checker that recomputes every checksum from scratch with etherparse, the quoted packet of
//! an ICMPv6 error included.
#![allow(dead_code)]

use std::net::{Ipv6Addr, SocketAddrV6};

use etherparse::{
    icmpv6, Icmpv6Header, Icmpv6Type, IpNumber, Ipv6Header, PacketBuilder, TcpHeader, UdpHeader,
};
use nat::{Conntrack6, NatConfig, Protocol};

const fn v6(s: [u16; 8]) -> [u8; 16] {
    let mut o = [0u8; 16];
    let mut i = 0;
    while i < 8 {
        o[2 * i] = (s[i] >> 8) as u8;
        o[2 * i + 1] = s[i] as u8;
        i += 1;
    }
    o
}

pub const E: [u8; 16] = v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 3]); // the gateway's LAN (egress) address
pub const E2: [u8; 16] = v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 4]); // a second egress address
pub const A: [u8; 16] = v6([0xfd13, 0, 0, 0, 0, 0, 0, 2]); // peer1 inside
pub const B: [u8; 16] = v6([0xfd13, 0, 0, 0, 0, 0, 0, 3]); // another peer
pub const R: [u8; 16] = v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]); // the server
pub const R2: [u8; 16] = v6([0x2001, 0xdb8, 0xbeef, 0, 0, 0, 0, 0x34]);
pub const ROUTER: [u8; 16] = v6([0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1]);

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;

pub const SEC: u64 = 1_000_000_000;

pub fn config() -> NatConfig<Ipv6Addr> {
    NatConfig {
        egress: vec![Ipv6Addr::from(E)],
        ports: 61000..=65535,
        exclude_ports: vec![51820, 62000],
        capacity_per_worker: 1024,
        ..NatConfig::default()
    }
}

pub fn conntrack() -> Conntrack6 {
    Conntrack6::new(&config(), 0).unwrap()
}

pub fn udp(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv6(src, dst, 64).udp(sport, dport);
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

pub fn tcp(
    src: [u8; 16],
    sport: u16,
    dst: [u8; 16],
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ipv6(src, dst, 64).tcp(sport, dport, 0x1000, 64240);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & ACK != 0 {
        b = b.ack(0x2000);
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

pub fn echo(
    src: [u8; 16],
    dst: [u8; 16],
    id: u16,
    seq: u16,
    reply: bool,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ipv6(src, dst, 64);
    let b = if reply {
        b.icmpv6_echo_reply(id, seq)
    } else {
        b.icmpv6_echo_request(id, seq)
    };
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

pub fn port_unreachable() -> Icmpv6Type {
    Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port)
}

pub fn packet_too_big(mtu: u32) -> Icmpv6Type {
    Icmpv6Type::PacketTooBig { mtu }
}

pub fn hop_limit_exceeded() -> Icmpv6Type {
    Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded)
}

pub fn parameter_problem(pointer: u32) -> Icmpv6Type {
    Icmpv6Type::ParameterProblem(icmpv6::ParameterProblemHeader {
        code: icmpv6::ParameterProblemCode::ErroneousHeaderField,
        pointer,
    })
}

/// The four ICMPv6 errors the NAT translates.
pub fn errors() -> [Icmpv6Type; 4] {
    [
        port_unreachable(),
        packet_too_big(1280),
        hop_limit_exceeded(),
        parameter_problem(7),
    ]
}

pub fn icmp_error(src: [u8; 16], dst: [u8; 16], t: Icmpv6Type, quoted: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv6(src, dst, 64).icmpv6(t);
    let mut v = Vec::with_capacity(b.size(quoted.len()));
    b.write(&mut v, quoted).unwrap();
    v
}

/// Recomputes every checksum of the IPv6 packet `pkt` with etherparse: TCP, UDP (non-zero:
/// mandatory over IPv6) and ICMPv6, all over the pseudo-header; for an ICMPv6 error also the
/// quoted packet's transport checksum when its whole segment is quoted.
pub fn check_checksums(pkt: &[u8]) -> Result<(), String> {
    let (ip, rest) = Ipv6Header::from_slice(pkt).map_err(|e| format!("ip: {e:?}"))?;
    let payload = &rest[..usize::from(ip.payload_length)];
    check_l4(&ip, payload, false)
}

fn check_l4(ip: &Ipv6Header, payload: &[u8], quoted: bool) -> Result<(), String> {
    match ip.next_header {
        IpNumber::TCP => {
            let (h, data) = TcpHeader::from_slice(payload).map_err(|e| format!("tcp: {e:?}"))?;
            let want = h.calc_checksum_ipv6(ip, data).unwrap();
            if h.checksum != want {
                return Err(format!("tcp checksum {:#x} want {:#x}", h.checksum, want));
            }
        }
        IpNumber::UDP => {
            let (h, data) = UdpHeader::from_slice(payload).map_err(|e| format!("udp: {e:?}"))?;
            let want = h.calc_checksum_ipv6(ip, data).unwrap();
            if h.checksum != want {
                return Err(format!("udp checksum {:#x} want {:#x}", h.checksum, want));
            }
        }
        IpNumber::IPV6_ICMP => {
            let (h, data) =
                Icmpv6Header::from_slice(payload).map_err(|e| format!("icmpv6: {e:?}"))?;
            let want = h
                .icmp_type
                .calc_checksum(ip.source, ip.destination, data)
                .unwrap();
            if h.checksum != want {
                return Err(format!(
                    "icmpv6 checksum {:#x} want {:#x}",
                    h.checksum, want
                ));
            }
            if !quoted
                && matches!(
                    h.icmp_type,
                    Icmpv6Type::DestinationUnreachable(_)
                        | Icmpv6Type::PacketTooBig { .. }
                        | Icmpv6Type::TimeExceeded(_)
                        | Icmpv6Type::ParameterProblem(_)
                )
            {
                let (qip, qrest) =
                    Ipv6Header::from_slice(data).map_err(|e| format!("quoted ip: {e:?}"))?;
                let qlen = usize::from(qip.payload_length);
                if qrest.len() >= qlen {
                    check_l4(&qip, &qrest[..qlen], true)?;
                }
            }
        }
        n => return Err(format!("unexpected next header {n:?}")),
    }
    Ok(())
}

pub fn sock(a: [u8; 16], port: u16) -> SocketAddrV6 {
    SocketAddrV6::new(Ipv6Addr::from(a), port, 0, 0)
}

/// External (address, port) of an inside endpoint's mapping.
pub fn external(ct: &Conntrack6, proto: Protocol, a: [u8; 16], port: u16) -> ([u8; 16], u16) {
    let m = ct.lookup_inside(proto, sock(a, port)).expect("mapping");
    (m.external.ip().octets(), m.external.port())
}

fn addr_at(pkt: &[u8], at: usize) -> [u8; 16] {
    pkt[at..at + 16].try_into().unwrap()
}

/// Source (address, port / echo id) of an IPv6 packet without extension headers.
pub fn src_of(pkt: &[u8]) -> ([u8; 16], u16) {
    let port_at = if pkt[6] == 58 { 44 } else { 40 };
    (
        addr_at(pkt, 8),
        u16::from_be_bytes([pkt[port_at], pkt[port_at + 1]]),
    )
}

pub fn dst_of(pkt: &[u8]) -> ([u8; 16], u16) {
    let port_at = if pkt[6] == 58 { 44 } else { 42 };
    (
        addr_at(pkt, 24),
        u16::from_be_bytes([pkt[port_at], pkt[port_at + 1]]),
    )
}

/// The same packet with source and destination (addresses and ports) swapped: every checksum
/// stays valid (one's-complement sums do not depend on word order). Not for ICMPv6.
pub fn swap_endpoints(p: &mut [u8]) {
    let (s, d) = (p[8..24].to_vec(), p[24..40].to_vec());
    p[8..24].copy_from_slice(&d);
    p[24..40].copy_from_slice(&s);
    let (sp, dp) = ([p[40], p[41]], [p[42], p[43]]);
    p[40..42].copy_from_slice(&dp);
    p[42..44].copy_from_slice(&sp);
}
