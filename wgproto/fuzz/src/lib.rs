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
