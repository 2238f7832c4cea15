//! The per-core worker: drains its AF_XDP rings in batches and runs each frame through
//! `fastpath`'s pipeline (decrypt, source check, NAT, route, rewrite, transmit, and the
//! reverse); hands packets another worker's NAT owns to that worker.

pub mod handoff;
pub mod io;
