//! The packets the benchmarks feed the gateway, built the way they would arrive in a UMEM frame:
//! inner IPv4/UDP or IPv6/UDP packets of a chosen size, sealed by a client keypair into
//! Ethernet + IP + UDP + WireGuard frames, and plain return traffic from the LAN.
//!
//! Frames are [`FRAME_SIZE`] bytes with the packet at [`HEADROOM`], as the AF_XDP workers see
//! them (the headroom is where the gateway writes outer headers when it encapsulates).

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{bail, Result};
use etherparse::PacketBuilder;
use wgproto::constants::TRANSPORT_HEADER_LEN;
use wgproto::keypair::{sealed_len, Keypair};
use wgproto::time::Timestamp;
use wire::{ethernet, ipv4, ipv6, udp};

/// Size of one UMEM frame.
pub const FRAME_SIZE: usize = 4096;
/// Where a received packet starts in its frame.
pub const HEADROOM: usize = 256;
/// Ethernet + IPv4 (no options) + UDP.
pub const OUTER_HEADERS: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
/// IPv4 + UDP headers of an inner packet.
pub const INNER_HEADERS: usize = ipv4::HEADER_LEN + udp::HEADER_LEN;
/// IPv6 + UDP headers of an inner packet.
pub const INNER_HEADERS6: usize = ipv6::HEADER_LEN + udp::HEADER_LEN;
/// The smallest inner packet [`inner_udp`] builds (headers plus an 8-byte sequence number).
pub const MIN_INNER: usize = INNER_HEADERS + 8;

/// Ethernet addresses of one hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Macs {
    pub src: [u8; 6],
    pub dst: [u8; 6],
}

/// The outer addressing of a frame: Ethernet addresses and UDP endpoints (both of one family:
/// an IPv4 or an IPv6 underlay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wire {
    pub macs: Macs,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// The payload byte at offset `i` of a packet with sequence number `seq`: a pattern a
/// truncated, shifted or corrupted payload does not reproduce.
pub fn pattern_byte(seq: u64, i: usize) -> u8 {
    (seq as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ ((i >> 8) as u8)
}

/// A UDP packet of exactly `total_len` bytes from `src` to `dst`, IPv4 or IPv6 (the endpoints'
/// family; at least [`MIN_INNER`], or 8 bytes more for IPv6's header); the payload starts
/// with `seq` (big endian) followed by [`pattern_byte`]s. TTL / hop limit 64, checksums valid.
pub fn inner_udp(
    src: impl Into<SocketAddr>,
    dst: impl Into<SocketAddr>,
    total_len: usize,
    seq: u64,
) -> Result<Vec<u8>> {
    let (src, dst) = (src.into(), dst.into());
    let headers = if src.is_ipv4() {
        INNER_HEADERS
    } else {
        INNER_HEADERS6
    };
    if !(headers + 8..=65535).contains(&total_len) {
        bail!(
            "inner packet of {total_len} bytes: must be {}..=65535",
            headers + 8
        );
    }
    let mut payload = vec![0u8; total_len - headers];
    payload[..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in payload.iter_mut().enumerate().skip(8) {
        *b = pattern_byte(seq, i);
    }
    let builder = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            PacketBuilder::ipv4(s.ip().octets(), d.ip().octets(), ipv4::DEFAULT_TTL)
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            PacketBuilder::ipv6(s.ip().octets(), d.ip().octets(), ipv6::DEFAULT_HOP_LIMIT)
        }
        _ => bail!("{src} and {dst} are of different families"),
    }
    .udp(src.port(), dst.port());
    let mut out = Vec::with_capacity(total_len);
    builder.write(&mut out, &payload)?;
    Ok(out)
}

/// Checks a payload written by [`inner_udp`]: returns its sequence number, or `None` if any
/// byte differs from the pattern.
pub fn check_payload(payload: &[u8]) -> Option<u64> {
    let seq = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    payload
        .iter()
        .enumerate()
        .skip(8)
        .all(|(i, &b)| b == pattern_byte(seq, i))
        .then_some(seq)
}

/// Writes Ethernet + IP + UDP headers (IPv4 or IPv6, the endpoints' family) for a UDP payload
/// of `payload_len` bytes at `frame[..outer_headers(dst)]`.
pub fn write_outer(
    frame: &mut [u8],
    macs: Macs,
    src: SocketAddr,
    dst: SocketAddr,
    payload_len: usize,
) -> Result<()> {
    let eth = PacketBuilder::ethernet2(macs.src, macs.dst);
    let builder = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            eth.ipv4(s.ip().octets(), d.ip().octets(), ipv4::DEFAULT_TTL)
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => eth.ipv6(s.ip().octets(), d.ip().octets(), 64),
        _ => bail!("{src} and {dst} are of different families"),
    }
    .udp(src.port(), dst.port());
    let len = outer_headers(&dst);
    let mut header = Vec::with_capacity(len);
    // Written without the payload: the UDP checksum does not cover it. The gateway does not
    // check received UDP checksums (zero is allowed over IPv4, RFC 768; the AEAD tag
    // authenticates the message), so it is left 0 over IPv4 and wrong over IPv6.
    builder.write(&mut header, &vec![0u8; payload_len])?;
    header.truncate(len);
    let udp_at = len - udp::HEADER_LEN;
    udp::Packet::new_unchecked(&mut header[udp_at..]).set_checksum(0);
    let Some(dst_hdr) = frame.get_mut(..len) else {
        bail!("frame too short for the outer headers");
    };
    dst_hdr.copy_from_slice(&header);
    Ok(())
}

/// Ethernet + IP + UDP header bytes in front of a WireGuard message to `dst`.
pub fn outer_headers(dst: &SocketAddr) -> usize {
    fastpath::outer::header_len(dst)
}

/// Seals `inner` with the client's `keypair` into a complete WireGuard frame at
/// `frame[HEADROOM..]` addressed as `wire`; returns the frame length. Uses the
/// keypair's next counter, so every call makes a packet the gateway's replay window accepts
/// once.
pub fn seal_frame(
    frame: &mut [u8],
    keypair: &Keypair,
    now: Timestamp,
    mtu: usize,
    wire: Wire,
    inner: &[u8],
) -> Result<usize> {
    let outer = outer_headers(&wire.dst);
    let msg = HEADROOM + outer;
    let need = msg + sealed_len(inner.len(), mtu);
    if frame.len() < need {
        bail!("frame of {} bytes, {need} needed", frame.len());
    }
    let body = msg + TRANSPORT_HEADER_LEN;
    frame[body..body + inner.len()].copy_from_slice(inner);
    let sealed = keypair
        .seal_in_place(now, &mut frame[msg..need], inner.len(), mtu)
        .map_err(|e| anyhow::anyhow!("seal: {e}"))?;
    write_outer(
        &mut frame[HEADROOM..],
        wire.macs,
        wire.src,
        wire.dst,
        sealed.len,
    )?;
    Ok(outer + sealed.len)
}

/// Puts the IP packet `ip` (IPv4 or IPv6, by its version) behind an Ethernet header at
/// `frame[HEADROOM..]`: return traffic as it arrives from the LAN. Returns the frame length.
pub fn plain_frame(frame: &mut [u8], macs: Macs, ip: &[u8]) -> Result<usize> {
    let len = ethernet::HEADER_LEN + ip.len();
    let Some(f) = frame.get_mut(HEADROOM..HEADROOM + len) else {
        bail!("frame too short for a {len}-byte packet");
    };
    let ethertype = match wire::ip_version(ip) {
        Some(6) => ethernet::ETHERTYPE_IPV6,
        _ => ethernet::ETHERTYPE_IPV4,
    };
    ethernet::write_header(f, macs.dst, macs.src, ethertype)?;
    f[ethernet::HEADER_LEN..].copy_from_slice(ip);
    Ok(len)
}

/// The inner sizes of the simple IMIX (7 : 4 : 1 of 64, 576 and 1500-byte IP packets; the
/// large one capped at the 1420-byte tunnel MTU), in a fixed interleaved order.
pub const IMIX_PATTERN: [usize; 12] = [64, 576, 64, 64, 576, 1420, 64, 576, 64, 64, 576, 64];

/// A packet size, or the IMIX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeMix {
    Fixed(usize),
    Imix,
}

impl SizeMix {
    /// The inner packet size of the `i`-th packet.
    pub fn size(self, i: usize) -> usize {
        match self {
            SizeMix::Fixed(n) => n,
            SizeMix::Imix => IMIX_PATTERN[i % IMIX_PATTERN.len()],
        }
    }

    /// Mean inner packet size.
    pub fn mean(self) -> f64 {
        match self {
            SizeMix::Fixed(n) => n as f64,
            SizeMix::Imix => IMIX_PATTERN.iter().sum::<usize>() as f64 / IMIX_PATTERN.len() as f64,
        }
    }

    pub fn label(self) -> String {
        match self {
            SizeMix::Fixed(n) => format!("{n} B"),
            SizeMix::Imix => "IMIX".to_owned(),
        }
    }
}

/// A convenience for tests: the four sizes of the benchmark.
pub const STANDARD_MIXES: [SizeMix; 4] = [
    SizeMix::Fixed(64),
    SizeMix::Fixed(512),
    SizeMix::Fixed(1420),
    SizeMix::Imix,
];

/// The IPv4 address of a packet's destination field (no validation beyond length).
pub fn ipv4_dst(ip: &[u8]) -> Option<Ipv4Addr> {
    let d = ip.get(ipv4::field::DST)?;
    Some(Ipv4Addr::new(d[0], d[1], d[2], d[3]))
}
