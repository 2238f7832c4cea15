//! The slow-path protocol state machine of one WireGuard interface, sans-IO (quinn-style).
//!
//! [`Device`] owns the peers, the session index table, AllowedIPs, the cookie checker and the
//! handshake rate limiter. It is fed handshake datagrams ([`Device::handle_handshake`]), events
//! reported by the fast-path workers ([`Device::note_data_received`],
//! [`Device::note_data_sent`], [`Device::request_handshake`]) and time; it is polled for
//! [`Output`]s ([`Device::poll`]) and tells when to wake next ([`Device::next_timeout`]). It
//! never touches a socket, a thread or a clock.
//!
//! What the fast path needs is published through outputs: [`Output::KeypairInstalled`] /
//! [`Output::KeypairRetired`] maintain the receiver-index table and the per-peer sending
//! keypair, [`Output::AllowedIpsChanged`] says to republish [`Device::allowed_ips`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand_core::{CryptoRng, RngCore};

use crate::allowedips::AllowedIps;
use crate::config::{InterfaceConfig, IpPrefix, PeerConfig};
use crate::constants::{
    COOKIE_REPLY_LEN, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX, TRANSPORT_HEADER_LEN, TRANSPORT_MIN_LEN,
};
use crate::cookie::{CookieChecker, CookieError, CookieState};
use crate::keypair::Keypair;
use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::messages::{classify, Message, MessageError};
use crate::noise::{HandshakeError, PeerHandshake, StaticIdentity};
use crate::peer::{Evicted, KeypairSlots, Peer, PeerId};
use crate::ratelimiter::{RateLimitError, RateLimiter};
use crate::time::Timestamp;
use crate::timers::{PeerTimers, TimerEvent};

/// How often idle rate-limiter entries are collected.
const RATELIMIT_GC_INTERVAL: Duration = Duration::from_secs(1);

/// Which role a published keypair has on the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySlot {
    /// The peer's sending keypair from now on (also accepted on receive).
    Current,
    /// Receive only: a responder's keypair awaiting its first packet (key confirmation).
    Next,
}

/// Something that happened to a peer, for logs, metrics and the edge's packet queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// A session is ready to send on: packets held back for a handshake can go now.
    HandshakeCompleted,
    /// REKEY_ATTEMPT_TIME of initiations went unanswered: drop packets held for this peer.
    HandshakeGaveUp,
    /// Every keypair of the peer was zeroed (3 x REJECT_AFTER_TIME without a session).
    KeysZeroed,
    /// An authenticated packet came from a new address: later packets go there (roaming).
    EndpointChanged(SocketAddr),
    /// The configuration set the endpoint: later packets go there until an authenticated
    /// packet comes from elsewhere.
    EndpointSet(SocketAddr),
    /// The peer was removed from the configuration.
    Removed,
}

/// An action for the edge.
#[derive(Debug)]
pub enum Output {
    /// Send a handshake initiation or response to `endpoint`.
    SendHandshake {
        peer: PeerId,
        endpoint: SocketAddr,
        bytes: Vec<u8>,
    },
    /// Send a cookie reply to the source of a handshake message received under load.
    SendCookieReply {
        dst: SocketAddr,
        bytes: [u8; COOKIE_REPLY_LEN],
    },
    /// Send this keepalive (an empty transport message, already sealed) to `endpoint`.
    SendKeepalive {
        peer: PeerId,
        endpoint: SocketAddr,
        bytes: [u8; TRANSPORT_MIN_LEN],
    },
    /// Publish `keypair` in the receiver-index table under `keypair.local_index()`; with
    /// [`KeySlot::Current`] also make it the peer's sending keypair.
    KeypairInstalled {
        peer: PeerId,
        keypair: Arc<Keypair>,
        slot: KeySlot,
    },
    /// Remove `index` from the receiver-index table, and clear the peer's sending keypair if it
    /// has this index. The keypair is already marked retired.
    KeypairRetired {
        peer: PeerId,
        index: u32,
    },
    /// The AllowedIPs table changed: republish [`Device::allowed_ips`].
    AllowedIpsChanged,
    PeerEvent {
        peer: PeerId,
        event: PeerEvent,
    },
}

/// What a handshake datagram led to (for counters and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// An initiation was accepted and answered; the new keypair awaits confirmation.
    InitiationAnswered(PeerId),
    /// A response completed our handshake; the new keypair is current.
    ResponseAccepted(PeerId),
    /// Under load and without a valid mac2: a cookie reply was queued instead.
    CookieReplySent,
    /// A cookie reply from a peer was stored; the next retry carries mac2.
    CookieStored(PeerId),
}

/// Why a handshake datagram was dropped. Each is a drop counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeDrop {
    /// Wrong size, type or reserved bytes.
    Malformed(MessageError),
    /// A transport message was passed to the handshake path.
    NotHandshake,
    /// mac1/mac2/cookie reply refused.
    Cookie(CookieError),
    /// The per-source rate limiter refused it (under load).
    RateLimited(RateLimitError),
    /// The initiator's static key is not a configured peer.
    UnknownPeer,
    /// The receiver index matches no handshake or session of ours.
    UnknownIndex,
    /// The Noise step failed (decryption, replayed timestamp, flood, low-order key...).
    Handshake(HandshakeError),
}

impl From<MessageError> for HandshakeDrop {
    fn from(e: MessageError) -> Self {
        HandshakeDrop::Malformed(e)
    }
}
impl From<CookieError> for HandshakeDrop {
    fn from(e: CookieError) -> Self {
        HandshakeDrop::Cookie(e)
    }
}
impl From<RateLimitError> for HandshakeDrop {
    fn from(e: RateLimitError) -> Self {
        HandshakeDrop::RateLimited(e)
    }
}
impl From<HandshakeError> for HandshakeDrop {
    fn from(e: HandshakeError) -> Self {
        HandshakeDrop::Handshake(e)
    }
}

impl std::fmt::Display for HandshakeDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeDrop::Malformed(e) => write!(f, "malformed handshake message: {e}"),
            HandshakeDrop::NotHandshake => f.write_str("not a handshake message"),
            HandshakeDrop::Cookie(e) => write!(f, "mac/cookie check failed: {e}"),
            HandshakeDrop::RateLimited(e) => write!(f, "rate limited: {e}"),
            HandshakeDrop::UnknownPeer => f.write_str("initiation from an unknown public key"),
            HandshakeDrop::UnknownIndex => f.write_str("unknown receiver index"),
            HandshakeDrop::Handshake(e) => write!(f, "handshake failed: {e}"),
        }
    }
}

impl std::error::Error for HandshakeDrop {}

/// Why a configuration change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A peer cannot have the interface's own public key.
    PeerIsSelf,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::PeerIsSelf => {
                f.write_str("peer public key equals the interface's own public key")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// What a session index refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IndexKind {
    /// Our initiation in flight.
    Handshake,
    /// A keypair in one of the peer's slots.
    Keypair,
}

/// The protocol state of one interface.
pub struct Device {
    identity: StaticIdentity,
    listen_port: u16,
    mtu: u16,
    cookie_checker: CookieChecker,
    rate_limiter: RateLimiter,
    next_ratelimit_gc: Option<Timestamp>,
    peers: BTreeMap<PeerId, Peer>,
    by_key: HashMap<PublicKey, PeerId>,
    indices: HashMap<u32, (PeerId, IndexKind)>,
    allowed_ips: AllowedIps<PeerId>,
    next_peer_id: u32,
    outputs: VecDeque<Output>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("public_key", self.identity.public_key())
            .field("listen_port", &self.listen_port)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

fn jitter(rng: &mut impl RngCore) -> Duration {
    let max = u64::try_from(REKEY_TIMEOUT_JITTER_MAX.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.next_u64() % (max + 1))
}

impl Device {
    pub fn new(config: &InterfaceConfig) -> Self {
        let identity = StaticIdentity::new(config.private_key.clone());
        let cookie_checker = CookieChecker::new(identity.public_key());
        Device {
            identity,
            listen_port: config.listen_port,
            mtu: config.mtu,
            cookie_checker,
            rate_limiter: RateLimiter::new(),
            next_ratelimit_gc: None,
            peers: BTreeMap::new(),
            by_key: HashMap::new(),
            indices: HashMap::new(),
            allowed_ips: AllowedIps::new(),
            next_peer_id: 1,
            outputs: VecDeque::new(),
        }
    }

    pub fn public_key(&self) -> &PublicKey {
        self.identity.public_key()
    }

    pub fn private_key(&self) -> &PrivateKey {
        self.identity.private_key()
    }

    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    pub fn set_listen_port(&mut self, port: u16) {
        self.listen_port = port;
    }

    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// The mac1/mac2 checker and cookie secret, for the edge to publish a copy to the fast
    /// path after [`Self::rotate_cookie_secret`] or [`Self::set_private_key`].
    pub fn cookie_checker(&self) -> &CookieChecker {
        &self.cookie_checker
    }

    /// Makes a new cookie secret when the current one is COOKIE_SECRET_MAX_AGE old (or none was
    /// made yet); whether it did, i.e. whether the copy the fast path holds is now outdated.
    pub fn rotate_cookie_secret(
        &mut self,
        now: Timestamp,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> bool {
        self.cookie_checker.rotate_if_stale(now, rng)
    }

    /// Replaces the interface key (UAPI `private_key=`): handshakes and sessions made under the
    /// old key end, every peer's static-static secret is recomputed, and a peer whose key now
    /// equals our own public key is removed (as the kernel does).
    pub fn set_private_key(&mut self, key: PrivateKey) {
        self.identity = StaticIdentity::new(key);
        self.cookie_checker = CookieChecker::new(self.identity.public_key());
        let own = *self.identity.public_key();
        if self.by_key.contains_key(&own) {
            self.remove_peer(&own);
        }
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.clear_pending_handshake(id);
            if let Some(p) = self.peers.get_mut(&id) {
                p.handshake.set_identity(&self.identity);
            }
            self.zero_keypairs(id);
        }
    }

    /// Adds a peer or updates one in place (matched by public key): preshared key, allowed IPs
    /// (replaced by the given list), endpoint (if given) and persistent keepalive. Sessions and
    /// other peers are not disturbed.
    pub fn set_peer(&mut self, now: Timestamp, config: PeerConfig) -> Result<PeerId, ConfigError> {
        if config.public_key == *self.identity.public_key() {
            return Err(ConfigError::PeerIsSelf);
        }
        let id = match self.by_key.get(&config.public_key) {
            Some(&id) => id,
            None => {
                let id = PeerId::new(self.next_peer_id);
                self.next_peer_id += 1;
                let psk = config
                    .preshared_key
                    .clone()
                    .unwrap_or_else(PresharedKey::none);
                let peer = Peer {
                    id,
                    public_key: config.public_key,
                    handshake: PeerHandshake::new(&self.identity, config.public_key, psk),
                    cookie: CookieState::new(&config.public_key),
                    endpoint: None,
                    allowed_ips: Vec::new(),
                    keypairs: KeypairSlots::default(),
                    timers: PeerTimers::new(),
                    last_initiation_sent: None,
                    last_handshake_wall: None,
                };
                self.peers.insert(id, peer);
                self.by_key.insert(config.public_key, id);
                id
            }
        };
        let peer = self.peers.get_mut(&id).expect("peer just looked up");
        if let Some(psk) = config.preshared_key {
            peer.handshake.set_preshared_key(psk);
        }
        if let Some(endpoint) = config.endpoint {
            peer.endpoint = Some(endpoint);
            self.outputs.push_back(Output::PeerEvent {
                peer: id,
                event: PeerEvent::EndpointSet(endpoint),
            });
        }
        let keepalive = config
            .persistent_keepalive
            .filter(|&s| s != 0)
            .map(|s| Duration::from_secs(u64::from(s)));
        if keepalive != peer.timers.persistent_keepalive() {
            // A newly set interval sends one keepalive right away (as `wg set` does), which
            // also starts a handshake if there is no session yet.
            peer.timers.set_persistent_keepalive(keepalive, Some(now));
        }
        if peer.allowed_ips != config.allowed_ips {
            let old = std::mem::take(&mut peer.allowed_ips);
            self.remove_prefixes_of(id, &old);
            for prefix in &config.allowed_ips {
                if let Some(previous_owner) = self.allowed_ips.insert(*prefix, id) {
                    if previous_owner != id {
                        // The prefix moved here from another peer (wg semantics).
                        if let Some(other) = self.peers.get_mut(&previous_owner) {
                            other.allowed_ips.retain(|p| p != prefix);
                        }
                    }
                }
            }
            let peer = self.peers.get_mut(&id).expect("peer exists");
            peer.allowed_ips = config.allowed_ips;
            self.outputs.push_back(Output::AllowedIpsChanged);
        }
        Ok(id)
    }

    /// Removes a peer: its allowed IPs, sessions and handshake state go with it.
    pub fn remove_peer(&mut self, public_key: &PublicKey) -> Option<PeerId> {
        let id = *self.by_key.get(public_key)?;
        self.clear_pending_handshake(id);
        self.zero_keypairs(id);
        self.by_key.remove(public_key);
        if let Some(peer) = self.peers.remove(&id) {
            self.remove_prefixes_of(id, &peer.allowed_ips);
        }
        self.indices.retain(|_, (p, _)| *p != id);
        self.outputs.push_back(Output::AllowedIpsChanged);
        self.outputs.push_back(Output::PeerEvent {
            peer: id,
            event: PeerEvent::Removed,
        });
        Some(id)
    }

    /// Takes `prefixes` (the peer's own list, which always names exactly what it owns in the
    /// table) away from peer `id`. Removing by the peer's list instead of scanning the whole
    /// table keeps loading or replacing many peers linear, not quadratic.
    fn remove_prefixes_of(&mut self, id: PeerId, prefixes: &[IpPrefix]) {
        for prefix in prefixes {
            if let Some(owner) = self.allowed_ips.remove(*prefix) {
                if owner != id {
                    // Not ours (cannot happen while the lists are kept in sync): put it back.
                    self.allowed_ips.insert(*prefix, owner);
                }
            }
        }
    }

    pub fn peer_id(&self, public_key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(public_key).copied()
    }

    pub fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(&id)
    }

    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// The device-wide AllowedIPs table (inner address -> peer).
    pub fn allowed_ips(&self) -> &AllowedIps<PeerId> {
        &self.allowed_ips
    }

    /// The peer and keypair a receiver index belongs to (the slow path's copy of the table
    /// the fast path keeps).
    pub fn keypair_by_index(&self, index: u32) -> Option<&Arc<Keypair>> {
        let (peer, kind) = self.indices.get(&index)?;
        if *kind != IndexKind::Keypair {
            return None;
        }
        self.peers.get(peer)?.keypairs.find(index)
    }

    /// Handles one handshake datagram (types 1, 2, 3) from `src`. `wall` is the time since the
    /// UNIX epoch; `under_load` is the edge's verdict on its handshake queue (§5.3).
    pub fn handle_handshake(
        &mut self,
        now: Timestamp,
        wall: Duration,
        src: SocketAddr,
        bytes: &[u8],
        under_load: bool,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Handled, HandshakeDrop> {
        let msg = classify(bytes)?;
        if let Message::CookieReply(reply) = &msg {
            // §5.4.7: found by our index; the reply authenticates itself against our mac1.
            let (peer_id, _) = *self
                .indices
                .get(&reply.receiver_index())
                .ok_or(HandshakeDrop::UnknownIndex)?;
            let peer = self
                .peers
                .get_mut(&peer_id)
                .ok_or(HandshakeDrop::UnknownIndex)?;
            peer.cookie.consume_reply(reply, now)?;
            return Ok(Handled::CookieStored(peer_id));
        }
        if matches!(msg, Message::Transport(_)) {
            return Err(HandshakeDrop::NotHandshake);
        }
        // §5.3: mac1 always; under load a valid mac2 is required, else a cookie reply.
        self.cookie_checker.check_mac1(bytes)?;
        if under_load {
            if self.cookie_checker.check_mac2(bytes, src, now).is_err() {
                let reply = self.cookie_checker.create_reply(bytes, src, now, rng)?;
                self.outputs.push_back(Output::SendCookieReply {
                    dst: src,
                    bytes: reply,
                });
                return Ok(Handled::CookieReplySent);
            }
            // mac2 proves the source address, so limiting per source is meaningful.
            self.rate_limiter.allow(src.ip(), now)?;
            if self.next_ratelimit_gc.is_none() {
                self.next_ratelimit_gc = Some(now + RATELIMIT_GC_INTERVAL);
            }
        }
        match msg {
            Message::Initiation(init) => self.handle_initiation(now, wall, src, &init, rng),
            Message::Response(resp) => self.handle_response(now, wall, src, &resp, rng),
            _ => Err(HandshakeDrop::NotHandshake),
        }
    }

    fn handle_initiation(
        &mut self,
        now: Timestamp,
        wall: Duration,
        src: SocketAddr,
        init: &crate::messages::Initiation<&[u8]>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Handled, HandshakeDrop> {
        let pending = self.identity.consume_initiation(init)?;
        let id = *self
            .by_key
            .get(pending.remote_static())
            .ok_or(HandshakeDrop::UnknownPeer)?;
        let old_pending = self.peers[&id].handshake.pending_local_index();
        let peer = self.peers.get_mut(&id).expect("peer in by_key");
        // Decrypts the timestamp and applies the replay and flood rules; on error nothing
        // about the peer changed.
        peer.handshake.accept_initiation(pending, now)?;
        if let Some(i) = old_pending {
            // Our own initiation in flight was replaced by the responder state.
            self.indices.remove(&i);
        }
        self.roam(id, src);
        let local_index = self.allocate_index(id, IndexKind::Keypair, rng);
        let peer = self.peers.get_mut(&id).expect("peer exists");
        let (mut response, keys) = match peer.handshake.create_response(local_index, rng) {
            Ok(r) => r,
            Err(e) => {
                self.indices.remove(&local_index);
                return Err(e.into());
            }
        };
        peer.cookie.add_macs(&mut response, now)?;
        let keypair = Arc::new(Keypair::new(id, &keys, now));
        let evicted = peer.keypairs.install_as_responder(keypair.clone());
        peer.timers.any_authenticated_packet_received();
        peer.timers.any_authenticated_packet_traversal(now);
        peer.timers.session_derived(now);
        peer.timers.any_authenticated_packet_sent();
        peer.last_handshake_wall = Some(wall);
        self.retire_evicted(id, evicted);
        self.outputs.push_back(Output::KeypairInstalled {
            peer: id,
            keypair,
            slot: KeySlot::Next,
        });
        self.outputs.push_back(Output::SendHandshake {
            peer: id,
            endpoint: src,
            bytes: response.to_vec(),
        });
        Ok(Handled::InitiationAnswered(id))
    }

    fn handle_response(
        &mut self,
        now: Timestamp,
        wall: Duration,
        src: SocketAddr,
        resp: &crate::messages::Response<&[u8]>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Handled, HandshakeDrop> {
        let index = resp.receiver_index();
        let &(id, kind) = self
            .indices
            .get(&index)
            .ok_or(HandshakeDrop::UnknownIndex)?;
        if kind != IndexKind::Handshake {
            return Err(HandshakeDrop::UnknownIndex);
        }
        let peer = self.peers.get_mut(&id).ok_or(HandshakeDrop::UnknownIndex)?;
        let keys = peer.handshake.consume_response(&self.identity, resp)?;
        self.indices.insert(index, (id, IndexKind::Keypair));
        self.roam(id, src);
        let peer = self.peers.get_mut(&id).expect("peer exists");
        let keypair = Arc::new(Keypair::new(id, &keys, now));
        let evicted = peer.keypairs.install_as_initiator(keypair.clone());
        peer.timers.any_authenticated_packet_received();
        peer.timers.any_authenticated_packet_traversal(now);
        peer.timers.session_derived(now);
        peer.timers.handshake_complete();
        peer.last_handshake_wall = Some(wall);
        self.retire_evicted(id, evicted);
        self.outputs.push_back(Output::KeypairInstalled {
            peer: id,
            keypair,
            slot: KeySlot::Current,
        });
        self.outputs.push_back(Output::PeerEvent {
            peer: id,
            event: PeerEvent::HandshakeCompleted,
        });
        // Confirm the session to the responder at once (§5.4.5); queued data would do too.
        self.send_keepalive(now, wall, id, rng);
        Ok(Handled::ResponseAccepted(id))
    }

    /// A worker accepted a transport message for `peer` on keypair `index` from `src`
    /// (`keepalive`: empty plaintext). Workers may coalesce these, e.g. one per peer per batch,
    /// but must report packets on a keypair not yet noted
    /// ([`crate::keypair::Opened::unreported`]) promptly: the first confirms a responder's
    /// session. The keypair is marked noted here, which ends those reports.
    pub fn note_data_received(
        &mut self,
        now: Timestamp,
        peer: PeerId,
        index: u32,
        src: SocketAddr,
        keepalive: bool,
    ) {
        if self.indices.get(&index) != Some(&(peer, IndexKind::Keypair)) {
            return; // a stale report about a keypair already gone
        }
        self.roam(peer, src);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if let Some(k) = p.keypairs.find(index) {
            k.note_receipt();
        }
        if let Some((current, evicted)) = p.keypairs.confirm(index) {
            p.timers.handshake_complete();
            self.retire_evicted(peer, [evicted, None]);
            self.outputs.push_back(Output::KeypairInstalled {
                peer,
                keypair: current,
                slot: KeySlot::Current,
            });
            self.outputs.push_back(Output::PeerEvent {
                peer,
                event: PeerEvent::HandshakeCompleted,
            });
        }
        let p = self.peers.get_mut(&peer).expect("peer exists");
        p.timers.any_authenticated_packet_received();
        p.timers.any_authenticated_packet_traversal(now);
        if !keepalive {
            p.timers.data_received(now);
        }
    }

    /// A worker sent a transport message to `peer` (`keepalive`: empty plaintext).
    pub fn note_data_sent(
        &mut self,
        now: Timestamp,
        peer: PeerId,
        keepalive: bool,
        rng: &mut (impl RngCore + CryptoRng),
    ) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.timers.any_authenticated_packet_sent();
            p.timers.any_authenticated_packet_traversal(now);
            if !keepalive {
                p.timers.data_sent(now, jitter(rng));
            }
        }
    }

    /// A worker wants a fresh session for `peer`: it has data but no usable sending keypair,
    /// or a seal/open result carried the `rekey` flag. The device re-checks the §6.2 rules on
    /// the peer's *current* keypair (so a flag from an old keypair does nothing) and sends an
    /// initiation at most once per REKEY_TIMEOUT.
    pub fn request_handshake(
        &mut self,
        now: Timestamp,
        wall: Duration,
        peer: PeerId,
        rng: &mut (impl RngCore + CryptoRng),
    ) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let needed = match p.keypairs.current() {
            None => true,
            Some(k) => {
                k.is_expired(now)
                    || k.messages_sent() >= REKEY_AFTER_MESSAGES
                    || (k.is_initiator() && now.since(k.created()) >= REKEY_AFTER_TIME)
            }
        };
        if needed {
            self.send_initiation(now, wall, peer, false, rng);
        }
    }

    /// The earliest time [`Device::poll`] has timer work to do.
    pub fn next_timeout(&self) -> Option<Timestamp> {
        self.peers
            .values()
            .flat_map(|p| [p.timers.next_deadline(), p.keypairs.next_expiry()])
            .chain([self.next_ratelimit_gc])
            .flatten()
            .min()
    }

    /// Runs the timers due at `now` and returns the next output, if any. Call until `None`,
    /// then sleep until [`Device::next_timeout`] or the next input.
    pub fn poll(
        &mut self,
        now: Timestamp,
        wall: Duration,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Option<Output> {
        if let Some(out) = self.outputs.pop_front() {
            return Some(out);
        }
        self.run_timers(now, wall, rng);
        self.outputs.pop_front()
    }

    fn run_timers(&mut self, now: Timestamp, wall: Duration, rng: &mut (impl RngCore + CryptoRng)) {
        if self.next_ratelimit_gc.is_some_and(|t| t <= now) {
            self.rate_limiter.gc(now);
            self.next_ratelimit_gc =
                (!self.rate_limiter.is_empty()).then(|| now + RATELIMIT_GC_INTERVAL);
        }
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            // Keypairs past REJECT_AFTER_TIME are useless: retire them so their keys are
            // wiped as soon as the fast path drops its references.
            let expired = p.keypairs.take_expired(now);
            for k in expired {
                self.retire(id, &k);
            }
            while let Some(event) = self
                .peers
                .get_mut(&id)
                .and_then(|p| p.timers.poll_expired(now))
            {
                match event {
                    TimerEvent::RetransmitHandshake => {
                        self.send_initiation(now, wall, id, true, rng)
                    }
                    TimerEvent::NewHandshake => self.send_initiation(now, wall, id, false, rng),
                    TimerEvent::GiveUpHandshake => {
                        self.clear_pending_handshake(id);
                        self.outputs.push_back(Output::PeerEvent {
                            peer: id,
                            event: PeerEvent::HandshakeGaveUp,
                        });
                    }
                    TimerEvent::SendKeepalive => {
                        self.send_keepalive(now, wall, id, rng);
                        if let Some(p) = self.peers.get_mut(&id) {
                            p.timers.passive_keepalive_sent(now);
                        }
                    }
                    TimerEvent::PersistentKeepalive => self.send_keepalive(now, wall, id, rng),
                    TimerEvent::ZeroKeyMaterial => {
                        self.clear_pending_handshake(id);
                        self.zero_keypairs(id);
                        self.outputs.push_back(Output::PeerEvent {
                            peer: id,
                            event: PeerEvent::KeysZeroed,
                        });
                    }
                }
            }
        }
    }

    /// Sends a handshake initiation (§5.4.2), at most one per REKEY_TIMEOUT (§6.4). `retry`:
    /// a retransmission within the current attempt rather than a new attempt.
    fn send_initiation(
        &mut self,
        now: Timestamp,
        wall: Duration,
        id: PeerId,
        retry: bool,
        rng: &mut (impl RngCore + CryptoRng),
    ) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        if !retry {
            p.timers.handshake_attempt_started();
        }
        if p.last_initiation_sent
            .is_some_and(|t| now.since(t) < REKEY_TIMEOUT)
        {
            return;
        }
        let Some(endpoint) = p.endpoint else {
            return; // nowhere to send: wait for the peer to contact us
        };
        self.clear_pending_handshake(id);
        let index = self.allocate_index(id, IndexKind::Handshake, rng);
        let p = self.peers.get_mut(&id).expect("peer exists");
        let mut msg = match p
            .handshake
            .create_initiation(&self.identity, index, wall, rng)
        {
            Ok(m) => m,
            Err(_) => {
                // Only a low-order peer key gets here; such a peer can never handshake.
                self.indices.remove(&index);
                return;
            }
        };
        if p.cookie.add_macs(&mut msg, now).is_err() {
            self.indices.remove(&index);
            p.handshake.clear();
            return;
        }
        p.last_initiation_sent = Some(now);
        p.timers.any_authenticated_packet_traversal(now);
        p.timers.any_authenticated_packet_sent();
        p.timers.handshake_initiated(now, jitter(rng));
        self.outputs.push_back(Output::SendHandshake {
            peer: id,
            endpoint,
            bytes: msg.to_vec(),
        });
    }

    /// Sends a keepalive on the current keypair, or starts a handshake if there is none usable
    /// (the kernel's "send staged packets" with an empty queue).
    fn send_keepalive(
        &mut self,
        now: Timestamp,
        wall: Duration,
        id: PeerId,
        rng: &mut (impl RngCore + CryptoRng),
    ) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let keypair = p.keypairs.current().filter(|k| !k.is_expired(now)).cloned();
        let (Some(keypair), Some(endpoint)) = (keypair, p.endpoint) else {
            self.send_initiation(now, wall, id, false, rng);
            return;
        };
        let mut bytes = [0u8; TRANSPORT_MIN_LEN];
        let sealed = match keypair.seal_in_place(now, &mut bytes, 0, usize::from(self.mtu)) {
            Ok(s) => s,
            Err(_) => {
                self.send_initiation(now, wall, id, false, rng);
                return;
            }
        };
        debug_assert_eq!(
            sealed.len,
            TRANSPORT_HEADER_LEN + crate::constants::AEAD_TAG_LEN
        );
        p.timers.any_authenticated_packet_sent();
        p.timers.any_authenticated_packet_traversal(now);
        self.outputs.push_back(Output::SendKeepalive {
            peer: id,
            endpoint,
            bytes,
        });
        if sealed.rekey {
            self.request_handshake(now, wall, id, rng);
        }
    }

    /// Roaming (whitepaper §2): called only after a packet from `src` authenticated.
    fn roam(&mut self, id: PeerId, src: SocketAddr) {
        if let Some(p) = self.peers.get_mut(&id) {
            if p.endpoint != Some(src) {
                p.endpoint = Some(src);
                self.outputs.push_back(Output::PeerEvent {
                    peer: id,
                    event: PeerEvent::EndpointChanged(src),
                });
            }
        }
    }

    /// A fresh random index not in use (session indices are random, whitepaper §5.4.2).
    fn allocate_index(&mut self, id: PeerId, kind: IndexKind, rng: &mut impl RngCore) -> u32 {
        loop {
            let i = rng.next_u32();
            if let std::collections::hash_map::Entry::Vacant(e) = self.indices.entry(i) {
                e.insert((id, kind));
                return i;
            }
        }
    }

    fn clear_pending_handshake(&mut self, id: PeerId) {
        if let Some(p) = self.peers.get_mut(&id) {
            if let Some(i) = p.handshake.pending_local_index() {
                self.indices.remove(&i);
            }
            p.handshake.clear();
        }
    }

    fn zero_keypairs(&mut self, id: PeerId) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        for k in p.keypairs.take_all() {
            self.retire(id, &k);
        }
    }

    fn retire_evicted(&mut self, id: PeerId, evicted: Evicted) {
        for k in evicted.into_iter().flatten() {
            self.retire(id, &k);
        }
    }

    fn retire(&mut self, id: PeerId, k: &Arc<Keypair>) {
        k.retire();
        self.indices.remove(&k.local_index());
        self.outputs.push_back(Output::KeypairRetired {
            peer: id,
            index: k.local_index(),
        });
    }
}
