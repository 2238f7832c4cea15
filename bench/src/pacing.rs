//! Sending at a set rate in batches, for the load generator and the sink: how many packets are
//! due at a given moment, and when the next batch will be.
//!
//! A batch waits until about a millisecond of packets (at most the system call's batch) is
//! due, so that a sender at a moderate rate makes one `sendmmsg(2)` per batch and sleeps in
//! between, instead of spinning on a core the gateway under test needs (the lab has two).
//! Sans-IO: times are CLOCK_MONOTONIC nanoseconds passed in.

/// The target time a batch covers.
const BATCH_NS: f64 = 1_000_000.0;

/// The schedule of one timed send that started at `start_ns`.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    start_ns: u64,
    /// Packets per second; `None` is as fast as possible.
    rate: Option<f64>,
    /// Packets per batch at this rate.
    batch: usize,
    max_batch: usize,
}

impl Pacer {
    pub fn new(start_ns: u64, rate: Option<f64>, max_batch: usize) -> Pacer {
        let max_batch = max_batch.max(1);
        let batch = match rate {
            Some(r) => ((r * BATCH_NS * 1e-9) as usize).clamp(1, max_batch),
            None => max_batch,
        };
        Pacer {
            start_ns,
            rate,
            batch,
            max_batch,
        }
    }

    /// Packets per batch at this rate.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// How many packets to send at `now_ns` after `sent`: none until a whole batch is due, then
    /// everything due (at most one system call's batch; the rest on the next call).
    pub fn due(&self, now_ns: u64, sent: u64) -> usize {
        let Some(r) = self.rate else {
            return self.max_batch;
        };
        let owed = ((now_ns.saturating_sub(self.start_ns)) as f64 * 1e-9 * r) as u64;
        let due = owed.saturating_sub(sent) as usize;
        if due >= self.batch {
            due.min(self.max_batch)
        } else {
            0
        }
    }

    /// When the next batch after `sent` packets is due (`None` at full speed: now).
    pub fn next_batch_at(&self, sent: u64) -> Option<u64> {
        let r = self.rate?;
        let n = sent + self.batch as u64;
        Some(self.start_ns + (n as f64 / r * 1e9).ceil() as u64)
    }

    /// True when `sent` packets in `elapsed_ns` fall more than 5 % short of the rate: the
    /// sender, not the receiver, set the pace.
    pub fn fell_behind(&self, sent: u64, elapsed_ns: u64) -> bool {
        match self.rate {
            // Up to one batch is left unsent when the time is up.
            Some(r) => {
                let owed = r * elapsed_ns as f64 * 1e-9 - self.batch as f64;
                (sent as f64) < 0.95 * owed
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_a_millisecond_within_bounds() {
        assert_eq!(Pacer::new(0, Some(10_000.0), 32).batch(), 10);
        assert_eq!(Pacer::new(0, Some(1e6), 32).batch(), 32);
        assert_eq!(Pacer::new(0, Some(100.0), 32).batch(), 1);
        assert_eq!(Pacer::new(0, None, 32).batch(), 32);
    }

    #[test]
    fn nothing_is_due_until_a_whole_batch_is() {
        // 10 kpps from t = 1 s: 10 packets per ms.
        let p = Pacer::new(1_000_000_000, Some(10_000.0), 32);
        assert_eq!(p.due(1_000_000_000, 0), 0);
        assert_eq!(p.due(1_000_900_000, 0), 0, "9 due, batch is 10");
        assert_eq!(p.due(1_001_000_000, 0), 10);
        assert_eq!(p.due(1_001_000_000, 10), 0);
        // Behind by 5 ms: catch up one system call's batch at a time.
        assert_eq!(p.due(1_005_000_000, 0), 32);
        assert_eq!(p.next_batch_at(10), Some(1_002_000_000));
        assert_eq!(Pacer::new(0, None, 32).due(5, 1_000_000), 32);
        assert_eq!(Pacer::new(0, None, 32).next_batch_at(7), None);
    }

    #[test]
    fn falling_behind_is_told_from_keeping_up() {
        let p = Pacer::new(0, Some(10_000.0), 32);
        assert!(!p.fell_behind(9_990, 1_000_000_000));
        assert!(p.fell_behind(8_000, 1_000_000_000));
        assert!(!Pacer::new(0, None, 32).fell_behind(1, 1_000_000_000));
    }
}
