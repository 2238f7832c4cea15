//! Every number of the WireGuard protocol, in one place (whitepaper §5.4, §6 and the kernel's
//! `messages.h`). Nothing else in the workspace may spell these values out. The message types
//! and sizes are the wire format's, written in `wire::wireguard` and re-exported here.

use std::time::Duration;

/// Noise construction name, hashed into the initial chaining key.
pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// WireGuard's identifier, mixed into the initial hash (the Noise prologue).
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
/// Label for the mac1 key: HASH(LABEL_MAC1 || responder static public key).
pub const LABEL_MAC1: &[u8] = b"mac1----";
/// Label for the cookie key: HASH(LABEL_COOKIE || responder static public key).
pub const LABEL_COOKIE: &[u8] = b"cookie--";

// Message types and sizes: the wire format, defined once in `wire::wireguard`.
pub use wire::wireguard::{
    AEAD_TAG_LEN, COOKIE_REPLY_LEN, INITIATION_LEN, MSG_COOKIE_REPLY, MSG_INITIATION, MSG_RESPONSE,
    MSG_TRANSPORT, RESPONSE_LEN, TRANSPORT_HEADER_LEN, TRANSPORT_MIN_LEN,
};
/// Plaintext is padded to a multiple of this (capped at the MTU).
pub const PADDING_MULTIPLE: usize = 16;

pub const KEY_LEN: usize = 32;
pub const MAC_LEN: usize = 16;
pub const COOKIE_LEN: usize = 16;
pub const COOKIE_NONCE_LEN: usize = 24;
pub const TAI64N_LEN: usize = 12;

/// Key lifetime limits (whitepaper §6.1, §6.2).
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of the random jitter added to each REKEY_TIMEOUT retry.
pub const REKEY_TIMEOUT_JITTER_MAX: Duration = Duration::from_millis(333);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The cookie secret is regenerated this often.
pub const COOKIE_SECRET_MAX_AGE: Duration = Duration::from_secs(120);
/// A cookie received in a cookie reply is usable this long (COOKIE_SECRET_MAX_AGE minus a
/// latency margin, as the reference implementations do).
pub const COOKIE_SECRET_LATENCY: Duration = Duration::from_secs(5);

/// At most this many handshake initiations per second are accepted from one peer (by TAI64N
/// spacing: 1 s / 50 = 20 ms).
pub const MAX_INITIATIONS_PER_SECOND: u32 = 50;
/// Per-source handshake rate limit: packets per second and burst.
pub const RATELIMIT_PACKETS_PER_SECOND: u32 = 20;
pub const RATELIMIT_BURST: u32 = 5;
/// Bound of the rate limiter's table; past it new sources are refused (fails closed).
pub const RATELIMIT_MAX_ENTRIES: usize = 8192;

/// Replay window (RFC 6479): 8192 bits, of which one word's worth is the sliding slack.
pub const REPLAY_WINDOW_BITS: usize = 8192;
pub const REPLAY_WORD_BITS: usize = 64;
pub const REPLAY_WINDOW_USABLE: u64 = (REPLAY_WINDOW_BITS - REPLAY_WORD_BITS) as u64;

/// Default tunnel MTU (wg-quick's default for IPv4+IPv6 over a 1500-byte link).
pub const DEFAULT_MTU: u16 = 1420;
/// Default UDP listen port.
pub const DEFAULT_LISTEN_PORT: u16 = 51820;

/// TAI64 label of the UNIX epoch: 2^62 plus the 10 s TAI-UTC offset of 1970, as the reference
/// implementations encode the handshake timestamp (whitepaper §5.4.2, cr.yp.to/libtai/tai64).
pub const TAI64N_BASE: u64 = (1 << 62) + 10;
/// The nanoseconds of a sent TAI64N are rounded down to this granularity (the largest power of
/// two below 1 s / MAX_INITIATIONS_PER_SECOND, 2^24 ns), so the timestamp does not leak a
/// precise clock yet still orders initiations sent at the allowed rate, as the kernel does.
pub const TAI64N_WHITENING_NANOS: u32 = {
    let spacing = 1_000_000_000 / MAX_INITIATIONS_PER_SECOND;
    1 << (31 - spacing.leading_zeros())
};
/// A rate limiter entry idle this long has a full bucket again and is garbage-collected.
pub const RATELIMIT_ENTRY_TIMEOUT: Duration = Duration::from_secs(1);

/// A receiving initiator starts a new handshake once its current keypair is this old, so a fresh
/// one exists before REJECT_AFTER_TIME even if it never sends (whitepaper §6.2; the kernel's
/// "last minute" handshake).
pub const REKEY_ON_RECEIVE_AFTER_TIME: Duration = Duration::from_secs(
    REJECT_AFTER_TIME.as_secs() - KEEPALIVE_TIMEOUT.as_secs() - REKEY_TIMEOUT.as_secs(),
);
/// Every keypair and handshake of a peer is zeroed after this long without a new session
/// (whitepaper §6.3: 3 x REJECT_AFTER_TIME).
pub const ZERO_KEYS_AFTER_TIME: Duration = Duration::from_secs(REJECT_AFTER_TIME.as_secs() * 3);
/// Handshake initiations sent for one attempt before giving up: REKEY_ATTEMPT_TIME /
/// REKEY_TIMEOUT (whitepaper §6.4).
pub const MAX_HANDSHAKE_ATTEMPTS: u32 =
    (REKEY_ATTEMPT_TIME.as_secs() / REKEY_TIMEOUT.as_secs()) as u32;
