//! Fragmenting an IPv4 packet for the tunnel (RFC 791 §3.2), as the kernel does when it
//! forwards a packet into `wg0` that is longer than wg0's MTU and may be fragmented: NAT return
//! traffic without DF, typically the 1500-byte fragments of a large UDP reply or echo reply on
//! the LAN, against a 1420-byte tunnel.
//!
//! Every fragment carries the original header with its own total length, offset, MF and
//! checksum; the data is cut at 8-byte boundaries, as long as fits the MTU, the last fragment
//! taking the rest. The original's offset and MF carry over, so a fragment of a fragment
//! reassembles with its siblings. Options without the copy flag are kept in the first fragment
//! only, replaced by NOPs in the others (so every fragment has the same header length, as
//! Linux's `ip_options_fragment` does).
//!
//! Sans-IO: [`Fragmenter::new`] checks the packet once; [`Fragmenter::write`] writes one
//! fragment into a buffer the caller owns (the worker's UMEM frames). Nothing allocates.

use wire::ipv4;

/// Option types of a one-byte option (RFC 791): end of list, no operation.
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
/// The copied flag of an option type: the option goes into every fragment.
const OPT_COPIED: u8 = 0x80;

/// How one packet is cut into fragments that fit an MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragmenter {
    header_len: usize,
    data_len: usize,
    /// Data bytes in every fragment but the last (a multiple of 8).
    per_fragment: usize,
    /// The original's fragment offset, in bytes.
    offset: usize,
    /// The original's More Fragments flag: the last fragment keeps it.
    more: bool,
}

/// Why a packet cannot be fragmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentError {
    /// Not a well-formed IPv4 packet (lengths, options).
    Malformed,
    /// Don't Fragment is set: the sender asked for "fragmentation needed" instead.
    DontFragment,
    /// The MTU leaves no room for 8 data bytes after the header.
    MtuTooSmall,
    /// The data would end beyond the largest fragment offset (an oversized datagram).
    OffsetOverflow,
}

impl Fragmenter {
    /// Checks `packet` (one IPv4 packet, exactly its total length) and plans its fragments for
    /// `mtu`. A packet that fits is one fragment: itself.
    pub fn new(packet: &[u8], mtu: usize) -> Result<Fragmenter, FragmentError> {
        let ip = ipv4::Packet::new_checked(packet).map_err(|_| FragmentError::Malformed)?;
        if ip.total_len() != packet.len() {
            return Err(FragmentError::Malformed);
        }
        if ip.dont_frag() {
            return Err(FragmentError::DontFragment);
        }
        let header_len = ip.header_len();
        options_valid(ip.options()).ok_or(FragmentError::Malformed)?;
        let room = mtu.saturating_sub(header_len) & !7;
        if room == 0 {
            return Err(FragmentError::MtuTooSmall);
        }
        let data_len = packet.len() - header_len;
        let offset = usize::from(ip.frag_offset()) * 8;
        // Every fragment's offset must fit the 13-bit field, and a datagram cannot end past
        // 65535 bytes (RFC 791; the kernel refuses to reassemble one that does).
        if offset + data_len > usize::from(u16::MAX) {
            return Err(FragmentError::OffsetOverflow);
        }
        Ok(Fragmenter {
            header_len,
            data_len,
            per_fragment: room,
            offset,
            more: ip.more_frags(),
        })
    }

    /// How many fragments the packet makes (at least one).
    pub fn count(&self) -> usize {
        self.data_len.div_ceil(self.per_fragment).max(1)
    }

    /// The data range of the original packet that fragment `i` carries.
    fn data(&self, i: usize) -> std::ops::Range<usize> {
        let start = self.header_len + i * self.per_fragment;
        let end = (start + self.per_fragment).min(self.header_len + self.data_len);
        start..end
    }

    /// Writes fragment `i` (of [`Fragmenter::count`]) of `packet`, the packet `new` checked,
    /// at the start of `out`; its length, or `None` when `i` is out of range or `out` too short.
    pub fn write(&self, packet: &[u8], i: usize, out: &mut [u8]) -> Option<usize> {
        if i >= self.count() || packet.len() != self.header_len + self.data_len {
            return None;
        }
        let data = self.data(i);
        let len = self.header_len + data.len();
        let out = out.get_mut(..len)?;
        out[..self.header_len].copy_from_slice(&packet[..self.header_len]);
        out[self.header_len..].copy_from_slice(&packet[data]);
        if i > 0 {
            strip_uncopied_options(&mut out[ipv4::HEADER_LEN..self.header_len]);
        }
        let last = i + 1 == self.count();
        let offset = (self.offset + i * self.per_fragment) / 8;
        let mut ip = ipv4::Packet::new_unchecked(out);
        // Fits: `len` <= the original's total length, `offset` checked in `new`.
        ip.set_total_len(len as u16);
        ip.set_frag(false, !last || self.more, offset as u16);
        ip.fill_checksum();
        Some(len)
    }
}

/// Walks the options field; `None` if an option's length is impossible.
fn options_valid(opts: &[u8]) -> Option<()> {
    let mut at = 0;
    while at < opts.len() {
        match opts[at] {
            OPT_END => break,
            OPT_NOP => at += 1,
            _ => {
                let len = usize::from(*opts.get(at + 1)?);
                if len < 2 || at + len > opts.len() {
                    return None;
                }
                at += len;
            }
        }
    }
    Some(())
}

/// Replaces the options a fragment after the first does not carry with NOPs (`opts` was
/// checked by [`options_valid`]).
fn strip_uncopied_options(opts: &mut [u8]) {
    let mut at = 0;
    while at < opts.len() {
        match opts[at] {
            OPT_END => break,
            OPT_NOP => at += 1,
            kind => {
                let len = opts.get(at + 1).map_or(1, |&l| usize::from(l).max(1));
                let end = (at + len).min(opts.len());
                if kind & OPT_COPIED == 0 {
                    opts[at..end].fill(OPT_NOP);
                }
                at = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(data: usize, flags_offset: u16, options: &[u8]) -> Vec<u8> {
        let hl = ipv4::HEADER_LEN + options.len();
        let mut p = vec![0u8; hl + data];
        p[0] = 0x40 | (hl / 4) as u8;
        p[2..4].copy_from_slice(&((hl + data) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[6..8].copy_from_slice(&flags_offset.to_be_bytes());
        p[8] = 63;
        p[9] = ipv4::PROTO_UDP;
        p[12..16].copy_from_slice(&[172, 23, 0, 2]);
        p[16..20].copy_from_slice(&[10, 13, 13, 2]);
        p[20..hl].copy_from_slice(options);
        for (i, b) in p[hl..].iter_mut().enumerate() {
            *b = i as u8;
        }
        ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    }

    #[test]
    fn a_lan_fragment_makes_two_for_a_1420_byte_tunnel() {
        // The first 1500-byte fragment of a 4000-byte UDP reply, MF set.
        let p = packet(1480, ipv4::FLAG_MF, &[]);
        let f = Fragmenter::new(&p, 1420).unwrap();
        assert_eq!(f.count(), 2);
        let mut out = [0u8; 2048];
        let n = f.write(&p, 0, &mut out).unwrap();
        let ip = ipv4::Packet::new_checked(&out[..n]).unwrap();
        assert_eq!((n, ip.frag_offset(), ip.more_frags()), (1420, 0, true));
        assert!(ip.verify_checksum());
        let n = f.write(&p, 1, &mut out).unwrap();
        let ip = ipv4::Packet::new_checked(&out[..n]).unwrap();
        assert_eq!((n, ip.frag_offset(), ip.more_frags()), (100, 175, true));
        assert_eq!(f.write(&p, 2, &mut out), None);
    }

    #[test]
    fn the_last_piece_keeps_the_originals_offset_and_mf() {
        // The second fragment of a datagram (offset 1480), the last one (MF clear).
        let p = packet(1480, 185, &[]);
        let f = Fragmenter::new(&p, 1420).unwrap();
        let mut out = [0u8; 2048];
        let n = f.write(&p, 1, &mut out).unwrap();
        let ip = ipv4::Packet::new_checked(&out[..n]).unwrap();
        assert_eq!((ip.frag_offset(), ip.more_frags()), (185 + 175, false));
    }

    #[test]
    fn refuses_df_bad_options_small_mtu_and_overflowing_offsets() {
        let df = packet(1480, ipv4::FLAG_DF, &[]);
        assert_eq!(Fragmenter::new(&df, 1420), Err(FragmentError::DontFragment));
        let bad = packet(1480, 0, &[0x44, 9, 0, 0]);
        assert_eq!(Fragmenter::new(&bad, 1420), Err(FragmentError::Malformed));
        let p = packet(100, 0, &[]);
        assert_eq!(Fragmenter::new(&p, 27), Err(FragmentError::MtuTooSmall));
        let far = packet(1480, 8190, &[]);
        assert_eq!(
            Fragmenter::new(&far, 1420),
            Err(FragmentError::OffsetOverflow)
        );
    }

    #[test]
    fn later_fragments_carry_only_copied_options() {
        // Record route (7, not copied) then a copied option (0x94 router alert), padded.
        let opts = [7, 7, 4, 0, 0, 0, 0, 0x94, 4, 0, 0, 0];
        let p = packet(1600, 0, &opts);
        let f = Fragmenter::new(&p, 1420).unwrap();
        let mut out = [0u8; 2048];
        let n = f.write(&p, 0, &mut out).unwrap();
        assert_eq!(&out[20..32], &opts);
        assert!(ipv4::Packet::new_checked(&out[..n])
            .unwrap()
            .verify_checksum());
        f.write(&p, 1, &mut out).unwrap();
        assert_eq!(&out[20..32], &[1, 1, 1, 1, 1, 1, 1, 0x94, 4, 0, 0, 0]);
    }
}
