//! The AF_XDP WireGuard gateway: configuration, kernel-facing I/O (XDP program, AF_XDP sockets,
//! routing and neighbour tables) and the per-core workers that join the protocol core and the NAT.

pub mod afxdp;
pub mod capture;
pub mod config;
pub mod control;
pub mod counters;
pub mod instance_lock;
pub mod lab;
pub mod metrics;
pub mod peers;
pub mod route;
pub mod runtime;
pub mod worker;
pub mod xdp;
