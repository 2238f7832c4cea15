//! Line-rate benchmarks of the gateway.
//!
//! - [`pipeline`]: the per-frame path without I/O, one and two workers, against raw
//!   ChaCha20-Poly1305 over the same bytes (the limit).
//! - [`e2e`]: through the namespace lab, this gateway against the references (wireguard-go and
//!   boringtun, each with iptables MASQUERADE) in the same run: iperf3 and ping from the lab's
//!   client, and fixed offered loads from the WireGuard load generator ([`loadgen`]) to the sink
//!   ([`sink`]) and back ([`load_sweep`]; probes and their tally in [`probe`], batched socket
//!   I/O in [`udp_batch`], the generator's AF_XDP path in [`loadgen_xdp`] over [`xsk_port`]).
//! - [`report`]: the machine description, the Markdown table and the SVG plot.
//!
//! [`session`], [`packets`] and [`fixture`] build what the benchmarks feed the gateway: real
//! handshakes, sealed frames, and an in-memory gateway with its tables.

pub mod cores;
pub mod cpu_split;
pub mod e2e;
pub mod fixture;
pub mod load_sweep;
pub mod loadgen;
pub mod loadgen_xdp;
pub mod pacing;
pub mod packets;
pub mod pipeline;
pub mod probe;
pub mod report;
pub mod session;
pub mod sink;
pub mod sink_xdp;
pub mod udp_batch;
pub mod xsk_port;
