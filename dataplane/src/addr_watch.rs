//! Follows the gateway's interface addresses after start (issue 16 item 7).
//!
//! The XDP program accepts WireGuard only on the WAN interface's addresses (its
//! `listen_addrs` map), read at start. A DHCP renewal or an operator's `ip addr` that changes
//! them would leave clients sending to an address the program passes to the kernel, where no
//! socket reads it. This re-reads the addresses over rtnetlink once a second and rewrites
//! the map when they changed.
//!
//! The NAT's egress address (`[nat] address` unset: the LAN interface's primary IPv4, as
//! MASQUERADE picks it) is not followed: every worker's mappings are bound to it. A change is
//! logged once per new address with what to do, instead of masquerading silently to an
//! address the host no longer has.

use std::net::{IpAddr, Ipv4Addr};

use fastpath::route::InterfaceAddress;
use tracing::{info, warn};

use crate::route::{primary_ipv4_of, Rtnl};
use crate::xdp::XdpProgram;

/// The addresses of interface `ifindex` where WireGuard is accepted, in kernel order: IPv4 and
/// IPv6, except IPv6 link-local ones (fe80::/10), which name no interface by themselves: a
/// route to a peer there needs a scope the route cache does not key on, so such a peer is
/// left to the kernel's socket (the slow path).
pub fn listen_addresses(addresses: &[InterfaceAddress], ifindex: u32) -> Vec<IpAddr> {
    addresses
        .iter()
        .filter(|a| a.ifindex == ifindex)
        .filter(|a| match a.addr {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 != 0xfe80,
        })
        .map(|a| a.addr)
        .collect()
}

/// What was read at start, and the interfaces to watch.
pub struct AddressWatch {
    rtnl: Rtnl,
    wan_index: u32,
    wan_name: String,
    listen: Vec<IpAddr>,
    /// The LAN interface and the address masqueraded to, when it came from that interface.
    egress: Option<(u32, Ipv4Addr)>,
    egress_reported: Option<Ipv4Addr>,
}

impl AddressWatch {
    /// Watches `wan_index` (named `wan_name`) whose WireGuard addresses are `listen` now, and,
    /// with `egress`, the LAN interface whose primary address the NAT uses.
    pub fn new(
        wan_index: u32,
        wan_name: &str,
        listen: Vec<IpAddr>,
        egress: Option<(u32, Ipv4Addr)>,
    ) -> std::io::Result<Self> {
        Ok(AddressWatch {
            rtnl: Rtnl::open()?,
            wan_index,
            wan_name: wan_name.to_string(),
            listen,
            egress,
            egress_reported: None,
        })
    }

    /// Reads the addresses (one rtnetlink dump) and applies what changed to `programs`.
    pub fn check(&mut self, programs: &[XdpProgram]) {
        let addresses = match self.rtnl.addresses() {
            Ok(a) => a,
            Err(e) => {
                warn!("reading the interface addresses over rtnetlink: {e}");
                return;
            }
        };
        let listen = listen_addresses(&addresses, self.wan_index);
        if listen != self.listen {
            self.follow_listen(listen, programs);
        }
        if let Some((lan_index, egress)) = self.egress {
            let primary = primary_ipv4_of(&addresses, lan_index);
            if primary != Some(egress) && primary != self.egress_reported {
                self.egress_reported = primary;
                warn!(
                    egress = %egress,
                    now = ?primary,
                    "the NAT's egress address is no longer the LAN interface's primary address: \
                     forwarded traffic still leaves from {egress}, which replies may not reach; \
                     restart the gateway to masquerade to the new address, or pin it with \
                     [nat] address"
                );
            }
        }
    }

    fn follow_listen(&mut self, listen: Vec<IpAddr>, programs: &[XdpProgram]) {
        for p in programs {
            if let Err(e) = p.set_listen_addrs(&listen) {
                warn!(interface = %p.ifname(), "updating the WireGuard listen addresses: {e}");
                return;
            }
        }
        info!(
            interface = %self.wan_name,
            was = ?self.listen,
            now = ?listen,
            "the WireGuard interface's addresses changed: WireGuard is now accepted on the new ones"
        );
        self.listen = listen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ifindex: u32, a: &str, secondary: bool) -> InterfaceAddress {
        InterfaceAddress {
            ifindex,
            addr: a.parse().unwrap(),
            prefix_len: 24,
            secondary,
        }
    }

    #[test]
    fn listen_addresses_are_the_wan_interfaces_ones_without_link_local() {
        let all = [
            addr(2, "198.18.0.1", false),
            addr(2, "198.18.0.5", true),
            addr(2, "fe80::1", false),
            addr(2, "fd00::1", false),
            addr(3, "172.23.0.3", false),
        ];
        let got = listen_addresses(&all, 2);
        let want: Vec<IpAddr> = ["198.18.0.1", "198.18.0.5", "fd00::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert!(listen_addresses(&all, 9).is_empty());
    }
}
