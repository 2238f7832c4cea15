//! TAI64N timestamps (cr.yp.to/libtai/tai64.html), the replay protection of handshake
//! initiations (whitepaper §5.1: the responder accepts only strictly increasing timestamps).
//!
//! The caller passes the wall clock as a `Duration` since the UNIX epoch; this module never
//! reads a clock. The 12-byte big-endian encoding orders exactly as the time it encodes, so
//! comparison is a byte comparison.

use std::time::Duration;

use crate::constants::{TAI64N_BASE, TAI64N_LEN, TAI64N_WHITENING_NANOS};

/// A TAI64N label: 8 bytes of seconds (big-endian, offset by [`TAI64N_BASE`]) and 4 bytes of
/// nanoseconds (big-endian). `Ord` is the time order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tai64n([u8; TAI64N_LEN]);

impl Tai64n {
    /// The smallest label (all zero): earlier than any real timestamp, the state of a peer that
    /// has never sent an initiation.
    pub const ZERO: Tai64n = Tai64n([0; TAI64N_LEN]);

    /// Encodes a wall-clock time exactly (no whitening).
    pub fn from_unix(since_epoch: Duration) -> Self {
        let secs = TAI64N_BASE.saturating_add(since_epoch.as_secs());
        let mut b = [0u8; TAI64N_LEN];
        b[..8].copy_from_slice(&secs.to_be_bytes());
        b[8..].copy_from_slice(&since_epoch.subsec_nanos().to_be_bytes());
        Tai64n(b)
    }

    /// The label an initiator sends: the nanoseconds rounded down to
    /// [`TAI64N_WHITENING_NANOS`] so the peer does not learn our precise clock.
    pub fn for_initiation(since_epoch: Duration) -> Self {
        let nanos = since_epoch.subsec_nanos() & !(TAI64N_WHITENING_NANOS - 1);
        Self::from_unix(Duration::new(since_epoch.as_secs(), nanos))
    }

    pub const fn from_bytes(bytes: [u8; TAI64N_LEN]) -> Self {
        Tai64n(bytes)
    }

    pub const fn to_bytes(self) -> [u8; TAI64N_LEN] {
        self.0
    }

    pub fn as_bytes(&self) -> &[u8; TAI64N_LEN] {
        &self.0
    }

    /// True when `self` is strictly later than `other`: the acceptance rule for a new
    /// initiation against the last accepted one.
    pub fn is_after(&self, other: &Tai64n) -> bool {
        self > other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_label_and_orders_by_time() {
        let t = Tai64n::from_unix(Duration::new(1, 2));
        let mut want = [0u8; 12];
        want[..8].copy_from_slice(&((1u64 << 62) + 11).to_be_bytes());
        want[11] = 2;
        assert_eq!(t.to_bytes(), want);
        let later_nanos = Tai64n::from_unix(Duration::new(1, 3));
        let later_secs = Tai64n::from_unix(Duration::new(2, 0));
        assert!(later_nanos.is_after(&t));
        assert!(later_secs.is_after(&later_nanos));
        assert!(!t.is_after(&t));
        assert!(t.is_after(&Tai64n::ZERO));
    }

    #[test]
    fn whitening_keeps_order_at_the_allowed_rate() {
        assert_eq!(TAI64N_WHITENING_NANOS, 1 << 24);
        let a = Tai64n::for_initiation(Duration::new(5, 1_000_000));
        assert_eq!(a, Tai64n::from_unix(Duration::new(5, 0)));
        // Initiations 20 ms apart (50/s) still strictly increase after rounding.
        let b = Tai64n::for_initiation(Duration::new(5, 21_000_000));
        assert!(b.is_after(&a));
    }
}
