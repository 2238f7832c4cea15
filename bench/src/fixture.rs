//! An in-memory gateway the pipeline benchmarks and tests drive: the article's one-armed
//! addresses, peers whose sessions come from real handshakes ([`crate::session`]), the
//! published [`Tables`] the slow path would build from them, a fixed [`RouteSnapshot`] with the
//! answers the kernel would give, and one [`Pipeline`] per worker with its NAT partition.
//! The clients carry IPv4 inside, or IPv6 ([`Inside`]: routed, or through the IPv6 NAT).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use fastpath::counters::WorkerCounters;
use fastpath::pipeline::{Batch, Pipeline, PipelineConfig};
use fastpath::queue::{slow_path_queue, SlowPathReceiver, SlowPathSender};
use fastpath::roaming::LearnedEndpoint;
use fastpath::route::{Link, Mac, NextHop, NextHopReader, Resolution, RouteSnapshot};
use fastpath::tables::{PeerRoute, PeerTraffic, Tables};
use nat::{Conntrack, Conntrack6, NatConfig};
use wgproto::config::IpPrefix;
use wgproto::keypair::Keypair;
use wgproto::peer::PeerId;
use wgproto::time::Timestamp;

use crate::packets::{Macs, Wire};
use crate::session::GatewayDevice;

/// The gateway's LAN address (the article's `eth0`), the NAT source.
pub const GATEWAY_ADDR: Ipv4Addr = Ipv4Addr::new(172, 23, 0, 3);
/// The gateway's tunnel address (`wg0`).
pub const GATEWAY_TUNNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 13, 13, 1);
/// The gateway's IPv6 address on the clients' wire, for an IPv6 underlay.
pub const GATEWAY_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x23, 0, 0, 0, 0, 3);
/// The server behind the gateway (the article's nginx).
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(172, 23, 0, 2);
/// The server's IPv6 address, for IPv6 inside the tunnel (the lab's).
pub const SERVER_ADDR6: Ipv6Addr = lab::SERVER_ADDR6;
/// The gateway's IPv6 tunnel address (`wg0`), for IPv6 inside the tunnel.
pub const GATEWAY_TUNNEL_ADDR6: Ipv6Addr = lab::GATEWAY_TUNNEL_ADDR6;
/// The server's port the benchmark flows go to.
pub const SERVER_PORT: u16 = 5201;
pub const LISTEN_PORT: u16 = 51820;
pub const MTU: usize = 1420;
/// The interface index of `eth0` in the fixed route snapshot.
pub const IFINDEX: u32 = 2;
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];

/// One client of the gateway, as the benchmark's load generator holds it.
pub struct Client {
    /// Its tunnel address (the only source its AllowedIPs allow).
    pub tunnel_addr: Ipv4Addr,
    /// Its IPv6 tunnel address, allowed too when the fixture carries IPv6 inside.
    pub tunnel_addr6: Ipv6Addr,
    /// Its underlay endpoint (IPv4, or IPv6 in [`Fixture::ipv6_underlay`]).
    pub endpoint: SocketAddr,
    /// The client's own keypair: seals what it sends, opens what the gateway sends it.
    pub keypair: Arc<Keypair>,
    /// The client as the gateway knows it.
    pub peer: PeerId,
    /// The NAT worker that owns this client's flows (`Partition::owner_of_inside`).
    pub worker: u16,
}

impl Client {
    /// The Ethernet addresses of a frame from this client to the gateway.
    pub fn macs_to_gateway(&self) -> Macs {
        Macs {
            src: CLIENT_MAC,
            dst: GATEWAY_MAC,
        }
    }

    /// The addressing of its WireGuard frames to the gateway.
    pub fn wire_to_gateway(&self) -> Wire {
        Wire {
            macs: self.macs_to_gateway(),
            src: self.endpoint,
            dst: self.gateway_endpoint(),
        }
    }

    /// The WireGuard destination of its frames: the gateway's address of its family.
    pub fn gateway_endpoint(&self) -> SocketAddr {
        match self.endpoint {
            SocketAddr::V4(_) => SocketAddrV4::new(GATEWAY_ADDR, LISTEN_PORT).into(),
            SocketAddr::V6(_) => SocketAddrV6::new(GATEWAY_ADDR6, LISTEN_PORT, 0, 0).into(),
        }
    }
}

/// The Ethernet addresses of a frame from the server to the gateway.
pub fn server_macs() -> Macs {
    Macs {
        src: SERVER_MAC,
        dst: GATEWAY_MAC,
    }
}

/// What the clients send inside the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inside {
    /// IPv4, source-NATed to [`GATEWAY_ADDR`].
    Ipv4,
    /// IPv6, routed (no NAT): the return traffic takes the kernel's path through wg0, so only
    /// the forward direction runs through the pipeline.
    Ipv6Routed,
    /// IPv6 through the IPv6 NAT (`masquerade_ipv6`) to [`GATEWAY_ADDR6`], both directions.
    Ipv6Nat66,
}

impl Inside {
    pub fn is_ipv6(self) -> bool {
        self != Inside::Ipv4
    }
}

/// The gateway state shared by its workers, and the clients talking to it.
pub struct Fixture {
    pub tables: Arc<Tables>,
    pub routes: Arc<RouteSnapshot>,
    pub clients: Vec<Client>,
    pub now: Timestamp,
    pub nat: NatConfig,
    pub workers: u16,
    pub inside: Inside,
    pipeline_cfg: PipelineConfig,
    slow_tx: SlowPathSender,
    /// Kept so the queue stays connected; what the workers report is not needed here.
    _slow_rx: std::sync::Mutex<SlowPathReceiver>,
}

impl Fixture {
    /// A gateway with `workers` NAT partitions and, for every worker, one client whose tunnel
    /// address that worker owns, each with a session from a real handshake.
    pub fn new(workers: u16) -> Result<Fixture> {
        Fixture::with_underlay(workers, false, Inside::Ipv4)
    }

    /// [`Fixture::new`] with the clients' endpoints on an IPv6 underlay (outer IPv6 both ways).
    pub fn ipv6_underlay(workers: u16) -> Result<Fixture> {
        Fixture::with_underlay(workers, true, Inside::Ipv4)
    }

    /// IPv6 inside an IPv6 underlay: the clients send IPv6 from their IPv6 tunnel addresses to
    /// [`SERVER_ADDR6`], routed or through the IPv6 NAT (`inside`).
    pub fn ipv6_inside(workers: u16, inside: Inside) -> Result<Fixture> {
        Fixture::with_underlay(workers, true, inside)
    }

    fn with_underlay(workers: u16, ipv6: bool, inside: Inside) -> Result<Fixture> {
        let now = Timestamp::from_nanos(1_000_000_000);
        let nat = NatConfig {
            egress: vec![GATEWAY_ADDR],
            exclude_ports: vec![LISTEN_PORT],
            workers,
            ..NatConfig::default()
        };
        let partition = nat::Partition::new(&nat);
        let mut gw = GatewayDevice::new(LISTEN_PORT);
        let mut tables = Tables::default();
        let mut clients = Vec::new();
        let mut hosts = 2u8..=254;
        for worker in 0..workers {
            let tunnel_addr = hosts
                .by_ref()
                .map(|h| Ipv4Addr::new(10, 13, 13, h))
                .find(|a| partition.owner_of_inside(*a) == worker)
                .context("no tunnel address for this worker")?;
            let tunnel_addr6 = tunnel_addr6(tunnel_addr.octets()[3]);
            if inside.is_ipv6() && partition.owner_of_inside6(tunnel_addr6) != worker {
                bail!("{tunnel_addr6} is not worker {worker}'s: use one worker for IPv6 inside");
            }
            let host = 10 + worker as u8;
            let endpoint: SocketAddr = if ipv6 {
                let a = Ipv6Addr::new(0x2001, 0xdb8, 0x23, 0, 0, 0, 0, u16::from(host));
                SocketAddrV6::new(a, LISTEN_PORT, 0, 0).into()
            } else {
                SocketAddrV4::new(Ipv4Addr::new(172, 23, 0, host), LISTEN_PORT).into()
            };
            let allowed = IpPrefix::new_masked(IpAddr::V4(tunnel_addr), 32);
            let gateway_endpoint = match endpoint {
                SocketAddr::V4(_) => SocketAddrV4::new(GATEWAY_ADDR, LISTEN_PORT).into(),
                SocketAddr::V6(_) => SocketAddrV6::new(GATEWAY_ADDR6, LISTEN_PORT, 0, 0).into(),
            };
            let s = gw.handshake(now, endpoint, gateway_endpoint, allowed)?;
            tables
                .receivers
                .insert(s.gateway.local_index(), s.gateway.clone());
            // The slow path makes the responder's keypair the sending one after key
            // confirmation (the client's first data packet); the benchmark starts there.
            tables.peers.insert(
                s.peer,
                PeerRoute {
                    sending: Some(s.gateway.clone()),
                    endpoint: Some(endpoint),
                    stats: Arc::new(PeerTraffic::default()),
                    // As the slow path makes it: holding the endpoint, read on every seal.
                    learned: Arc::new(LearnedEndpoint::new(Some(endpoint))),
                },
            );
            tables.allowed_ips.insert(allowed, s.peer);
            if inside.is_ipv6() {
                let allowed6 = IpPrefix::new_masked(IpAddr::V6(tunnel_addr6), 128);
                tables.allowed_ips.insert(allowed6, s.peer);
            }
            clients.push(Client {
                tunnel_addr,
                tunnel_addr6,
                endpoint,
                keypair: s.client,
                peer: s.peer,
                worker,
            });
        }
        let hop = |dst: IpAddr, mac: [u8; 6]| {
            let src = match dst {
                IpAddr::V4(_) => IpAddr::V4(GATEWAY_ADDR),
                IpAddr::V6(_) => IpAddr::V6(GATEWAY_ADDR6),
            };
            (
                dst,
                Resolution::Ready(NextHop {
                    ifindex: IFINDEX,
                    src_mac: Mac(GATEWAY_MAC),
                    dst_mac: Mac(mac),
                    gateway: None,
                    src_addr: Some(src),
                    mtu: 1500,
                }),
            )
        };
        let mut destinations = vec![hop(IpAddr::V4(SERVER_ADDR), SERVER_MAC)];
        if inside.is_ipv6() {
            destinations.push(hop(IpAddr::V6(SERVER_ADDR6), SERVER_MAC));
        }
        destinations.extend(clients.iter().map(|c| hop(c.endpoint.ip(), CLIENT_MAC)));
        let routes = RouteSnapshot::from_entries(
            destinations,
            [Link {
                index: IFINDEX,
                name: "eth0".into(),
                mac: Some(Mac(GATEWAY_MAC)),
                mtu: 1500,
                up: true,
            }],
        );
        let (slow_tx, slow_rx) = slow_path_queue(1024);
        Ok(Fixture {
            tables: Arc::new(tables),
            routes: Arc::new(routes),
            clients,
            now,
            nat,
            workers,
            inside,
            pipeline_cfg: PipelineConfig {
                listen_port: LISTEN_PORT,
                mtu: MTU,
                host_addrs: vec![GATEWAY_ADDR, GATEWAY_TUNNEL_ADDR],
                tunnel_addr: GATEWAY_TUNNEL_ADDR,
                host_addrs6: if inside.is_ipv6() {
                    vec![GATEWAY_ADDR6, GATEWAY_TUNNEL_ADDR6]
                } else {
                    Vec::new()
                },
                tunnel_addr6: inside.is_ipv6().then_some(GATEWAY_TUNNEL_ADDR6),
                masquerade: true,
                outer_ip_id_seed: 0,
                outer_frag_id_seed: 0,
                cookie_nonce_seed: [0; 16],
            },
            slow_tx,
            _slow_rx: std::sync::Mutex::new(slow_rx),
        })
    }

    /// Worker `worker`'s pipeline with its own NAT partition.
    pub fn pipeline(&self, worker: u16) -> Result<Pipeline> {
        let ct = Conntrack::new(&self.nat, worker).map_err(|e| anyhow::anyhow!("nat: {e:?}"))?;
        let pipeline = Pipeline::new(
            self.pipeline_cfg.clone(),
            Some(ct),
            self.slow_tx.clone(),
            NextHopReader::detached(RouteSnapshot::default()),
            Arc::new(WorkerCounters::default()),
        );
        if self.inside != Inside::Ipv6Nat66 {
            return Ok(pipeline);
        }
        // As the gateway builds it: the IPv4 NAT's settings with the IPv6 egress address.
        let cfg6 = self.nat.with_egress(vec![GATEWAY_ADDR6]);
        let ct6 = Conntrack6::new(&cfg6, worker).map_err(|e| anyhow::anyhow!("nat66: {e:?}"))?;
        Ok(pipeline.with_nat6(ct6))
    }

    /// The inputs of one batch.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            tables: &self.tables,
            routes: &self.routes,
            now: self.now,
        }
    }
}

/// The IPv6 tunnel address of the client whose IPv4 one ends in `host`: the same host number
/// in the tunnel's IPv6 prefix (fd13::2 beside 10.13.13.2, as `peer add` allocates them).
fn tunnel_addr6(host: u8) -> Ipv6Addr {
    let prefix = u128::from(GATEWAY_TUNNEL_ADDR6) & (u128::MAX << (128 - lab::TUNNEL_PREFIX_LEN6));
    Ipv6Addr::from(prefix | u128::from(host))
}
