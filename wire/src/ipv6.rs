//! IPv6 fixed headers (RFC 8200 §3), as far as the gateway reads and writes them: the outer
//! header of WireGuard datagrams over an IPv6 underlay, and IPv6 from the tunnel, which it
//! forwards (addresses, hop limit, the first Next Header and the extension-header numbers),
//! with the pseudo-header sum of upper-layer checksums (§8.1).

use core::net::Ipv6Addr;

use crate::{checksum, read_u16, write_u16, Error};

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

/// The minimum link MTU (RFC 8200 §5): every IPv6 link carries 1280-byte packets.
pub const MIN_MTU: usize = 1280;

/// The hop limit of packets the gateway originates (Linux's default `hop_limit`).
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// Next Header values (IANA "Assigned Internet Protocol Numbers").
pub const NEXT_HOP_BY_HOP: u8 = 0;
pub const NEXT_TCP: u8 = 6;
pub const NEXT_UDP: u8 = 17;
pub const NEXT_ROUTING: u8 = 43;
pub const NEXT_FRAGMENT: u8 = 44;
pub const NEXT_ESP: u8 = 50;
pub const NEXT_AH: u8 = 51;
pub const NEXT_ICMPV6: u8 = 58;
pub const NEXT_NONE: u8 = 59;
pub const NEXT_DEST_OPTIONS: u8 = 60;
pub const NEXT_MOBILITY: u8 = 135;
pub const NEXT_HIP: u8 = 139;
pub const NEXT_SHIM6: u8 = 140;

/// Whether `next` names an IPv6 extension header that a node must walk to reach the upper
/// layer (RFC 8200 §4, IANA "IPv6 Extension Header Types", the two experimental values
/// included). ESP and AH are in that registry too but are left out: what follows them is
/// opaque or needs no walking to forward the packet, so a router treats them as a payload.
#[inline]
pub fn is_extension_header(next: u8) -> bool {
    matches!(
        next,
        NEXT_HOP_BY_HOP
            | NEXT_ROUTING
            | NEXT_FRAGMENT
            | NEXT_DEST_OPTIONS
            | NEXT_MOBILITY
            | NEXT_HIP
            | NEXT_SHIM6
            | 253
            | 254
    )
}

/// Whether `a` is link-local unicast (fe80::/10, RFC 4291 §2.5.6): never forwarded.
#[inline]
pub fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The unfolded one's-complement sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an
/// upper-layer packet of `len` bytes with Next Header `next`: add it to the packet's own sum.
#[inline]
pub fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, next: u8, len: u32) -> u32 {
    let mut p = [0u8; 40];
    p[0..16].copy_from_slice(&src.octets());
    p[16..32].copy_from_slice(&dst.octets());
    p[32..36].copy_from_slice(&len.to_be_bytes());
    p[39] = next;
    checksum::sum(&p)
}

/// The folded checksum sum of the upper-layer packet `bytes` (Next Header `next`) with its
/// pseudo-header: 0xffff when a stored checksum verifies; with the checksum field zeroed, its
/// complement is the checksum to store (UDP and ICMPv6 alike).
#[inline]
pub fn upper_layer_sum(src: Ipv6Addr, dst: Ipv6Addr, next: u8, bytes: &[u8]) -> u16 {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    checksum::fold(pseudo_header_sum(src, dst, next, len) + checksum::sum(bytes))
}

/// The fields of a fixed header to write (traffic class 0, flow label 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub payload_len: usize,
    pub hop_limit: u8,
}

impl Repr {
    /// Writes the fixed header at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let len = u16::try_from(self.payload_len).map_err(|_| Error::TooLong)?;
        let h = buf.get_mut(..HEADER_LEN).ok_or(Error::Truncated)?;
        h[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
        write_u16(h, field::PAYLOAD_LEN.start, len);
        h[field::NEXT_HEADER] = self.next_header;
        h[field::HOP_LIMIT] = self.hop_limit;
        h[field::SRC].copy_from_slice(&self.src.octets());
        h[field::DST].copy_from_slice(&self.dst.octets());
        Ok(())
    }
}

/// The Fragment extension header (RFC 8200 §4.5): 8 bytes, as the gateway writes them into
/// its own outer datagrams cut to the path MTU.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// The fields of a Fragment header to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentRepr {
    /// The Next Header of the fragmentable part (the original packet's, e.g. UDP).
    pub next_header: u8,
    /// Where this fragment's data starts in the fragmentable part, in bytes: a multiple of 8
    /// below 65536 (the field holds 8-byte units).
    pub offset: usize,
    /// The M flag: more fragments follow.
    pub more: bool,
    /// Identification, the same in every fragment of one packet.
    pub ident: u32,
}

impl FragmentRepr {
    /// Writes the header at the start of `buf`; `TooLong` for an offset that is not a multiple
    /// of 8 or does not fit its 13 bits.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        if self.offset % 8 != 0 || self.offset > 0xfff8 {
            return Err(Error::TooLong);
        }
        let h = buf.get_mut(..FRAGMENT_HEADER_LEN).ok_or(Error::Truncated)?;
        h[0] = self.next_header;
        h[1] = 0; // reserved
        write_u16(h, 2, (self.offset as u16) | u16::from(self.more));
        h[4..8].copy_from_slice(&self.ident.to_be_bytes());
        Ok(())
    }
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

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Decrements the hop limit of a packet being forwarded (RFC 8200 §3): false, unchanged,
    /// when it is 1 or 0 and the packet must be discarded with a time exceeded instead. IPv6
    /// has no header checksum to update.
    #[inline]
    pub fn decrement_hop_limit(&mut self) -> bool {
        match self.hop_limit() {
            0 | 1 => false,
            h => {
                self.set_hop_limit(h - 1);
                true
            }
        }
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

    /// Byte by byte against RFC 8200 §4.5 (offset in the top 13 bits of bytes 2-3, M the
    /// lowest bit), and as etherparse reads it (versions before 0.20 read the offset and M
    /// from other bits).
    #[test]
    fn fragment_header_has_the_rfc_8200_layout() {
        let mut b = [0u8; 8];
        let r = FragmentRepr {
            next_header: NEXT_UDP,
            offset: 1232,
            more: true,
            ident: 0xdead_beef,
        };
        r.emit(&mut b).unwrap();
        // 1232 bytes = 154 units: 154 << 3 | M = 0x04d1.
        assert_eq!(b, [17, 0, 0x04, 0xd1, 0xde, 0xad, 0xbe, 0xef]);
        let (read, _) = etherparse::Ipv6FragmentHeader::from_slice(&b).unwrap();
        assert_eq!(
            (read.fragment_offset.byte_offset(), read.more_fragments),
            (1232, true)
        );
        assert_eq!(
            (read.identification, read.next_header),
            (0xdead_beef, IpNumber::UDP)
        );
        let last = FragmentRepr {
            more: false,
            offset: 0xfff8,
            ..r
        };
        last.emit(&mut b).unwrap();
        assert_eq!(&b[2..4], &[0xff, 0xf8]);
        for offset in [4, 0x1_0000] {
            assert_eq!(
                FragmentRepr { offset, ..r }.emit(&mut b),
                Err(Error::TooLong)
            );
        }
        assert_eq!(r.emit(&mut b[..7]), Err(Error::Truncated));
    }

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

    #[test]
    fn emits_what_etherparse_reads_and_decrements_the_hop_limit() {
        let r = Repr {
            src: "fd13::2".parse().unwrap(),
            dst: "2001:db8:23::2".parse().unwrap(),
            next_header: NEXT_ICMPV6,
            payload_len: 8,
            hop_limit: 2,
        };
        let mut b = [0u8; 48];
        r.emit(&mut b).unwrap();
        let (h, _) = Ipv6Header::from_slice(&b).unwrap();
        assert_eq!(h.payload_length, 8);
        assert_eq!(h.next_header, IpNumber::IPV6_ICMP);
        assert_eq!(Ipv6Addr::from(h.source), r.src);
        assert_eq!(Ipv6Addr::from(h.destination), r.dst);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert!(p.decrement_hop_limit());
        assert_eq!(p.hop_limit(), 1);
        assert!(!p.decrement_hop_limit(), "1 is not forwarded");
        assert_eq!(p.hop_limit(), 1, "unchanged");
        p.set_hop_limit(0);
        assert!(!p.decrement_hop_limit());
        let too_long = Repr {
            payload_len: 70_000,
            ..r
        };
        assert_eq!(too_long.emit(&mut b), Err(Error::TooLong));
        assert_eq!(r.emit(&mut b[..39]), Err(Error::Truncated));
    }

    #[test]
    fn pseudo_header_sum_matches_etherparse_checksums() {
        use etherparse::{Icmpv6Header, Icmpv6Type};
        let (src, dst) = (
            [0xfd, 0x13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            [0xfe; 16],
        );
        let payload = [1u8, 2, 3, 4, 5];
        let h =
            Icmpv6Header::with_checksum(Icmpv6Type::PacketTooBig { mtu: 1280 }, src, dst, &payload)
                .unwrap();
        let mut msg = h.to_bytes().to_vec();
        msg.extend_from_slice(&payload);
        let s = pseudo_header_sum(src.into(), dst.into(), NEXT_ICMPV6, msg.len() as u32)
            + checksum::sum(&msg);
        assert_eq!(checksum::fold(s), 0xffff, "the stored checksum verifies");
    }

    #[test]
    fn extension_headers_and_link_local_addresses() {
        for n in [0, 43, 44, 60, 135, 139, 140, 253, 254] {
            assert!(is_extension_header(n), "{n}");
        }
        for n in [6, 17, 58, 59, 50, 51] {
            assert!(!is_extension_header(n), "{n}");
        }
        assert!(is_link_local("fe80::1".parse().unwrap()));
        assert!(is_link_local("febf::1".parse().unwrap()));
        assert!(!is_link_local("fec0::1".parse().unwrap()));
        assert!(!is_link_local("fd13::1".parse().unwrap()));
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
