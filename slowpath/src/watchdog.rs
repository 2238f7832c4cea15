//! Liveness of the slow-path thread: a [`Heartbeat`] it beats on every turn of its loop (at
//! least every 20 ms when idle, and for every message it takes off the queue), and a watchdog
//! thread that reports when the beat stops for longer than [`STALL_THRESHOLD`].
//!
//! Why: the fast path forwards on keypairs the slow path published and never waits for it, so
//! a stuck slow path (a lock held too long, a blocking syscall, a bug) does not stop traffic at
//! once; it stops handshakes, rekeys, roaming and wg0. Sessions then die silently when their
//! keys expire (REJECT_AFTER_TIME, whitepaper §6.1). The operator has to hear about it before
//! that: the watchdog logs a warning when the stall starts, another line when it ends, and the
//! state is in `dataplane stats` and the metrics ([`HealthReport`]).
//!
//! This module also owns the test knob that stalls the slow path on purpose ([`TestStall`]).
//! The watchdog never touches slow-path state and takes no lock the slow path holds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::warn;

/// How long without a heartbeat counts as a stall. The loop beats at least every 20 ms; the
/// longest legitimate pause measured is a 10 000-peer UAPI `set=1` (≈ 1.7 s, debug build).
pub const STALL_THRESHOLD: Duration = Duration::from_secs(2);
/// How often the watchdog looks.
const WATCH_PERIOD: Duration = Duration::from_millis(100);

/// Test knob: stall the slow path this many seconds after start (with
/// [`STALL_FOR_ENV`]). Never for production; the gateway warns loudly when it is set.
pub const STALL_AFTER_ENV: &str = "DATAPLANE_TEST_STALL_SLOWPATH_AFTER_SECS";
/// Test knob: how many seconds the stall lasts (default 5).
pub const STALL_FOR_ENV: &str = "DATAPLANE_TEST_STALL_SLOWPATH_FOR_SECS";

/// The slow-path thread's last sign of life, in milliseconds since `origin` (real time, not
/// the possibly accelerated protocol clock: a stall is a wall-clock matter).
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    /// Called by the slow-path thread: "I am running now".
    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// What the watchdog decides on one look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed.
    None,
    /// The heartbeat is older than the threshold: a stall begins.
    Stalled,
    /// The heartbeat is fresh again after a stall.
    Recovered,
}

/// The watchdog's rule: a stall begins when the heartbeat is older than `threshold`, and ends
/// when it is fresh again (younger than the threshold).
pub fn assess(age: Duration, threshold: Duration, stalled: bool) -> Transition {
    match (stalled, age > threshold) {
        (false, true) => Transition::Stalled,
        (true, false) => Transition::Recovered,
        _ => Transition::None,
    }
}

/// What the slow path reports about itself, without taking its lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthReport {
    /// The watchdog considers the slow-path thread stalled now.
    pub stalled: bool,
    /// Time since the slow-path thread's last heartbeat.
    pub heartbeat_age: Duration,
    /// Stalls seen since start.
    pub stalls: u64,
    /// The handshake queue was under load at the last look: initiations get cookie replies
    /// instead of Diffie-Hellman work (whitepaper §5.3).
    pub cookie_mode: bool,
}

/// State shared by the slow-path thread (beats, cookie mode) and the watchdog (stall flag).
#[derive(Debug, Default)]
pub struct Health {
    pub heartbeat: Heartbeat,
    stalled: AtomicBool,
    stalls: AtomicU64,
    cookie_mode: AtomicBool,
}

impl Health {
    pub fn report(&self) -> HealthReport {
        HealthReport {
            stalled: self.stalled.load(Ordering::Relaxed),
            heartbeat_age: self.heartbeat.age(),
            stalls: self.stalls.load(Ordering::Relaxed),
            cookie_mode: self.cookie_mode.load(Ordering::Relaxed),
        }
    }

    /// Records whether the handshake queue is under load (cookie mode).
    pub fn set_cookie_mode(&self, on: bool) {
        self.cookie_mode.store(on, Ordering::Relaxed);
    }

    /// One look of the watchdog; logs the transitions.
    fn look(&self, threshold: Duration) {
        let age = self.heartbeat.age();
        match assess(age, threshold, self.stalled.load(Ordering::Relaxed)) {
            Transition::Stalled => {
                self.stalled.store(true, Ordering::Relaxed);
                self.stalls.fetch_add(1, Ordering::Relaxed);
                warn!(
                    heartbeat_age_ms = age.as_millis() as u64,
                    "slow path stalled: no heartbeat for {:.1} s; established sessions keep \
                     forwarding, but handshakes, rekeys, roaming and wg0 wait until it recovers",
                    age.as_secs_f64()
                );
            }
            Transition::Recovered => {
                self.stalled.store(false, Ordering::Relaxed);
                warn!("slow path recovered: heartbeat fresh again");
            }
            Transition::None => {}
        }
    }
}

/// Starts the watchdog thread over `health`; it ends when `stop` is set.
pub fn spawn_watchdog(
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
    threshold: Duration,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("slowpath-watchdog".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(WATCH_PERIOD);
                health.look(threshold);
            }
        })
}

/// A deliberate stall of the slow-path thread, from [`STALL_AFTER_ENV`] / [`STALL_FOR_ENV`]:
/// after `after` of running, the thread holds its state lock and sleeps for `duration`, once.
/// It exists so that a test can prove the fast path forwards through a stall and that the
/// watchdog reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestStall {
    pub after: Duration,
    pub duration: Duration,
}

impl TestStall {
    /// From the two variables' values; `None` unless `after` is a number of seconds.
    pub fn parse(after: Option<&str>, duration: Option<&str>) -> Option<TestStall> {
        let after: f64 = after?.trim().parse().ok()?;
        let duration: f64 = duration.and_then(|d| d.trim().parse().ok()).unwrap_or(5.0);
        if !(after.is_finite() && after >= 0.0 && duration.is_finite() && duration > 0.0) {
            return None;
        }
        Some(TestStall {
            after: Duration::from_secs_f64(after),
            duration: Duration::from_secs_f64(duration.min(3600.0)),
        })
    }

    /// From the environment, warning loudly when set.
    pub fn from_env() -> Option<TestStall> {
        let after = std::env::var(STALL_AFTER_ENV).ok();
        let duration = std::env::var(STALL_FOR_ENV).ok();
        let stall = TestStall::parse(after.as_deref(), duration.as_deref());
        if let Some(s) = stall {
            warn!(
                after_s = s.after.as_secs_f64(),
                duration_s = s.duration.as_secs_f64(),
                "{STALL_AFTER_ENV} is set: the slow path will stall on purpose (handshakes, \
                 rekeys and wg0 stop for the duration); this is a test knob, never for production"
            );
        } else if after.is_some() {
            warn!("{STALL_AFTER_ENV} is set but not a number of seconds; ignored");
        }
        stall
    }
}

/// Tracks a [`TestStall`] in the slow-path loop.
#[derive(Debug)]
pub struct StallKnob {
    plan: Option<TestStall>,
    started: Instant,
}

impl StallKnob {
    pub fn new(plan: Option<TestStall>) -> Self {
        StallKnob {
            plan,
            started: Instant::now(),
        }
    }

    /// `Some(duration)` once, when the stall is due.
    pub fn due(&mut self) -> Option<Duration> {
        let p = self.plan?;
        if self.started.elapsed() < p.after {
            return None;
        }
        self.plan = None;
        Some(p.duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_begins_past_the_threshold_and_ends_when_fresh() {
        let t = Duration::from_secs(2);
        assert_eq!(
            assess(Duration::from_millis(20), t, false),
            Transition::None
        );
        assert_eq!(
            assess(Duration::from_millis(2001), t, false),
            Transition::Stalled
        );
        assert_eq!(assess(Duration::from_secs(5), t, true), Transition::None);
        assert_eq!(
            assess(Duration::from_millis(10), t, true),
            Transition::Recovered
        );
    }

    #[test]
    fn the_watchdog_flags_a_stopped_heartbeat_and_clears_it() {
        let h = Health::default();
        h.heartbeat.beat();
        h.look(Duration::from_millis(50));
        assert!(!h.report().stalled);
        std::thread::sleep(Duration::from_millis(80));
        h.look(Duration::from_millis(50));
        let r = h.report();
        assert!(r.stalled, "{r:?}");
        assert_eq!(r.stalls, 1);
        assert!(r.heartbeat_age >= Duration::from_millis(80), "{r:?}");
        h.heartbeat.beat();
        h.look(Duration::from_millis(50));
        let r = h.report();
        assert!(!r.stalled, "{r:?}");
        assert_eq!(r.stalls, 1, "a recovery is not a new stall");
    }

    #[test]
    fn the_stall_knob_parses_strictly_and_fires_once() {
        assert_eq!(TestStall::parse(None, Some("3")), None);
        assert_eq!(TestStall::parse(Some("x"), None), None);
        assert_eq!(TestStall::parse(Some("-1"), None), None);
        assert_eq!(TestStall::parse(Some("1"), Some("0")), None);
        let s = TestStall::parse(Some("0"), Some("2.5")).unwrap();
        assert_eq!(s.duration, Duration::from_millis(2500));
        assert_eq!(
            TestStall::parse(Some("4"), None).unwrap().duration,
            Duration::from_secs(5)
        );
        let mut k = StallKnob::new(Some(s));
        assert_eq!(k.due(), Some(Duration::from_millis(2500)));
        assert_eq!(k.due(), None);
        let mut later = StallKnob::new(TestStall::parse(Some("3600"), None));
        assert_eq!(later.due(), None);
    }
}
