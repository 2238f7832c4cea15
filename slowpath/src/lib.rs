//! The slow path: handshakes, timers, the kernel `wg0` device and the UAPI. It fills the
//! tables the fast-path workers read (`fastpath::tables`) and drains the queue they hand
//! exceptions to (`fastpath::queue`). Everything here runs off the hot path.

pub mod engine;
pub mod listen_socket;
pub mod private_socket;
pub mod tun;
pub mod uapi;
pub mod watchdog;
