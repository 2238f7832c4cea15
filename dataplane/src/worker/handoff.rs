//! Cross-worker handoff: packets one worker received but another worker's NAT owns.
//!
//! With several queues, RSS (or veth's tx-queue hash) puts a packet on whichever queue its
//! flow hashes to, but the NAT is partitioned (`nat` crate, "Several cores"): outbound flows
//! belong to the worker that owns the inside host, return traffic to the worker that owns the
//! destination port's slice. A worker that gets someone else's packet hands it over here.
//!
//! Each worker has its own UMEM, so a frame cannot change hands: the packet is copied into a
//! preallocated slot and the owner copies it into a frame of its own pool (copy and zero-copy
//! modes alike). One bounded single-producer/single-consumer lane per ordered pair of workers,
//! built on `std::sync::mpsc::sync_channel` (a preallocated lock-free array): slots travel to
//! the owner full and come back empty on a second channel, so nothing is allocated after
//! start and a full lane refuses (counted) instead of waiting.
//!
//! An idle owner sleeps in `poll` on its sockets; a [`Doorbell`] (a datagram socket pair in
//! the same `poll`) wakes it when a packet is handed to it, rung only when the owner said it
//! was about to sleep, so a busy owner costs the sender no syscall.
//!
//! What this module must never do: block, allocate per packet, or let a slow owner hold the
//! sender back.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

use crate::afxdp::MAX_TX_LEN;
use fastpath::pipeline::Resume;

/// Slots per lane: enough for a few batches in flight while the owner is busy.
pub const LANE_DEPTH: usize = 256;

/// One handed-over packet, with where it sat in the sender's frame (the owner puts it at the
/// same offset, so headroom and tailroom are what the pipeline expects).
pub struct HandoffPacket {
    pub resume: Resume,
    pub start: usize,
    len: usize,
    bytes: Box<[u8; MAX_TX_LEN]>,
}

impl HandoffPacket {
    fn empty() -> HandoffPacket {
        HandoffPacket {
            resume: Resume::NatInbound,
            start: 0,
            len: 0,
            bytes: Box::new([0; MAX_TX_LEN]),
        }
    }

    /// The packet's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Why a packet could not be handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffError {
    /// The owner has not drained its lane: every slot is in flight.
    Full,
    /// No lane to that worker (an owner index beyond the worker count, or itself).
    NoLane,
    /// Larger than a slot.
    TooBig,
}

/// Wakes a worker sleeping in `poll`. The worker [`arm`](Doorbell::arm)s it before it sleeps
/// and [`disarm`](Doorbell::disarm)s it after; senders ring it only while armed.
pub struct Doorbell {
    armed: AtomicBool,
    /// Packets handed to this worker, all lanes (senders add after each send).
    sent: AtomicU64,
    wake_rx: UnixDatagram,
    wake_tx: UnixDatagram,
}

impl Doorbell {
    fn new() -> io::Result<Doorbell> {
        let (wake_rx, wake_tx) = UnixDatagram::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        Ok(Doorbell {
            armed: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            wake_rx,
            wake_tx,
        })
    }

    /// After a send: count it, and wake the owner if it is (about to be) asleep. SeqCst pairs
    /// with [`Doorbell::arm`]: either this load sees the owner armed, or the owner's check of
    /// `sent` sees this packet (a store-load pair on each side, ordered in one total order).
    fn ring(&self) {
        self.sent.fetch_add(1, Ordering::SeqCst);
        if self.armed.load(Ordering::SeqCst) {
            // A full socket buffer means a wake-up is already pending.
            let _ = self.wake_tx.send(&[1]);
        }
    }

    /// Before sleeping: returns false if packets arrived that were not drained yet (`seen` is
    /// how many the owner has drained in all), in which case the owner must not sleep.
    pub fn arm(&self, seen: u64) -> bool {
        self.armed.store(true, Ordering::SeqCst);
        if self.sent.load(Ordering::SeqCst) != seen {
            self.armed.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// After sleeping: stop asking for wake-ups and swallow those that came.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
        let mut b = [0u8; 64];
        while matches!(self.wake_rx.recv(&mut b), Ok(n) if n > 0) {}
    }

    /// The descriptor to add to the worker's `poll` set (readable when rung).
    pub fn fd(&self) -> RawFd {
        self.wake_rx.as_raw_fd()
    }
}

/// The sending end of one lane.
struct OutLane {
    full: SyncSender<HandoffPacket>,
    empty: Receiver<HandoffPacket>,
    owner: Arc<Doorbell>,
}

/// The receiving end of one lane.
struct InLane {
    full: Receiver<HandoffPacket>,
    empty: SyncSender<HandoffPacket>,
}

/// A worker's ends of every lane: where it sends to each other worker, and what it receives.
pub struct Handoff {
    worker: usize,
    /// Indexed by destination worker; `None` at this worker's own index.
    out: Vec<Option<OutLane>>,
    inbound: Vec<InLane>,
    doorbell: Arc<Doorbell>,
    /// Packets drained so far (compared with the doorbell's `sent` before sleeping).
    drained: Cell<u64>,
}

impl Handoff {
    /// The lanes between `workers` workers, each worker's ends at its index. One worker gets
    /// no lanes at all.
    pub fn mesh(workers: usize) -> io::Result<Vec<Handoff>> {
        let mut mesh = Vec::with_capacity(workers);
        for worker in 0..workers {
            mesh.push(Handoff {
                worker,
                out: (0..workers).map(|_| None).collect(),
                inbound: Vec::new(),
                doorbell: Arc::new(Doorbell::new()?),
                drained: Cell::new(0),
            });
        }
        for from in 0..workers {
            for to in (0..workers).filter(|&t| t != from) {
                let (full_tx, full_rx) = sync_channel(LANE_DEPTH);
                let (empty_tx, empty_rx) = sync_channel(LANE_DEPTH);
                for _ in 0..LANE_DEPTH {
                    empty_tx
                        .try_send(HandoffPacket::empty())
                        .expect("a new channel holds LANE_DEPTH slots");
                }
                let owner = mesh[to].doorbell.clone();
                mesh[from].out[to] = Some(OutLane {
                    full: full_tx,
                    empty: empty_rx,
                    owner,
                });
                mesh[to].inbound.push(InLane {
                    full: full_rx,
                    empty: empty_tx,
                });
            }
        }
        Ok(mesh)
    }

    /// The worker these ends belong to.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Copies `packet` (which sat at offset `start` of its frame) to worker `owner`, to be
    /// resumed there with `resume`.
    pub fn send(
        &self,
        owner: usize,
        resume: Resume,
        start: usize,
        packet: &[u8],
    ) -> Result<(), HandoffError> {
        let lane = self
            .out
            .get(owner)
            .and_then(Option::as_ref)
            .ok_or(HandoffError::NoLane)?;
        if packet.len() > MAX_TX_LEN || start + packet.len() > crate::afxdp::FRAME_SIZE {
            return Err(HandoffError::TooBig);
        }
        let mut slot = lane.empty.try_recv().map_err(|_| HandoffError::Full)?;
        slot.bytes[..packet.len()].copy_from_slice(packet);
        slot.len = packet.len();
        slot.start = start;
        slot.resume = resume;
        // The lane holds as many slots as exist, so a slot taken from it always fits back;
        // the owner having gone (stop) is the only failure, and then the packet is moot.
        lane.full.try_send(slot).map_err(|_| HandoffError::Full)?;
        lane.owner.ring();
        Ok(())
    }

    /// Hands each waiting packet (at most `max`) to `f`, then returns its slot to its lane.
    /// Returns how many were handled.
    pub fn drain(&self, max: usize, mut f: impl FnMut(&HandoffPacket)) -> usize {
        let mut n = 0;
        for lane in &self.inbound {
            while n < max {
                match lane.full.try_recv() {
                    Ok(p) => {
                        f(&p);
                        n += 1;
                        // Cannot be full: at most LANE_DEPTH slots exist for this lane.
                        let _ = lane.empty.try_send(p);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
        }
        self.drained.set(self.drained.get() + n as u64);
        n
    }

    /// Whether other workers can hand packets to this one (there is more than one worker).
    pub fn has_lanes(&self) -> bool {
        !self.inbound.is_empty()
    }

    /// This worker's doorbell (for its `poll` set).
    pub fn doorbell(&self) -> &Doorbell {
        &self.doorbell
    }

    /// Before sleeping: false if a packet came in since the last drain (do not sleep).
    pub fn arm(&self) -> bool {
        self.doorbell.arm(self.drained.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_reach_their_owner_with_offset_and_resume() {
        let mesh = Handoff::mesh(3).unwrap();
        assert_eq!(
            mesh.iter().map(Handoff::worker).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        mesh[0]
            .send(2, Resume::NatOutbound, 300, b"from zero")
            .unwrap();
        mesh[1].send(2, Resume::Hairpin, 278, b"from one").unwrap();
        let mut got = Vec::new();
        let n = mesh[2].drain(16, |p| got.push((p.resume, p.start, p.bytes().to_vec())));
        assert_eq!(n, 2);
        got.sort_by_key(|g| g.1);
        assert_eq!(
            got,
            [
                (Resume::Hairpin, 278, b"from one".to_vec()),
                (Resume::NatOutbound, 300, b"from zero".to_vec()),
            ]
        );
        assert_eq!(mesh[0].drain(16, |_| panic!("nothing was sent to 0")), 0);
    }

    #[test]
    fn a_full_lane_refuses_and_recovers_once_drained() {
        let mesh = Handoff::mesh(2).unwrap();
        for i in 0..LANE_DEPTH {
            mesh[1]
                .send(0, Resume::NatInbound, 256, &[i as u8; 60])
                .unwrap();
        }
        assert_eq!(
            mesh[1].send(0, Resume::NatInbound, 256, &[0; 60]),
            Err(HandoffError::Full)
        );
        // Draining in parts returns slots as it goes.
        assert_eq!(mesh[0].drain(10, |_| {}), 10);
        for _ in 0..10 {
            mesh[1].send(0, Resume::NatInbound, 256, &[1; 60]).unwrap();
        }
        assert_eq!(
            mesh[1].send(0, Resume::NatInbound, 256, &[0; 60]),
            Err(HandoffError::Full)
        );
        assert_eq!(mesh[0].drain(usize::MAX, |_| {}), LANE_DEPTH);
        assert_eq!(mesh[0].drain(usize::MAX, |_| {}), 0);
    }

    #[test]
    fn no_lane_to_self_or_beyond_and_oversized_refused() {
        let mesh = Handoff::mesh(2).unwrap();
        assert_eq!(
            mesh[0].send(0, Resume::NatInbound, 256, b"x"),
            Err(HandoffError::NoLane)
        );
        assert_eq!(
            mesh[0].send(5, Resume::NatInbound, 256, b"x"),
            Err(HandoffError::NoLane)
        );
        let big = vec![0u8; MAX_TX_LEN + 1];
        assert_eq!(
            mesh[0].send(1, Resume::NatInbound, 0, &big),
            Err(HandoffError::TooBig)
        );
        assert_eq!(
            mesh[0].send(1, Resume::NatInbound, 1024, &[0; MAX_TX_LEN]),
            Err(HandoffError::TooBig),
            "must fit the owner's frame at the same offset"
        );
        let single = Handoff::mesh(1).unwrap();
        assert!(!single[0].has_lanes());
        assert!(mesh[0].has_lanes());
    }

    #[test]
    fn a_lane_works_across_threads() {
        let mut mesh = Handoff::mesh(2).unwrap();
        let owner = mesh.pop().unwrap();
        let sender = mesh.pop().unwrap();
        const N: usize = 20_000;
        let t = std::thread::spawn(move || {
            let mut sent = 0usize;
            while sent < N {
                let payload = (sent as u32).to_be_bytes();
                if sender.send(1, Resume::NatInbound, 256, &payload).is_ok() {
                    sent += 1;
                }
            }
        });
        let mut next = 0u32;
        while (next as usize) < N {
            let n = owner.drain(64, |p| {
                assert_eq!(p.bytes(), next.to_be_bytes(), "in order, intact");
                next += 1;
            });
            if n == 0 {
                std::thread::yield_now();
            }
        }
        t.join().unwrap();
    }

    #[test]
    fn an_armed_doorbell_is_rung_and_an_unarmed_one_is_not() {
        let mesh = Handoff::mesh(2).unwrap();
        let readable = |h: &Handoff| {
            let mut b = [0u8; 8];
            h.doorbell.wake_rx.recv(&mut b).is_ok()
        };
        mesh[1].send(0, Resume::NatInbound, 256, b"busy").unwrap();
        assert!(!readable(&mesh[0]), "not armed: no wake-up syscall");
        assert!(!mesh[0].arm(), "an undrained packet forbids sleeping");
        assert_eq!(mesh[0].drain(8, |_| {}), 1);
        assert!(mesh[0].arm(), "all drained: may sleep");
        mesh[1].send(0, Resume::NatInbound, 256, b"wake").unwrap();
        assert!(readable(&mesh[0]), "armed: rung");
        mesh[0].doorbell().disarm();
        assert!(
            !mesh[0].arm(),
            "the packet that rang is still to be drained"
        );
    }
}
