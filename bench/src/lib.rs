//! Line-rate benchmarks of the gateway (issue 7).
//!
//! - [`pipeline`]: the per-frame path without I/O, one and two workers, against raw
//!   ChaCha20-Poly1305 over the same bytes (the limit).
//! - [`e2e`]: iperf3 and ping through the namespace lab, this gateway against the reference
//!   (wireguard-go + iptables MASQUERADE) in the same run.
//! - [`report`]: the machine description, the Markdown table and the SVG plot.
//!
//! [`session`], [`packets`] and [`fixture`] build what the benchmarks feed the gateway: real
//! handshakes, sealed frames, and an in-memory gateway with its tables.

pub mod e2e;
pub mod fixture;
pub mod loadgen;
pub mod packets;
pub mod pipeline;
pub mod probe;
pub mod report;
pub mod session;
pub mod sink;
pub mod udp_batch;
