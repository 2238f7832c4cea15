//! What a worker does to a frame, without any I/O: the per-frame [`pipeline`] (decrypt, source
//! check, NAT, route, rewrite, and the reverse), its verdicts and named drop reasons, the
//! per-worker [`counters`], the [`capture`] taps and [`latency`] sampling on the way, and the
//! contract with the slow path: the [`tables`] it publishes, the [`queue`] the workers hand
//! exceptions to, the screening of handshakes by their macs ([`handshake_guard`]), and the ICMP and ICMPv6 errors a router owes ([`icmp`], [`icmp6`]) and how many it may send
//! ([`icmp_ratelimit`]).
//!
//! Rings, sockets, netlink and threads are the `dataplane` binary's; this crate builds, runs,
//! fuzzes and benchmarks without clang, libbpf or an AF_XDP socket.

#![forbid(unsafe_code)]

pub mod capture;
pub mod counters;
pub mod fragmentation;
pub mod fragmentation6;
pub mod frame;
pub mod handshake_guard;
pub mod headers;
pub mod icmp;
pub mod icmp6;
pub mod icmp_ratelimit;
pub mod latency;
pub mod outer;
pub mod outer_datagrams;
pub mod peer_tally;
pub mod pipeline;
pub mod queue;
pub mod roaming;
pub mod route;
pub mod stage_cycles;
pub mod tables;
