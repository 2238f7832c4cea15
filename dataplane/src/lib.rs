//! The `dataplane` binary's edge: everything that touches the kernel. The XDP program
//! ([`xdp`]), the AF_XDP sockets and their UMEM ([`afxdp`]), the kernel's routes and neighbours
//! through rtnetlink ([`route`]), the worker threads that run `fastpath`'s pipeline over the
//! rings ([`worker`]), and the [`runtime`] that starts and stops all of it beside the slow path
//! and the operator servers (`ops`). The protocol, the NAT, the per-frame pipeline and the
//! configuration live in the crates below; this one adds only the I/O.

pub mod addr_watch;
pub mod afxdp;
pub mod host;
pub mod instance_lock;
pub mod peers;
pub mod reserved_ports;
pub mod route;
pub mod runtime;
pub mod worker;
pub mod xdp;
