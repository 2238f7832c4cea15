//! A small synchronous rtnetlink client: one request at a time on a NETLINK_ROUTE socket,
//! replies parsed with `netlink-packet-route`. Sockets belong to the network namespace of the
//! thread that opens them.

use fastpath::route::*;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
    NeighbourState as NlState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Receive buffer size; a dump datagram is at most a few pages.
const RECV_BUF: usize = 256 * 1024;

/// A NETLINK_ROUTE socket for requests (not subscribed to any multicast group).
pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Ask for extended errors so failures carry the kernel's reason where it gives one.
        let _ = socket.set_ext_ack(true);
        Ok(Self {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Sends one request and collects the replies: until NLMSG_DONE for a dump, until the ACK
    /// otherwise (every non-dump request asks for one, so termination is uniform).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.header.length as usize];
        req.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let mut replies = Vec::new();
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let n = n.min(self.buf.len());
            let mut offset = 0;
            while offset < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..n])
                    .map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("netlink reply: {e}"))
                    })?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                if msg.header.sequence_number != self.seq {
                    continue; // a late reply to an earlier request
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
            }
        }
    }

    /// Every interface.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(&l)),
                _ => None,
            })
            .collect())
    }

    /// The interface called `name`.
    pub fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }

    /// Every address of every interface.
    pub fn addresses(&mut self) -> io::Result<Vec<InterfaceAddress>> {
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => parse_address(&a),
                _ => None,
            })
            .collect())
    }

    /// The primary IPv4 address of an interface: the first non-secondary one, which is the
    /// address MASQUERADE would use.
    pub fn primary_ipv4(&mut self, ifindex: u32) -> io::Result<Option<Ipv4Addr>> {
        Ok(primary_ipv4_of(&self.addresses()?, ifindex))
    }

    /// The kernel's own routing decision for `dst` (what `ip route get DST` prints). Errors are
    /// the kernel's: ENETUNREACH for no route, EHOSTUNREACH/EACCES/EINVAL for reject routes.
    pub fn route_get(&mut self, dst: IpAddr) -> io::Result<Route> {
        let mut m = RouteMessage::default();
        let (family, len) = match dst {
            IpAddr::V4(_) => (AddressFamily::Inet, 32),
            IpAddr::V6(_) => (AddressFamily::Inet6, 128),
        };
        m.header.address_family = family;
        m.header.destination_prefix_length = len;
        m.attributes
            .push(RouteAttribute::Destination(route_addr(dst)));
        let replies = self.request(RouteNetlinkMessage::GetRoute(m), 0)?;
        replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(parse_route(&r, dst)),
                _ => None,
            })
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "RTM_GETROUTE: no route in the reply",
                )
            })
    }

    /// Every neighbour entry (IPv4 and IPv6).
    pub fn neighbours(&mut self) -> io::Result<Vec<Neighbour>> {
        let replies = self.request(
            RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => parse_neighbour(&n),
                _ => None,
            })
            .collect())
    }

    /// The neighbour entry for `addr` on `ifindex`, or `None` when the kernel has none.
    pub fn neighbour_get(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<Option<Neighbour>> {
        let m = neighbour_message(ifindex, addr);
        match self.request(RouteNetlinkMessage::GetNeighbour(m), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => parse_neighbour(&n),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Asks the kernel to resolve `addr` on `ifindex` (ARP / neighbour solicitation) as if a
    /// packet were waiting for it: RTM_NEWNEIGH with NTF_USE creates the entry if needed and runs
    /// the kernel's own state machine (`neigh_event_send`). The answer arrives later as an
    /// RTM_NEWNEIGH notification; nothing here guesses a MAC.
    pub fn resolve_neighbour(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<()> {
        let mut m = neighbour_message(ifindex, addr);
        m.header.flags = NeighbourFlags::Use;
        m.header.state = NlState::None;
        self.request(RouteNetlinkMessage::NewNeighbour(m), NLM_F_CREATE)?;
        Ok(())
    }
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn neighbour_message(ifindex: u32, addr: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.ifindex = ifindex;
    m.attributes
        .push(NeighbourAttribute::Destination(match addr {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    m
}

pub(super) fn parse_link(l: &LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        mac: None,
        mtu: 0,
        up: l.header.flags.contains(LinkFlags::Up),
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(bytes) => link.mac = Mac::from_slice(bytes),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            _ => {}
        }
    }
    link
}

pub(super) fn parse_address(a: &AddressMessage) -> Option<InterfaceAddress> {
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on point-to-point links).
    let local = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    Some(InterfaceAddress {
        ifindex: a.header.index,
        addr: local.or(address)?,
        prefix_len: a.header.prefix_len,
        secondary: a.header.flags.contains(AddressHeaderFlags::Secondary),
    })
}

pub(super) fn parse_route(r: &RouteMessage, dst: IpAddr) -> Route {
    let mut route = Route {
        destination: dst,
        kind: match r.header.kind {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::Local => RouteKind::Local,
            RouteType::Broadcast | RouteType::Multicast | RouteType::Anycast => {
                RouteKind::Broadcast
            }
            RouteType::BlackHole | RouteType::Unreachable | RouteType::Prohibit => {
                RouteKind::Reject
            }
            _ => RouteKind::Other,
        },
        oif: 0,
        gateway: None,
        prefsrc: None,
        table: u32::from(r.header.table),
        mtu: None,
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => route.oif = *i,
            RouteAttribute::Gateway(g) => route.gateway = route_ip(g),
            RouteAttribute::Via(RouteVia::Inet(g)) => route.gateway = Some(IpAddr::V4(*g)),
            RouteAttribute::Via(RouteVia::Inet6(g)) => route.gateway = Some(IpAddr::V6(*g)),
            RouteAttribute::PrefSource(s) => route.prefsrc = route_ip(s),
            RouteAttribute::Table(t) => route.table = *t,
            // A path MTU exception shows here in the RTM_GETROUTE answer (rt6_fill_node and
            // rt_fill_info report the exception's MTU, as `ip route get` prints it).
            RouteAttribute::Metrics(metrics) => {
                route.mtu = metrics.iter().find_map(|m| match m {
                    RouteMetric::Mtu(mtu) if *mtu > 0 => Some(*mtu),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    route
}

pub(super) fn parse_neighbour(n: &NeighbourMessage) -> Option<Neighbour> {
    let addr = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    })?;
    let mac = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => Mac::from_slice(b),
        _ => None,
    });
    let state = match n.header.state {
        NlState::Incomplete => NeighbourState::Incomplete,
        NlState::Reachable => NeighbourState::Reachable,
        NlState::Stale => NeighbourState::Stale,
        NlState::Delay => NeighbourState::Delay,
        NlState::Probe => NeighbourState::Probe,
        NlState::Failed => NeighbourState::Failed,
        NlState::Noarp => NeighbourState::NoArp,
        NlState::Permanent => NeighbourState::Permanent,
        NlState::None => NeighbourState::None,
        other => NeighbourState::Other(u16::from(other)),
    };
    Some(Neighbour {
        ifindex: n.header.ifindex,
        addr,
        mac,
        state,
    })
}

/// The primary IPv4 address of interface `ifindex` among `addresses`: the first
/// non-secondary one, which is the address MASQUERADE would use.
/// The first global IPv6 address of `ifindex` (not link-local, loopback, multicast or
/// unspecified): what ip6tables MASQUERADE would pick as the source towards the LAN.
pub fn global_ipv6_of(addresses: &[InterfaceAddress], ifindex: u32) -> Option<Ipv6Addr> {
    addresses
        .iter()
        .filter(|a| a.ifindex == ifindex)
        .find_map(|a| match a.addr {
            IpAddr::V6(v6)
                if !v6.is_loopback()
                    && !v6.is_multicast()
                    && !v6.is_unspecified()
                    && (v6.segments()[0] & 0xffc0) != 0xfe80 =>
            {
                Some(v6)
            }
            _ => None,
        })
}

pub fn primary_ipv4_of(addresses: &[InterfaceAddress], ifindex: u32) -> Option<Ipv4Addr> {
    addresses
        .iter()
        .filter(|a| a.ifindex == ifindex && !a.secondary)
        .find_map(|a| match a.addr {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
}
