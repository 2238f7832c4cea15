//! The worker thread's loop: drain each socket's rx ring in a batch, run every frame through
//! the [`Pipeline`], queue the transmissions, then do the ring housekeeping once per batch.
//!
//! Snapshots (keys and peers, routes) and the clock are read once per batch, not per packet.
//! The loop sleeps in `poll` only when a whole pass found nothing to do.
//!
//! The wire capture points are here, at the edge: [`CapturePoint::WireIn`] sees every frame
//! as received, [`CapturePoint::WireOut`] every frame handed to TX.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fastpath::queue::Clock;
use fastpath::tables::SharedTables;
use tracing::warn;
use wgproto::time::Timestamp;

use super::handoff::Handoff;
use crate::afxdp::{Frame, TxError, XskGroup};
use fastpath::capture::CapturePoint;
use fastpath::counters::{DropReason, WorkerCounters, XskStats};
use fastpath::frame::RX_OFFSET;
use fastpath::outer_datagrams::{write_frame, OuterReceiver};
use fastpath::pipeline::{Batch, Pipeline, Resume, Verdict};
use fastpath::route::NextHopReader;

/// NAT mappings expired per batch at most: bounded work, so expiry never stalls the path.
const EXPIRE_BUDGET: usize = 64;
/// How often the worker publishes its gauges (NAT entries, the kernel's socket statistics)
/// and its latency histograms.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// How long an idle worker sleeps in `poll` before checking the stop flag again.
const IDLE_POLL_MS: i32 = 10;

/// Sockets per worker: one per attached interface (two-armed is two).
const MAX_SOCKETS: usize = 8;
/// Most frames held while their next hop resolves (the kernel's `unres_qlen` is 101 per
/// neighbour; this is per worker, across all neighbours).
const PARK_MAX: usize = 256;
/// A parked frame whose next hop is still unresolved after this long is dropped.
const PARK_TIMEOUT: Duration = Duration::from_secs(1);

/// A frame waiting for its next hop's MAC.
struct Parked {
    frame: Frame,
    resume: Resume,
    since: Timestamp,
}

/// One worker: its sockets, its pipeline and what it reads.
pub struct Worker {
    pub group: XskGroup,
    pub pipeline: Pipeline,
    pub tables: SharedTables,
    pub routes: NextHopReader,
    pub clock: Clock,
    pub stop: Arc<AtomicBool>,
    pub batch_size: usize,
    /// Lanes to and from the other workers (none when this is the only one).
    pub handoff: Handoff,
    /// This worker's number (0 for the first queue served).
    pub index: usize,
    /// Datagrams the slow path read from the listen port's socket (worker 0 only).
    pub outer: Option<OuterReceiver>,
}

/// Test knob: worker 0 panics this many seconds after it starts, so that a test can show
/// the gateway stops with an error instead of running on without it. Never for production;
/// the gateway warns when it is set.
pub const PANIC_AFTER_ENV: &str = "DATAPLANE_TEST_PANIC_WORKER_AFTER_SECS";

/// When worker `index` is to panic under [`PANIC_AFTER_ENV`], if at all.
fn test_panic_deadline(index: usize) -> Option<std::time::Instant> {
    let secs: u64 = std::env::var(PANIC_AFTER_ENV).ok()?.parse().ok()?;
    (index == 0).then(|| std::time::Instant::now() + Duration::from_secs(secs))
}

/// What the loop needs to act on a verdict.
struct Dispatch<'a> {
    group: &'a mut XskGroup,
    counters: &'a WorkerCounters,
    /// ifindex of each socket of the group, by socket index.
    sockets: &'a [u32],
    parked: &'a mut VecDeque<Parked>,
    handoff: &'a Handoff,
}

impl Dispatch<'_> {
    /// Acts on `verdict` for `frame`. The pipeline and batch are for a verdict that needs more
    /// of the pipeline: [`Verdict::Fragment`], [`Verdict::FragmentOuter6`].
    fn apply(
        &mut self,
        pipeline: &mut Pipeline,
        batch: &Batch<'_>,
        verdict: Verdict,
        mut frame: Frame,
        since: Timestamp,
    ) {
        match verdict {
            Verdict::Tx {
                ifindex,
                start,
                len,
            } => {
                let Some(out) = self.sockets.iter().position(|&i| i == ifindex) else {
                    // Routed out of an interface this gateway is not attached to.
                    self.counters.count_drop(DropReason::NoRoute);
                    self.group.release(frame);
                    return;
                };
                if frame.set_packet(start, len).is_err() {
                    self.counters.count_drop(DropReason::TooBig);
                    self.group.release(frame);
                    return;
                }
                self.counters
                    .tap(CapturePoint::WireOut, self.group.packet(&frame));
                match self.group.tx(out, frame) {
                    Ok(()) => WorkerCounters::add(&self.counters.tx, 1),
                    Err(TxError::Full) => self.counters.count_drop(DropReason::TxFull),
                    Err(TxError::TooBig { .. }) => self.counters.count_drop(DropReason::TooBig),
                }
            }
            Verdict::Park { resume, start, len } => {
                if self.parked.len() >= PARK_MAX || frame.set_packet(start, len).is_err() {
                    self.counters.count_drop(DropReason::NoNeighbour);
                    self.group.release(frame);
                } else {
                    self.parked.push_back(Parked {
                        frame,
                        resume,
                        since,
                    });
                }
            }
            Verdict::Handoff {
                owner,
                resume,
                start,
                len,
            } => {
                let bytes = self
                    .group
                    .buf(&frame)
                    .get(start..start + len)
                    .unwrap_or(&[]);
                match self.handoff.send(usize::from(owner), resume, start, bytes) {
                    Ok(()) => WorkerCounters::add(&self.counters.handed_off, 1),
                    Err(_) => self.counters.count_drop(DropReason::Handoff),
                }
                self.group.release(frame);
            }
            Verdict::Fragment { inside, start, len } => {
                self.fragment(pipeline, batch, &frame, inside, start..start + len, since);
                self.group.release(frame);
            }
            Verdict::FragmentOuter6 {
                ifindex,
                start,
                len,
                mtu,
            } => {
                self.fragment_outer6(pipeline, batch, &frame, ifindex, start..start + len, mtu);
                self.group.release(frame);
            }
            Verdict::Consumed => self.group.release(frame),
            Verdict::Drop(reason) => {
                self.counters.count_drop(reason);
                self.group.release(frame);
            }
        }
    }
}

impl Dispatch<'_> {
    /// Cuts the packet at `packet` of `frame` into fragments that fit the tunnel, each written
    /// into a frame of its own from the pool and sealed.
    fn fragment(
        &mut self,
        pipeline: &mut Pipeline,
        batch: &Batch<'_>,
        frame: &Frame,
        inside: std::net::Ipv4Addr,
        packet: std::ops::Range<usize>,
        since: Timestamp,
    ) {
        let plan = self
            .group
            .buf(frame)
            .get(packet.clone())
            .map(|p| pipeline.fragmenter(p));
        let Some(Ok(plan)) = plan else {
            self.counters.count_drop(DropReason::TooBig);
            return;
        };
        self.send_pieces(
            pipeline,
            batch,
            frame,
            packet,
            plan.count(),
            since,
            |p, original, i, buf| p.encrypt_fragment(batch, original, &plan, i, buf, inside),
        );
    }

    /// Sends the sealed frame at `sealed` of `frame` (to a peer's IPv6 endpoint, longer than
    /// the path MTU `mtu`) as IPv6 fragments, each in a frame of its own from the pool.
    fn fragment_outer6(
        &mut self,
        pipeline: &mut Pipeline,
        batch: &Batch<'_>,
        frame: &Frame,
        ifindex: u32,
        sealed: std::ops::Range<usize>,
        mtu: u32,
    ) {
        let plan = self
            .group
            .buf(frame)
            .get(sealed.clone())
            .map(|f| pipeline.outer_fragmenter6(f, mtu));
        let Some(Ok(plan)) = plan else {
            self.counters.count_drop(DropReason::TooBig);
            return;
        };
        let since = batch.now;
        self.send_pieces(
            pipeline,
            batch,
            frame,
            sealed,
            plan.count(),
            since,
            |p, original, i, buf| p.write_outer_fragment6(original, &plan, i, buf, ifindex),
        );
    }

    /// The one place a received frame turns into more than one to send: piece `i` of `count`
    /// is written by `write` from the bytes at `original` of `frame` into a frame of its own
    /// from the pool, and its verdict applied. Bounded by `count` (a frame holds at most a few
    /// fragments' worth) and by the pool: when no frame is free, the rest of the packet is
    /// dropped, counted once (`fragment_no_frame`).
    #[allow(clippy::too_many_arguments)]
    fn send_pieces(
        &mut self,
        pipeline: &mut Pipeline,
        batch: &Batch<'_>,
        frame: &Frame,
        original: std::ops::Range<usize>,
        count: usize,
        since: Timestamp,
        mut write: impl FnMut(&mut Pipeline, &[u8], usize, &mut [u8]) -> Verdict,
    ) {
        for i in 0..count {
            let Some(mut out) = self.group.alloc() else {
                self.counters.count_drop(DropReason::FragmentNoFrame);
                return;
            };
            let verdict = {
                // Two frames at once: the original (read) and the piece's (written).
                let original = &self.group.buf(frame)[original.clone()];
                let buf = self.group.buf_mut(&mut out);
                write(pipeline, original, i, buf)
            };
            self.apply(pipeline, batch, verdict, out, since);
        }
    }
}

impl Worker {
    /// Runs until the stop flag is set. Returns the group so that the caller can tear the
    /// sockets down in order.
    pub fn run(mut self) -> XskGroup {
        let counters = self.pipeline.counters().clone();
        let mut rx: Vec<Frame> = Vec::with_capacity(self.batch_size);
        let mut parked: VecDeque<Parked> = VecDeque::with_capacity(PARK_MAX);
        let sockets: Vec<u32> = (0..self.group.socket_count())
            .map(|s| self.group.socket_info(s).ifindex)
            .collect();
        let mut next_gauges = Timestamp::ZERO;
        let panic_at = test_panic_deadline(self.index);
        if self.handoff.has_lanes() {
            self.group.watch_fd(self.handoff.doorbell().fd());
        }
        if let Some(outer) = &self.outer {
            self.group.watch_fd(outer.wake_fd());
        }
        while !self.stop.load(Ordering::Relaxed) {
            let tables = self.tables.load();
            let routes = self.routes.snapshot();
            let batch = Batch {
                tables: &tables,
                routes: &routes,
                now: self.clock.now(),
            };
            let mut d = Dispatch {
                group: &mut self.group,
                counters: &counters,
                sockets: &sockets,
                parked: &mut parked,
                handoff: &self.handoff,
            };
            // Parked frames first: they are the oldest. Each is retried once per batch.
            for _ in 0..d.parked.len() {
                let Some(Parked {
                    mut frame,
                    resume,
                    since,
                }) = d.parked.pop_front()
                else {
                    break;
                };
                if batch.now.since(since) > PARK_TIMEOUT {
                    counters.count_drop(DropReason::NoNeighbour);
                    d.group.release(frame);
                    continue;
                }
                let (start, len) = (frame.start(), frame.len());
                let buf = d.group.buf_mut(&mut frame);
                let verdict = self.pipeline.resume(&batch, buf, resume, start, len);
                d.apply(&mut self.pipeline, &batch, verdict, frame, since);
            }
            // Then what other workers handed over: older than what the rings hold now.
            let handed_in = self.handoff.drain(self.batch_size, |p| {
                let (start, len) = (p.start, p.bytes().len());
                let Some(mut frame) = d.group.alloc() else {
                    counters.count_drop(DropReason::Handoff);
                    return;
                };
                if frame.set_packet(start, len).is_err() {
                    counters.count_drop(DropReason::TooBig);
                    d.group.release(frame);
                    return;
                }
                WorkerCounters::add(&counters.handed_in, 1);
                let buf = d.group.buf_mut(&mut frame);
                buf[start..start + len].copy_from_slice(p.bytes());
                let verdict = self.pipeline.resume(&batch, buf, p.resume, start, len);
                d.apply(&mut self.pipeline, &batch, verdict, frame, batch.now);
            });
            let mut received = 0;
            if let Some(outer) = &self.outer {
                let listen_port = self.pipeline.listen_port();
                for _ in 0..self.batch_size {
                    let Some(dgram) = outer.try_recv() else {
                        break;
                    };
                    received += 1;
                    let Some(mut frame) = d.group.alloc() else {
                        counters.count_drop(DropReason::TxFull);
                        continue;
                    };
                    let buf = d.group.buf_mut(&mut frame);
                    let Some(len) = write_frame(buf, RX_OFFSET, &dgram, listen_port) else {
                        counters.count_drop(DropReason::TooBig);
                        d.group.release(frame);
                        continue;
                    };
                    WorkerCounters::add(&counters.rx, 1);
                    let verdict = self.pipeline.process(&batch, buf, RX_OFFSET, len);
                    d.apply(&mut self.pipeline, &batch, verdict, frame, batch.now);
                }
            }
            for sock in 0..sockets.len() {
                let n = d.group.rx(sock, &mut rx, self.batch_size);
                received += n;
                WorkerCounters::add(&counters.rx, n as u64);
                for mut frame in rx.drain(..) {
                    let (start, len) = (frame.start(), frame.len());
                    let buf = d.group.buf_mut(&mut frame);
                    if let Some(p) = buf.get(start..start.saturating_add(len)) {
                        counters.tap(CapturePoint::WireIn, p);
                    }
                    let verdict = self.pipeline.process(&batch, buf, start, len);
                    d.apply(&mut self.pipeline, &batch, verdict, frame, batch.now);
                }
            }
            self.pipeline.end_batch(&batch);
            if let Err(e) = self.group.service() {
                warn!(error = %e, "AF_XDP ring service failed");
            }
            self.pipeline.expire(batch.now, EXPIRE_BUDGET);
            if batch.now >= next_gauges {
                next_gauges = batch.now + GAUGE_INTERVAL;
                self.publish_gauges(&counters);
                if panic_at.is_some_and(|t| std::time::Instant::now() >= t) {
                    panic!(
                        "worker {}: panic on purpose ({PANIC_AFTER_ENV})",
                        self.index
                    );
                }
            }
            drop(routes);
            drop(tables);
            if received == 0 && handed_in == 0 {
                // With frames parked, wake up soon to retry them; otherwise sleep until input
                // (or until another worker rings: `arm` is false if it handed us something
                // since the drain above).
                let timeout = if parked.is_empty() { IDLE_POLL_MS } else { 1 };
                if let Some(outer) = &self.outer {
                    // Only now: the descriptor stays readable (and poll returns at once) until
                    // cleared; a datagram queued after this wakes the poll below.
                    outer.clear_wakeups();
                }
                if !self.handoff.has_lanes() {
                    let _ = self.group.wait_readable(timeout);
                } else if self.handoff.arm() {
                    let _ = self.group.wait_readable(timeout);
                    self.handoff.doorbell().disarm();
                }
            }
        }
        self.publish_gauges(&counters);
        for p in parked.drain(..) {
            self.group.release(p.frame);
        }
        self.group
    }

    /// Publishes what is not a per-packet counter: NAT table size, the kernel's AF_XDP
    /// statistics (read with a syscall, hence not per batch) and the latency samples.
    fn publish_gauges(&mut self, counters: &WorkerCounters) {
        self.pipeline.publish_latency(&counters.latency);
        let entries = self.pipeline.nat().map_or(0, |n| n.len() as u64);
        counters.nat_entries.store(entries, Ordering::Relaxed);
        let untracked = self
            .pipeline
            .nat()
            .map_or(0, |n| n.counters().inbound_untracked);
        counters
            .nat_untracked_inbound
            .store(untracked, Ordering::Relaxed);
        if let Some(nat6) = self.pipeline.nat6() {
            let c = nat6.counters();
            counters
                .nat66_entries
                .store(nat6.len() as u64, Ordering::Relaxed);
            counters
                .nat66_outbound
                .store(c.translated_outbound, Ordering::Relaxed);
            counters
                .nat66_inbound
                .store(c.translated_inbound, Ordering::Relaxed);
        }
        let mut stats = [XskStats::default(); MAX_SOCKETS];
        let n = self.group.socket_count().min(MAX_SOCKETS);
        for (i, slot) in stats.iter_mut().enumerate().take(n) {
            *slot = self.group.stats(i).unwrap_or_default();
        }
        counters.xsk.publish(&stats[..n]);
    }
}
