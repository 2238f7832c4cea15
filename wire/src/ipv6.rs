//! IPv6 fixed headers (RFC 8200 §3), as far as the gateway reads them: it never forwards IPv6
//! itself, it only checks the source of IPv6 from the tunnel and hands it to the kernel.

use core::net::Ipv6Addr;

use crate::{read_u16, Error};

/// The fixed header.
pub const HEADER_LEN: usize = 40;

/// Byte offsets and ranges of the header fields.
pub mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// A view of an IPv6 packet.
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks; the accessors panic if it is shorter than the header.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a whole packet: version 6, fixed header and Payload Length within `buffer`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::BadVersion);
        }
        if HEADER_LEN + usize::from(read_u16(b, field::PAYLOAD_LEN.start)) > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN.start))
    }

    /// Header and payload.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }

    /// The packet without what follows Payload Length (padding).
    #[inline]
    pub fn packet(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len()]
    }
}

#[inline]
fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv6Header};

    #[test]
    fn reads_what_etherparse_writes_and_refuses_short_input() {
        let h = Ipv6Header {
            traffic_class: 0,
            flow_label: Default::default(),
            payload_length: 3,
            next_header: IpNumber::UDP,
            hop_limit: 9,
            source: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            destination: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        };
        let mut b = h.to_bytes().to_vec();
        b.extend_from_slice(&[1, 2, 3, 0xee]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload_len(), 3);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 9);
        assert_eq!(p.src_addr(), Ipv6Addr::from(h.source));
        assert_eq!(p.dst_addr(), Ipv6Addr::from(h.destination));
        assert_eq!(p.packet().len(), 43);
        assert_eq!(Packet::new_checked(&b[..42]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..39]).unwrap_err(), Error::Truncated);
        b[0] = 0x45;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
    }

    proptest::proptest! {
        #[test]
        fn new_checked_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = (p.src_addr(), p.dst_addr(), p.packet(), p.next_header());
            }
        }
    }
}
