//! Per-stage latency of the worker pipeline, as hdrhistogram histograms: how long decryption,
//! the forwarding stage (source NAT or its reverse, route lookup, header rewrite), encryption
//! and a whole frame take.
//!
//! Timing every frame would cost more than some of the stages it measures, so one frame in
//! [`SAMPLE_EVERY`] is timed ([`LatencyRecorder::sample`]): two clock reads per stage of that
//! frame, nothing for the others. The worker records into its own histograms and, about once
//! a second, adds them into the [`SharedLatency`] the stats and metrics read (`try_lock`: if
//! a reader holds it, the worker keeps its samples for the next second instead of waiting).
//! Recording never allocates: the histograms have fixed bounds (1 ns to 1 s, larger values
//! saturate).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One frame in this many is timed (a power of two).
pub const SAMPLE_EVERY: u32 = 64;
/// Upper bound of the histograms, in nanoseconds.
const HIGHEST_NS: u64 = 1_000_000_000;
/// 1% precision is plenty for latency percentiles and keeps each histogram ~25 KiB.
const SIGFIG: u8 = 2;
/// The Prometheus buckets (`le`), in nanoseconds.
pub const BUCKETS_NS: [u64; 12] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 1_000_000, 10_000_000,
];

/// A timed stage of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Opening a WireGuard transport message (AEAD and replay check).
    Decrypt,
    /// Source NAT (or its reverse), route and next-hop lookup, TTL and header rewrite.
    NatRouteRewrite,
    /// Sealing into a transport message and writing the outer headers.
    Encrypt,
    /// A whole frame, from the worker handing it in to the verdict.
    Frame,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::Decrypt,
        Stage::NatRouteRewrite,
        Stage::Encrypt,
        Stage::Frame,
    ];

    /// The stable name used in stats and as the `stage` label.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Decrypt => "decrypt",
            Stage::NatRouteRewrite => "nat_route_rewrite",
            Stage::Encrypt => "encrypt",
            Stage::Frame => "frame",
        }
    }
}

/// Histograms of every stage plus exact sums (hdrhistogram keeps no sum; Prometheus wants one).
#[derive(Clone)]
struct StageHistograms {
    hist: [Histogram<u64>; Stage::ALL.len()],
    sum_ns: [u64; Stage::ALL.len()],
}

impl StageHistograms {
    fn new() -> StageHistograms {
        let h = || {
            Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG)
                .expect("constant bounds are valid: 1 <= low, high >= 2 * low, sigfig <= 5")
        };
        StageHistograms {
            hist: [h(), h(), h(), h()],
            sum_ns: [0; Stage::ALL.len()],
        }
    }

    fn summary(&self, stage: Stage) -> LatencySummary {
        let h = &self.hist[stage as usize];
        LatencySummary {
            count: h.len(),
            sum_ns: self.sum_ns[stage as usize],
            p50_ns: h.value_at_quantile(0.5),
            p99_ns: h.value_at_quantile(0.99),
            max_ns: h.max(),
            buckets: BUCKETS_NS
                .iter()
                .map(|&le| (le, h.count_between(0, le)))
                .collect(),
        }
    }
}

/// The worker's own recorder (not shared; see the module documentation).
pub struct LatencyRecorder {
    frames: u32,
    local: StageHistograms,
    dirty: bool,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder::new()
    }
}

impl fmt::Debug for LatencyRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyRecorder")
            .field("frames", &self.frames)
            .finish()
    }
}

impl LatencyRecorder {
    /// Allocates the histograms (once, when the worker is built).
    pub fn new() -> LatencyRecorder {
        LatencyRecorder {
            frames: 0,
            local: StageHistograms::new(),
            dirty: false,
        }
    }

    /// Called once per frame: true for the frames to time.
    #[inline]
    pub fn sample(&mut self) -> bool {
        self.frames = self.frames.wrapping_add(1);
        self.frames & (SAMPLE_EVERY - 1) == 0
    }

    /// Records the time since `start` for `stage`.
    #[inline]
    pub fn record(&mut self, stage: Stage, start: Instant) {
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.record_ns(stage, ns);
    }

    pub fn record_ns(&mut self, stage: Stage, ns: u64) {
        self.local.hist[stage as usize].saturating_record(ns.max(1));
        self.local.sum_ns[stage as usize] = self.local.sum_ns[stage as usize].saturating_add(ns);
        self.dirty = true;
    }

    /// Adds what was recorded since the last publish into `to`, unless a reader holds it
    /// right now (then the samples wait for the next call).
    pub fn publish(&mut self, to: &SharedLatency) {
        if !self.dirty {
            return;
        }
        let Ok(mut shared) = to.inner.try_lock() else {
            return;
        };
        let shared = shared.get_or_insert_with(StageHistograms::new);
        for i in 0..Stage::ALL.len() {
            // Same bounds on both sides: the addition cannot fail or resize.
            let _ = shared.hist[i].add(&self.local.hist[i]);
            shared.sum_ns[i] = shared.sum_ns[i].saturating_add(self.local.sum_ns[i]);
            self.local.hist[i].reset();
            self.local.sum_ns[i] = 0;
        }
        self.dirty = false;
    }
}

/// The histograms a worker has published (cumulative since start), read by stats and metrics.
#[derive(Default)]
pub struct SharedLatency {
    inner: Mutex<Option<StageHistograms>>,
}

impl fmt::Debug for SharedLatency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLatency").finish_non_exhaustive()
    }
}

impl SharedLatency {
    /// Every stage by name; empty until the worker first published.
    pub fn summaries(&self) -> BTreeMap<String, LatencySummary> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.as_ref() {
            Some(h) => Stage::ALL
                .iter()
                .map(|&s| (s.name().to_string(), h.summary(s)))
                .collect(),
            None => BTreeMap::new(),
        }
    }
}

/// One stage's latency, as stats and metrics show it. Cumulative since the gateway started,
/// over the sampled frames only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Frames timed.
    pub count: u64,
    pub sum_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    /// `(le_ns, frames at or below)` for each of [`BUCKETS_NS`].
    pub buckets: Vec<(u64, u64)>,
}

/// A duration in nanoseconds for people: `850ns`, `12.3µs`, `4.1ms`.
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_frame_in_sample_every_is_timed() {
        let mut r = LatencyRecorder::new();
        let timed = (0..SAMPLE_EVERY * 10).filter(|_| r.sample()).count();
        assert_eq!(timed, 10);
    }

    #[test]
    fn published_histograms_accumulate_with_buckets_and_sums() {
        let mut r = LatencyRecorder::new();
        let shared = SharedLatency::default();
        assert!(shared.summaries().is_empty());
        for ns in [300, 700, 1_500, 40_000] {
            r.record_ns(Stage::Decrypt, ns);
        }
        r.record_ns(Stage::Frame, 5_000_000_000); // above the bound: saturates, still counted
        r.publish(&shared);
        r.record_ns(Stage::Decrypt, 900);
        r.publish(&shared);
        let s = shared.summaries();
        assert_eq!(s.len(), Stage::ALL.len());
        let d = &s["decrypt"];
        assert_eq!(d.count, 5);
        assert_eq!(d.sum_ns, 300 + 700 + 1_500 + 40_000 + 900);
        let le = |v: u64| d.buckets.iter().find(|(l, _)| *l == v).unwrap().1;
        assert_eq!(le(250), 0);
        assert_eq!(le(500), 1);
        assert_eq!(le(1_000), 3);
        assert_eq!(le(2_000), 4);
        assert_eq!(le(50_000), 5);
        assert!((890..=910).contains(&d.p50_ns), "{}", d.p50_ns);
        assert!(d.max_ns >= 40_000 && d.max_ns < 40_500, "{}", d.max_ns);
        assert_eq!(s["frame"].count, 1);
        assert!(s["frame"].max_ns >= HIGHEST_NS / 2);
        assert_eq!(s["encrypt"].count, 0);
    }

    #[test]
    fn a_held_lock_defers_publishing_without_losing_samples() {
        let mut r = LatencyRecorder::new();
        let shared = SharedLatency::default();
        r.record_ns(Stage::Encrypt, 1_000);
        {
            let _reader = shared.inner.lock().unwrap();
            r.publish(&shared);
        }
        assert!(shared.summaries().is_empty());
        r.publish(&shared);
        assert_eq!(shared.summaries()["encrypt"].count, 1);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(850), "850ns");
        assert_eq!(human_ns(12_345), "12.3µs");
        assert_eq!(human_ns(4_100_000), "4.1ms");
    }
}
