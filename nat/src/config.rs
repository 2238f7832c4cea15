//! What an operator chooses: egress addresses, the port range and what it must avoid, the
//! table size and the idle timeouts. Validated once in [`NatConfig::validate`]; the packet path
//! never re-checks it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::family::Family;
use std::ops::RangeInclusive;
use std::time::Duration;

/// Idle timeouts. Defaults are the RFC floors (or more); lowering one below its RFC floor is
/// allowed (an operator may prefer it) but makes the NAT non-conforming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// UDP mapping seen in the outbound direction only. RFC 4787 REQ-5: at least 2 min.
    pub udp: Duration,
    /// UDP mapping once traffic went both ways. RFC 4787 REQ-5 recommends 5 min or more.
    pub udp_bidirectional: Duration,
    /// ICMP query mapping. RFC 5508 REQ-2: at least 60 s.
    pub icmp_query: Duration,
    /// TCP established. RFC 5382 REQ-5: at least 2 h 4 min.
    pub tcp_established: Duration,
    /// TCP opening (SYN sent / received, not yet established) or half closed (one FIN).
    /// RFC 5382 REQ-5 "transitory": at least 4 min.
    pub tcp_transitory: Duration,
    /// TCP after a FIN in each direction (TIME_WAIT, 2 MSL).
    pub tcp_time_wait: Duration,
    /// TCP after a RST. RFC 7857 §2.2 asks for the transitory value, not immediate removal,
    /// because RSTs are not sequence-checked here.
    pub tcp_closed: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp: Duration::from_secs(120),
            udp_bidirectional: Duration::from_secs(300),
            icmp_query: Duration::from_secs(60),
            tcp_established: Duration::from_secs(2 * 3600 + 4 * 60),
            tcp_transitory: Duration::from_secs(240),
            tcp_time_wait: Duration::from_secs(240),
            tcp_closed: Duration::from_secs(240),
        }
    }
}

/// The NAT's configuration, identical for every worker (each worker builds its own
/// [`crate::Conntrack`] from it with its worker index). `NatConfig<Ipv6Addr>` configures the
/// IPv6 NAT ([`crate::Conntrack6`]) the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatConfig<A: Family = Ipv4Addr> {
    /// The external ("egress") addresses. A given inside address always uses the same one
    /// (RFC 4787 REQ-2, "paired" pooling).
    pub egress: Vec<A>,
    /// External ports handed out. The default stays above Linux's `ip_local_port_range`
    /// (32768-60999) so mapped ports never collide with the host's own connections.
    pub ports: RangeInclusive<u16>,
    /// Ports inside `ports` that must never be handed out: the WireGuard listen port and
    /// every port a host service listens on.
    pub exclude_ports: Vec<u16>,
    /// Entries per worker. Preallocated; a full table refuses new flows.
    pub capacity_per_worker: u32,
    /// Number of workers sharing the port range (see the crate doc, "Several cores").
    pub workers: u16,
    pub timeouts: Timeouts,
    /// RFC 4787 REQ-6 a): whether inbound packets refresh UDP and ICMP mappings. Outbound
    /// packets always do; TCP is refreshed both ways (its timeout is about idleness).
    pub inbound_refresh: bool,
    /// Key for the inside-flow hash and the port-choice randomisation; take it from a random
    /// source at start so table layout and chosen ports are not predictable.
    pub hash_seed: u64,
}

impl<A: Family> Default for NatConfig<A> {
    fn default() -> Self {
        NatConfig {
            egress: Vec::new(),
            ports: 61000..=65535,
            exclude_ports: Vec::new(),
            capacity_per_worker: 65536,
            workers: 1,
            timeouts: Timeouts::default(),
            inbound_refresh: true,
            hash_seed: 0x5eed_5eed_5eed_5eed,
        }
    }
}

/// A configuration the NAT cannot run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    NoEgressAddress,
    TooManyEgressAddresses(usize),
    DuplicateEgressAddress(IpAddr),
    EmptyPortRange,
    PortZeroInRange,
    NoWorkers,
    MoreWorkersThanPorts { workers: u16, ports: u32 },
    WorkerOutOfRange { worker: u16, workers: u16 },
    ZeroCapacity,
    CapacityTooLarge(u32),
    ZeroTimeout(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoEgressAddress => {
                write!(f, "nat.egress: at least one egress address is required")
            }
            ConfigError::TooManyEgressAddresses(n) => {
                write!(f, "nat.egress: {n} addresses, at most 65535 allowed")
            }
            ConfigError::DuplicateEgressAddress(a) => write!(f, "nat.egress: {a} is listed twice"),
            ConfigError::EmptyPortRange => write!(f, "nat.ports: the range is empty (start > end)"),
            ConfigError::PortZeroInRange => write!(
                f,
                "nat.ports: port 0 cannot be handed out; start at 1 or above"
            ),
            ConfigError::NoWorkers => write!(f, "nat.workers: at least one worker is required"),
            ConfigError::MoreWorkersThanPorts { workers, ports } => write!(
                f,
                "nat.workers: {workers} workers but only {ports} ports to share; widen nat.ports"
            ),
            ConfigError::WorkerOutOfRange { worker, workers } => write!(
                f,
                "worker index {worker} is not below nat.workers = {workers}"
            ),
            ConfigError::ZeroCapacity => write!(f, "nat.capacity_per_worker: must be at least 1"),
            ConfigError::CapacityTooLarge(c) => write!(
                f,
                "nat.capacity_per_worker: {c} is above the supported 2^31"
            ),
            ConfigError::ZeroTimeout(name) => {
                write!(f, "nat.timeouts.{name}: must be at least 1 s")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl<A: Family> NatConfig<A> {
    /// The same settings with other egress addresses, of either family: the IPv6 NAT beside
    /// the IPv4 one shares the port range, capacity, workers and timeouts.
    pub fn with_egress<B: Family>(&self, egress: Vec<B>) -> NatConfig<B> {
        NatConfig {
            egress,
            ports: self.ports.clone(),
            exclude_ports: self.exclude_ports.clone(),
            capacity_per_worker: self.capacity_per_worker,
            workers: self.workers,
            timeouts: self.timeouts.clone(),
            inbound_refresh: self.inbound_refresh,
            // Another key, so the two tables' layouts are unrelated.
            hash_seed: self.hash_seed.rotate_left(17) ^ 0x6a09_e667_f3bc_c908,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.egress.is_empty() {
            return Err(ConfigError::NoEgressAddress);
        }
        if self.egress.len() > usize::from(u16::MAX) {
            return Err(ConfigError::TooManyEgressAddresses(self.egress.len()));
        }
        for (i, a) in self.egress.iter().enumerate() {
            if self.egress[..i].contains(a) {
                return Err(ConfigError::DuplicateEgressAddress((*a).into()));
            }
        }
        if self.ports.start() > self.ports.end() {
            return Err(ConfigError::EmptyPortRange);
        }
        if *self.ports.start() == 0 {
            return Err(ConfigError::PortZeroInRange);
        }
        if self.workers == 0 {
            return Err(ConfigError::NoWorkers);
        }
        let nports = u32::from(*self.ports.end()) - u32::from(*self.ports.start()) + 1;
        if u32::from(self.workers) > nports {
            return Err(ConfigError::MoreWorkersThanPorts {
                workers: self.workers,
                ports: nports,
            });
        }
        if self.capacity_per_worker == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        if self.capacity_per_worker > 1 << 31 {
            return Err(ConfigError::CapacityTooLarge(self.capacity_per_worker));
        }
        let t = &self.timeouts;
        for (name, d) in [
            ("udp", t.udp),
            ("udp_bidirectional", t.udp_bidirectional),
            ("icmp_query", t.icmp_query),
            ("tcp_established", t.tcp_established),
            ("tcp_transitory", t.tcp_transitory),
            ("tcp_time_wait", t.tcp_time_wait),
            ("tcp_closed", t.tcp_closed),
        ] {
            if d.as_secs() == 0 {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        Ok(())
    }
}
