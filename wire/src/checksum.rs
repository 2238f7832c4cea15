//! Internet checksum arithmetic: full one's-complement sums (RFC 1071) for validation, and
//! incremental updates (RFC 1624) for rewriting fields without touching the payload.
//!
//! Owns no state. Never reads past the slices it is given.

/// One's-complement sum of `bytes` (big-endian 16-bit words, odd tail padded with zero), unfolded.
pub fn sum(bytes: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold64(acc)
}

fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds carries back in (end-around carry) until the value fits 16 bits.
pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The Internet checksum (RFC 1071) of `data`, ready to store in its field.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// True when a region that contains its own checksum field sums to all ones (RFC 1071 §1).
pub fn verifies(bytes: &[u8]) -> bool {
    fold(sum(bytes)) == 0xffff
}

/// The accumulated `~m + m'` terms of RFC 1624 eqn. 3 for a set of changed 16-bit words.
/// One `Delta` can be applied to every checksum that covers the changed words (IP header,
/// TCP/UDP pseudo-header, an enclosing ICMP message).
#[derive(Clone, Copy, Default, Debug)]
pub struct Delta(u32);

impl Delta {
    pub fn word(&mut self, old: u16, new: u16) {
        // Fold as we go so thousands of words could never overflow.
        self.0 = u32::from(fold(self.0 + u32::from(!old) + u32::from(new)));
    }

    pub fn addr(&mut self, old: [u8; 4], new: [u8; 4]) {
        self.word(
            u16::from_be_bytes([old[0], old[1]]),
            u16::from_be_bytes([new[0], new[1]]),
        );
        self.word(
            u16::from_be_bytes([old[2], old[3]]),
            u16::from_be_bytes([new[2], new[3]]),
        );
    }

    pub fn merge(&mut self, other: Delta) {
        self.0 = u32::from(fold(self.0 + other.0));
    }

    /// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`.
    pub fn apply(self, hc: u16) -> u16 {
        !fold(u32::from(!hc) + self.0)
    }

    /// UDP variant (RFC 768): a zero checksum means "none" and stays zero; a computed zero is
    /// sent as all ones.
    pub fn apply_udp(self, hc: u16) -> u16 {
        if hc == 0 {
            return 0;
        }
        match self.apply(hc) {
            0 => 0xffff,
            v => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(bytes: &[u8]) -> u16 {
        !fold(sum(bytes))
    }

    #[test]
    fn incremental_equals_full_recomputation_rfc1624() {
        // A 20-byte IPv4 header from RFC 1071-style examples, checksum field zeroed.
        let mut h = [
            0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 10, 13, 13, 2, 93, 184, 216, 34,
        ];
        let c = full(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(&h));
        let mut d = Delta::default();
        d.addr([10, 13, 13, 2], [172, 23, 0, 3]);
        h[12..16].copy_from_slice(&[172, 23, 0, 3]);
        let inc = d.apply(c);
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, full(&h));
    }

    #[test]
    fn udp_zero_checksum_stays_zero_and_computed_zero_becomes_ffff() {
        let mut d = Delta::default();
        d.word(1, 2);
        assert_eq!(d.apply_udp(0), 0);
        // Find an input whose incremental result is zero: ~(~hc + 1) == 0 => hc = 0xfffe + ...
        let mut d1 = Delta::default();
        d1.word(0, 1); // adds 0xffff + 1 == one's-complement +1
        let hc = 1u16; // ~1 = 0xfffe; 0xfffe + 0xffff + 1 folds to 0xffff; !0xffff = 0
        assert_eq!(d1.apply(hc), 0);
        assert_eq!(d1.apply_udp(hc), 0xffff);
    }

    #[test]
    fn odd_length_sum_pads_with_zero() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0xff, 0xff, 0x00, 0x01]), 0x1_0000);
        assert_eq!(fold(sum(&[0xff, 0xff, 0x00, 0x01])), 1);
    }
}
