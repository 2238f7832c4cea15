//! The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake with WireGuard's construction,
//! identifier and message layouts (whitepaper §5.4.2–§5.4.5), in both roles.
//!
//! This module owns the device's static identity ([`StaticIdentity`]) and each peer's
//! handshake state ([`PeerHandshake`]); it produces [`SessionKeys`]. It never chooses session
//! indices (the device owns the index table and passes them in), never fills mac1/mac2 (that is
//! [`crate::cookie`]) and never reads a clock: the wall clock for the TAI64N timestamp and the
//! monotonic [`Timestamp`] for the flood rule come from the caller.
//!
//! Responder flow, done by the device for a received initiation whose mac1 was checked:
//! 1. [`StaticIdentity::consume_initiation`] decrypts the initiator's static key and returns a
//!    [`PendingInitiation`] naming it;
//! 2. the device looks that key up in its peer table (unknown key: drop);
//! 3. [`PeerHandshake::accept_initiation`] decrypts the timestamp with that peer's precomputed
//!    static-static secret and enforces the replay rule (TAI64N strictly increasing) and the
//!    flood rule (at most 50 initiations/s), then stores the responder state;
//! 4. [`PeerHandshake::create_response`] builds the response and returns the session keys.

use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::constants::{
    AEAD_TAG_LEN, CONSTRUCTION, IDENTIFIER, INITIATION_LEN, KEY_LEN, MAX_INITIATIONS_PER_SECOND,
    RESPONSE_LEN, TAI64N_LEN,
};
use crate::crypto::{self, CryptoError};
use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::messages::{Initiation, Response};
use crate::tai64n::Tai64n;
use crate::time::Timestamp;

/// Why a handshake step failed. Each is a drop reason; none is fatal to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// A Diffie-Hellman result was all zero: a low-order static or ephemeral key.
    LowOrderPoint,
    /// An AEAD field did not decrypt: wrong keys, wrong pre-shared key or tampered bytes.
    DecryptFailed,
    /// The initiation's TAI64N is not strictly later than the last accepted one (a replay).
    TimestampNotIncreasing,
    /// The peer sent initiations faster than MAX_INITIATIONS_PER_SECOND.
    InitiationFlood,
    /// The pending initiation was decrypted for a different peer than this one.
    WrongPeer,
    /// No handshake in the state this step needs (e.g. a response without a sent initiation,
    /// or create_response without an accepted initiation).
    NoPendingHandshake,
    /// The response's receiver index is not the index of our pending initiation.
    IndexMismatch,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HandshakeError::LowOrderPoint => "low-order public key (all-zero DH result)",
            HandshakeError::DecryptFailed => "handshake field failed to decrypt",
            HandshakeError::TimestampNotIncreasing => "initiation timestamp is not newer (replay)",
            HandshakeError::InitiationFlood => "too many initiations from this peer",
            HandshakeError::WrongPeer => "initiation belongs to another peer",
            HandshakeError::NoPendingHandshake => "no handshake in progress for this message",
            HandshakeError::IndexMismatch => "response does not answer our initiation index",
        })
    }
}

impl std::error::Error for HandshakeError {}

impl From<CryptoError> for HandshakeError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::LowOrderPoint => HandshakeError::LowOrderPoint,
            CryptoError::AeadAuthFailed | CryptoError::BufferLength => {
                HandshakeError::DecryptFailed
            }
        }
    }
}

/// The transport keys a completed handshake yields (whitepaper §5.4.5), with the session
/// indices. Zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    /// Our index: the receiver index peers put on transport messages to us.
    pub local_index: u32,
    /// The peer's index: the receiver index we put on transport messages to it.
    pub remote_index: u32,
    pub sending_key: [u8; KEY_LEN],
    pub receiving_key: [u8; KEY_LEN],
    /// True on the side that sent the initiation. The responder must not send with these keys
    /// before it has received a transport message under them (key confirmation, §5.4.5/§6).
    pub is_initiator: bool,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("is_initiator", &self.is_initiator)
            .finish_non_exhaustive()
    }
}

/// Ci = HASH(CONSTRUCTION) and Hi = HASH(Ci || IDENTIFIER), the same for every handshake.
fn initial_chain_and_hash() -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
    let ck = crypto::hash(&[CONSTRUCTION]);
    let h = crypto::hash(&[&ck, IDENTIFIER]);
    (ck, h)
}

/// The device's static key pair, with what every handshake derives from it.
#[derive(Clone)]
pub struct StaticIdentity {
    private: PrivateKey,
    public: PublicKey,
    /// HASH(HASH(CONSTRUCTION) || IDENTIFIER || our public key): the responder's initial hash.
    responder_hash: [u8; KEY_LEN],
}

impl Drop for StaticIdentity {
    fn drop(&mut self) {
        self.responder_hash.zeroize();
    }
}

impl std::fmt::Debug for StaticIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticIdentity")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl StaticIdentity {
    pub fn new(private: PrivateKey) -> Self {
        let public = private.public_key();
        let (_, h) = initial_chain_and_hash();
        let responder_hash = crypto::hash(&[&h, public.as_bytes()]);
        StaticIdentity {
            private,
            public,
            responder_hash,
        }
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn private_key(&self) -> &PrivateKey {
        &self.private
    }

    /// Responder, step 1 (§5.4.2 in reverse): checks the initiator's ephemeral and decrypts
    /// its static public key. The caller looks that key up and hands the result to that peer's
    /// [`PeerHandshake::accept_initiation`]. mac1 must have been checked before (cookie.rs).
    pub fn consume_initiation(
        &self,
        msg: &Initiation<&[u8]>,
    ) -> Result<PendingInitiation, HandshakeError> {
        let (ck, _) = initial_chain_and_hash();
        let mut p = PendingInitiation {
            remote_static: PublicKey::from_bytes([0; KEY_LEN]),
            remote_ephemeral: *msg.ephemeral(),
            sender_index: msg.sender_index(),
            chaining_key: ck,
            hash: self.responder_hash,
            encrypted_timestamp: *msg.encrypted_timestamp(),
        };
        // Ci = KDF1(Ci, Ei_pub); Hi = HASH(Hi || Ei_pub)
        p.chaining_key = crypto::kdf1(&p.chaining_key, &p.remote_ephemeral);
        p.hash = crypto::hash(&[&p.hash, &p.remote_ephemeral]);
        // (Ci, k) = KDF2(Ci, DH(Sr_priv, Ei_pub)); static = AEAD-open(k, 0, msg.static, Hi)
        let mut es = crypto::dh(self.private.as_bytes(), &p.remote_ephemeral)?;
        let (ck, mut key) = crypto::kdf2(&p.chaining_key, &es);
        es.zeroize();
        p.chaining_key = ck;
        let mut static_pub = [0u8; KEY_LEN];
        let opened = crypto::aead_open(&key, 0, msg.encrypted_static(), &p.hash, &mut static_pub);
        key.zeroize();
        opened?;
        p.hash = crypto::hash(&[&p.hash, msg.encrypted_static()]);
        p.remote_static = PublicKey::from_bytes(static_pub);
        Ok(p)
    }
}

/// A half-consumed initiation: the initiator's static key is known, the timestamp not yet
/// checked. Produced by [`StaticIdentity::consume_initiation`]; secrets zeroed on drop.
pub struct PendingInitiation {
    remote_static: PublicKey,
    remote_ephemeral: [u8; KEY_LEN],
    sender_index: u32,
    chaining_key: [u8; KEY_LEN],
    hash: [u8; KEY_LEN],
    encrypted_timestamp: [u8; TAI64N_LEN + AEAD_TAG_LEN],
}

impl Drop for PendingInitiation {
    fn drop(&mut self) {
        self.chaining_key.zeroize();
        self.hash.zeroize();
        self.remote_ephemeral.zeroize();
    }
}

impl std::fmt::Debug for PendingInitiation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingInitiation")
            .field("remote_static", &self.remote_static)
            .field("sender_index", &self.sender_index)
            .finish_non_exhaustive()
    }
}

impl PendingInitiation {
    /// The static public key the initiator claims (authenticated by the AEAD): which peer.
    pub fn remote_static(&self) -> &PublicKey {
        &self.remote_static
    }

    /// The initiator's sender index (becomes our remote index).
    pub fn sender_index(&self) -> u32 {
        self.sender_index
    }
}

/// Where one peer's handshake stands.
#[derive(Default)]
enum State {
    #[default]
    Idle,
    /// We sent an initiation and wait for the response.
    InitiationSent {
        local_index: u32,
        ephemeral_private: PrivateKey,
        chaining_key: [u8; KEY_LEN],
        hash: [u8; KEY_LEN],
    },
    /// We accepted an initiation and owe a response.
    InitiationAccepted {
        remote_index: u32,
        remote_ephemeral: [u8; KEY_LEN],
        chaining_key: [u8; KEY_LEN],
        hash: [u8; KEY_LEN],
    },
}

impl Drop for State {
    fn drop(&mut self) {
        match self {
            State::Idle => {}
            State::InitiationSent {
                chaining_key, hash, ..
            } => {
                chaining_key.zeroize();
                hash.zeroize();
            }
            State::InitiationAccepted {
                remote_ephemeral,
                chaining_key,
                hash,
                ..
            } => {
                remote_ephemeral.zeroize();
                chaining_key.zeroize();
                hash.zeroize();
            }
        }
    }
}

/// One peer's handshake: its static key, pre-shared key, the precomputed static-static DH,
/// the in-progress handshake and the replay/flood memory of the responder side.
pub struct PeerHandshake {
    remote_static: PublicKey,
    preshared: PresharedKey,
    /// DH(our static, their static); `None` when their key has low order (every handshake
    /// with this peer then fails with [`HandshakeError::LowOrderPoint`]).
    static_static: Option<[u8; KEY_LEN]>,
    /// HASH(HASH(CONSTRUCTION) || IDENTIFIER || their public key): the initiator's initial hash.
    initiator_hash: [u8; KEY_LEN],
    state: State,
    latest_timestamp: Tai64n,
    last_initiation_consumed: Option<Timestamp>,
}

impl Drop for PeerHandshake {
    fn drop(&mut self) {
        if let Some(ss) = self.static_static.as_mut() {
            ss.zeroize();
        }
    }
}

impl std::fmt::Debug for PeerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::InitiationSent { .. } => "initiation sent",
            State::InitiationAccepted { .. } => "initiation accepted",
        };
        f.debug_struct("PeerHandshake")
            .field("remote_static", &self.remote_static)
            .field("state", &state)
            .field("pending_local_index", &self.pending_local_index())
            .field("latest_timestamp", &self.latest_timestamp)
            .finish_non_exhaustive()
    }
}

impl PeerHandshake {
    /// State for the peer `remote_static`, precomputing DH(our static, its static).
    pub fn new(
        identity: &StaticIdentity,
        remote_static: PublicKey,
        preshared: PresharedKey,
    ) -> Self {
        let (_, h) = initial_chain_and_hash();
        PeerHandshake {
            remote_static,
            preshared,
            static_static: crypto::dh(identity.private.as_bytes(), remote_static.as_bytes()).ok(),
            initiator_hash: crypto::hash(&[&h, remote_static.as_bytes()]),
            state: State::Idle,
            latest_timestamp: Tai64n::ZERO,
            last_initiation_consumed: None,
        }
    }

    pub fn remote_static(&self) -> &PublicKey {
        &self.remote_static
    }

    pub fn preshared_key(&self) -> &PresharedKey {
        &self.preshared
    }

    pub fn set_preshared_key(&mut self, psk: PresharedKey) {
        self.preshared = psk;
    }

    /// Recomputes the static-static secret after the device's private key changed, and drops
    /// any handshake in progress (it was bound to the old key).
    pub fn set_identity(&mut self, identity: &StaticIdentity) {
        if let Some(ss) = self.static_static.as_mut() {
            ss.zeroize();
        }
        self.static_static =
            crypto::dh(identity.private.as_bytes(), self.remote_static.as_bytes()).ok();
        self.clear();
    }

    /// Our index of the handshake in progress (sent initiation), if any; the device keeps it
    /// in its index table until the handshake completes or is cleared.
    pub fn pending_local_index(&self) -> Option<u32> {
        match self.state {
            State::InitiationSent { local_index, .. } => Some(local_index),
            _ => None,
        }
    }

    /// True when an initiation was accepted and a response is owed.
    pub fn has_accepted_initiation(&self) -> bool {
        matches!(self.state, State::InitiationAccepted { .. })
    }

    /// The newest TAI64N accepted from this peer ([`Tai64n::ZERO`] if none yet).
    pub fn latest_timestamp(&self) -> Tai64n {
        self.latest_timestamp
    }

    /// The replay rule (§5.1): `timestamp` must be strictly later than the last accepted one.
    pub fn check_timestamp(&self, timestamp: &Tai64n) -> Result<(), HandshakeError> {
        if timestamp.is_after(&self.latest_timestamp) {
            Ok(())
        } else {
            Err(HandshakeError::TimestampNotIncreasing)
        }
    }

    /// The flood rule: at most MAX_INITIATIONS_PER_SECOND initiations are consumed per second,
    /// i.e. one per 1 s / 50 on the monotonic clock, as the reference implementations do.
    pub fn check_flood(&self, now: Timestamp) -> Result<(), HandshakeError> {
        let spacing = std::time::Duration::from_secs(1) / MAX_INITIATIONS_PER_SECOND;
        match self.last_initiation_consumed {
            Some(last) if now.since(last) < spacing => Err(HandshakeError::InitiationFlood),
            _ => Ok(()),
        }
    }

    /// Wipes the handshake in progress (after use, on give-up, or when the peer is removed).
    /// The replay and flood memory is kept.
    pub fn clear(&mut self) {
        self.state = State::Idle;
    }

    fn static_static(&self) -> Result<&[u8; KEY_LEN], HandshakeError> {
        self.static_static
            .as_ref()
            .ok_or(HandshakeError::LowOrderPoint)
    }

    /// Initiator (§5.4.2): builds an initiation with sender index `local_index` and the TAI64N
    /// of `wall_clock` (time since the UNIX epoch). mac1/mac2 are left zero: the caller fills
    /// them with [`crate::cookie::CookieState::add_macs`] before sending. Replaces any
    /// handshake in progress.
    pub fn create_initiation(
        &mut self,
        identity: &StaticIdentity,
        local_index: u32,
        wall_clock: std::time::Duration,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<[u8; INITIATION_LEN], HandshakeError> {
        self.clear();
        let ss = *self.static_static()?;
        let (mut ck, _) = initial_chain_and_hash();
        let mut h = self.initiator_hash;
        let mut out = [0u8; INITIATION_LEN];
        let mut msg = Initiation::new_unchecked(&mut out[..]);
        msg.fill_header();
        msg.set_sender_index(local_index);

        let ephemeral = PrivateKey::generate(rng);
        let e_pub = ephemeral.public_key();
        msg.ephemeral_mut().copy_from_slice(e_pub.as_bytes());
        ck = crypto::kdf1(&ck, e_pub.as_bytes());
        h = crypto::hash(&[&h, e_pub.as_bytes()]);

        let mut es = crypto::dh(ephemeral.as_bytes(), self.remote_static.as_bytes())?;
        let (ck2, mut key) = crypto::kdf2(&ck, &es);
        es.zeroize();
        ck = ck2;
        crypto::aead_seal(
            &key,
            0,
            identity.public.as_bytes(),
            &h,
            msg.encrypted_static_mut(),
        )?;
        h = crypto::hash(&[&h, msg.encrypted_static()]);

        let (ck3, key2) = crypto::kdf2(&ck, &ss);
        ck = ck3;
        key = key2;
        let ts = Tai64n::for_initiation(wall_clock);
        crypto::aead_seal(&key, 0, ts.as_bytes(), &h, msg.encrypted_timestamp_mut())?;
        key.zeroize();
        h = crypto::hash(&[&h, msg.encrypted_timestamp()]);

        self.state = State::InitiationSent {
            local_index,
            ephemeral_private: ephemeral,
            chaining_key: ck,
            hash: h,
        };
        ck.zeroize();
        h.zeroize();
        Ok(out)
    }

    /// Responder, step 3: finishes an initiation that [`StaticIdentity::consume_initiation`]
    /// attributed to this peer. Decrypts the timestamp, enforces the replay and flood rules,
    /// records them, and stores the state [`Self::create_response`] needs. Returns the
    /// accepted timestamp. On error this peer's state is unchanged.
    ///
    /// On success an initiation we had sent to this peer ourselves is dropped (both sides
    /// initiated at once; the peer's wins here, ours may win there): read
    /// [`Self::pending_local_index`] before calling to retire that index from the index table.
    pub fn accept_initiation(
        &mut self,
        pending: PendingInitiation,
        now: Timestamp,
    ) -> Result<Tai64n, HandshakeError> {
        if pending.remote_static != self.remote_static {
            return Err(HandshakeError::WrongPeer);
        }
        let ss = *self.static_static()?;
        // (Ci, k) = KDF2(Ci, DH(Sr_priv, Si_pub)); timestamp = AEAD-open(k, 0, msg.ts, Hi)
        let (ck, mut key) = crypto::kdf2(&pending.chaining_key, &ss);
        let mut ts = [0u8; TAI64N_LEN];
        let opened = crypto::aead_open(
            &key,
            0,
            &pending.encrypted_timestamp,
            &pending.hash,
            &mut ts,
        );
        key.zeroize();
        opened?;
        let timestamp = Tai64n::from_bytes(ts);
        self.check_timestamp(&timestamp)?;
        self.check_flood(now)?;
        let hash = crypto::hash(&[&pending.hash, &pending.encrypted_timestamp]);

        self.latest_timestamp = timestamp;
        self.last_initiation_consumed = Some(now);
        self.state = State::InitiationAccepted {
            remote_index: pending.sender_index,
            remote_ephemeral: pending.remote_ephemeral,
            chaining_key: ck,
            hash,
        };
        Ok(timestamp)
    }

    /// Responder (§5.4.3): answers the accepted initiation with sender index `local_index`
    /// and derives the session keys (§5.4.5). mac1/mac2 are left zero for
    /// [`crate::cookie::CookieState::add_macs`]. The handshake state is wiped on success and on
    /// failure.
    pub fn create_response(
        &mut self,
        local_index: u32,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<([u8; RESPONSE_LEN], SessionKeys), HandshakeError> {
        if !self.has_accepted_initiation() {
            // Leave an initiation we sent ourselves untouched.
            return Err(HandshakeError::NoPendingHandshake);
        }
        let state = std::mem::take(&mut self.state);
        let State::InitiationAccepted {
            remote_index,
            remote_ephemeral,
            chaining_key,
            hash,
        } = &state
        else {
            return Err(HandshakeError::NoPendingHandshake);
        };
        let mut ck = *chaining_key;
        let mut h = *hash;
        let mut out = [0u8; RESPONSE_LEN];
        let mut msg = Response::new_unchecked(&mut out[..]);
        msg.fill_header();
        msg.set_sender_index(local_index);
        msg.set_receiver_index(*remote_index);

        let ephemeral = PrivateKey::generate(rng);
        let e_pub = ephemeral.public_key();
        msg.ephemeral_mut().copy_from_slice(e_pub.as_bytes());
        ck = crypto::kdf1(&ck, e_pub.as_bytes());
        h = crypto::hash(&[&h, e_pub.as_bytes()]);
        let result = (|| {
            // Cr = KDF1(Cr, DH(Er_priv, Ei_pub)); Cr = KDF1(Cr, DH(Er_priv, Si_pub))
            let mut ee = crypto::dh(ephemeral.as_bytes(), remote_ephemeral)?;
            ck = crypto::kdf1(&ck, &ee);
            ee.zeroize();
            let mut se = crypto::dh(ephemeral.as_bytes(), self.remote_static.as_bytes())?;
            ck = crypto::kdf1(&ck, &se);
            se.zeroize();
            self.finish_psk_and_split(&mut ck, &mut h, |key, h| {
                crypto::aead_seal(key, 0, &[], h, msg.encrypted_nothing_mut())
            })
        })();
        ck.zeroize();
        h.zeroize();
        let (sending_key, receiving_key) = {
            let (mut t_i_send, mut t_i_recv) = result?;
            // The initiator's sending key is our receiving key.
            let r = (t_i_recv, t_i_send);
            t_i_send.zeroize();
            t_i_recv.zeroize();
            r
        };
        Ok((
            out,
            SessionKeys {
                local_index,
                remote_index: *remote_index,
                sending_key,
                receiving_key,
                is_initiator: false,
            },
        ))
    }

    /// Initiator (§5.4.3 in reverse, §5.4.5): consumes the response to our initiation and
    /// derives the session keys. mac1 must have been checked before (cookie.rs). On success the
    /// handshake state is wiped. On failure the pending initiation is kept, so a forged
    /// response cannot cancel a real handshake (the kernel behaves the same way); temporaries
    /// are wiped either way.
    pub fn consume_response(
        &mut self,
        identity: &StaticIdentity,
        msg: &Response<&[u8]>,
    ) -> Result<SessionKeys, HandshakeError> {
        let State::InitiationSent {
            local_index,
            ephemeral_private,
            chaining_key,
            hash,
        } = &self.state
        else {
            return Err(HandshakeError::NoPendingHandshake);
        };
        if msg.receiver_index() != *local_index {
            return Err(HandshakeError::IndexMismatch);
        }
        let local_index = *local_index;
        let mut ck = *chaining_key;
        let mut h = *hash;
        let e_r = msg.ephemeral();
        ck = crypto::kdf1(&ck, e_r);
        h = crypto::hash(&[&h, e_r]);
        let result = (|| {
            let mut ee = crypto::dh(ephemeral_private.as_bytes(), e_r)?;
            ck = crypto::kdf1(&ck, &ee);
            ee.zeroize();
            // DH(Si_priv, Er_pub): not precomputable, our static with their ephemeral.
            let mut se = crypto::dh(identity.private.as_bytes(), e_r)?;
            ck = crypto::kdf1(&ck, &se);
            se.zeroize();
            self.finish_psk_and_split(&mut ck, &mut h, |key, h| {
                let mut nothing = [0u8; 0];
                crypto::aead_open(key, 0, msg.encrypted_nothing(), h, &mut nothing)
            })
        })();
        ck.zeroize();
        h.zeroize();
        let (sending_key, receiving_key) = result?;
        let keys = SessionKeys {
            local_index,
            remote_index: msg.sender_index(),
            sending_key,
            receiving_key,
            is_initiator: true,
        };
        self.clear();
        Ok(keys)
    }

    /// Shared tail of both sides of the response (§5.4.3): mixes in the pre-shared key, runs
    /// `seal_or_open` on the empty AEAD with the resulting key, then splits the chaining key
    /// into (initiator sending, initiator receiving) transport keys (§5.4.5).
    fn finish_psk_and_split(
        &self,
        ck: &mut [u8; KEY_LEN],
        h: &mut [u8; KEY_LEN],
        seal_or_open: impl FnOnce(&[u8; KEY_LEN], &[u8; KEY_LEN]) -> Result<(), CryptoError>,
    ) -> Result<([u8; KEY_LEN], [u8; KEY_LEN]), HandshakeError> {
        // (Cr, t, k) = KDF3(Cr, Q); Hr = HASH(Hr || t)
        let (ck2, mut tau, mut key) = crypto::kdf3(ck, self.preshared.as_bytes());
        *ck = ck2;
        *h = crypto::hash(&[h.as_slice(), &tau]);
        tau.zeroize();
        let r = seal_or_open(&key, h);
        key.zeroize();
        r?;
        let keys = crypto::kdf2(ck, &[]);
        ck.zeroize();
        Ok(keys)
    }
}
