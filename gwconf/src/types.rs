//! The validated, typed gateway configuration the rest of the program consumes.
//!
//! Values here have passed every check of [`super::validate`]: keys decode, prefixes are
//! canonical, peers are unique, ports do not collide. Nothing in here reads the system; values
//! that are only known at start (the egress address, the NIC's queues) are `None` = "decide at
//! start" and documented as such.

use super::keys::{PresharedKey, PrivateKey, PublicKey};
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// The whole gateway configuration (gw.toml, or a wg-quick file converted to it).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// `[interface]`: the WireGuard side, as wg-quick's `[Interface]`.
    pub interface: InterfaceConfig,
    /// `[[peer]]`, in file order.
    pub peers: Vec<PeerConfig>,
    /// `[dataplane]`: NICs, XDP mode, queues and pinning.
    pub dataplane: DataplaneConfig,
    /// `[nat]`: the built-in source NAT that replaces `iptables ... -j MASQUERADE`.
    pub nat: NatConfig,
    /// `[metrics]`: optional Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// `[control]`: the control socket of `dataplane stats` / `capture` / `peer add`.
    pub control: ControlConfig,
}

/// `[interface]`.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceConfig {
    /// The tunnel device (`wg0`), also the name of its UAPI socket and, by default, of its
    /// control socket: two gateways on one host differ by it. wg-quick files take it from
    /// the file name (`wg1.conf` -> `wg1`).
    pub name: String,
    /// The gateway's static private key.
    pub private_key: PrivateKey,
    /// Set when the key was read from `private_key_file` (kept so the config renders back the
    /// same way and the key is not copied into a rendered file).
    pub private_key_file: Option<PathBuf>,
    /// UDP port WireGuard listens on, 1..=65535.
    pub listen_port: u16,
    /// Addresses of the gateway's tunnel device (host address plus prefix, e.g. 10.13.13.1/24).
    pub address: Vec<IpNet>,
    /// MTU of the tunnel device, 576..=9000; default 1420 (as wg-quick).
    pub mtu: u16,
}

/// `[[peer]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// Optional label (`# peer1` in a linuxserver wg0.conf), used in logs and metrics.
    pub name: Option<String>,
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    /// Canonical networks (host bits zero); no two peers overlap.
    pub allowed_ips: Vec<IpNet>,
    pub endpoint: Option<Endpoint>,
    /// Seconds between keepalives; `None` = off (a 0 in the file is normalised to `None`).
    pub persistent_keepalive: Option<u16>,
}

/// A peer endpoint: an address, or a host name resolved at start (as wg-quick does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Addr(SocketAddr),
    Host { host: String, port: u16 },
}

impl Endpoint {
    /// Resolves to a socket address (DNS for `Host`; IPv4 preferred, like `wg`).
    pub fn resolve(&self) -> std::io::Result<SocketAddr> {
        match self {
            Endpoint::Addr(addr) => Ok(*addr),
            Endpoint::Host { host, port } => {
                let addrs: Vec<SocketAddr> = (host.as_str(), *port).to_socket_addrs()?.collect();
                addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or_else(|| addrs.first())
                    .copied()
                    .ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("{host} has no address"),
                        )
                    })
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Addr(addr) => write!(f, "{addr}"),
            Endpoint::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Which NICs the data plane attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interfaces {
    /// One NIC carries WireGuard and the LAN, as the article's `eth0`.
    OneArmed { interface: String },
    /// WireGuard arrives on `wan`; decrypted traffic usually leaves by `lan` (the kernel's
    /// routing table decides).
    TwoArmed { wan: String, lan: String },
}

impl Interfaces {
    /// All attached interface names, WAN first.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Interfaces::OneArmed { interface } => vec![interface],
            Interfaces::TwoArmed { wan, lan } => vec![wan, lan],
        }
    }

    /// The interface WireGuard datagrams arrive on.
    pub fn wan(&self) -> &str {
        match self {
            Interfaces::OneArmed { interface } => interface,
            Interfaces::TwoArmed { wan, .. } => wan,
        }
    }
}

/// How the XDP program and AF_XDP sockets bind to the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Try zero-copy, fall back to copy, then to skb (generic) mode; log the one chosen.
    Auto,
    /// Driver mode with zero-copy UMEM (needs driver support: ice, i40e, mlx5, ...).
    ZeroCopy,
    /// Driver mode, frames copied into the UMEM.
    Copy,
    /// Generic XDP (works on any NIC, slowest).
    Skb,
}

impl XdpMode {
    pub const NAMES: &'static [&'static str] = &["auto", "zerocopy", "copy", "skb"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Self::Auto),
            "zerocopy" => Some(Self::ZeroCopy),
            "copy" => Some(Self::Copy),
            "skb" => Some(Self::Skb),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::ZeroCopy => "zerocopy",
            Self::Copy => "copy",
            Self::Skb => "skb",
        }
    }
}

/// `[dataplane]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataplaneConfig {
    pub interfaces: Interfaces,
    pub mode: XdpMode,
    /// NIC queues to serve, one worker each; `None` = queues `0..n` read at start, `n` the
    /// smaller of the NICs' queue counts and the CPUs (`afxdp::queues`).
    pub queues: Option<Vec<u32>>,
    /// CPUs to pin workers to, worker i on `cpus[i % len]`; `None` = worker i on core i.
    pub cpus: Option<Vec<usize>>,
    /// Frames taken from a ring per burst, 1..=1024; default 64.
    pub batch_size: u16,
}

/// An inclusive port range, `lo <= hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    pub fn len(&self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

/// `[nat]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NatConfig {
    /// Source-NAT decrypted traffic (the article's `-j MASQUERADE`); default true.
    pub masquerade: bool,
    /// Fixed egress address; `None` = the primary IPv4 address of the interface the packet
    /// leaves by, read at start (MASQUERADE's rule).
    pub address: Option<Ipv4Addr>,
    /// Source-NAT decrypted IPv6 traffic too (`ip6tables ... -j MASQUERADE`); default false:
    /// IPv6 from the tunnel is routed with the peers' own addresses, which the upstream router
    /// must route back to the gateway (a routed prefix).
    pub masquerade_ipv6: bool,
    /// Fixed IPv6 egress address; `None` = a global IPv6 address of the interface the packet
    /// leaves by, read at start. Only meaningful with `masquerade_ipv6`.
    pub address_ipv6: Option<Ipv6Addr>,
    /// Source ports the NAT allocates from; default 61000-65535 (above Linux's default
    /// ip_local_port_range 32768-60999). Never contains the listen port.
    pub port_range: PortRange,
    /// Maximum number of conntrack entries; default 65536.
    pub capacity: u32,
    pub timeouts: NatTimeouts,
}

/// Idle timeouts of NAT mappings, with the RFC minimums as floors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatTimeouts {
    /// RFC 4787 REQ-5: at least 120 s.
    pub udp: Duration,
    /// RFC 5382 REQ-5: at least 2 h 4 min.
    pub tcp_established: Duration,
    /// RFC 5382 REQ-5: at least 4 min for partially open/closing connections.
    pub tcp_transitory: Duration,
    /// RFC 5508 REQ-1: at least 60 s for ICMP query mappings.
    pub icmp: Duration,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint; `None` = no endpoint.
    pub listen: Option<SocketAddr>,
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Unix socket path; default `/run/dataplane/NAME.control.sock` for `[interface] name`
    /// NAME (beside the instance locks).
    pub socket: PathBuf,
}

/// The first IPv4 address of `[interface] address`, the gateway's tunnel address.
impl InterfaceConfig {
    pub fn tunnel_ipv4(&self) -> Option<Ipv4Addr> {
        self.address.iter().find_map(|net| match net.addr() {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
    }
}
