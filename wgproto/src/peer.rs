//! One peer's slow-path state: its configuration, handshake, cookie state, timers and the three
//! keypair slots of whitepaper §5.4/§6 (previous, current, next).
//!
//! This module owns the slot rules (who moves where when a session is derived or confirmed);
//! [`crate::device::Device`] owns the index table and the outputs, and publishes keypairs to
//! the fast path. A peer never reads a clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::IpPrefix;
use crate::cookie::CookieState;
use crate::keypair::Keypair;
use crate::keys::PublicKey;
use crate::noise::PeerHandshake;
use crate::time::Timestamp;
use crate::timers::PeerTimers;

/// A device-local handle for a peer: small, `Copy`, used as the AllowedIPs owner and carried
/// by every [`Keypair`]. Assigned by the device; never reused while the device lives, so a
/// stale id from a removed peer matches nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u32);

impl PeerId {
    pub const fn new(raw: u32) -> Self {
        PeerId(raw)
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// Keypairs that left every slot: the device retires them and frees their indices.
pub type Evicted = [Option<Arc<Keypair>>; 2];

/// The previous/current/next keypairs of one peer.
///
/// - `current` is the keypair we send with. An initiator's new keypair goes straight there.
/// - `next` is a responder's new keypair: it receives, but is not used for sending until the
///   first transport message arrives on it (key confirmation, whitepaper §5.4.5).
/// - `previous` is the keypair `current` replaced: still accepted on receive, so packets in
///   flight during a rekey are not lost.
#[derive(Debug, Default)]
pub struct KeypairSlots {
    previous: Option<Arc<Keypair>>,
    current: Option<Arc<Keypair>>,
    next: Option<Arc<Keypair>>,
}

impl KeypairSlots {
    pub fn previous(&self) -> Option<&Arc<Keypair>> {
        self.previous.as_ref()
    }

    pub fn current(&self) -> Option<&Arc<Keypair>> {
        self.current.as_ref()
    }

    pub fn next(&self) -> Option<&Arc<Keypair>> {
        self.next.as_ref()
    }

    /// Installs the keypair of a handshake we initiated: it becomes current at once.
    pub fn install_as_initiator(&mut self, kp: Arc<Keypair>) -> Evicted {
        if let Some(next) = self.next.take() {
            // An unconfirmed responder keypair is pending: it becomes previous (it may still
            // receive) and the old current goes, as the kernel does.
            let old_prev = self.previous.replace(next);
            let old_cur = self.current.replace(kp);
            [old_prev, old_cur]
        } else {
            let old_prev = std::mem::replace(&mut self.previous, self.current.replace(kp));
            [old_prev, None]
        }
    }

    /// Installs the keypair of a handshake we answered: it waits in `next` for confirmation.
    /// `previous` is dropped so that at most one old keypair is kept once `next` is confirmed.
    pub fn install_as_responder(&mut self, kp: Arc<Keypair>) -> Evicted {
        let old_next = self.next.replace(kp);
        let old_prev = self.previous.take();
        [old_next, old_prev]
    }

    /// A transport message was received on keypair `local_index`. If that is `next`, it is
    /// confirmed: it becomes current and the old current becomes previous. Returns the newly
    /// current keypair and the evicted old previous.
    pub fn confirm(&mut self, local_index: u32) -> Option<(Arc<Keypair>, Option<Arc<Keypair>>)> {
        if self.next.as_ref()?.local_index() != local_index {
            return None;
        }
        let next = self.next.take()?;
        let old_prev = std::mem::replace(&mut self.previous, self.current.replace(next.clone()));
        Some((next, old_prev))
    }

    /// The keypair with this local index, in any slot.
    pub fn find(&self, local_index: u32) -> Option<&Arc<Keypair>> {
        [&self.previous, &self.current, &self.next]
            .into_iter()
            .flatten()
            .find(|k| k.local_index() == local_index)
    }

    /// Removes and returns the keypairs past REJECT_AFTER_TIME (§6.1): useless, so their keys
    /// are wiped as soon as the fast path lets go of them.
    pub fn take_expired(&mut self, now: Timestamp) -> Vec<Arc<Keypair>> {
        let mut out = Vec::new();
        for slot in [&mut self.previous, &mut self.current, &mut self.next] {
            if slot.as_ref().is_some_and(|k| k.is_expired(now)) {
                out.extend(slot.take());
            }
        }
        out
    }

    /// The earliest REJECT_AFTER_TIME deadline of the held keypairs.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        [&self.previous, &self.current, &self.next]
            .into_iter()
            .flatten()
            .map(|k| k.created() + crate::constants::REJECT_AFTER_TIME)
            .min()
    }

    /// Empties every slot.
    pub fn take_all(&mut self) -> Vec<Arc<Keypair>> {
        [self.previous.take(), self.current.take(), self.next.take()]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// A peer as the slow path holds it.
pub struct Peer {
    pub(crate) id: PeerId,
    pub(crate) public_key: PublicKey,
    pub(crate) handshake: PeerHandshake,
    pub(crate) cookie: CookieState,
    pub(crate) endpoint: Option<SocketAddr>,
    pub(crate) allowed_ips: Vec<IpPrefix>,
    pub(crate) keypairs: KeypairSlots,
    pub(crate) timers: PeerTimers,
    /// When our last initiation went out (initiations are sent at most once per
    /// REKEY_TIMEOUT, §6.4).
    pub(crate) last_initiation_sent: Option<Timestamp>,
    /// Wall-clock time (since the UNIX epoch) of the last completed handshake, for `wg show`.
    pub(crate) last_handshake_wall: Option<Duration>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.id)
            .field("public_key", &self.public_key)
            .field("endpoint", &self.endpoint)
            .field("allowed_ips", &self.allowed_ips)
            .field("keypairs", &self.keypairs)
            .finish_non_exhaustive()
    }
}

impl Peer {
    pub fn id(&self) -> PeerId {
        self.id
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Where packets to this peer go: configured, then updated by roaming.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint
    }

    pub fn allowed_ips(&self) -> &[IpPrefix] {
        &self.allowed_ips
    }

    pub fn keypairs(&self) -> &KeypairSlots {
        &self.keypairs
    }

    pub fn persistent_keepalive(&self) -> Option<Duration> {
        self.timers.persistent_keepalive()
    }

    /// The pre-shared key mixed into this peer's handshakes (all zeroes when none is set).
    pub fn preshared_key(&self) -> &crate::keys::PresharedKey {
        self.handshake.preshared_key()
    }

    /// Wall-clock time since the UNIX epoch of the last completed handshake.
    pub fn last_handshake(&self) -> Option<Duration> {
        self.last_handshake_wall
    }

    /// Initiations sent in the current handshake attempt (0 when none is under way).
    pub fn handshake_attempts(&self) -> u32 {
        self.timers.handshake_attempts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::SessionKeys;

    fn kp(index: u32, initiator: bool) -> Arc<Keypair> {
        let keys = SessionKeys {
            local_index: index,
            remote_index: index + 1000,
            sending_key: [1; 32],
            receiving_key: [2; 32],
            is_initiator: initiator,
        };
        Arc::new(Keypair::new(PeerId::new(1), &keys, Timestamp::ZERO))
    }

    fn idx(e: &Evicted) -> Vec<u32> {
        e.iter().flatten().map(|k| k.local_index()).collect()
    }

    #[test]
    fn initiator_rotation_keeps_one_previous() {
        let mut s = KeypairSlots::default();
        assert!(idx(&s.install_as_initiator(kp(1, true))).is_empty());
        assert!(idx(&s.install_as_initiator(kp(2, true))).is_empty());
        assert_eq!(s.previous().unwrap().local_index(), 1);
        assert_eq!(idx(&s.install_as_initiator(kp(3, true))), vec![1]);
        assert_eq!(s.current().unwrap().local_index(), 3);
        assert_eq!(s.previous().unwrap().local_index(), 2);
    }

    #[test]
    fn responder_keypair_waits_for_confirmation() {
        let mut s = KeypairSlots::default();
        s.install_as_initiator(kp(1, true));
        s.install_as_initiator(kp(2, true));
        // Responder session: goes to next, previous is dropped, current still sends.
        assert_eq!(idx(&s.install_as_responder(kp(3, false))), vec![1]);
        assert_eq!(s.current().unwrap().local_index(), 2);
        assert!(s.confirm(2).is_none(), "current is not next");
        assert!(s.confirm(99).is_none());
        let (now_current, evicted) = s.confirm(3).unwrap();
        assert_eq!(now_current.local_index(), 3);
        assert!(evicted.is_none());
        assert_eq!(s.current().unwrap().local_index(), 3);
        assert_eq!(s.previous().unwrap().local_index(), 2);
        assert!(s.next().is_none());
        assert!(s.find(2).is_some() && s.find(3).is_some() && s.find(1).is_none());
    }

    #[test]
    fn initiator_session_over_pending_next_demotes_it() {
        let mut s = KeypairSlots::default();
        s.install_as_initiator(kp(1, true));
        s.install_as_responder(kp(2, false));
        assert_eq!(idx(&s.install_as_initiator(kp(3, true))), vec![1]);
        assert_eq!(s.previous().unwrap().local_index(), 2);
        assert_eq!(s.current().unwrap().local_index(), 3);
        assert!(s.next().is_none());
    }
}
