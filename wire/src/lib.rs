//! The wire formats the gateway reads and writes, and nothing else: one typed view per header
//! and the Internet checksum arithmetic every layer above shares. No I/O, no allocation, no
//! unsafe; short or malformed input is an error, never a panic.
//!
//! Each header module follows one shape (the smoltcp `wire` model): a view `Packet<T>` (or
//! `Frame<T>`) over any `T: AsRef<[u8]>`, built by `new_checked`, which validates every length
//! the accessors rely on once; after that the accessors and setters (`T: AsMut<[u8]>`) cannot
//! fail. `new_unchecked` skips the check for buffers the caller sized itself; its accessors
//! panic on a buffer shorter than the header. Byte ranges live in each module's `field`, the
//! numbers of the protocol (lengths, types, protocol numbers) beside them, written once.

#![forbid(unsafe_code)]

pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod partial;
pub mod tcp;
pub mod udp;
pub mod wireguard;

/// Why a buffer is not the header its view was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Shorter than the header, or than a length field of the header says.
    Truncated,
    /// A length field smaller than the header it describes (IPv4 IHL < 5 or total length below
    /// the header, UDP length below 8).
    BadLength,
    /// The IP version nibble is not the view's.
    BadVersion,
    /// Not a WireGuard transport message: type byte not 4 or reserved bytes not zero.
    NotTransport,
    /// A value to write does not fit its field (a total length above 65535).
    TooLong,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "buffer shorter than the header or its length field",
            Error::BadLength => "length field smaller than the header",
            Error::BadVersion => "wrong IP version",
            Error::NotTransport => "not a WireGuard transport message",
            Error::TooLong => "length does not fit its field",
        })
    }
}

impl std::error::Error for Error {}

/// The IP version of a packet (its first nibble), without any other check.
#[inline]
pub fn ip_version(packet: &[u8]) -> Option<u8> {
    packet.first().map(|b| b >> 4)
}

#[inline]
pub(crate) fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

#[inline]
pub(crate) fn write_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    #[test]
    fn ip_version_reads_the_first_nibble() {
        assert_eq!(super::ip_version(&[0x45]), Some(4));
        assert_eq!(super::ip_version(&[0x60, 0]), Some(6));
        assert_eq!(super::ip_version(&[]), None);
    }
}
