//! Ethernet II frames (IEEE 802.3 with an EtherType): destination, source, EtherType, payload.
//! No FCS (the NIC strips and adds it) and no VLAN tag parsing: a tagged frame shows its TPID
//! ([`ETHERTYPE_VLAN`], [`ETHERTYPE_QINQ`]) as EtherType.

use crate::{read_u16, write_u16, Error};

/// Destination, source, EtherType.
pub const HEADER_LEN: usize = 14;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IEEE 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// IEEE 802.1ad outer (service) tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

/// A MAC address.
pub type Mac = [u8; 6];

/// Byte ranges of the header fields.
pub mod field {
    use core::ops::{Range, RangeFrom};
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// A view of an Ethernet II frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer` without checks; the accessors panic if it is shorter than 14 bytes.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps `buffer` after checking that it holds the 14-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Frame { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst(&self) -> Mac {
        mac(&self.buffer.as_ref()[field::DST])
    }

    #[inline]
    pub fn src(&self) -> Mac {
        mac(&self.buffer.as_ref()[field::SRC])
    }

    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// Everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    #[inline]
    pub fn set_dst(&mut self, v: Mac) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&v);
    }

    #[inline]
    pub fn set_src(&mut self, v: Mac) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&v);
    }

    #[inline]
    pub fn set_ethertype(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, v);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// Writes an Ethernet header at the start of `buf` (the rest is left alone).
#[inline]
pub fn write_header(buf: &mut [u8], dst: Mac, src: Mac, ethertype: u16) -> Result<(), Error> {
    let mut f = Frame::new_checked(buf)?;
    f.set_dst(dst);
    f.set_src(src);
    f.set_ethertype(ethertype);
    Ok(())
}

#[inline]
fn mac(b: &[u8]) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(b);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{EtherType, Ethernet2Header};

    #[test]
    fn short_input_is_an_error() {
        assert_eq!(
            Frame::new_checked(&[0u8; 13][..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            write_header(&mut [0u8; 13], [0; 6], [0; 6], ETHERTYPE_IPV4),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn reads_what_etherparse_writes() {
        let h = Ethernet2Header {
            source: [1, 2, 3, 4, 5, 6],
            destination: [7, 8, 9, 10, 11, 12],
            ether_type: EtherType::IPV6,
        };
        let mut b = h.to_bytes().to_vec();
        b.extend_from_slice(&[0xaa, 0xbb]);
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(f.src(), h.source);
        assert_eq!(f.dst(), h.destination);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
        for (ours, theirs) in [
            (ETHERTYPE_IPV4, EtherType::IPV4),
            (ETHERTYPE_ARP, EtherType::ARP),
            (ETHERTYPE_VLAN, EtherType::VLAN_TAGGED_FRAME),
            (ETHERTYPE_QINQ, EtherType::PROVIDER_BRIDGING),
        ] {
            assert_eq!(ours, theirs.0);
        }
    }

    #[test]
    fn written_header_parses_back_with_etherparse() {
        let mut b = [0u8; 20];
        write_header(&mut b, [2; 6], [4; 6], ETHERTYPE_IPV4).unwrap();
        let (h, rest) = Ethernet2Header::from_slice(&b).unwrap();
        assert_eq!(h.destination, [2; 6]);
        assert_eq!(h.source, [4; 6]);
        assert_eq!(h.ether_type, EtherType::IPV4);
        assert_eq!(rest.len(), 6);
    }

    proptest::proptest! {
        #[test]
        fn new_checked_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Ok(f) = Frame::new_checked(&b[..]) {
                let _ = (f.dst(), f.src(), f.ethertype(), f.payload());
            }
        }
    }
}
