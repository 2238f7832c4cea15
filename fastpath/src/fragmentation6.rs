//! Fragmenting the gateway's own outer IPv6 datagrams at the source (RFC 8200 §4.5), as kernel
//! WireGuard's sends are fragmented by the kernel: routers never fragment IPv6, so a sealed
//! datagram longer than the path MTU towards a peer (a Packet Too Big taught the kernel that
//! MTU; the route cache publishes it in `NextHop::mtu`) is cut here or lost.
//!
//! The unfragmentable part is the fixed header alone: the datagrams the gateway writes have no
//! extension headers ([`crate::outer`]), and a packet with one is refused rather than cut
//! wrongly. Every fragment is the fixed header (Payload Length and Next Header rewritten), a
//! Fragment header with the packet's identification, and a piece of the fragmentable part (the
//! UDP header and the sealed message): a multiple of 8 bytes but for the last, each fragment at
//! most the MTU, the MTU never taken below IPv6's 1280 (the kernel clamps learned PMTUs there
//! too). The UDP checksum is the whole datagram's, computed before the cut.
//!
//! Sans-IO: [`Fragmenter6::new`] checks the packet once; [`Fragmenter6::write`] writes one
//! fragment into a buffer the caller owns (a UMEM frame). Nothing allocates. The
//! identification is the caller's: one counter per worker from a random start (`Pipeline`).

use wire::ipv6;

/// How one outer IPv6 packet is cut into fragments that fit a path MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragmenter6 {
    /// The fragmentable part's length (everything after the fixed header).
    data_len: usize,
    /// Its bytes per fragment, but for the last (a multiple of 8).
    per_fragment: usize,
    /// The original Next Header, carried in each Fragment header.
    next_header: u8,
    ident: u32,
}

/// Why a packet cannot be fragmented here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment6Error {
    /// Not one whole IPv6 packet (version, lengths).
    Malformed,
    /// An extension header follows the fixed header (the gateway writes none; which of them
    /// belong to the unfragmentable part is not worked out here).
    ExtensionHeader,
}

impl Fragmenter6 {
    /// Checks `packet` (one IPv6 packet, exactly its length) and plans its fragments for
    /// `mtu` (raised to 1280 if below) with identification `ident`. A packet that fits is one
    /// fragment: itself, without a Fragment header.
    pub fn new(packet: &[u8], mtu: usize, ident: u32) -> Result<Fragmenter6, Fragment6Error> {
        let ip = ipv6::Packet::new_checked(packet).map_err(|_| Fragment6Error::Malformed)?;
        if ip.total_len() != packet.len() {
            return Err(Fragment6Error::Malformed);
        }
        let next_header = ip.next_header();
        if ipv6::is_extension_header(next_header) {
            return Err(Fragment6Error::ExtensionHeader);
        }
        let data_len = packet.len() - ipv6::HEADER_LEN;
        let mtu = mtu.max(ipv6::MIN_MTU);
        let per_fragment = if packet.len() <= mtu {
            data_len.max(1)
        } else {
            // 1232 at the minimum MTU: room is never zero.
            (mtu - ipv6::HEADER_LEN - ipv6::FRAGMENT_HEADER_LEN) & !7
        };
        Ok(Fragmenter6 {
            data_len,
            per_fragment,
            next_header,
            ident,
        })
    }

    /// How many fragments the packet makes (1: it fits and goes as it is).
    pub fn count(&self) -> usize {
        self.data_len.div_ceil(self.per_fragment).max(1)
    }

    /// The identification every fragment carries.
    pub fn ident(&self) -> u32 {
        self.ident
    }

    /// Writes fragment `i` (of [`Fragmenter6::count`]) of `packet`, the packet `new` checked,
    /// at the start of `out`; its length, or `None` when `i` is out of range or `out` too short.
    pub fn write(&self, packet: &[u8], i: usize, out: &mut [u8]) -> Option<usize> {
        if i >= self.count() || packet.len() != ipv6::HEADER_LEN + self.data_len {
            return None;
        }
        if self.count() == 1 {
            out.get_mut(..packet.len())?.copy_from_slice(packet);
            return Some(packet.len());
        }
        let offset = i * self.per_fragment;
        let end = (offset + self.per_fragment).min(self.data_len);
        let head = ipv6::HEADER_LEN + ipv6::FRAGMENT_HEADER_LEN;
        let len = head + (end - offset);
        let out = out.get_mut(..len)?;
        out[..ipv6::HEADER_LEN].copy_from_slice(&packet[..ipv6::HEADER_LEN]);
        // Fits: at most the original's payload length (its data shrank by more than 8 bytes).
        let payload_len = (len - ipv6::HEADER_LEN) as u16;
        out[ipv6::field::PAYLOAD_LEN].copy_from_slice(&payload_len.to_be_bytes());
        out[ipv6::field::NEXT_HEADER] = ipv6::NEXT_FRAGMENT;
        ipv6::FragmentRepr {
            next_header: self.next_header,
            offset,
            more: end < self.data_len,
            ident: self.ident,
        }
        .emit(&mut out[ipv6::HEADER_LEN..])
        .ok()?;
        let data = ipv6::HEADER_LEN + offset..ipv6::HEADER_LEN + end;
        out[head..].copy_from_slice(&packet[data]);
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(data_len: usize) -> Vec<u8> {
        let mut p = vec![0u8; ipv6::HEADER_LEN + data_len];
        ipv6::Repr {
            src: "2001:db8::3".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: ipv6::NEXT_UDP,
            payload_len: data_len,
            hop_limit: 64,
        }
        .emit(&mut p)
        .unwrap();
        for (i, b) in p[ipv6::HEADER_LEN..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    #[test]
    fn a_full_size_datagram_on_a_1400_byte_path_is_two_fragments() {
        // 1420-byte inner packet: 1420 + 32 (WireGuard) + 8 (UDP) + 40 = 1500.
        let p = packet(1460);
        let plan = Fragmenter6::new(&p, 1400, 7).unwrap();
        assert_eq!(plan.count(), 2);
        let mut out = [0u8; 2048];
        let first = plan.write(&p, 0, &mut out).unwrap();
        assert_eq!(first, 40 + 8 + 1352);
        assert_eq!(out[6], ipv6::NEXT_FRAGMENT);
        assert_eq!(&out[40..44], &[ipv6::NEXT_UDP, 0, 0, 1]);
        let last = plan.write(&p, 1, &mut out).unwrap();
        assert_eq!(last, 48 + 1460 - 1352);
        assert_eq!(plan.write(&p, 2, &mut out), None);
        assert_eq!(plan.write(&p, 0, &mut out[..100]), None);
    }

    #[test]
    fn the_mtu_is_never_below_1280_and_a_fitting_packet_is_itself() {
        let p = packet(1460);
        assert_eq!(Fragmenter6::new(&p, 600, 1), Fragmenter6::new(&p, 1280, 1));
        let small = packet(100);
        let plan = Fragmenter6::new(&small, 1280, 1).unwrap();
        assert_eq!(plan.count(), 1);
        let mut out = [0u8; 200];
        assert_eq!(plan.write(&small, 0, &mut out), Some(140));
        assert_eq!(&out[..140], &small[..]);
    }

    #[test]
    fn malformed_or_extension_headers_are_refused() {
        let p = packet(1460);
        assert_eq!(
            Fragmenter6::new(&p[..1000], 1280, 1),
            Err(Fragment6Error::Malformed)
        );
        let mut ext = p.clone();
        ext[6] = ipv6::NEXT_HOP_BY_HOP;
        assert_eq!(
            Fragmenter6::new(&ext, 1280, 1),
            Err(Fragment6Error::ExtensionHeader)
        );
        let mut v4 = p;
        v4[0] = 0x45;
        assert_eq!(
            Fragmenter6::new(&v4, 1280, 1),
            Err(Fragment6Error::Malformed)
        );
    }
}
