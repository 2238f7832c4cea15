//! The read-mostly tables the slow path publishes to the fast-path workers.
//!
//! Workers never take a lock to find a key: they load the current [`Tables`] snapshot from an
//! [`ArcSwap`] once per batch and read it. The slow path owns a master copy, edits it when the
//! protocol core installs or retires a keypair, when an endpoint roams or when AllowedIPs
//! change, and swaps in a new snapshot. Per-peer traffic statistics live outside the snapshot
//! (in [`PeerTraffic`], shared by `Arc`) so that a swap never loses a count, and so does the
//! endpoint the workers learn between two snapshots ([`LearnedEndpoint`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::roaming::LearnedEndpoint;
use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use wgproto::allowedips::AllowedIps;
use wgproto::cookie::CookieChecker;
use wgproto::keypair::Keypair;
use wgproto::peer::PeerId;

/// Traffic counters of one peer, written by the workers once per batch
/// ([`crate::peer_tally`]) and by the slow path (relaxed atomics: statistics and timer hints,
/// not synchronisation) and read by the slow path for timers, `wg show` and metrics.
#[derive(Debug, Default)]
pub struct PeerTraffic {
    /// Bytes of transport messages received and sent (whole UDP payloads, as `wg show` counts).
    pub rx_bytes: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Transport messages carrying data (not keepalives); the slow path turns changes of these
    /// into the protocol core's data-received/data-sent timer events.
    pub rx_data: AtomicU64,
    pub tx_data: AtomicU64,
}

impl PeerTraffic {
    pub fn note_rx(&self, bytes: usize, keepalive: bool) {
        self.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if !keepalive {
            self.rx_data.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn note_tx(&self, bytes: usize) {
        self.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.tx_data.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a worker's sums of one batch ([`crate::peer_tally::PeerTally`]).
    pub fn add(&self, rx_bytes: u64, rx_data: u64, tx_bytes: u64, tx_data: u64) {
        for (counter, n) in [
            (&self.rx_bytes, rx_bytes),
            (&self.rx_data, rx_data),
            (&self.tx_bytes, tx_bytes),
            (&self.tx_data, tx_data),
        ] {
            if n != 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// What a worker needs to send to one peer.
#[derive(Clone, Debug)]
pub struct PeerRoute {
    /// The keypair to seal with; `None` until a session is confirmed.
    pub sending: Option<Arc<Keypair>>,
    /// Where the slow path last knew the peer to be (configured, or learned from a worker's
    /// report); a worker reports an authenticated packet from elsewhere until this says so.
    pub endpoint: Option<SocketAddr>,
    pub stats: Arc<PeerTraffic>,
    /// Where to send: the newest source the workers authenticated, ahead of `endpoint` by up
    /// to a report's round trip ([`crate::roaming`]); `endpoint` where it holds none.
    pub learned: Arc<LearnedEndpoint>,
}

impl PeerRoute {
    /// Where to seal to now.
    #[inline]
    pub fn send_to(&self) -> Option<SocketAddr> {
        self.learned.get().or(self.endpoint)
    }
}

/// One snapshot of everything the fast path looks up.
///
/// The maps hash with FxHash, not SipHash: their keys are ours (receiver indices the slow path
/// draws at random, peer ids it numbers), a sender only chooses what is looked up, so there is
/// no collision flood to defend against, and SipHash cost a receiver lookup on every packet
/// in and a peer lookup on every packet each way.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    /// Receiver index (our local index) -> keypair, for every keypair in any slot.
    pub receivers: FxHashMap<u32, Arc<Keypair>>,
    pub peers: FxHashMap<PeerId, PeerRoute>,
    /// Which peer owns an inner address: the source check on receive and the peer lookup on
    /// send.
    pub allowed_ips: AllowedIps<PeerId>,
    /// A copy of the slow path's mac1/mac2 checker and cookie secret
    /// ([`crate::handshake_guard`]), republished when the secret rotates (every
    /// COOKIE_SECRET_MAX_AGE) or the interface key changes; `None` until the first is made.
    pub handshake_macs: Option<Arc<CookieChecker>>,
}

/// The published tables: many readers, one writer.
pub type SharedTables = Arc<ArcSwap<Tables>>;

/// Makes an empty published table set.
pub fn shared_tables() -> SharedTables {
    Arc::new(ArcSwap::from_pointee(Tables::default()))
}
