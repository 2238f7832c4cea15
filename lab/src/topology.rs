//! The lab's hosts, wires and addresses: the article's setup (client `peer1` 10.13.13.2, gateway
//! `wg0` 10.13.13.1 and `eth0` 172.23.0.3, nginx at 172.23.0.2) in one-armed and two-armed form.
//!
//! One-armed (the article): client, gateway and server hang off one bridge (the `sw` namespace
//! plays Docker's bridge). The gateway's single `eth0` carries the WireGuard UDP and the LAN.
//! The client's underlay address is 172.23.0.10/32 with a host route to the gateway only, so the
//! rest of 172.23.0.0/24 is reachable for it through `wg0` alone.
//!
//! Two-armed: the client sits on a WAN wire (198.18.0.0/24, RFC 2544 benchmark range) facing
//! the gateway's `wan0`; the server sits on the LAN wire facing `lan0`.
//!
//! The server has no route to 10.13.13.0/24: a reply reaches the client only if the gateway
//! source-NATed the request to its own LAN address, which is what the tests rely on.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// The client's tunnel address (the article's `peer1`).
pub const CLIENT_TUNNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 13, 13, 2);
/// The gateway's tunnel address (`wg0` in the article).
pub const GATEWAY_TUNNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 13, 13, 1);
/// The tunnel subnet prefix length on the gateway (`address = ["10.13.13.1/24"]`).
pub const TUNNEL_PREFIX_LEN: u8 = 24;
/// The HTTP server (the article's nginx container).
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(172, 23, 0, 2);
/// The gateway's LAN address (the article's `eth0`), and the NAT source.
pub const GATEWAY_LAN_ADDR: Ipv4Addr = Ipv4Addr::new(172, 23, 0, 3);
/// The LAN prefix length.
pub const LAN_PREFIX_LEN: u8 = 24;
/// The WireGuard listen port of both ends, as in the article.
pub const LISTEN_PORT: u16 = 51820;
/// The client's underlay address in the one-armed layout (on the LAN bridge, /32).
pub const ONE_ARMED_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(172, 23, 0, 10);
/// The gateway's WAN address in the two-armed layout.
pub const TWO_ARMED_GATEWAY_WAN_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The client's underlay address in the two-armed layout.
pub const TWO_ARMED_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The tunnel MTU wg-quick picks for a 1500-byte underlay.
pub const TUNNEL_MTU: u32 = 1420;

// IPv6 (issue 17): the same hosts, dual-stack when a test asks for it. Documentation (RFC 3849)
// and unique-local (RFC 4193) prefixes only, in namespaces the lab creates.

/// The client's IPv6 tunnel address (`fd13::/64`, `init --subnet 10.13.13.0/24,fd13::/64`).
pub const CLIENT_TUNNEL_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, 2);
/// The gateway's IPv6 tunnel address (on `wg0`).
pub const GATEWAY_TUNNEL_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, 1);
/// The IPv6 tunnel prefix length.
pub const TUNNEL_PREFIX_LEN6: u8 = 64;
/// The HTTP server's IPv6 address on the LAN.
pub const SERVER_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x23, 0, 0, 0, 0, 2);
/// The gateway's IPv6 LAN address (the NAT66 source when `[nat]` masquerades IPv6).
pub const GATEWAY_LAN_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x23, 0, 0, 0, 0, 3);
/// The IPv6 LAN prefix length.
pub const LAN_PREFIX_LEN6: u8 = 64;
/// The client's IPv6 underlay address in the one-armed layout (on the LAN bridge, /128).
pub const ONE_ARMED_CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x23, 0, 0, 0, 0, 0x10);
/// The gateway's IPv6 WAN address in the two-armed layout (the issue's `[2001:db8::3]:51820`).
pub const TWO_ARMED_GATEWAY_WAN_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
/// The client's IPv6 underlay address in the two-armed layout.
pub const TWO_ARMED_CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// The IPv6 WAN prefix length in the two-armed layout.
pub const WAN_PREFIX_LEN6: u8 = 64;

// The WAN router (`LabBuilder::wan_router`, two-armed only): the client moves behind a router
// namespace, on a second WAN prefix, and the router's gateway-side addresses are on the first.

/// The router's address on the gateway's WAN wire (198.18.0.0/24).
pub const WAN_ROUTER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// The router's address on the client's wire (the second WAN prefix, 198.18.1.0/24).
pub const WAN_ROUTER_CLIENT_SIDE_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The client's underlay address behind the router.
pub const ROUTED_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// The IPv4 prefix length of both WAN wires.
pub const WAN_PREFIX_LEN: u8 = 24;
/// The router's IPv6 address on the gateway's WAN wire (2001:db8::/64).
pub const WAN_ROUTER_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe);
/// The router's IPv6 address on the client's wire (the second WAN prefix, 2001:db8:1::/64).
pub const WAN_ROUTER_CLIENT_SIDE_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// The client's IPv6 underlay address behind the router.
pub const ROUTED_CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);

/// The IPv4 prefix of `len` bits that holds `addr`, as `net/len` (e.g. `198.18.1.0/24`).
pub fn prefix4(addr: Ipv4Addr, len: u8) -> String {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0);
    format!("{}/{len}", Ipv4Addr::from(u32::from(addr) & mask))
}

/// The IPv6 prefix of `len` bits that holds `addr`, as `net/len` (e.g. `2001:db8:23::/64`).
pub fn prefix6(addr: Ipv6Addr, len: u8) -> String {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0);
    format!("{}/{len}", Ipv6Addr::from(u128::from(addr) & mask))
}

/// The hosts of the lab, one network namespace each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// The WireGuard peer: wireguard-go `wg0`.
    Client,
    /// The gateway host: the reference gateway or `dataplane`.
    Gateway,
    /// The HTTP (and iperf3) server.
    Server,
    /// The one-armed layout's bridge (Docker's bridge in the article). Absent when two-armed.
    Switch,
    /// The router between the client and the gateway's WAN (`LabBuilder::wan_router`).
    Router,
}

impl Node {
    /// The suffix of the namespace name.
    pub fn role(self) -> &'static str {
        match self {
            Node::Client => "client",
            Node::Gateway => "gw",
            Node::Server => "server",
            Node::Switch => "sw",
            Node::Router => "rt",
        }
    }
}

/// How the gateway is wired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topology {
    /// One interface `eth0` for WireGuard and the LAN, as in the article.
    OneArmed,
    /// `wan0` towards the client, `lan0` towards the server.
    TwoArmed,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Topology::OneArmed => "one-armed",
            Topology::TwoArmed => "two-armed",
        }
    }

    /// The namespaces this layout needs.
    pub fn nodes(self) -> &'static [Node] {
        match self {
            Topology::OneArmed => &[Node::Client, Node::Gateway, Node::Server, Node::Switch],
            Topology::TwoArmed => &[Node::Client, Node::Gateway, Node::Server],
        }
    }

    /// The gateway's interfaces, in gw.toml's `[dataplane] interfaces` order.
    pub fn gateway_interfaces(self) -> &'static [&'static str] {
        match self {
            Topology::OneArmed => &["eth0"],
            Topology::TwoArmed => &["wan0", "lan0"],
        }
    }

    /// The gateway interface that faces the client (receives WireGuard).
    pub fn gateway_wan_interface(self) -> &'static str {
        self.gateway_interfaces()[0]
    }

    /// The gateway interface that faces the server (carries NATed traffic).
    pub fn gateway_lan_interface(self) -> &'static str {
        match self {
            Topology::OneArmed => "eth0",
            Topology::TwoArmed => "lan0",
        }
    }

    /// Where the client sends WireGuard: the gateway's address on the client's wire, port 51820.
    pub fn endpoint(self) -> SocketAddrV4 {
        let ip = match self {
            Topology::OneArmed => GATEWAY_LAN_ADDR,
            Topology::TwoArmed => TWO_ARMED_GATEWAY_WAN_ADDR,
        };
        SocketAddrV4::new(ip, LISTEN_PORT)
    }

    /// The client's own underlay address.
    pub fn client_underlay_addr(self) -> Ipv4Addr {
        match self {
            Topology::OneArmed => ONE_ARMED_CLIENT_ADDR,
            Topology::TwoArmed => TWO_ARMED_CLIENT_ADDR,
        }
    }

    /// [`Topology::endpoint`] over IPv6 (a dual-stack lab): `[2001:db8::3]:51820` two-armed.
    pub fn endpoint6(self) -> SocketAddrV6 {
        let ip = match self {
            Topology::OneArmed => GATEWAY_LAN_ADDR6,
            Topology::TwoArmed => TWO_ARMED_GATEWAY_WAN_ADDR6,
        };
        SocketAddrV6::new(ip, LISTEN_PORT, 0, 0)
    }

    /// The client's own IPv6 underlay address (a dual-stack lab).
    pub fn client_underlay_addr6(self) -> Ipv6Addr {
        match self {
            Topology::OneArmed => ONE_ARMED_CLIENT_ADDR6,
            Topology::TwoArmed => TWO_ARMED_CLIENT_ADDR6,
        }
    }

    /// The iptables MASQUERADE output match of the reference gateway: the article's `eth+` when
    /// one-armed, the LAN interface when two-armed (so WAN traffic is not NATed).
    pub fn masquerade_out_match(self) -> &'static str {
        match self {
            Topology::OneArmed => "eth+",
            Topology::TwoArmed => "lan0",
        }
    }

    /// Points to capture the gateway's wires from outside the gateway namespace, as
    /// `(namespace, interface, label)`. Taken from the far end of each veth, so they show what
    /// really left and entered the gateway even when AF_XDP bypasses the gateway's own taps.
    pub fn wire_capture_points(self) -> &'static [(Node, &'static str, &'static str)] {
        match self {
            Topology::OneArmed => &[(Node::Switch, "gw", "gw eth0 (wire)")],
            Topology::TwoArmed => &[
                (Node::Client, "eth0", "gw wan0 (wire)"),
                (Node::Server, "eth0", "gw lan0 (wire)"),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_ifnamsiz() {
        for t in [Topology::OneArmed, Topology::TwoArmed] {
            for i in t.gateway_interfaces() {
                assert!(i.len() <= 15, "{i}");
            }
            for (_, i, _) in t.wire_capture_points() {
                assert!(i.len() <= 15, "{i}");
            }
        }
    }

    #[test]
    fn one_armed_uses_one_interface_for_both_sides() {
        let t = Topology::OneArmed;
        assert_eq!(t.gateway_wan_interface(), t.gateway_lan_interface());
        assert_eq!(*t.endpoint().ip(), GATEWAY_LAN_ADDR);
        let t = Topology::TwoArmed;
        assert_ne!(t.gateway_wan_interface(), t.gateway_lan_interface());
        assert_eq!(t.endpoint().port(), LISTEN_PORT);
    }

    #[test]
    fn ipv6_endpoints_and_prefixes() {
        assert_eq!(
            Topology::TwoArmed.endpoint6().to_string(),
            "[2001:db8::3]:51820"
        );
        assert_eq!(*Topology::OneArmed.endpoint6().ip(), GATEWAY_LAN_ADDR6);
        assert_eq!(prefix6(SERVER_ADDR6, LAN_PREFIX_LEN6), "2001:db8:23::/64");
        assert_eq!(
            prefix6(CLIENT_TUNNEL_ADDR6, TUNNEL_PREFIX_LEN6),
            "fd13::/64"
        );
        assert_eq!(prefix6(SERVER_ADDR6, 0), "::/0");
        assert_eq!(prefix6(SERVER_ADDR6, 128), "2001:db8:23::2/128");
        assert_eq!(prefix4(ROUTED_CLIENT_ADDR, WAN_PREFIX_LEN), "198.18.1.0/24");
        assert_eq!(prefix4(ROUTED_CLIENT_ADDR, 0), "0.0.0.0/0");
        assert_eq!(
            prefix6(ROUTED_CLIENT_ADDR6, WAN_PREFIX_LEN6),
            "2001:db8:1::/64"
        );
    }
}
