//! The kernel's routing and neighbour tables, read through rtnetlink.
//!
//! The data plane forwards where the kernel would: it asks the kernel for its routing decision
//! (RTM_GETROUTE for the destination, as `ip route get` does) and for the next hop's MAC
//! (RTM_GETNEIGH), and lets the kernel resolve unknown neighbours (RTM_NEWNEIGH with NTF_USE)
//! instead of sending ARP itself or guessing. Policy routing, ECMP and neighbour state machines
//! stay the kernel's.
//!
//! - [`Rtnl`]: synchronous requests (links, addresses, route lookup, neighbours, resolution).
//!   For start-up and tools.
//! - [`NextHopCache`]: keeps the `fastpath::route` snapshots the workers read on the hot
//!   path, kept current by a refresher thread that follows kernel notifications.
//!
//! This module never changes routes or addresses; the only write is the resolution request,
//! which makes the kernel do what it does for its own first packet to a neighbour.

mod cache;
mod rtnl;

pub use cache::{CacheOptions, NextHopCache};
pub use rtnl::{global_ipv6_of, primary_ipv4_of, Rtnl};
