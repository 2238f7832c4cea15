//! What the kernel tells us about links, addresses, routes and neighbours, in plain types.

use std::fmt;
use std::net::IpAddr;

/// An Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// From a link-layer address attribute; `None` unless it is 6 bytes (Ethernet).
    pub fn from_slice(bytes: &[u8]) -> Option<Mac> {
        <[u8; 6]>::try_from(bytes).ok().map(Mac)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A network interface (RTM_NEWLINK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `None` for links without an Ethernet address (tun, loopback has all zeros).
    pub mac: Option<Mac>,
    pub mtu: u32,
    /// IFF_UP.
    pub up: bool,
}

/// An address assigned to an interface (RTM_NEWADDR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// IFA_F_SECONDARY: not the primary address of its subnet (MASQUERADE never picks it).
    pub secondary: bool,
}

/// What kind of route the kernel chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Forward: via a gateway or directly on the link.
    Unicast,
    /// The destination is one of this host's addresses.
    Local,
    /// Broadcast or multicast.
    Broadcast,
    /// Blackhole, unreachable or prohibit routes: drop (and ICMP for the latter two).
    Reject,
    Other,
}

/// The kernel's routing decision for one destination (RTM_GETROUTE reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub destination: IpAddr,
    pub kind: RouteKind,
    /// Output interface.
    pub oif: u32,
    /// Next-hop router; `None` when the destination is on the link.
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would use (`src` in `ip route get`).
    pub prefsrc: Option<IpAddr>,
    pub table: u32,
    /// The route's MTU metric (RTAX_MTU, `mtu` in `ip route get`): a path MTU the kernel
    /// learned from a Packet Too Big or "fragmentation needed" (until it expires,
    /// `mtu_expires`), or one configured on the route. `None`: the link's MTU applies.
    pub mtu: Option<u32>,
}

impl Route {
    /// The address whose MAC the frame goes to: the gateway, or the destination itself.
    pub fn next_hop(&self) -> IpAddr {
        self.gateway.unwrap_or(self.destination)
    }
}

/// Neighbour cache states (NUD_*, include/uapi/linux/neighbour.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    NoArp,
    Permanent,
    None,
    Other(u16),
}

impl NeighbourState {
    /// Whether the kernel itself would send to this entry's link-layer address. STALE, DELAY and
    /// PROBE entries are still used while the kernel re-confirms them (RFC 4861 §7.3.3 gives the
    /// same rule for IPv6).
    pub fn is_usable(self) -> bool {
        matches!(
            self,
            Self::Reachable
                | Self::Stale
                | Self::Delay
                | Self::Probe
                | Self::Permanent
                | Self::NoArp
        )
    }
}

/// A neighbour cache entry (RTM_NEWNEIGH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub mac: Option<Mac>,
    pub state: NeighbourState,
}

impl Neighbour {
    /// The MAC to send to, if the entry is usable.
    pub fn usable_mac(&self) -> Option<Mac> {
        if self.state.is_usable() {
            self.mac
        } else {
            None
        }
    }
}
