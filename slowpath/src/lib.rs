//! Slow path: handshakes, timers, wg0, UAPI.

pub mod tun;
pub mod uapi;
