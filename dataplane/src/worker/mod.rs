//! The per-core worker: drains its AF_XDP rings in batches and runs each frame through the
//! pipeline (decrypt, source check, NAT, route, rewrite, transmit, and the reverse).

pub mod handoff;
pub mod headers;
pub mod io;
pub mod pipeline;
