//! The per-source handshake rate limiter (whitepaper §5.3: under load, handshake messages are
//! rate-limited per source): a token bucket of RATELIMIT_PACKETS_PER_SECOND with a burst of
//! RATELIMIT_BURST, keyed by IPv4 address or IPv6 /64 (one host usually owns a whole /64).
//!
//! This module owns the bounded table of buckets. It must never grow past
//! RATELIMIT_MAX_ENTRIES: when full, sources without an entry are refused (fails closed).
//! Time is injected; garbage collection runs from [`RateLimiter::gc`] or, at most once per
//! RATELIMIT_ENTRY_TIMEOUT, when an insert finds the table full.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::constants::{
    RATELIMIT_BURST, RATELIMIT_ENTRY_TIMEOUT, RATELIMIT_MAX_ENTRIES, RATELIMIT_PACKETS_PER_SECOND,
};
use crate::time::Timestamp;

/// The unit one bucket limits: an IPv4 address or the /64 prefix of an IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKey {
    V4([u8; 4]),
    V6Prefix64([u8; 8]),
}

impl SourceKey {
    /// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) count as the IPv4 address they carry, so a
    /// dual-stack socket does not lump all IPv4 sources into one /64.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => SourceKey::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(v4.octets()),
                None => {
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&a.octets()[..8]);
                    SourceKey::V6Prefix64(p)
                }
            },
        }
    }
}

/// One token bucket; tokens are kept in nanoseconds of credit, as the kernel does, so
/// refilling is a subtraction of timestamps.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    last: Timestamp,
    tokens: u64,
}

/// Why a handshake packet was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitError {
    /// The source's bucket is empty.
    RateExceeded,
    /// The table is full of active sources; new ones are refused until entries expire.
    TableFull,
}

impl std::fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RateLimitError::RateExceeded => "source exceeded the handshake rate limit",
            RateLimitError::TableFull => "rate limiter table full, new source refused",
        })
    }
}

impl std::error::Error for RateLimitError {}

/// Per-source token buckets with a bounded table.
#[derive(Debug)]
pub struct RateLimiter {
    table: HashMap<SourceKey, Bucket>,
    max_entries: usize,
    last_gc: Timestamp,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// Credit one packet costs: 1 s / rate.
const PACKET_COST: u64 = 1_000_000_000 / RATELIMIT_PACKETS_PER_SECOND as u64;
/// Bucket capacity: `burst` packets.
const TOKEN_MAX: u64 = PACKET_COST * RATELIMIT_BURST as u64;

impl RateLimiter {
    /// A limiter with the protocol's bound, RATELIMIT_MAX_ENTRIES.
    pub fn new() -> Self {
        Self::with_max_entries(RATELIMIT_MAX_ENTRIES)
    }

    /// A limiter with a smaller bound (tests, small devices).
    pub fn with_max_entries(max_entries: usize) -> Self {
        RateLimiter {
            table: HashMap::new(),
            max_entries,
            last_gc: Timestamp::ZERO,
        }
    }

    /// A limiter with the protocol's bound whose table is allocated now, for a caller that must
    /// not allocate per packet (a fast-path worker).
    pub fn preallocated() -> Self {
        RateLimiter {
            table: HashMap::with_capacity(RATELIMIT_MAX_ENTRIES),
            ..Self::new()
        }
    }

    /// Takes one token for `src` at `now`, or says why not.
    pub fn allow(&mut self, src: IpAddr, now: Timestamp) -> Result<(), RateLimitError> {
        let key = SourceKey::of(src);
        if let Some(b) = self.table.get_mut(&key) {
            let elapsed = u64::try_from(now.since(b.last).as_nanos()).unwrap_or(u64::MAX);
            b.tokens = b.tokens.saturating_add(elapsed).min(TOKEN_MAX);
            b.last = now;
            if b.tokens < PACKET_COST {
                return Err(RateLimitError::RateExceeded);
            }
            b.tokens -= PACKET_COST;
            return Ok(());
        }
        if self.table.len() >= self.max_entries {
            // Amortised collection, at most once per entry timeout so a flood of new sources
            // against a full table cannot make every packet scan the whole table.
            if now.since(self.last_gc) >= RATELIMIT_ENTRY_TIMEOUT {
                self.gc(now);
            }
            if self.table.len() >= self.max_entries {
                return Err(RateLimitError::TableFull);
            }
        }
        self.table.insert(
            key,
            Bucket {
                last: now,
                tokens: TOKEN_MAX - PACKET_COST,
            },
        );
        Ok(())
    }

    /// Drops entries idle for RATELIMIT_ENTRY_TIMEOUT or longer: their buckets are full again,
    /// so forgetting them changes no decision. Call about once a second.
    pub fn gc(&mut self, now: Timestamp) {
        self.last_gc = now;
        self.table
            .retain(|_, b| now.since(b.last) < RATELIMIT_ENTRY_TIMEOUT);
    }

    /// Number of sources tracked.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Time between tokens (1 s / RATELIMIT_PACKETS_PER_SECOND).
    pub fn packet_interval() -> Duration {
        Duration::from_nanos(PACKET_COST)
    }
}
