//! [`Family`]: what differs between the IPv4 NAT ([`crate::Conntrack`]) and the IPv6 NAT
//! ([`crate::Conntrack6`]) in the parts they share (table, remotes, partition, port choice).
//!
//! Implemented for [`Ipv4Addr`] and [`Ipv6Addr`] only (sealed). The shared parts are generic
//! over it, so each family gets its own monomorphised code: the IPv4 table keeps its 32-byte
//! entries and its hashes and remote checks are the ones it had before IPv6 existed.

use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use crate::view::Protocol;

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::net::Ipv4Addr {}
    impl Sealed for std::net::Ipv6Addr {}
}

/// An IP address family the NAT translates: [`Ipv4Addr`] or [`Ipv6Addr`].
pub trait Family:
    sealed::Sealed + Copy + Debug + Display + Eq + Hash + Into<IpAddr> + Send + Sync + 'static
{
    /// The address as it is on the wire (`[u8; 4]` or `[u8; 16]`).
    type Octets: Copy + Debug + Default + Eq + Send + Sync + 'static;
    /// An endpoint of this family, as shown in [`crate::Mapping`].
    type Socket: Copy + Debug + Eq + Send + Sync + 'static;
    /// An outside endpoint packed for the per-packet remote check (see `remote.rs`).
    #[doc(hidden)]
    type RemoteKey: Copy + Debug + Default + Eq + Send + Sync + 'static;
    /// IPv4 (which alone has fragment chains, see `fragments.rs`).
    #[doc(hidden)]
    const IS_V4: bool;

    fn octets(self) -> Self::Octets;
    fn from_octets(o: Self::Octets) -> Self;
    fn socket(addr: Self, port: u16) -> Self::Socket;
    fn socket_parts(s: Self::Socket) -> (Self, u16);
    #[doc(hidden)]
    fn remote_key(addr: Self::Octets, port: u16) -> Self::RemoteKey;
    /// The address folded to 64 bits (unkeyed): input of the owner and pairing hashes.
    #[doc(hidden)]
    fn fold(addr: Self::Octets) -> u64;
    /// Keyed 64-bit hash of an inside endpoint (the table index and the port-choice hint).
    #[doc(hidden)]
    fn hash_inside(seed: u64, proto: Protocol, addr: Self::Octets, port: u16) -> u64;
}

/// Folded multiply (as in wyhash/foldhash) of `k` under `seed`.
fn mix(seed: u64, k: u64) -> u64 {
    let a = k ^ seed;
    let b = 0x9e37_79b9_7f4a_7c15 ^ seed.rotate_left(29);
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

impl Family for Ipv4Addr {
    type Octets = [u8; 4];
    type Socket = SocketAddrV4;
    /// Address << 16 | port: the check on every return packet is two integer compares.
    type RemoteKey = u64;
    const IS_V4: bool = true;

    #[inline]
    fn octets(self) -> [u8; 4] {
        Ipv4Addr::octets(&self)
    }
    #[inline]
    fn from_octets(o: [u8; 4]) -> Self {
        Ipv4Addr::from(o)
    }
    fn socket(addr: Self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(addr, port)
    }
    fn socket_parts(s: SocketAddrV4) -> (Self, u16) {
        (*s.ip(), s.port())
    }
    #[inline]
    fn remote_key(addr: [u8; 4], port: u16) -> u64 {
        u64::from(u32::from_be_bytes(addr)) << 16 | u64::from(port)
    }
    #[inline]
    fn fold(addr: [u8; 4]) -> u64 {
        u64::from(u32::from_be_bytes(addr))
    }
    #[inline]
    fn hash_inside(seed: u64, proto: Protocol, addr: [u8; 4], port: u16) -> u64 {
        let k = (u64::from(u32::from_be_bytes(addr)) << 32) | (u64::from(port) << 8) | proto as u64;
        mix(seed, k)
    }
}

/// An IPv6 outside endpoint, compared exactly (a hash could be aimed at by an off-path
/// sender).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[doc(hidden)]
pub struct Remote6 {
    addr: [u8; 16],
    port: u16,
}

impl Family for Ipv6Addr {
    type Octets = [u8; 16];
    type Socket = SocketAddrV6;
    type RemoteKey = Remote6;
    const IS_V4: bool = false;

    #[inline]
    fn octets(self) -> [u8; 16] {
        Ipv6Addr::octets(&self)
    }
    #[inline]
    fn from_octets(o: [u8; 16]) -> Self {
        Ipv6Addr::from(o)
    }
    fn socket(addr: Self, port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(addr, port, 0, 0)
    }
    fn socket_parts(s: SocketAddrV6) -> (Self, u16) {
        (*s.ip(), s.port())
    }
    #[inline]
    fn remote_key(addr: [u8; 16], port: u16) -> Remote6 {
        Remote6 { addr, port }
    }
    #[inline]
    fn fold(addr: [u8; 16]) -> u64 {
        let w = u128::from_be_bytes(addr);
        // Peers usually differ in the low bits (fd13::2, ::3, ...); keep those unmixed so
        // the owner spread behaves as it does for IPv4.
        (w as u64) ^ ((w >> 64) as u64).rotate_left(32)
    }
    #[inline]
    fn hash_inside(seed: u64, proto: Protocol, addr: [u8; 16], port: u16) -> u64 {
        // Chained under the key, so colliding endpoints cannot be chosen without it.
        let w = u128::from_be_bytes(addr);
        let h = mix(seed, (w >> 64) as u64);
        let h = mix(h, w as u64);
        mix(h, (u64::from(port) << 8) | proto as u64)
    }
}
