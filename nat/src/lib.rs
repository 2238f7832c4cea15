//! Built-in source NAT (conntrack), sans-IO: what `iptables -t nat -A POSTROUTING -o eth+ -j
//! MASQUERADE` did for the article's gateway, done by the data plane's workers themselves,
//! with the behaviour RFC 4787 (UDP), RFC 5382 (TCP) and RFC 5508 (ICMP) ask of a NAT.
//!
//! The crate takes IPv4 packets as byte slices (starting at the IP header, inside a frame the
//! caller owns) and a clock reading; it rewrites headers in place with incremental checksum
//! updates (RFC 1624) and returns a verdict. It never reads a clock, never does I/O, never
//! blocks and never allocates after [`Conntrack::new`].
//!
//! [`Conntrack6`] (`Conntrack<Ipv6Addr>`, built from a `NatConfig<Ipv6Addr>`) does the same for
//! IPv6, as ip6tables MASQUERADE: the same table, port allocator, partition, timer wheel, flow
//! states and remotes, instantiated for 16-byte addresses (generic over [`Family`], so the IPv4
//! code is what it was), with its own packet path (`conntrack6.rs`). Everything below holds
//! for it, with ICMPv6 (echo by identifier; errors 1-4 translated both ways, the pseudo-header
//! address change folded into every checksum) in place of ICMP, and without fragments: a
//! packet from inside with an extension header after the fixed header is refused
//! (`Ipv6ExtensionHeader`), return traffic with one is left to the kernel (`NotNat`). A NAT66
//! changes no header length, so Packet Too Big's MTU passes unchanged.
//!
//! # Per packet
//!
//! ```text
//! decrypt -> AllowedIPs source check -> translate_outbound -> Forward        -> route out
//!                                                           -> Hairpin{owner} -> translate_inbound (on owner)
//!                                                           -> Handoff{owner} -> ring to worker owner
//!                                                           -> Local          -> kernel (wg0)
//! rx on egress addr -> translate_inbound -> Deliver{inside} -> AllowedIPs lookup of `inside` -> encrypt
//!                                        -> Handoff{owner}  -> ring to worker owner
//!                                        -> NotNat          -> kernel
//! Err(NatError)  -> drop, count by reason (NatError::name); on TableFull/NoFreePort optionally
//!                   write_admin_prohibited() back to the sender (rate-limited by the caller)
//! once per batch -> expire(now, budget)
//! ```
//!
//! # Behaviour
//!
//! * Endpoint-independent mapping (RFC 4787 REQ-1, RFC 5382 REQ-1): one mapping per
//!   (protocol, inside address, inside port), whatever the destination. "Paired" address
//!   pooling (RFC 4787 REQ-2). The inside port is kept when it lies in this worker's slice of
//!   the NAT port range and is free (like MASQUERADE); otherwise a free port is taken from a
//!   keyed-random starting point. A port is never shared by two mappings (no overloading).
//!   Ports come only from `NatConfig::ports` minus `NatConfig::exclude_ports`, so mapped ports
//!   never collide with the WireGuard listen port, host services or Linux's own ephemeral range.
//! * Endpoint-independent filtering (RFC 4787 REQ-8 / RFC 5382 REQ-3 "transparency"): while a
//!   mapping lives, any remote may reach it. Unsolicited traffic to an unmapped port is dropped
//!   silently (`NoMapping`, RFC 5382 REQ-4).
//! * Off-path senders change nothing: each mapping tracks the remotes its inside host talks
//!   to (the session's first and the latest, see `remote.rs`); only their packets refresh it
//!   or move its TCP state. Others' packets are delivered without touching it
//!   (`inbound_untracked`), except a RST (`OffPathRst`); an ICMP error is delivered only when
//!   the packet it quotes went to a tracked remote (`IcmpErrorOffPath`).
//! * ICMP queries use their identifier as the port (RFC 5508 REQ-1). ICMP errors are
//!   translated both ways with the quoted packet reverted and every checksum fixed (RFC 5508
//!   REQ-4/5); errors with a bad checksum or no mapping are dropped; an ICMP error never
//!   refreshes nor removes a mapping (RFC 5508 REQ-6, RFC 4787 REQ-12, RFC 5382 REQ-10).
//! * Fragments (RFC 4787 REQ-14) are translated as a chain, not reassembled: the first
//!   fragment like a whole packet (incremental checksum updates stay exact), and its
//!   (source, destination, protocol, identification) remembered for 30 s in a fixed table of
//!   512 chains per direction (`fragments.rs`), so later fragments get the same address; a
//!   later fragment without its first is dropped (`FragmentUnknown`). Fragmented ICMP errors
//!   and hairpinned fragments are not followed (`Fragment`).
//! * Timeouts by flow state ([`Timeouts`]): defaults at the RFC floors or above.
//! * Hard capacity per worker: a full table refuses new flows (`TableFull`, counted), existing
//!   flows are unaffected.
//!
//! # Several cores
//!
//! Each worker (one per NIC queue, pinned) owns a [`Conntrack`] built from the same
//! [`NatConfig`] with its own index. Nothing is shared, nothing is locked: the strategy is a
//! **partitioned port range with handoff**.
//!
//! * The NAT port range is cut into `workers` contiguous slices ([`Partition::slice`]); a
//!   worker maps only onto ports of its own slice.
//! * Inbound, the owner of a packet follows from its destination port alone:
//!   [`Partition::owner_of_port`] (for an ICMP error, from the port quoted in it). RSS may
//!   deliver return traffic to any queue; a worker that gets a port it does not own receives
//!   `Inbound::Handoff { owner }` (packet untouched) and passes the frame to that worker.
//! * Outbound, the owner is a hash of the inside source address:
//!   [`Partition::owner_of_inside`]. All flows of one inside host therefore live in one
//!   table, so endpoint-independent mapping and paired pooling hold even when a peer roams
//!   and its WireGuard datagrams start landing on another queue. A non-owner gets
//!   `Outbound::Handoff { owner }`.
//! * Handoff is the data plane's business (`dataplane::worker::handoff`): each worker has its
//!   own UMEM, so the packet is copied into a preallocated slot of a bounded
//!   single-producer/single-consumer lane per ordered pair of workers, and the owner copies it
//!   into a frame of its own and calls the same `translate_*` function. A full lane drops the
//!   packet and counts it, like any queue overflow. No packet is ever processed under a lock.
//! * Nothing steers flows to their owner's queue: RSS decides, and handoffs are the price.
//!
//! `benches/multicore.rs` runs one worker, then two on two threads, and reports both the
//! wall-clock aggregate and each worker's translations per on-CPU second: with nothing
//! shared, the per-worker rate does not drop when a second worker runs (figures in
//! `nat/README.md`).
//!
//! # Memory
//!
//! Per worker: the slab (32 bytes per entry), the inside index (hashbrown, sized for twice the
//! capacity: about 2.3-4.6 bytes of control + 4 bytes of slot per bucket), the free list and the
//! wheel links (4 + 12 bytes per entry), plus per port of the slice 4 bytes per (protocol,
//! egress address) for the external index and 1 bit for the allocator, plus 2 x 512 fragment
//! chains (about 20 KiB). All allocated in
//! [`Conntrack::new`]; see [`Conntrack::heap_bytes`].

#![forbid(unsafe_code)]

mod config;
mod conntrack;
mod conntrack6;
mod counters;
mod error;
mod family;
mod flow_state;
mod fragments;
mod partition;
mod port_alloc;
mod port_observer;
mod refusal;
mod remote;
mod rewrite;
mod rewrite6;
mod table;
mod timer_wheel;
mod view;
mod view6;

pub use config::{ConfigError, NatConfig, Timeouts};
pub use conntrack::{Conntrack, Inbound, Mapping, Outbound};
pub use conntrack6::Conntrack6;
pub use counters::NatCounters;
pub use error::NatError;
pub use family::Family;
pub use flow_state::FlowState;
pub use partition::Partition;
pub use port_observer::PortObserver;
pub use refusal::write_admin_prohibited;
pub use view::Protocol;
