//! The per-peer timer state machine of whitepaper §6 (and the kernel's `timers.c`): when to
//! retry a handshake, when to give up, when to send a keepalive, when to start a handshake
//! because data went unanswered, and when to zero old keys.
//!
//! It owns deadlines only. Events (data sent, handshake completed, ...) arm or cancel them;
//! [`PeerTimers::poll_expired`] reports which deadline passed on the injected clock. It never
//! sends anything itself: [`crate::device::Device`] turns each [`TimerEvent`] into outputs. The
//! random REKEY_TIMEOUT jitter is passed in by the caller, so tests can fix it.

use std::time::Duration;

use crate::constants::{
    KEEPALIVE_TIMEOUT, MAX_HANDSHAKE_ATTEMPTS, REKEY_TIMEOUT, ZERO_KEYS_AFTER_TIME,
};
use crate::time::Timestamp;

/// A deadline that passed, and what the device must do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerEvent {
    /// No response within REKEY_TIMEOUT: send another initiation (§6.4).
    RetransmitHandshake,
    /// REKEY_ATTEMPT_TIME worth of initiations went unanswered: stop trying and drop what was
    /// waiting for the handshake (§6.4).
    GiveUpHandshake,
    /// Data was received and nothing was sent back for KEEPALIVE_TIMEOUT: send a keepalive
    /// (passive keepalive, §6.5).
    SendKeepalive,
    /// Data was sent and nothing came back for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: the session
    /// may be dead, start a new handshake (§6.5).
    NewHandshake,
    /// No new session for 3 x REJECT_AFTER_TIME: zero every keypair and handshake (§6.3).
    ZeroKeyMaterial,
    /// The configured persistent-keepalive interval passed without any packet sent (§6.5).
    PersistentKeepalive,
}

/// The deadlines of one peer.
#[derive(Clone, Debug, Default)]
pub struct PeerTimers {
    retransmit_handshake: Option<Timestamp>,
    send_keepalive: Option<Timestamp>,
    new_handshake: Option<Timestamp>,
    zero_key_material: Option<Timestamp>,
    persistent_keepalive: Option<Timestamp>,
    /// Initiations sent in the current attempt (1 after the first).
    handshake_attempts: u32,
    /// Data arrived while a passive keepalive was already pending: send one more after it.
    need_another_keepalive: bool,
    persistent_keepalive_interval: Option<Duration>,
}

impl PeerTimers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or with `None`/zero, disables) the persistent keepalive interval. Takes effect from
    /// the next packet sent or received; with `now` given, one is also due right away, as `wg set
    /// persistent-keepalive` does.
    pub fn set_persistent_keepalive(&mut self, interval: Option<Duration>, now: Option<Timestamp>) {
        self.persistent_keepalive_interval = interval.filter(|d| !d.is_zero());
        match (self.persistent_keepalive_interval, now) {
            (None, _) => self.persistent_keepalive = None,
            (Some(_), Some(now)) => self.persistent_keepalive = Some(now),
            (Some(_), None) => {}
        }
    }

    pub fn persistent_keepalive(&self) -> Option<Duration> {
        self.persistent_keepalive_interval
    }

    /// Initiations sent in the current handshake attempt.
    pub fn handshake_attempts(&self) -> u32 {
        self.handshake_attempts
    }

    /// A new handshake attempt begins (triggered by data or a timer, not a retry): the attempt
    /// counter restarts.
    pub fn handshake_attempt_started(&mut self) {
        self.handshake_attempts = 0;
    }

    /// An initiation was sent: expect the response within REKEY_TIMEOUT + `jitter`.
    pub fn handshake_initiated(&mut self, now: Timestamp, jitter: Duration) {
        self.handshake_attempts = self.handshake_attempts.saturating_add(1);
        self.retransmit_handshake = Some(now + REKEY_TIMEOUT + jitter);
    }

    /// A handshake completed (response consumed, or first data on a responder's keypair).
    pub fn handshake_complete(&mut self) {
        self.retransmit_handshake = None;
        self.handshake_attempts = 0;
    }

    /// New session keys were derived: old key material is zeroed if no newer session comes
    /// within 3 x REJECT_AFTER_TIME.
    pub fn session_derived(&mut self, now: Timestamp) {
        self.zero_key_material = Some(now + ZERO_KEYS_AFTER_TIME);
    }

    /// A data packet (not a keepalive) was sent: if no reply arrives in time, rehandshake.
    pub fn data_sent(&mut self, now: Timestamp, jitter: Duration) {
        if self.new_handshake.is_none() {
            self.new_handshake = Some(now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter);
        }
    }

    /// A data packet (not a keepalive) was received: owe the peer a keepalive unless we send
    /// something first.
    pub fn data_received(&mut self, now: Timestamp) {
        if self.send_keepalive.is_none() {
            self.send_keepalive = Some(now + KEEPALIVE_TIMEOUT);
        } else {
            self.need_another_keepalive = true;
        }
    }

    /// Any authenticated packet (data, keepalive or handshake) was sent: the passive keepalive
    /// is no longer owed.
    pub fn any_authenticated_packet_sent(&mut self) {
        self.send_keepalive = None;
    }

    /// Any authenticated packet was received: the peer is alive, no rehandshake for silence.
    pub fn any_authenticated_packet_received(&mut self) {
        self.new_handshake = None;
    }

    /// Any authenticated packet went either way: restart the persistent keepalive interval.
    pub fn any_authenticated_packet_traversal(&mut self, now: Timestamp) {
        if let Some(interval) = self.persistent_keepalive_interval {
            self.persistent_keepalive = Some(now + interval);
        }
    }

    /// Call right after sending the keepalive of a [`TimerEvent::SendKeepalive`] (the send
    /// itself cancels the keepalive deadline): if more data arrived while it was pending, one
    /// more keepalive is owed KEEPALIVE_TIMEOUT later.
    pub fn passive_keepalive_sent(&mut self, now: Timestamp) {
        if self.need_another_keepalive {
            self.need_another_keepalive = false;
            self.send_keepalive = Some(now + KEEPALIVE_TIMEOUT);
        }
    }

    /// Cancels everything (peer removed, or its keys zeroed).
    pub fn stop_all(&mut self) {
        let interval = self.persistent_keepalive_interval;
        *self = PeerTimers::default();
        self.persistent_keepalive_interval = interval;
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        [
            self.retransmit_handshake,
            self.send_keepalive,
            self.new_handshake,
            self.zero_key_material,
            self.persistent_keepalive,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Disarms and reports one deadline at or before `now`, applying the timer's own follow-up
    /// (re-arming, give-up bookkeeping). Call until it returns `None`.
    pub fn poll_expired(&mut self, now: Timestamp) -> Option<TimerEvent> {
        let due = |t: Option<Timestamp>| t.is_some_and(|t| t <= now);
        if due(self.retransmit_handshake) {
            self.retransmit_handshake = None;
            if self.handshake_attempts >= MAX_HANDSHAKE_ATTEMPTS {
                // §6.4: give up; keys still around get zeroed later unless a session comes.
                self.send_keepalive = None;
                self.handshake_attempts = 0;
                if self.zero_key_material.is_none() {
                    self.zero_key_material = Some(now + ZERO_KEYS_AFTER_TIME);
                }
                return Some(TimerEvent::GiveUpHandshake);
            }
            return Some(TimerEvent::RetransmitHandshake);
        }
        if due(self.send_keepalive) {
            self.send_keepalive = None;
            return Some(TimerEvent::SendKeepalive);
        }
        if due(self.new_handshake) {
            self.new_handshake = None;
            return Some(TimerEvent::NewHandshake);
        }
        if due(self.zero_key_material) {
            self.zero_key_material = None;
            return Some(TimerEvent::ZeroKeyMaterial);
        }
        if due(self.persistent_keepalive) {
            self.persistent_keepalive = None;
            if self.persistent_keepalive_interval.is_some() {
                return Some(TimerEvent::PersistentKeepalive);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::{REJECT_AFTER_TIME, REKEY_ATTEMPT_TIME};

    fn secs(s: f64) -> Timestamp {
        Timestamp::from_nanos((s * 1e9) as u64)
    }

    fn drain(t: &mut PeerTimers, now: Timestamp) -> Vec<TimerEvent> {
        std::iter::from_fn(|| t.poll_expired(now)).collect()
    }

    #[test]
    fn retries_every_rekey_timeout_and_gives_up_after_rekey_attempt_time() {
        let mut t = PeerTimers::new();
        let jitter = Duration::from_millis(100);
        let mut now = secs(1.0);
        t.handshake_attempt_started();
        t.handshake_initiated(now, jitter);
        let mut sent = vec![now];
        loop {
            let next = t.next_deadline().expect("a retry or give-up is armed");
            assert_eq!(next, now + REKEY_TIMEOUT + jitter);
            assert!(drain(&mut t, next - Duration::from_nanos(1)).is_empty());
            now = next;
            match t.poll_expired(now) {
                Some(TimerEvent::RetransmitHandshake) => {
                    t.handshake_initiated(now, jitter);
                    sent.push(now);
                }
                Some(TimerEvent::GiveUpHandshake) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(sent.len() as u32, MAX_HANDSHAKE_ATTEMPTS);
        let span = now.since(sent[0]);
        assert!(
            span >= REKEY_ATTEMPT_TIME && span < REKEY_ATTEMPT_TIME + Duration::from_secs(7),
            "{span:?}"
        );
        // After giving up only the key-zeroing deadline is left.
        assert_eq!(t.next_deadline(), Some(now + ZERO_KEYS_AFTER_TIME));
    }

    #[test]
    fn completed_handshake_stops_retries() {
        let mut t = PeerTimers::new();
        t.handshake_initiated(secs(0.0), Duration::ZERO);
        t.handshake_complete();
        t.session_derived(secs(1.0));
        assert_eq!(drain(&mut t, secs(100.0)), vec![]);
        assert_eq!(t.next_deadline(), Some(secs(1.0) + 3 * REJECT_AFTER_TIME));
        assert_eq!(
            drain(&mut t, secs(541.0)),
            vec![TimerEvent::ZeroKeyMaterial]
        );
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn passive_keepalive_after_receiving_without_sending() {
        let mut t = PeerTimers::new();
        t.data_received(secs(0.0));
        t.data_received(secs(3.0)); // while pending: one more keepalive owed afterwards
        assert_eq!(drain(&mut t, secs(9.9)), vec![]);
        assert_eq!(drain(&mut t, secs(10.0)), vec![TimerEvent::SendKeepalive]);
        t.any_authenticated_packet_sent();
        t.passive_keepalive_sent(secs(10.0));
        assert_eq!(drain(&mut t, secs(19.9)), vec![]);
        assert_eq!(drain(&mut t, secs(20.0)), vec![TimerEvent::SendKeepalive]);
        t.any_authenticated_packet_sent();
        t.passive_keepalive_sent(secs(20.0));
        assert_eq!(drain(&mut t, secs(40.0)), vec![]);

        // Data sent while the keepalive is pending cancels it.
        t.data_received(secs(40.0));
        t.any_authenticated_packet_sent();
        assert_eq!(drain(&mut t, secs(60.0)), vec![]);

        // A reply sent in time means no keepalive at all.
        t.data_received(secs(100.0));
        t.any_authenticated_packet_sent();
        assert_eq!(drain(&mut t, secs(200.0)), vec![]);
    }

    #[test]
    fn unanswered_data_triggers_new_handshake() {
        let mut t = PeerTimers::new();
        let jitter = Duration::from_millis(200);
        t.data_sent(secs(0.0), jitter);
        t.data_sent(secs(5.0), jitter); // does not push the deadline out
        let due = secs(0.0) + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter;
        assert_eq!(drain(&mut t, due - Duration::from_nanos(1)), vec![]);
        assert_eq!(drain(&mut t, due), vec![TimerEvent::NewHandshake]);

        t.data_sent(secs(100.0), jitter);
        t.any_authenticated_packet_received();
        assert_eq!(drain(&mut t, secs(200.0)), vec![]);
    }

    #[test]
    fn persistent_keepalive_follows_traffic() {
        let mut t = PeerTimers::new();
        t.set_persistent_keepalive(Some(Duration::from_secs(25)), Some(secs(0.0)));
        assert_eq!(
            drain(&mut t, secs(0.0)),
            vec![TimerEvent::PersistentKeepalive]
        );
        t.any_authenticated_packet_traversal(secs(0.0));
        t.any_authenticated_packet_traversal(secs(10.0));
        assert_eq!(drain(&mut t, secs(34.9)), vec![]);
        assert_eq!(
            drain(&mut t, secs(35.0)),
            vec![TimerEvent::PersistentKeepalive]
        );
        t.set_persistent_keepalive(Some(Duration::ZERO), None);
        t.any_authenticated_packet_traversal(secs(40.0));
        assert_eq!(t.next_deadline(), None);
    }
}

/// The keepalive and unanswered-data rules checked against their plain-language statements
/// (§6.5) over random traffic, on a virtual clock stepped in 100 ms ticks.
#[cfg(test)]
mod model_tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Copy, Debug)]
    enum Ev {
        DataSent,
        DataReceived,
        KeepaliveReceived,
        Idle,
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            2 => Just(Ev::DataSent),
            2 => Just(Ev::DataReceived),
            1 => Just(Ev::KeepaliveReceived),
            6 => Just(Ev::Idle),
        ]
    }

    proptest! {
        #[test]
        fn keepalive_and_new_handshake_rules(trace in prop::collection::vec((ev(), 1u64..400), 1..80)) {
            const TICK: Duration = Duration::from_millis(100);
            let mut t = PeerTimers::new();
            let mut now = Timestamp::from_nanos(1);
            // (time, what) of everything sent or received, as the device would report it.
            let mut sent: Vec<(Timestamp, bool)> = Vec::new(); // (time, is_data)
            let mut received: Vec<(Timestamp, bool)> = Vec::new();
            let mut fired: Vec<(Timestamp, TimerEvent)> = Vec::new();
            for (e, ticks) in trace {
                match e {
                    Ev::DataSent => {
                        t.any_authenticated_packet_sent();
                        t.data_sent(now, Duration::ZERO);
                        sent.push((now, true));
                    }
                    Ev::DataReceived | Ev::KeepaliveReceived => {
                        t.any_authenticated_packet_received();
                        if matches!(e, Ev::DataReceived) {
                            t.data_received(now);
                        }
                        received.push((now, matches!(e, Ev::DataReceived)));
                    }
                    Ev::Idle => {}
                }
                for _ in 0..ticks {
                    now = now + TICK;
                    while let Some(f) = t.poll_expired(now) {
                        fired.push((now, f));
                        if f == TimerEvent::SendKeepalive {
                            t.any_authenticated_packet_sent();
                            t.passive_keepalive_sent(now);
                            sent.push((now, false));
                        }
                    }
                }
            }
            let end = now;
            // A passive keepalive is sent only when data was received, no data was sent since,
            // and KEEPALIVE_TIMEOUT passed (at most two keepalives per received data: the one
            // owed, and one more for data that arrived while it was pending).
            for &(at, f) in &fired {
                if f != TimerEvent::SendKeepalive { continue; }
                let owed = received.iter().any(|&(r, data)| {
                    data && at.since(r) >= KEEPALIVE_TIMEOUT
                        && at.since(r) <= 2 * KEEPALIVE_TIMEOUT
                        && !sent.iter().any(|&(s, d)| d && s >= r && s < at)
                });
                prop_assert!(owed, "keepalive at {:?} not owed", at);
            }
            // Data received and left unanswered for KEEPALIVE_TIMEOUT gets a keepalive by then.
            for &(r, data) in &received {
                if !data || end.since(r) < KEEPALIVE_TIMEOUT + TICK { continue; }
                let answered = sent.iter().any(|&(s, _)| s >= r && s <= r + KEEPALIVE_TIMEOUT + TICK);
                prop_assert!(answered, "data received at {:?} never answered", r);
            }
            // A new handshake starts only for data sent KEEPALIVE+REKEY_TIMEOUT ago with nothing
            // received since; and such data always leads to one.
            let silence = KEEPALIVE_TIMEOUT + REKEY_TIMEOUT;
            for &(at, f) in &fired {
                if f != TimerEvent::NewHandshake { continue; }
                let justified = sent.iter().any(|&(s, data)| {
                    data && at.since(s) >= silence
                        && !received.iter().any(|&(r, _)| r >= s && r < at)
                });
                prop_assert!(justified, "new handshake at {:?} without unanswered data", at);
            }
            for &(s, data) in &sent {
                if !data || end.since(s) < silence + TICK { continue; }
                let replied = received.iter().any(|&(r, _)| r >= s && r <= s + silence);
                let rehandshake = fired.iter().any(|&(at, f)| {
                    f == TimerEvent::NewHandshake && at >= s && at <= s + silence + TICK
                });
                prop_assert!(replied || rehandshake, "data sent at {:?} unanswered, no handshake", s);
            }
        }
    }
}
