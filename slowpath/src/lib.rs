//! Slow path: handshakes, timers, wg0, UAPI.
