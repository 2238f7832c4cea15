//! The slow path: handshakes, timers, the kernel `wg0` device, the UAPI, and the tables it
//! publishes to the fast-path workers. Everything here runs off the hot path.

pub mod engine;
pub mod icmp;
pub mod queue;
pub mod tables;
pub mod tun;
pub mod uapi;
pub mod watchdog;
