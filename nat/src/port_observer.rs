//! [`PortObserver`]: who else must know which external ports the NAT holds.
//!
//! The gateway's XDP program takes traffic to a NAT port from the kernel only while a mapping
//! holds that port, so that the host's own traffic in the NAT range (its pings, a service
//! listening on such a port) still reaches the host. A [`Conntrack`](crate::Conntrack) with an
//! observer reports every mapping it creates and every one it removes; the observer must be
//! cheap (it runs on the packet path when a flow starts) and must not fail.

use std::fmt::Debug;

use crate::view::Protocol;

/// Told when an external port (or ICMP query id) of this worker's NAT becomes held by a
/// mapping and when it stops being held. Calls come in order per port: `mapped` once, later
/// `unmapped` once.
pub trait PortObserver: Send + Debug {
    fn mapped(&self, protocol: Protocol, port: u16);
    fn unmapped(&self, protocol: Protocol, port: u16);
}
