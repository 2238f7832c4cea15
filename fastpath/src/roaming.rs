//! Where a peer's replies go between the slow path's table publications: the endpoint the
//! workers learn from authenticated packets (roaming, whitepaper §2).
//!
//! Kernel WireGuard moves a peer's endpoint on the authenticated packet itself, before any
//! reply. Here the slow path owns the device's endpoint and publishes it in the next
//! [`crate::tables::Tables`] snapshot; sealing to that alone, every worker would reply to the
//! old address until then, and a peer whose old path still works (a dual-stack client that
//! moved from IPv4 to IPv6) takes such a reply as the gateway roaming and moves back. So each
//! peer has one [`LearnedEndpoint`] outside the snapshot, shared by `Arc` like its traffic
//! counters: a worker that opens a packet from another source than the cell's offers it
//! there at once, and every worker seals to the cell.
//!
//! Which packet wins. Two workers can hold packets from the old and the new address at once
//! (RSS puts the two sources on different queues), and their reports reach the slow path in
//! any order. The kernel processes one peer's packets in order, so the last one received
//! wins; the workers share no such order, but the sender's is in every packet: a keypair's
//! counter, and a later keypair (born later) is newer than every packet of an earlier one.
//! An offer carries that [`Recency`] and is taken only if it is not older than the one that
//! last moved the cell. With worker A opening a late packet from the old address and B the
//! first from the new one:
//! - B first: B moves the cell to the new address; A then finds the cell elsewhere, offers,
//!   and is refused (older): the late packet does not move it back.
//! - A first: A finds the cell at the old address and writes nothing; B moves it.
//! - A peer that really goes back sends a newer packet from the old address: taken.
//!
//! The recency is stored only when the address changes (no store per packet), so a
//! reordered packet from another address that is older than the latest from the current one,
//! but newer than the one that moved the cell there, still moves it; the kernel follows such
//! a packet too, until the next one.
//!
//! The slow path learns as before from the worker's report and publishes (`wg show`, UAPI,
//! the next snapshot), but it roams its device to the cell's address, not the report's, so a
//! stale report cannot undo a newer roam; a handshake roams the cell with the recency of the
//! keypair it makes ([`Recency::handshake`]); an endpoint set by configuration (file, UAPI
//! `endpoint=`) resets the cell ([`LearnedEndpoint::reset`]) to the oldest recency, so that
//! the next authenticated packet from elsewhere moves it, as the kernel does. The cell and
//! the published endpoint thus differ for at most one report's round trip.
//!
//! Cost: a reader (every seal, every open) loads one 64-byte line that is written only when
//! a peer's address changes: a sequence lock of plain atomics, no store, no lock taken.

use std::hint::spin_loop;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use wgproto::keypair::Keypair;
use wgproto::time::Timestamp;

/// How new an authenticated packet is in its sender's order: the birth of its keypair, then
/// its counter. Compared as that pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Recency {
    keypair_born: u64,
    counter: u64,
}

impl Recency {
    /// Older than any packet: what a configured endpoint starts from.
    pub const OLDEST: Recency = Recency {
        keypair_born: 0,
        counter: 0,
    };

    /// Transport message `counter` opened with `keypair`.
    pub fn of(keypair: &Keypair, counter: u64) -> Recency {
        Recency {
            keypair_born: keypair.created().as_nanos(),
            counter,
        }
    }

    /// A handshake message handled at `now`: as new as the first packet of the keypair it
    /// made (born `now`), newer than every packet of the keypairs before it.
    pub fn handshake(now: Timestamp) -> Recency {
        Recency {
            keypair_born: now.as_nanos(),
            counter: 0,
        }
    }
}

/// How many times a reader retries while a writer is between its stores before it gives up
/// and the caller falls back to the published endpoint (a writer holds the cell for a few
/// stores; this only bounds the wait if its thread was preempted there).
const READ_TRIES: u32 = 64;

/// One peer's learned endpoint (see the module docs). One cache line, written only when the
/// address changes.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct LearnedEndpoint {
    /// Even while stable, odd while a writer is between its stores; a write adds 2.
    seq: AtomicU64,
    /// The address, [`encode`]d; tag 0: none.
    addr: [AtomicU64; 4],
    /// The [`Recency`] of what last moved `addr`; read and written by writers.
    born: AtomicU64,
    counter: AtomicU64,
}

impl LearnedEndpoint {
    /// A cell holding `endpoint` (configured, or none yet) at the oldest recency.
    pub fn new(endpoint: Option<SocketAddr>) -> Self {
        let cell = LearnedEndpoint::default();
        cell.reset(endpoint);
        cell
    }

    /// The endpoint to seal to; `None` when nothing was configured or learned (or, rarely, a
    /// writer was preempted mid-write: the caller then uses the published endpoint, at most one
    /// report's round trip older).
    #[inline]
    pub fn get(&self) -> Option<SocketAddr> {
        self.words().and_then(decode)
    }

    /// Whether the cell holds `src`: the receive path's question, answered without decoding.
    #[inline]
    pub fn holds(&self, src: SocketAddr) -> bool {
        // Each word compared as it is loaded, not the four collected and compared as an array:
        // the array went through the stack, and the 16-byte reads of the compare waited on
        // 8-byte stores (a stalled load per packet in the 64-byte profile).
        let want = encode(Some(src));
        for _ in 0..READ_TRIES {
            let before = self.seq.load(Ordering::Acquire);
            let same = (0..4).all(|i| self.addr[i].load(Ordering::Relaxed) == want[i]);
            // As in `words`: the loads above before the second load of `seq`.
            fence(Ordering::Acquire);
            if before & 1 == 0 && self.seq.load(Ordering::Relaxed) == before {
                return same;
            }
            spin_loop();
        }
        false
    }

    /// A consistent read of the address words; `None` if a writer kept them busy.
    #[inline]
    fn words(&self) -> Option<[u64; 4]> {
        for _ in 0..READ_TRIES {
            let before = self.seq.load(Ordering::Acquire);
            let words = [0, 1, 2, 3].map(|i| self.addr[i].load(Ordering::Relaxed));
            // Orders the loads of the words before the second load of `seq` (the reader's
            // half of a sequence lock with atomics: Boehm, "Can seqlocks get along with
            // programming language memory models?", 2012).
            fence(Ordering::Acquire);
            if before & 1 == 0 && self.seq.load(Ordering::Relaxed) == before {
                return Some(words);
            }
            spin_loop();
        }
        None
    }

    /// An authenticated packet of `recency` came from `src`: moves the cell there unless it is
    /// there already or a newer packet moved it; whether it moved.
    pub fn offer(&self, recency: Recency, src: SocketAddr) -> bool {
        // An older packet is refused without a store to the line (checked again under the
        // lock, where it counts).
        if recency < self.recency() {
            return false;
        }
        let seq = self.lock();
        let words = [0, 1, 2, 3].map(|i| self.addr[i].load(Ordering::Relaxed));
        let moved = recency >= self.recency() && decode(words) != Some(src);
        if moved {
            self.store(Some(src), recency);
        }
        self.unlock(seq, moved);
        moved
    }

    /// The configuration set the endpoint (or there is none yet): it holds until the next
    /// authenticated packet from elsewhere, whatever moved the cell before.
    pub fn reset(&self, endpoint: Option<SocketAddr>) {
        let seq = self.lock();
        self.store(endpoint, Recency::OLDEST);
        self.unlock(seq, true);
    }

    fn recency(&self) -> Recency {
        Recency {
            keypair_born: self.born.load(Ordering::Relaxed),
            counter: self.counter.load(Ordering::Relaxed),
        }
    }

    /// Takes the writers' lock (an odd `seq`); returns the even value it replaced.
    fn lock(&self) -> u64 {
        loop {
            let seq = self.seq.load(Ordering::Relaxed);
            if seq & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                // The odd `seq` is visible before any of the stores that follow it.
                fence(Ordering::Release);
                return seq;
            }
            spin_loop();
        }
    }

    /// Releases the lock: `seq + 2` after a write, `seq` again when nothing changed (readers
    /// that overlapped read what was there all along).
    fn unlock(&self, seq: u64, wrote: bool) {
        let next = if wrote { seq + 2 } else { seq };
        self.seq.store(next, Ordering::Release);
    }

    /// Under the lock.
    fn store(&self, endpoint: Option<SocketAddr>, recency: Recency) {
        for (cell, w) in self.addr.iter().zip(encode(endpoint)) {
            cell.store(w, Ordering::Relaxed);
        }
        self.born.store(recency.keypair_born, Ordering::Relaxed);
        self.counter.store(recency.counter, Ordering::Relaxed);
    }
}

const TAG_V4: u64 = 4;
const TAG_V6: u64 = 6;

/// Four words: tag | port << 8 | flow info << 24, scope id, address (high, low).
fn encode(endpoint: Option<SocketAddr>) -> [u64; 4] {
    match endpoint {
        None => [0; 4],
        Some(SocketAddr::V4(a)) => [
            TAG_V4 | u64::from(a.port()) << 8,
            0,
            0,
            u64::from(u32::from(*a.ip())),
        ],
        Some(SocketAddr::V6(a)) => {
            let ip = u128::from(*a.ip());
            [
                TAG_V6 | u64::from(a.port()) << 8 | u64::from(a.flowinfo()) << 24,
                u64::from(a.scope_id()),
                (ip >> 64) as u64,
                ip as u64,
            ]
        }
    }
}

fn decode(w: [u64; 4]) -> Option<SocketAddr> {
    let port = (w[0] >> 8) as u16;
    match w[0] & 0xff {
        TAG_V4 => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(w[3] as u32)),
            port,
        )),
        TAG_V6 => {
            let ip = Ipv6Addr::from(u128::from(w[2]) << 64 | u128::from(w[3]));
            let flowinfo = (w[0] >> 24) as u32;
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                port,
                flowinfo,
                w[1] as u32,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;

    fn v4(s: &str) -> SocketAddr {
        SocketAddr::V4(s.parse::<SocketAddrV4>().unwrap())
    }

    fn r(born: u64, counter: u64) -> Recency {
        Recency {
            keypair_born: born,
            counter,
        }
    }

    #[test]
    fn encoding_round_trips_both_families() {
        let v6 = SocketAddr::V6(SocketAddrV6::new(
            "2001:db8::2".parse().unwrap(),
            51820,
            0xabcde,
            7,
        ));
        for a in [Some(v4("192.0.2.1:65535")), Some(v6), None] {
            assert_eq!(decode(encode(a)), a);
        }
    }

    #[test]
    fn newest_packet_wins_whatever_order_offers_come_in() {
        let (old, new) = (v4("192.0.2.1:1000"), v4("198.51.100.1:2000"));
        let cell = LearnedEndpoint::new(Some(old));
        assert!(cell.offer(r(5, 10), new));
        assert!(!cell.offer(r(5, 9), old), "a late packet moved it back");
        assert!(
            !cell.offer(r(4, 1_000), old),
            "an older keypair's packet moved it back"
        );
        assert_eq!(cell.get(), Some(new));
        assert!(!cell.offer(r(5, 11), new), "same address: nothing to write");
        assert!(cell.offer(r(6, 0), old), "a newer keypair's packet");
        assert_eq!(cell.get(), Some(old));
    }

    #[test]
    fn a_configured_endpoint_yields_to_the_next_packet() {
        let (learned, set) = (v4("192.0.2.1:1000"), v4("203.0.113.9:51820"));
        let cell = LearnedEndpoint::new(None);
        assert_eq!(cell.get(), None);
        assert!(cell.offer(r(9, 9), learned));
        cell.reset(Some(set));
        assert_eq!(cell.get(), Some(set));
        assert!(cell.offer(r(1, 0), learned));
        assert_eq!(cell.get(), Some(learned));
        assert!(cell.holds(learned) && !cell.holds(set));
    }

    /// Readers never see a torn address while writers move it back and forth.
    #[test]
    fn readers_see_whole_addresses_under_concurrent_writes() {
        let a = SocketAddr::V6(SocketAddrV6::new("2001:db8::2".parse().unwrap(), 1, 0, 0));
        let b = v4("192.0.2.1:2");
        let cell = std::sync::Arc::new(LearnedEndpoint::new(Some(a)));
        let writer = {
            let cell = cell.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    cell.offer(r(1, i), if i % 2 == 0 { b } else { a });
                }
            })
        };
        for _ in 0..200_000 {
            if let Some(got) = cell.get() {
                assert!(got == a || got == b, "torn read: {got}");
            }
        }
        writer.join().unwrap();
    }
}
