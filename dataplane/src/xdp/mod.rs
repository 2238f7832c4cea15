//! The XDP program: the C source (`redirect.bpf.c`, compiled by build.rs), its maps as Rust
//! types, and loading / attaching / detaching it on an interface.
//!
//! What the program redirects to AF_XDP sockets: UDP to the WireGuard listen port and NAT
//! return traffic; everything else is passed to the kernel. This module never touches frames.

mod counters_reader;
mod gro;
pub mod live_ports;
pub mod maps;
mod oversize;
pub mod program;

pub use counters_reader::XdpCountersReader;
pub use live_ports::{LivePorts, LivePortsWriter};
pub use maps::{RedirectConfig, XdpCounter, XdpCounters};
pub use oversize::OversizeWatch;
pub use program::{AttachMode, XdpError, XdpProgram, PROGRAM_NAME};
