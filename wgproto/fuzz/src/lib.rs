//! Shared fixtures of the fuzz targets: fixed keys and a deterministic RNG, so every input is
//! replayable and a crash reproduces from its artifact alone.

use rand_core::{CryptoRng, RngCore};
use wgproto::keys::{PresharedKey, PrivateKey};
use wgproto::noise::{PeerHandshake, StaticIdentity};

/// A counter-based byte stream. Not random at all: fuzzing needs determinism, not secrecy.
/// The `CryptoRng` marker is a lie that is acceptable only inside this harness.
pub struct FuzzRng(u64);

impl FuzzRng {
    pub fn new(seed: u64) -> Self {
        FuzzRng(seed)
    }
}

impl RngCore for FuzzRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FuzzRng {}

/// The initiator ("alice") and responder ("bob") static keys, fixed.
pub fn alice() -> PrivateKey {
    PrivateKey::from_bytes([0x11; 32])
}

pub fn bob() -> PrivateKey {
    PrivateKey::from_bytes([0x22; 32])
}

pub fn psk() -> PresharedKey {
    PresharedKey::from_bytes([0x33; 32])
}

/// Alice's identity and her handshake state for Bob.
pub fn alice_side() -> (StaticIdentity, PeerHandshake) {
    let id = StaticIdentity::new(alice());
    let peer = PeerHandshake::new(&id, bob().public_key(), psk());
    (id, peer)
}

/// Bob's identity and his handshake state for Alice.
pub fn bob_side() -> (StaticIdentity, PeerHandshake) {
    let id = StaticIdentity::new(bob());
    let peer = PeerHandshake::new(&id, alice().public_key(), psk());
    (id, peer)
}

/// The fuzz input as a mutation of a valid message: XORed onto `valid` byte by byte, with any
/// bytes past its end appended (so wrong lengths are covered too). An empty input yields the
/// valid message itself, and a zero byte leaves that position unchanged, so the fuzzer starts
/// on the accept path and explores around it instead of guessing AEAD tags.
pub fn mutate(valid: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = valid.to_vec();
    for (o, d) in out.iter_mut().zip(data) {
        *o ^= d;
    }
    if data.len() > valid.len() {
        out.extend_from_slice(&data[valid.len()..]);
    }
    out
}

/// True when `mutated` equals `valid` on `range` (the authenticated part of a message).
pub fn unchanged(valid: &[u8], mutated: &[u8], range: std::ops::Range<usize>) -> bool {
    mutated.len() == valid.len() && valid[range.clone()] == mutated[range]
}

/// Alice's initiation to Bob, fixed keys and RNG, with macs.
pub fn alice_initiation() -> [u8; wgproto::constants::INITIATION_LEN] {
    let (id, mut peer) = alice_side();
    alice_initiation_from(&id, &mut peer)
}

/// Alice's initiation built on the given state (so a later response can be consumed by it).
pub fn alice_initiation_from(
    id: &StaticIdentity,
    peer: &mut PeerHandshake,
) -> [u8; wgproto::constants::INITIATION_LEN] {
    let mut rng = FuzzRng::new(1);
    let mut m = peer
        .create_initiation(
            id,
            0x0102_0304,
            std::time::Duration::from_secs(1_700_000_000),
            &mut rng,
        )
        .expect("fixed keys are valid");
    wgproto::cookie::CookieState::new(&bob().public_key())
        .add_macs(&mut m, wgproto::time::Timestamp::ZERO)
        .expect("initiation length");
    m
}
