//! The WireGuard protocol, sans-IO.
//!
//! This crate takes bytes, a clock and randomness and returns actions: packets to send, keypairs
//! to install, timers to arm. It never opens a socket, spawns a thread or reads the system time;
//! the data plane and the slow path do that at the edge. Layout follows the kernel's
//! `drivers/net/wireguard/`: one module per concern, every protocol number in [`constants`].

#![forbid(unsafe_code)]

pub mod allowedips;
pub mod config;
pub mod constants;
pub mod cookie;
pub mod crypto;
pub mod device;
pub mod keypair;
pub mod keys;
pub mod messages;
pub mod noise;
pub mod peer;
pub mod ratelimiter;
pub mod replay;
pub mod tai64n;
pub mod time;
pub mod timers;
