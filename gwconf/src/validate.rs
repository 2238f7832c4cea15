//! Checks across fields of a typed config (duplicate peers, overlapping AllowedIPs, port
//! collisions) and against the host it will run on (interfaces exist, the NAT's ports are not
//! the kernel's ephemeral ports). Shared by the gw.toml and wg-quick loaders and `check`.

use super::error::{ErrorSink, Locations};
use super::types::{GatewayConfig, Interfaces, PortRange};
use ipnet::IpNet;
use std::net::IpAddr;

/// Facts about the host a config is checked against. `None` = not known, not checked.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// `/proc/sys/net/ipv4/ip_local_port_range`: ports the kernel hands to its own sockets.
    pub local_port_range: Option<PortRange>,
    /// Interface names present in this network namespace.
    pub interfaces: Option<Vec<String>>,
    /// CPUs this process may run on.
    pub cpu_count: Option<usize>,
}

impl HostFacts {
    /// Nothing known: only the file itself is checked (`dataplane check --offline`).
    pub fn unknown() -> Self {
        Self::default()
    }

    /// Reads the facts of the running host and network namespace, with the interface names
    /// the caller listed (the binary asks the kernel through rtnetlink; `None` skips the
    /// interface checks).
    pub fn read(interfaces: Option<Vec<String>>) -> Self {
        let local_port_range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| parse_local_port_range(&s));
        let cpu_count = std::thread::available_parallelism().ok().map(|n| n.get());
        Self {
            local_port_range,
            interfaces,
            cpu_count,
        }
    }
}

/// Parses the two numbers of `ip_local_port_range` ("32768\t60999\n").
pub fn parse_local_port_range(text: &str) -> Option<PortRange> {
    let mut it = text.split_whitespace().map(|n| n.parse::<u16>().ok());
    let lo = it.next()??;
    let hi = it.next()??;
    (lo <= hi).then_some(PortRange { lo, hi })
}

/// Runs every cross-field and host check, appending to `sink`.
pub fn check(cfg: &GatewayConfig, loc: &Locations, host: &HostFacts, sink: &mut ErrorSink) {
    check_peers(cfg, loc, sink);
    check_ports(cfg, loc, host, sink);
    check_nat(cfg, loc, sink);
    check_interfaces(cfg, loc, host, sink);
}

/// " (line N)" of `field`, for naming the first of two clashing entries; empty when unknown.
fn at_line(loc: &Locations, field: &str) -> String {
    loc.line(field)
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default()
}

/// An address beside the gateway's, for messages: the next one up.
fn example_peer_address(own: &IpNet) -> IpAddr {
    match own.addr() {
        IpAddr::V4(a) => IpAddr::V4(u32::from(a).wrapping_add(1).into()),
        IpAddr::V6(a) => IpAddr::V6(u128::from(a).wrapping_add(1).into()),
    }
}

fn check_peers(cfg: &GatewayConfig, loc: &Locations, sink: &mut ErrorSink) {
    let own_public = cfg.interface.public_key();
    for (j, peer) in cfg.peers.iter().enumerate() {
        let path = format!("peer[{j}].public_key");
        if let Some(i) = cfg.peers[..j]
            .iter()
            .position(|p| p.public_key == peer.public_key)
        {
            let first = at_line(loc, &format!("peer[{i}].public_key"));
            sink.push(
                loc.line(&path),
                path,
                format!(
                    "the same public key as peer[{i}]{first}; each peer needs its own key pair"
                ),
            );
        } else if peer.public_key == own_public {
            sink.push(
                loc.line(&path),
                path,
                "is the gateway's own public key (derived from interface.private_key); use the peer's key",
            );
        }
    }

    // Names are how operators (and `dataplane peer remove NAME`) address a peer: one each,
    // each one `peer add` would accept.
    for (j, peer) in cfg.peers.iter().enumerate() {
        let Some(name) = &peer.name else { continue };
        if let Err(e) = crate::values::peer_name(name) {
            let path = format!("peer[{j}].name");
            sink.push(loc.line(&path), path, e);
            continue;
        }
        let Some(i) = cfg.peers[..j]
            .iter()
            .position(|p| p.name.as_ref() == Some(name))
        else {
            continue;
        };
        let path = format!("peer[{j}].name");
        let first = at_line(loc, &format!("peer[{i}].name"));
        sink.push(
            loc.line(&path),
            path,
            format!(
                "{name:?} is already the name of peer[{i}]{first}; give each peer its own name"
            ),
        );
    }

    // The gateway's own tunnel address is the gateway's: a peer owning it would take the
    // gateway's traffic (and `peer add` would never hand it out).
    for (j, peer) in cfg.peers.iter().enumerate() {
        for (k, net) in peer.allowed_ips.iter().enumerate() {
            let Some(own) = cfg
                .interface
                .address
                .iter()
                .find(|a| net.contains(&a.addr()))
            else {
                continue;
            };
            let path = format!("peer[{j}].allowed_ips[{k}]");
            let at = at_line(loc, "interface.address");
            sink.push(
                loc.line(&path),
                path,
                format!(
                    "{net} contains the gateway's own tunnel address {} (interface.address{at}); give the peer its own addresses, e.g. {}/32",
                    own.addr(),
                    example_peer_address(own)
                ),
            );
        }
    }

    // Every AllowedIPs prefix as an address interval; prefixes are either nested or disjoint, so
    // after sorting by (start, widest first) a sweep with a stack of open intervals finds every
    // overlap between different peers by comparing each prefix with the innermost one open.
    struct Entry {
        v6: bool,
        start: u128,
        end: u128,
        peer: usize,
        index: usize,
        net: IpNet,
    }
    let mut entries: Vec<Entry> = Vec::new();
    for (peer, p) in cfg.peers.iter().enumerate() {
        for (index, net) in p.allowed_ips.iter().enumerate() {
            let (v6, start, end) = match (net.network(), net.broadcast()) {
                (IpAddr::V4(a), IpAddr::V4(b)) => (false, u32::from(a).into(), u32::from(b).into()),
                (IpAddr::V6(a), IpAddr::V6(b)) => (true, u128::from(a), u128::from(b)),
                _ => continue,
            };
            entries.push(Entry {
                v6,
                start,
                end,
                peer,
                index,
                net: *net,
            });
        }
    }
    entries.sort_by(|a, b| {
        (a.v6, a.start, std::cmp::Reverse(a.end), a.peer, a.index).cmp(&(
            b.v6,
            b.start,
            std::cmp::Reverse(b.end),
            b.peer,
            b.index,
        ))
    });
    let mut open: Vec<&Entry> = Vec::new();
    for e in &entries {
        while let Some(top) = open.last() {
            if top.v6 == e.v6 && e.start <= top.end {
                break;
            }
            open.pop();
        }
        if let Some(outer) = open.last() {
            let path = format!("peer[{}].allowed_ips[{}]", e.peer, e.index);
            let other = format!("peer[{}].allowed_ips[{}]", outer.peer, outer.index);
            let at = at_line(loc, &other);
            if outer.peer != e.peer {
                sink.push(
                    loc.line(&path),
                    path,
                    format!(
                        "{} overlaps {} of {other}{at}; AllowedIPs of different peers must not overlap (each inner source address belongs to exactly one peer)",
                        e.net, outer.net
                    ),
                );
            } else if outer.net == e.net {
                sink.push(
                    loc.line(&path),
                    path,
                    format!("{} is listed twice ({other}{at})", e.net),
                );
            }
        }
        open.push(e);
    }
}

fn check_ports(cfg: &GatewayConfig, loc: &Locations, host: &HostFacts, sink: &mut ErrorSink) {
    let range = cfg.nat.port_range;
    let port = cfg.interface.listen_port;
    if range.contains(port) {
        sink.push(
            loc.line("nat.port_range"),
            "nat.port_range",
            format!(
                "{range} contains interface.listen_port {port}; choose a range without it, e.g. \"61000-65535\" with listen_port 51820"
            ),
        );
    }
    if let Some(kernel) = host.local_port_range {
        if range.overlaps(&kernel) {
            sink.push(
                loc.line("nat.port_range"),
                "nat.port_range",
                format!(
                    "{range} overlaps the kernel's ephemeral ports {kernel} (/proc/sys/net/ipv4/ip_local_port_range); the NAT and the host's own connections would collide. Choose a range outside it, or narrow the kernel's range"
                ),
            );
        }
    }
}

/// NAT settings that only mean something together.
fn check_nat(cfg: &GatewayConfig, loc: &Locations, sink: &mut ErrorSink) {
    if let (Some(addr), false) = (cfg.nat.address_ipv6, cfg.nat.masquerade_ipv6) {
        sink.push(
            loc.line("nat.address_ipv6"),
            "nat.address_ipv6",
            format!(
                "{addr} is set but masquerade_ipv6 is false, so IPv6 is routed and nothing is translated to it; set masquerade_ipv6 = true, or remove address_ipv6"
            ),
        );
    }
}

fn check_interfaces(cfg: &GatewayConfig, loc: &Locations, host: &HostFacts, sink: &mut ErrorSink) {
    if let Interfaces::TwoArmed { wan, lan } = &cfg.dataplane.interfaces {
        if wan == lan {
            sink.push(
                loc.line("dataplane.interfaces")
                    .or(loc.line("dataplane.lan")),
                "dataplane.interfaces",
                format!(
                    "WAN and LAN are both {wan:?}; for one interface use interfaces = [{wan:?}]"
                ),
            );
        }
    }
    if let Some(present) = &host.interfaces {
        for name in cfg.dataplane.interfaces.names() {
            if !present.iter().any(|p| p == name) {
                let field = [
                    "dataplane.interfaces",
                    "dataplane.interface",
                    "dataplane.wan",
                    "dataplane.lan",
                ]
                .into_iter()
                .find(|f| loc.line(f) != loc.line("dataplane"))
                .unwrap_or("dataplane.interfaces");
                sink.push(
                    loc.line(field),
                    field,
                    format!(
                        "interface {name:?} does not exist in this network namespace; present: {}",
                        present.join(", ")
                    ),
                );
            }
        }
    }
    if let (Some(cpus), Some(n)) = (&cfg.dataplane.cpus, host.cpu_count) {
        for (i, cpu) in cpus.iter().enumerate() {
            if *cpu >= n {
                let path = format!("dataplane.cpus[{i}]");
                sink.push(
                    loc.line(&path),
                    path,
                    format!(
                        "CPU {cpu} is not available; this host offers CPUs 0-{}",
                        n - 1
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ip_local_port_range() {
        assert_eq!(
            parse_local_port_range("32768\t60999\n"),
            Some(PortRange {
                lo: 32768,
                hi: 60999
            })
        );
        assert_eq!(parse_local_port_range("garbage"), None);
    }
}
