//! The injected clock. The protocol never reads the system time: callers pass a [`Timestamp`]
//! taken from whatever monotonic clock they own (a real one at the edge, a fake one in tests).

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point on the caller's monotonic clock, in nanoseconds since an arbitrary origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The clock's origin. Useful for fake clocks in tests.
    pub const ZERO: Timestamp = Timestamp(0);

    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later (clocks never run
    /// backwards, but a stale timestamp from another thread may be slightly ahead).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Timestamp::from_nanos(5);
        assert_eq!(t.since(Timestamp::from_nanos(10)), Duration::ZERO);
        assert_eq!((t - Duration::from_secs(1)).as_nanos(), 0);
        assert_eq!(
            (Timestamp::from_nanos(u64::MAX) + Duration::from_secs(1)).as_nanos(),
            u64::MAX
        );
        assert_eq!(
            (t + Duration::from_nanos(7)).since(t),
            Duration::from_nanos(7)
        );
    }
}
