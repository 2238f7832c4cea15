//! Test helpers: packets built by etherparse (an independent implementation), and a checker
//! that recomputes every checksum from scratch with etherparse.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{
    icmpv4, Icmpv4Header, Icmpv4Type, IpNumber, Ipv4Header, PacketBuilder, TcpHeader, UdpHeader,
};
use nat::{Conntrack, NatConfig, Protocol};

pub const E: [u8; 4] = [172, 23, 0, 3]; // the gateway's eth0 (egress) address
pub const A: [u8; 4] = [10, 13, 13, 2]; // peer1
pub const B: [u8; 4] = [10, 13, 13, 3]; // another peer
pub const R: [u8; 4] = [172, 23, 0, 2]; // nginx
pub const R2: [u8; 4] = [93, 184, 216, 34];
pub const ROUTER: [u8; 4] = [198, 51, 100, 1];

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;

pub const SEC: u64 = 1_000_000_000;

pub fn config() -> NatConfig {
    NatConfig {
        egress: vec![Ipv4Addr::from(E)],
        ports: 61000..=65535,
        // A host service inside the range, to show exclusions hold.
        exclude_ports: vec![51820, 62000],
        capacity_per_worker: 1024,
        ..NatConfig::default()
    }
}

pub fn conntrack() -> Conntrack {
    Conntrack::new(&config(), 0).unwrap()
}

pub fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

pub fn tcp(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 0x1000, 64240);
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

pub fn echo(src: [u8; 4], dst: [u8; 4], id: u16, seq: u16, reply: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64);
    let b = if reply {
        b.icmpv4_echo_reply(id, seq)
    } else {
        b.icmpv4_echo_request(id, seq)
    };
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

pub fn port_unreachable() -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port)
}

pub fn frag_needed(mtu: u16) -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: mtu,
    })
}

pub fn ttl_exceeded() -> Icmpv4Type {
    Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit)
}

pub fn icmp_error(src: [u8; 4], dst: [u8; 4], t: Icmpv4Type, quoted: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).icmpv4(t);
    let mut v = Vec::with_capacity(b.size(quoted.len()));
    b.write(&mut v, quoted).unwrap();
    v
}

/// Recomputes every checksum of `pkt` with etherparse: IPv4 header, TCP/UDP (zero UDP
/// checksum allowed), ICMP, and for ICMP errors the quoted IPv4 header and, when the whole
/// quoted transport segment is present, its checksum too.
pub fn check_checksums(pkt: &[u8]) -> Result<(), String> {
    let (ip, rest) = Ipv4Header::from_slice(pkt).map_err(|e| format!("ip: {e:?}"))?;
    if ip.header_checksum != ip.calc_header_checksum() {
        return Err("ip header checksum".into());
    }
    let plen = usize::from(ip.total_len) - ip.header_len();
    let payload = &rest[..plen];
    check_l4(&ip, payload, false)
}

fn check_l4(ip: &Ipv4Header, payload: &[u8], quoted: bool) -> Result<(), String> {
    match ip.protocol {
        IpNumber::TCP => {
            let Ok((h, data)) = TcpHeader::from_slice(payload) else {
                return if quoted {
                    Ok(())
                } else {
                    Err("tcp parse".into())
                };
            };
            let want = h.calc_checksum_ipv4(ip, data).unwrap();
            if h.checksum != want {
                return Err(format!("tcp checksum {:#x} want {:#x}", h.checksum, want));
            }
        }
        IpNumber::UDP => {
            let (h, data) = UdpHeader::from_slice(payload).map_err(|e| format!("udp: {e:?}"))?;
            if h.checksum != 0 {
                let want = h.calc_checksum_ipv4(ip, data).unwrap();
                if h.checksum != want {
                    return Err(format!("udp checksum {:#x} want {:#x}", h.checksum, want));
                }
            }
        }
        IpNumber::ICMP => {
            let (h, data) =
                Icmpv4Header::from_slice(payload).map_err(|e| format!("icmp: {e:?}"))?;
            let want = h.icmp_type.calc_checksum(data);
            if h.checksum != want {
                return Err(format!("icmp checksum {:#x} want {:#x}", h.checksum, want));
            }
            if !quoted
                && matches!(
                    h.icmp_type,
                    Icmpv4Type::DestinationUnreachable(_)
                        | Icmpv4Type::TimeExceeded(_)
                        | Icmpv4Type::ParameterProblem(_)
                )
            {
                let (qip, qrest) =
                    Ipv4Header::from_slice(data).map_err(|e| format!("quoted ip: {e:?}"))?;
                if qip.header_checksum != qip.calc_header_checksum() {
                    return Err("quoted ip header checksum".into());
                }
                let qlen = usize::from(qip.total_len) - qip.header_len();
                if qrest.len() >= qlen {
                    check_l4(&qip, &qrest[..qlen], true)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

pub fn sock(a: [u8; 4], port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(a), port)
}

/// External (address, port) of an inside endpoint's mapping.
pub fn external(ct: &Conntrack, proto: Protocol, a: [u8; 4], port: u16) -> ([u8; 4], u16) {
    let m = ct.lookup_inside(proto, sock(a, port)).expect("mapping");
    (m.external.ip().octets(), m.external.port())
}

pub fn src_of(pkt: &[u8]) -> ([u8; 4], u16) {
    let h = (usize::from(pkt[0] & 15)) * 4;
    (
        [pkt[12], pkt[13], pkt[14], pkt[15]],
        u16::from_be_bytes([pkt[h], pkt[h + 1]]),
    )
}

pub fn dst_of(pkt: &[u8]) -> ([u8; 4], u16) {
    let h = (usize::from(pkt[0] & 15)) * 4;
    (
        [pkt[16], pkt[17], pkt[18], pkt[19]],
        u16::from_be_bytes([pkt[h + 2], pkt[h + 3]]),
    )
}
