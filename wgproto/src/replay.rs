//! The receive-side replay window of one keypair: the RFC 6479 sliding bitmap.
//!
//! The window owns the set of transport counters already accepted and decides whether a new
//! counter may be accepted. It must only be updated for packets whose AEAD tag verified
//! (whitepaper §5.4.6): an attacker who can mark counters without the key could block traffic.
//!
//! Layout (RFC 6479 §2): a ring of [`REPLAY_WINDOW_BITS`] bits in 64-bit words. Advancing the
//! highest counter clears only the words passed over, so the cost per packet does not depend
//! on the size of the jump. One word is slack for the ring, so [`REPLAY_WINDOW_USABLE`]
//! (8128) counters behind the highest one are still accepted.
//!
//! The words are relaxed atomics so that a window can sit inside a shared
//! [`crate::keypair::Keypair`] without a mutex: there, one updater at a time is enforced by the
//! keypair's receive lock ([`crate::keypair::ReceiveHolder`]), and a relaxed load or store
//! compiles to a plain move. Standalone, `check_and_mark` takes `&mut self`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::constants::{
    REJECT_AFTER_MESSAGES, REPLAY_WINDOW_BITS, REPLAY_WINDOW_USABLE, REPLAY_WORD_BITS,
};

const WORDS: usize = REPLAY_WINDOW_BITS / REPLAY_WORD_BITS;
const WORD_SHIFT: u32 = REPLAY_WORD_BITS.trailing_zeros();
const _: () = assert!(WORDS.is_power_of_two() && REPLAY_WORD_BITS == 64);

/// Why a counter was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// The counter was accepted before.
    Duplicate,
    /// The counter is further behind the highest accepted one than the window reaches.
    TooOld,
    /// The counter is at or past REJECT_AFTER_MESSAGES (whitepaper §6.1); no key may use it.
    Exhausted,
}

/// An RFC 6479 replay window (8192 bits, 8128 usable).
pub struct ReplayWindow {
    /// Highest counter accepted so far (meaningless while `bitmap` is all zero and it is 0).
    highest: AtomicU64,
    bitmap: [AtomicU64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for ReplayWindow {
    fn clone(&self) -> Self {
        let w = ReplayWindow::new();
        w.highest.store(self.highest.load(Relaxed), Relaxed);
        for (to, from) in w.bitmap.iter().zip(&self.bitmap) {
            to.store(from.load(Relaxed), Relaxed);
        }
        w
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest())
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    pub const fn new() -> Self {
        ReplayWindow {
            highest: AtomicU64::new(0),
            bitmap: [const { AtomicU64::new(0) }; WORDS],
        }
    }

    /// Would `counter` be accepted now? Does not change the window; use it only as a cheap
    /// early filter, the authoritative decision is [`ReplayWindow::check_and_mark`].
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        self.precheck(counter)?;
        if counter > self.highest() {
            return Ok(());
        }
        let (word, bit) = Self::position(counter);
        if self.bitmap[word].load(Relaxed) & bit != 0 {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Accepts `counter` if it is new and inside the window, and records it. Call only after the
    /// packet's AEAD tag verified.
    pub fn check_and_mark(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.mark_exclusive(counter)
    }

    /// [`ReplayWindow::check_and_mark`] through a shared reference. The caller must be the only
    /// one updating the window until it returns (the keypair's receive lock): two concurrent
    /// calls could both accept the same counter. Readers never see a torn word.
    pub(crate) fn mark_exclusive(&self, counter: u64) -> Result<(), ReplayError> {
        self.precheck(counter)?;
        let highest = self.highest();
        if counter > highest {
            // Clear the words between the old highest and the new one (at most the whole ring);
            // they held counters that now fall out of the window (RFC 6479 §2.3).
            let old_word = highest >> WORD_SHIFT;
            let new_word = counter >> WORD_SHIFT;
            let advance = (new_word - old_word).min(WORDS as u64);
            for i in 1..=advance {
                self.bitmap[((old_word + i) as usize) & (WORDS - 1)].store(0, Relaxed);
            }
            self.highest.store(counter, Relaxed);
        }
        let (word, bit) = Self::position(counter);
        let bits = self.bitmap[word].load(Relaxed);
        if bits & bit != 0 {
            return Err(ReplayError::Duplicate);
        }
        self.bitmap[word].store(bits | bit, Relaxed);
        Ok(())
    }

    /// Highest counter accepted so far (0 if none).
    pub fn highest(&self) -> u64 {
        self.highest.load(Relaxed)
    }

    fn precheck(&self, counter: u64) -> Result<(), ReplayError> {
        if counter >= REJECT_AFTER_MESSAGES {
            return Err(ReplayError::Exhausted);
        }
        let highest = self.highest();
        if counter < highest && highest - counter > REPLAY_WINDOW_USABLE {
            return Err(ReplayError::TooOld);
        }
        Ok(())
    }

    fn position(counter: u64) -> (usize, u64) {
        let word = ((counter >> WORD_SHIFT) as usize) & (WORDS - 1);
        let bit = 1u64 << (counter & (REPLAY_WORD_BITS as u64 - 1));
        (word, bit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// The naive model: a set of everything accepted, and the window rule stated directly.
    #[derive(Default)]
    struct Model {
        seen: HashSet<u64>,
        highest: Option<u64>,
    }

    impl Model {
        fn accept(&mut self, c: u64) -> bool {
            if c >= REJECT_AFTER_MESSAGES || self.seen.contains(&c) {
                return false;
            }
            if let Some(h) = self.highest {
                if c < h && h - c > REPLAY_WINDOW_USABLE {
                    return false;
                }
            }
            self.seen.insert(c);
            self.highest = Some(self.highest.map_or(c, |h| h.max(c)));
            true
        }
    }

    #[test]
    fn in_order_then_duplicates() {
        let mut w = ReplayWindow::new();
        for c in 0..20_000u64 {
            assert_eq!(w.check_and_mark(c), Ok(()), "counter {c}");
        }
        assert_eq!(w.check_and_mark(19_999), Err(ReplayError::Duplicate));
        assert_eq!(w.check_and_mark(0), Err(ReplayError::TooOld));
    }

    #[test]
    fn window_edge_is_exactly_8128_behind() {
        let mut w = ReplayWindow::new();
        w.check_and_mark(10_000).unwrap();
        assert_eq!(w.check(10_000 - REPLAY_WINDOW_USABLE), Ok(()));
        assert_eq!(
            w.check_and_mark(10_000 - REPLAY_WINDOW_USABLE - 1),
            Err(ReplayError::TooOld)
        );
        assert_eq!(w.check_and_mark(10_000 - REPLAY_WINDOW_USABLE), Ok(()));
        assert_eq!(
            w.check_and_mark(10_000 - REPLAY_WINDOW_USABLE),
            Err(ReplayError::Duplicate)
        );
    }

    #[test]
    fn jump_clears_old_bits() {
        let mut w = ReplayWindow::new();
        w.check_and_mark(5).unwrap();
        // Jump by exactly one ring: counter 5 + 8192 lands on 5's bit, which must be fresh.
        w.check_and_mark(5 + REPLAY_WINDOW_BITS as u64).unwrap();
        w.check_and_mark(1 << 40).unwrap();
        assert_eq!(w.check_and_mark((1 << 40) - 1), Ok(()));
        assert_eq!(w.check_and_mark(5), Err(ReplayError::TooOld));
    }

    #[test]
    fn reject_after_messages_is_enforced() {
        let mut w = ReplayWindow::new();
        assert_eq!(
            w.check_and_mark(REJECT_AFTER_MESSAGES),
            Err(ReplayError::Exhausted)
        );
        assert_eq!(w.check_and_mark(u64::MAX), Err(ReplayError::Exhausted));
        assert_eq!(w.check_and_mark(REJECT_AFTER_MESSAGES - 1), Ok(()));
    }

    /// A step of the property test: a small move around the current highest counter or a jump.
    fn step() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => -200i64..200,
            4 => -9000i64..9000,
            1 => -20_000i64..100_000,
        ]
    }

    proptest! {
        #[test]
        fn matches_naive_model(start in 0u64..(1 << 20), steps in prop::collection::vec(step(), 1..600)) {
            let mut w = ReplayWindow::new();
            let mut m = Model::default();
            let mut cursor = start as i64;
            for s in steps {
                cursor = (cursor + s).max(0);
                let c = cursor as u64;
                let pre = w.check(c).is_ok();
                let got = w.check_and_mark(c).is_ok();
                prop_assert_eq!(pre, got, "check and check_and_mark disagree at {}", c);
                prop_assert_eq!(got, m.accept(c), "counter {}", c);
            }
        }

        #[test]
        fn matches_model_near_reject_limit(steps in prop::collection::vec(-300i64..300, 1..300)) {
            let mut w = ReplayWindow::new();
            let mut m = Model::default();
            let mut cursor = REJECT_AFTER_MESSAGES - 100;
            for s in steps {
                cursor = cursor.saturating_add_signed(s);
                prop_assert_eq!(w.check_and_mark(cursor).is_ok(), m.accept(cursor), "counter {}", cursor);
            }
        }
    }
}
