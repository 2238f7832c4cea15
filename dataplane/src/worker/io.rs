//! The worker thread's loop: drain each socket's rx ring in a batch, run every frame through
//! the [`Pipeline`], queue the transmissions, then do the ring housekeeping once per batch.
//!
//! Snapshots (keys and peers, routes) and the clock are read once per batch, not per packet.
//! The loop sleeps in `poll` only when a whole pass found nothing to do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use slowpath::queue::Clock;
use slowpath::tables::SharedTables;
use tracing::warn;

use super::pipeline::{Batch, Pipeline, Verdict};
use crate::afxdp::{Frame, TxError, XskGroup};
use crate::counters::{DropReason, WorkerCounters};
use crate::route::NextHopReader;

/// NAT mappings expired per batch at most: bounded work, so expiry never stalls the path.
const EXPIRE_BUDGET: usize = 64;
/// How long an idle worker sleeps in `poll` before checking the stop flag again.
const IDLE_POLL_MS: i32 = 10;

/// One worker: its sockets, its pipeline and what it reads.
pub struct Worker {
    pub group: XskGroup,
    pub pipeline: Pipeline,
    pub tables: SharedTables,
    pub routes: NextHopReader,
    pub clock: Clock,
    pub stop: Arc<AtomicBool>,
    pub batch_size: usize,
}

impl Worker {
    /// Runs until the stop flag is set. Returns the group so that the caller can tear the
    /// sockets down in order.
    pub fn run(mut self) -> XskGroup {
        let counters = self.pipeline.counters().clone();
        let mut rx: Vec<Frame> = Vec::with_capacity(self.batch_size);
        // ifindex -> socket of this group, looked up per transmitted frame.
        let sockets: Vec<u32> = (0..self.group.socket_count())
            .map(|s| self.group.socket_info(s).ifindex)
            .collect();
        while !self.stop.load(Ordering::Relaxed) {
            let tables = self.tables.load();
            let routes = self.routes.snapshot();
            let batch = Batch {
                tables: &tables,
                routes: &routes,
                now: self.clock.now(),
            };
            let mut received = 0;
            for sock in 0..sockets.len() {
                let n = self.group.rx(sock, &mut rx, self.batch_size);
                received += n;
                WorkerCounters::add(&counters.rx, n as u64);
                for mut frame in rx.drain(..) {
                    let (start, len) = (frame.start(), frame.len());
                    let buf = self.group.buf_mut(&mut frame);
                    match self.pipeline.process(&batch, buf, start, len) {
                        Verdict::Tx {
                            ifindex,
                            start,
                            len,
                        } => {
                            let Some(out) = sockets.iter().position(|&i| i == ifindex) else {
                                // Routed out of an interface this gateway is not attached to.
                                counters.count_drop(DropReason::NoRoute);
                                self.group.release(frame);
                                continue;
                            };
                            if frame.set_packet(start, len).is_err() {
                                counters.count_drop(DropReason::TooBig);
                                self.group.release(frame);
                                continue;
                            }
                            match self.group.tx(out, frame) {
                                Ok(()) => WorkerCounters::add(&counters.tx, 1),
                                Err(TxError::Full) => counters.count_drop(DropReason::TxFull),
                                Err(TxError::TooBig { .. }) => {
                                    counters.count_drop(DropReason::TooBig)
                                }
                            }
                        }
                        Verdict::Consumed => self.group.release(frame),
                        Verdict::Drop(reason) => {
                            counters.count_drop(reason);
                            self.group.release(frame);
                        }
                    }
                }
            }
            if let Err(e) = self.group.service() {
                warn!(error = %e, "AF_XDP ring service failed");
            }
            self.pipeline.expire(batch.now, EXPIRE_BUDGET);
            drop(routes);
            drop(tables);
            if received == 0 {
                let _ = self.group.wait_readable(IDLE_POLL_MS);
            }
        }
        self.group
    }
}
