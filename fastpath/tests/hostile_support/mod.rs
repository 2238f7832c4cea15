//! A gateway pipeline without any I/O, for the hostile-input tests and the fuzz targets
//! (`fastpath/fuzz` includes this file by path, so both drive exactly the same fixture).
//!
//! One peer ("the client", inner address 10.13.13.2, endpoint 198.51.100.7:40000) holds a real
//! session with the gateway: both ends are [`Keypair`]s built from the same fixed
//! [`SessionKeys`], so the client seals what the gateway's pipeline really opens. The server
//! 172.23.0.2 and the client's endpoint are reachable on interface 2 through a fixed
//! [`RouteSnapshot`]; the NAT masquerades to 172.23.0.3. Nothing here reads a clock or the
//! system: every packet is processed at a time the caller passes.
#![allow(dead_code)]

pub mod fuzz;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use fastpath::counters::{DropReason, WorkerCounters};
use fastpath::pipeline::{Batch, Pipeline, PipelineConfig, Verdict};
use fastpath::queue::{slow_path_queue, SlowPathReceiver, ToSlowPath};
use fastpath::route::{Link, Mac, NextHop, NextHopReader, Resolution, RouteSnapshot};
use fastpath::tables::{PeerRoute, PeerTraffic, Tables};
use nat::{Conntrack, NatConfig};
use wgproto::config::IpPrefix;
use wgproto::keypair::{sealed_len, Keypair};
use wgproto::noise::SessionKeys;
use wgproto::peer::PeerId;
use wgproto::time::Timestamp;
use wire::checksum::internet_checksum;

pub const FRAME_SIZE: usize = 4096;
/// Where the kernel puts a received packet in an AF_XDP frame (its XDP headroom).
pub const RX_OFFSET: usize = 256;
pub const LISTEN_PORT: u16 = 51820;
pub const MTU: usize = 1420;
pub const IFINDEX: u32 = 2;
pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
pub const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const GW_ADDR: Ipv4Addr = Ipv4Addr::new(172, 23, 0, 3);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(172, 23, 0, 2);
pub const TUNNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 13, 13, 1);
pub const CLIENT_INNER: Ipv4Addr = Ipv4Addr::new(10, 13, 13, 2);
/// The same hosts' IPv6 addresses on the LAN and in the tunnel (routed, no NAT).
pub const GW_LAN_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x23, 0, 0, 0, 0, 3);
pub const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x23, 0, 0, 0, 0, 2);
pub const TUNNEL_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, 1);
pub const CLIENT_INNER6: Ipv6Addr = Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, 2);
pub const CLIENT_EP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 40000);
/// The client's endpoint over an IPv6 underlay, and the gateway's IPv6 address on that wire.
pub const CLIENT_EP6: SocketAddrV6 =
    SocketAddrV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2), 40000, 0, 0);
pub const GW_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
/// Another address the attacker controls (for "a peer's index from another address").
pub const ATTACKER_EP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 66), 40000);
pub const PEER: PeerId = PeerId::new(1);
/// The gateway's index for the session (the receiver index on the client's packets).
pub const GW_INDEX: u32 = 0x1111_0001;
pub const CLIENT_INDEX: u32 = 0x2222_0002;

/// Session keys of both ends: the client initiated, the gateway responded.
pub fn session_keys() -> (SessionKeys, SessionKeys) {
    let client = SessionKeys {
        local_index: CLIENT_INDEX,
        remote_index: GW_INDEX,
        sending_key: [0x5a; 32],
        receiving_key: [0xa5; 32],
        is_initiator: true,
    };
    let gateway = SessionKeys {
        local_index: GW_INDEX,
        remote_index: CLIENT_INDEX,
        sending_key: [0xa5; 32],
        receiving_key: [0x5a; 32],
        is_initiator: false,
    };
    (client, gateway)
}

/// The next hop towards the LAN on interface 2, its link `mtu` bytes wide.
pub fn lan_hop(mtu: u32) -> NextHop {
    NextHop {
        src_addr: Some(IpAddr::V6(GW_LAN_ADDR6)),
        mtu,
        ..hop(LAN_MAC)
    }
}

fn hop(dst_mac: [u8; 6]) -> NextHop {
    NextHop {
        ifindex: IFINDEX,
        src_mac: Mac(GW_MAC),
        dst_mac: Mac(dst_mac),
        gateway: None,
        src_addr: Some(IpAddr::V4(GW_ADDR)),
        mtu: 1500,
    }
}

/// The next hop towards the client's IPv6 endpoint (an NDP entry), sourced from [`GW_ADDR6`].
fn hop6() -> NextHop {
    NextHop {
        src_addr: Some(IpAddr::V6(GW_ADDR6)),
        ..hop([2, 0, 0, 0, 0, 0x76])
    }
}

/// The fixed routes: the server and the client's endpoints are ready on interface 2.
pub fn routes() -> RouteSnapshot {
    routes_with([])
}

/// [`routes`], plus routes to `lan_hosts` through the server's MAC (hosts on the LAN, or
/// addresses an attacker spoofs that the kernel would route).
pub fn routes_with(lan_hosts: impl IntoIterator<Item = Ipv4Addr>) -> RouteSnapshot {
    let lan = lan_hosts
        .into_iter()
        .map(|a| (IpAddr::V4(a), Resolution::Ready(hop(LAN_MAC))));
    RouteSnapshot::from_entries(
        lan.chain([
            (IpAddr::V4(SERVER), Resolution::Ready(hop(LAN_MAC))),
            (IpAddr::V6(SERVER6), Resolution::Ready(lan_hop(1500))),
            (
                IpAddr::V4(*CLIENT_EP.ip()),
                Resolution::Ready(hop([2, 0, 0, 0, 0, 7])),
            ),
            (
                IpAddr::V4(*ATTACKER_EP.ip()),
                Resolution::Ready(hop([2, 0, 0, 0, 0, 0x66])),
            ),
            (IpAddr::V6(*CLIENT_EP6.ip()), Resolution::Ready(hop6())),
        ]),
        [Link {
            index: IFINDEX,
            name: "eth0".into(),
            mac: Some(Mac(GW_MAC)),
            mtu: 1500,
            up: true,
        }],
    )
}

/// The gateway side: pipeline, tables, routes, and the slow path's end of the queue.
pub struct Gateway {
    pub pipeline: Pipeline,
    pub tables: Tables,
    pub routes: RouteSnapshot,
    pub slow: SlowPathReceiver,
    /// The client's end of the session (seals what the gateway opens).
    pub client: Keypair,
    /// Verdict drops counted the way the worker loop counts them.
    pub drops: BTreeMap<&'static str, u64>,
}

/// Options of [`Gateway::new`].
#[derive(Clone, Copy, Debug)]
pub struct GatewayOptions {
    pub nat_capacity: u32,
    pub nat_ports: (u16, u16),
    pub slow_queue: usize,
    pub udp_timeout: Duration,
    /// Workers the NAT is partitioned for, and which one this gateway's pipeline is.
    pub nat_workers: u16,
    pub nat_worker: u16,
    /// IPv6 masquerading too (`[nat] masquerade_ipv6`): an IPv6 NAT to [`GW_ADDR6`] with the
    /// same settings.
    pub nat66: bool,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            nat_capacity: 256,
            nat_ports: (61000, 61999),
            slow_queue: 64,
            udp_timeout: Duration::from_secs(120),
            nat_workers: 1,
            nat_worker: 0,
            nat66: false,
        }
    }
}

impl GatewayOptions {
    /// The NAT configuration every worker of such a gateway shares.
    pub fn nat_config(&self) -> NatConfig {
        let mut nat_cfg = NatConfig {
            egress: vec![GW_ADDR],
            ports: self.nat_ports.0..=self.nat_ports.1,
            exclude_ports: vec![LISTEN_PORT],
            capacity_per_worker: self.nat_capacity,
            workers: self.nat_workers,
            ..NatConfig::default()
        };
        nat_cfg.timeouts.udp = self.udp_timeout;
        nat_cfg.timeouts.udp_bidirectional = self.udp_timeout;
        nat_cfg
    }
}

impl Gateway {
    pub fn new(opts: GatewayOptions) -> Gateway {
        let (client_keys, gw_keys) = session_keys();
        let gw_kp = Arc::new(Keypair::new(PEER, &gw_keys, Timestamp::ZERO));
        let client = Keypair::new(PeerId::new(99), &client_keys, Timestamp::ZERO);
        let mut tables = Tables::default();
        tables.receivers.insert(GW_INDEX, gw_kp.clone());
        tables.peers.insert(
            PEER,
            PeerRoute {
                sending: Some(gw_kp),
                endpoint: Some(SocketAddr::V4(CLIENT_EP)),
                stats: Arc::new(PeerTraffic::default()),
                learned: Default::default(),
            },
        );
        tables
            .allowed_ips
            .insert(IpPrefix::host(IpAddr::V4(CLIENT_INNER)), PEER);
        tables
            .allowed_ips
            .insert(IpPrefix::host(IpAddr::V6(CLIENT_INNER6)), PEER);
        let nat = Conntrack::new(&opts.nat_config(), opts.nat_worker).expect("valid NAT config");
        let (tx, rx) = slow_path_queue(opts.slow_queue);
        let cfg = PipelineConfig {
            listen_port: LISTEN_PORT,
            mtu: MTU,
            host_addrs: vec![GW_ADDR, TUNNEL_ADDR],
            tunnel_addr: TUNNEL_ADDR,
            host_addrs6: vec![GW_ADDR6, GW_LAN_ADDR6, TUNNEL_ADDR6],
            tunnel_addr6: Some(TUNNEL_ADDR6),
            masquerade: true,
            outer_ip_id_seed: 0,
            outer_frag_id_seed: 0,
            cookie_nonce_seed: [0; 16],
        };
        let pipeline = Pipeline::new(
            cfg,
            Some(nat),
            tx,
            NextHopReader::detached(routes()),
            Arc::new(WorkerCounters::default()),
        );
        let pipeline = if opts.nat66 {
            let cfg = opts.nat_config().with_egress(vec![GW_ADDR6]);
            let nat6 = nat::Conntrack6::new(&cfg, opts.nat_worker).expect("valid NAT66 config");
            pipeline.with_nat6(nat6)
        } else {
            pipeline
        };
        Gateway {
            pipeline,
            tables,
            routes: routes(),
            slow: rx,
            client,
            drops: BTreeMap::new(),
        }
    }

    /// Runs one frame (`frame` holds the packet at `RX_OFFSET`, `len` bytes) and counts a drop
    /// by its reason, as the worker loop does.
    pub fn process(&mut self, now: Timestamp, frame: &mut [u8], len: usize) -> Verdict {
        let batch = Batch {
            tables: &self.tables,
            routes: &self.routes,
            now,
        };
        let v = self.pipeline.process(&batch, frame, RX_OFFSET, len);
        // One frame is one batch here, as a worker would end it.
        self.pipeline.end_batch(&batch);
        if let Verdict::Drop(r) = v {
            self.pipeline.counters().count_drop(r);
            *self.drops.entry(r.name()).or_default() += 1;
        }
        v
    }

    pub fn dropped(&self, r: DropReason) -> u64 {
        self.pipeline.counters().dropped(r)
    }

    /// Drops of every reason a transport message failed to open (`decrypt_*`).
    pub fn decrypt_failed(&self) -> u64 {
        DropReason::DECRYPT.iter().map(|r| self.dropped(*r)).sum()
    }

    /// Successful opens so far: data packets plus keepalives.
    pub fn opened(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let c = self.pipeline.counters();
        c.decrypted.load(Relaxed) + c.keepalives.load(Relaxed)
    }

    /// Everything waiting on the slow path's queue, taken off it.
    pub fn drain_slow_path(&mut self) -> Vec<ToSlowPath> {
        let mut out = Vec::new();
        while let Some(m) = self.slow.recv_timeout(Duration::ZERO) {
            out.push(m);
        }
        out
    }

    /// A frame carrying `inner` sealed by the client (next counter), sent from `from`.
    pub fn seal_from_client(&self, now: Timestamp, inner: &[u8], from: SocketAddrV4) -> Frame {
        let msg = self.client_message(now, inner);
        udp_frame(from, SocketAddrV4::new(GW_ADDR, LISTEN_PORT), &msg)
    }

    /// [`Gateway::seal_from_client`] over an IPv6 underlay, to [`GW_ADDR6`].
    pub fn seal_from_client6(&self, now: Timestamp, inner: &[u8], from: SocketAddrV6) -> Frame {
        let msg = self.client_message(now, inner);
        udp6_frame(from, SocketAddrV6::new(GW_ADDR6, LISTEN_PORT, 0, 0), &msg)
    }

    /// `inner` sealed by the client (next counter): a WireGuard transport message.
    pub fn client_message(&self, now: Timestamp, inner: &[u8]) -> Vec<u8> {
        let mut msg = vec![0u8; 16 + sealed_len(inner.len(), MTU).max(inner.len() + 32)];
        msg[16..16 + inner.len()].copy_from_slice(inner);
        let sealed = self
            .client
            .seal_in_place(now, &mut msg, inner.len(), MTU)
            .expect("client keypair seals");
        msg.truncate(sealed.len);
        msg
    }
}

/// A received frame: a whole UMEM-sized buffer with the packet at [`RX_OFFSET`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub buf: Vec<u8>,
    pub len: usize,
}

impl Frame {
    /// The packet bytes (Ethernet header first).
    pub fn packet(&self) -> &[u8] {
        &self.buf[RX_OFFSET..RX_OFFSET + self.len]
    }

    pub fn packet_mut(&mut self) -> &mut [u8] {
        &mut self.buf[RX_OFFSET..RX_OFFSET + self.len]
    }

    /// Where the UDP payload (the WireGuard message) starts in [`Frame::packet`].
    pub const UDP_PAYLOAD: usize = 14 + 20 + 8;

    /// A frame holding `packet` verbatim (truncated to what fits).
    pub fn raw(packet: &[u8]) -> Frame {
        let mut buf = vec![0u8; FRAME_SIZE];
        let len = packet.len().min(FRAME_SIZE - RX_OFFSET);
        buf[RX_OFFSET..RX_OFFSET + len].copy_from_slice(&packet[..len]);
        Frame { buf, len }
    }
}

/// Ethernet + IPv4 + UDP around `payload`, checksums valid.
pub fn udp_frame(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Frame {
    let ip = ipv4_udp(*src.ip(), *dst.ip(), src.port(), dst.port(), payload, 64);
    let mut p = Vec::with_capacity(14 + ip.len());
    p.extend_from_slice(&GW_MAC);
    p.extend_from_slice(&[2, 0, 0, 0, 0, 7]);
    p.extend_from_slice(&0x0800u16.to_be_bytes());
    p.extend_from_slice(&ip);
    Frame::raw(&p)
}

/// Ethernet + IPv6 + UDP around `payload`, UDP checksum valid (RFC 8200 §8.1).
pub fn udp6_frame(src: SocketAddrV6, dst: SocketAddrV6, payload: &[u8]) -> Frame {
    let udp_len = 8 + payload.len();
    let mut p = Vec::with_capacity(14 + 40 + udp_len);
    p.extend_from_slice(&GW_MAC);
    p.extend_from_slice(&[2, 0, 0, 0, 0, 0x76]);
    p.extend_from_slice(&0x86ddu16.to_be_bytes());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(40 + udp_len);
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&(udp_len as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 17]);
    pseudo.extend_from_slice(&p[54..]);
    let c = match internet_checksum(&pseudo) {
        0 => 0xffff,
        c => c,
    };
    p[60..62].copy_from_slice(&c.to_be_bytes());
    Frame::raw(&p)
}

/// A frame from the LAN (the server's MAC to the gateway's) carrying the IPv4 packet `ip`.
pub fn lan_frame(ip: &[u8]) -> Frame {
    let mut p = Vec::with_capacity(14 + ip.len());
    p.extend_from_slice(&GW_MAC);
    p.extend_from_slice(&LAN_MAC);
    p.extend_from_slice(&0x0800u16.to_be_bytes());
    p.extend_from_slice(ip);
    Frame::raw(&p)
}

/// Writes a fresh IPv4 header checksum over the header at the start of `ip`.
pub fn fix_ipv4_checksum(ip: &mut [u8]) {
    if ip.len() < 20 {
        return;
    }
    let hl = (usize::from(ip[0] & 0x0f) * 4).clamp(20, ip.len());
    ip[10..12].fill(0);
    let c = internet_checksum(&ip[..hl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

/// An IPv4/UDP packet with valid IP and UDP checksums.
pub fn ipv4_udp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
    ttl: u8,
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = ttl;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&(udp_len as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    // UDP checksum over the pseudo-header (RFC 768).
    let mut pseudo = Vec::with_capacity(12 + udp_len);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    pseudo.extend_from_slice(&p[20..]);
    let c = match internet_checksum(&pseudo) {
        0 => 0xffff,
        c => c,
    };
    p[26..28].copy_from_slice(&c.to_be_bytes());
    fix_ipv4_checksum(&mut p);
    p
}

/// A UDP packet from the client's inner address to the server.
pub fn client_udp(sport: u16, payload: &[u8]) -> Vec<u8> {
    ipv4_udp(CLIENT_INNER, SERVER, sport, 8080, payload, 64)
}

/// The Authenticated reports on the slow path's queue: (index, source).
pub fn authenticated(msgs: &[ToSlowPath]) -> Vec<(u32, SocketAddr)> {
    msgs.iter()
        .filter_map(|m| match m {
            ToSlowPath::Authenticated { index, src, .. } => Some((*index, *src)),
            _ => None,
        })
        .collect()
}

/// The transmitted packet of a `Verdict::Tx`, if it is one.
pub fn tx_bytes(v: Verdict, frame: &Frame) -> Option<&[u8]> {
    match v {
        Verdict::Tx { start, len, .. } => frame.buf.get(start..start + len),
        _ => None,
    }
}
