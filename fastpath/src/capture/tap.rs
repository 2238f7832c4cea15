//! [`CaptureTap`]: one worker's capture switch. The worker reads which points are tapped once
//! per packet (one relaxed atomic load, the whole cost while no capture runs); the control
//! thread attaches a ring and sets the points when a capture starts, and clears both when it
//! ends.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;

use super::{CapturePoint, CaptureRing};

/// See the module documentation.
#[derive(Default)]
pub struct CaptureTap {
    /// [`CapturePoint::bit`]s being captured; 0 = none.
    points: AtomicU8,
    ring: ArcSwapOption<CaptureRing>,
}

impl fmt::Debug for CaptureTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureTap")
            .field("points", &self.points())
            .field("ring", &self.ring.load().as_deref().map(|r| r.point()))
            .finish()
    }
}

impl CaptureTap {
    /// The points tapped now. Relaxed: a capture that starts or stops is seen a few packets
    /// late at worst, which a capture does not mind.
    #[inline]
    pub fn points(&self) -> u8 {
        self.points.load(Ordering::Relaxed)
    }

    /// Worker side: copies `packet` into the attached ring if `point` is being captured.
    /// Returns false when the packet was skipped (ring full); true otherwise.
    pub fn record(&self, point: CapturePoint, packet: &[u8]) -> bool {
        let ring = self.ring.load();
        match ring.as_deref() {
            Some(r) if r.point() == point => r.push(wall_clock(), packet),
            _ => true,
        }
    }

    /// Control side: starts capturing at `ring`'s point into `ring`. The ring is visible
    /// before the point is switched on.
    pub fn attach(&self, ring: Arc<CaptureRing>) {
        let bit = ring.point().bit();
        self.ring.store(Some(ring));
        self.points.store(bit, Ordering::Release);
    }

    /// Control side: stops capturing. The worker may still be inside [`CaptureTap::record`]
    /// with the old ring; it keeps it alive until done.
    pub fn detach(&self) {
        self.points.store(0, Ordering::Release);
        self.ring.store(None);
    }

    /// Whether a ring is attached.
    pub fn is_attached(&self) -> bool {
        self.ring.load().is_some()
    }

    /// The point being captured, if a capture runs (for stats).
    pub fn point(&self) -> Option<CapturePoint> {
        self.ring.load().as_deref().map(|r| r.point())
    }
}

/// Time of capture for the pcap record: the wall clock, as tcpdump stamps packets (read only
/// for packets a capture takes; a vDSO call).
fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_at_the_attached_point_and_stops_on_detach() {
        let tap = CaptureTap::default();
        assert_eq!(tap.points(), 0);
        assert!(tap.record(CapturePoint::WireIn, b"nothing attached"));
        let ring = Arc::new(CaptureRing::new(CapturePoint::Nat, 2, 16));
        tap.attach(ring.clone());
        assert_eq!(tap.points(), CapturePoint::Nat.bit());
        assert_eq!(tap.point(), Some(CapturePoint::Nat));
        assert!(tap.record(CapturePoint::WireIn, b"other point"));
        assert!(tap.record(CapturePoint::Nat, b"one"));
        assert!(tap.record(CapturePoint::Nat, b"two"));
        assert!(!tap.record(CapturePoint::Nat, b"three: full"));
        assert_eq!((ring.len(), ring.skipped()), (2, 1));
        tap.detach();
        assert_eq!(tap.points(), 0);
        assert!(!tap.is_attached());
        assert_eq!(tap.point(), None);
        assert!(tap.record(CapturePoint::Nat, b"after detach"));
        assert_eq!(ring.len(), 2);
        let t = ring.pop_with(|f| f.timestamp).unwrap();
        assert!(
            t > Duration::from_secs(1_600_000_000),
            "wall-clock stamp {t:?}"
        );
    }
}
