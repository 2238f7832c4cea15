//! The few rtnetlink requests `wg0` needs: set MTU and bring the link up, add an address, add
//! or delete a route. Synchronous: each request is sent with `NLM_F_ACK` and waits for the
//! kernel's answer, so an error (e.g. `EEXIST`) is reported to the caller that caused it.
//!
//! Messages are built with `netlink-packet-route` and sent on a `netlink-sys` socket; nothing
//! shells out to `ip`. The socket belongs to the network namespace of the thread that opened
//! it, like the TUN device.

use std::io;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute, LinkFlags, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A connected NETLINK_ROUTE socket that sends one request at a time.
#[derive(Debug)]
pub(crate) struct Rtnetlink {
    socket: Socket,
    sequence: u32,
}

fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

impl Rtnetlink {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnetlink {
            socket,
            sequence: 0,
        })
    }

    /// Sets the MTU and the UP flag of link `index` (`ip link set dev X mtu M up`), and clears
    /// MULTICAST, which kernel WireGuard devices do not have (`<POINTOPOINT,NOARP,UP,LOWER_UP>`).
    pub(crate) fn set_link_up(&mut self, index: u32, mtu: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up | LinkFlags::Multicast;
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Stops the kernel from giving link `index` an IPv6 link-local address, as kernel
    /// WireGuard does (`ip link set dev X addrgenmode none`). Must precede link up.
    pub(crate) fn disable_ipv6_link_local(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Adds `address` (with its prefix length) to link `index` (`ip addr add A/L dev X`). The
    /// kernel then adds the connected route `A/L dev X proto kernel scope link src A`.
    pub(crate) fn add_address(&mut self, index: u32, address: IpNet) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = family_of(address.addr());
        msg.header.prefix_len = address.prefix_len();
        msg.header.scope = AddressScope::Universe;
        msg.header.index = index;
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS equals it on a link without a
        // point-to-point peer, which is what iproute2 sends for `ip addr add`.
        msg.attributes.push(AddressAttribute::Local(address.addr()));
        msg.attributes
            .push(AddressAttribute::Address(address.addr()));
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    fn route_message(index: u32, prefix: IpNet) -> RouteMessage {
        let prefix = prefix.trunc();
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(prefix.addr());
        msg.header.destination_prefix_length = prefix.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        // What `ip route add P dev X` produces: proto boot, scope link (IPv6 routes are
        // always universe scope).
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = match prefix {
            IpNet::V4(_) => RouteScope::Link,
            IpNet::V6(_) => RouteScope::Universe,
        };
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(
                prefix.addr(),
            )));
        msg.attributes.push(RouteAttribute::Oif(index));
        msg
    }

    /// Adds `prefix dev <index>` to the main table; `EEXIST` if that prefix is already routed.
    pub(crate) fn add_route(&mut self, index: u32, prefix: IpNet) -> io::Result<()> {
        let msg = Self::route_message(index, prefix);
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Deletes `prefix dev <index>` from the main table; `ESRCH` if it is not there.
    pub(crate) fn del_route(&mut self, index: u32, prefix: IpNet) -> io::Result<()> {
        let msg = Self::route_message(index, prefix);
        self.request(RouteNetlinkMessage::DelRoute(msg), 0)
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let mut packet = NetlinkMessage::from(message);
        packet.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        packet.header.sequence_number = sequence;
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;

        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let length = reply.header.length as usize;
                if reply.header.sequence_number == sequence {
                    if let NetlinkPayload::Error(error) = reply.payload {
                        // An error message with code 0 is the ACK.
                        return match error.code {
                            None => Ok(()),
                            Some(_) => Err(error.to_io()),
                        };
                    }
                }
                if length == 0 {
                    break;
                }
                // Netlink messages are 4-byte aligned.
                offset += (length + 3) & !3;
            }
        }
    }
}
