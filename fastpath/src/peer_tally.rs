//! A worker's per-peer traffic totals for the current batch, added to the shared
//! [`PeerTraffic`] counters once per batch instead of once per packet.
//!
//! Why: [`PeerTraffic`] is one set of atomics per peer that every worker and the slow path
//! write, so each update is a locked read-modify-write on a line other cores also write
//! (two per packet, ~14 ns here). Most batches carry one or a few peers; the tally keeps
//! their sums and the worker adds them in [`PeerTally::flush`] at the end of the batch. The
//! slow path's timers read `rx_data`/`tx_data` at most one batch later, far below any timer of
//! the protocol.

use wgproto::peer::PeerId;

use crate::tables::Tables;

/// Peers tallied at once; a batch with more flushes early (nothing is lost).
const SLOTS: usize = 8;

#[derive(Clone, Copy, Debug)]
struct Sums {
    peer: PeerId,
    rx_bytes: u64,
    rx_data: u64,
    tx_bytes: u64,
    tx_data: u64,
}

impl Sums {
    const EMPTY: Sums = Sums {
        peer: PeerId::new(0),
        rx_bytes: 0,
        rx_data: 0,
        tx_bytes: 0,
        tx_data: 0,
    };
}

/// See the module documentation.
#[derive(Debug)]
pub struct PeerTally {
    sums: [Sums; SLOTS],
    len: usize,
}

impl Default for PeerTally {
    fn default() -> Self {
        PeerTally {
            sums: [Sums::EMPTY; SLOTS],
            len: 0,
        }
    }
}

impl PeerTally {
    /// A transport message of `bytes` received from `peer` (a keepalive counts bytes only).
    #[inline]
    pub fn rx(&mut self, tables: &Tables, peer: PeerId, bytes: usize, keepalive: bool) {
        let s = self.slot(tables, peer);
        s.rx_bytes += bytes as u64;
        s.rx_data += u64::from(!keepalive);
    }

    /// A transport message of `bytes` sent to `peer`.
    #[inline]
    pub fn tx(&mut self, tables: &Tables, peer: PeerId, bytes: usize) {
        let s = self.slot(tables, peer);
        s.tx_bytes += bytes as u64;
        s.tx_data += 1;
    }

    #[inline]
    fn slot(&mut self, tables: &Tables, peer: PeerId) -> &mut Sums {
        let i = match self.sums[..self.len].iter().position(|s| s.peer == peer) {
            Some(i) => i,
            None => {
                if self.len == SLOTS {
                    self.flush(tables);
                }
                self.sums[self.len] = Sums {
                    peer,
                    ..Sums::EMPTY
                };
                self.len += 1;
                self.len - 1
            }
        };
        &mut self.sums[i]
    }

    /// Adds the sums to each peer's shared counters (a peer removed meanwhile has none: its
    /// sums are dropped with it) and starts over. The worker calls this at the end of every
    /// batch.
    pub fn flush(&mut self, tables: &Tables) {
        for s in &self.sums[..self.len] {
            if let Some(route) = tables.peers.get(&s.peer) {
                route
                    .stats
                    .add(s.rx_bytes, s.rx_data, s.tx_bytes, s.tx_data);
            }
        }
        self.len = 0;
    }

    /// Peers with sums not yet flushed.
    pub fn pending(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{PeerRoute, PeerTraffic};
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    fn tables(peers: u32) -> Tables {
        let mut t = Tables::default();
        for p in 0..peers {
            t.peers.insert(
                PeerId::new(p),
                PeerRoute {
                    sending: None,
                    endpoint: None,
                    stats: Arc::new(PeerTraffic::default()),
                    learned: Default::default(),
                },
            );
        }
        t
    }

    fn read(t: &Tables, p: u32) -> [u64; 4] {
        let s = &t.peers[&PeerId::new(p)].stats;
        [&s.rx_bytes, &s.rx_data, &s.tx_bytes, &s.tx_data].map(|c| c.load(Relaxed))
    }

    #[test]
    fn sums_reach_the_peer_at_the_flush() {
        let t = tables(2);
        let mut tally = PeerTally::default();
        tally.rx(&t, PeerId::new(0), 100, false);
        tally.rx(&t, PeerId::new(0), 32, true);
        tally.tx(&t, PeerId::new(1), 80);
        tally.tx(&t, PeerId::new(0), 48);
        assert_eq!(read(&t, 0), [0; 4], "nothing before the flush");
        assert_eq!(tally.pending(), 2);
        tally.flush(&t);
        assert_eq!(read(&t, 0), [132, 1, 48, 1]);
        assert_eq!(read(&t, 1), [0, 0, 80, 1]);
        tally.flush(&t);
        assert_eq!(read(&t, 0), [132, 1, 48, 1], "a second flush adds nothing");
    }

    #[test]
    fn more_peers_than_slots_lose_nothing() {
        let peers = SLOTS as u32 * 3 + 1;
        let t = tables(peers);
        let mut tally = PeerTally::default();
        for round in 0..3 {
            for p in 0..peers {
                tally.rx(&t, PeerId::new(p), 10 + round, false);
            }
        }
        // A peer the tables do not know (removed meanwhile) is dropped, not a panic.
        tally.tx(&t, PeerId::new(peers + 5), 1);
        tally.flush(&t);
        for p in 0..peers {
            assert_eq!(read(&t, p), [33, 3, 0, 0], "peer {p}");
        }
    }
}
