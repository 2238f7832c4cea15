//! The wire formats the gateway reads and writes, and nothing else: one typed view per header
//! and the Internet checksum arithmetic every layer above shares. No I/O, no allocation, no
//! unsafe; short or malformed input is an error, never a panic.

#![forbid(unsafe_code)]

pub mod checksum;
pub mod partial;
