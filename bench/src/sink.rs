//! The sink behind the gateway, in the lab's server namespace (its UDP path;
//! [`crate::sink_xdp`] is its AF_XDP path and shares [`SinkState`] and [`blast_probes`]): a UDP
//! socket that receives the generator's packets after the gateway decrypted and source-NATed
//! them, checks every probe ([`crate::probe::Arrivals`]: checksum, sequence, duplicates,
//! reorder) and timestamps it against the generator's [`SendTimes`] for one-way latency.
//!
//! It remembers the NAT-mapped source it last saw (the gateway's LAN address and the port the
//! gateway picked); [`Sink::blast`] sends probes back to exactly that address from the same
//! socket, so the gateway's connection tracking matches them, un-NATs them and encrypts them
//! for the generator: the reverse direction.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cpu_split::CpuSnapshot;
use crate::loadgen::Sent;
use crate::pacing::Pacer;
use crate::packets::SizeMix;
use crate::probe::{write_probe, Arrivals, SendTimes, INNER_IP_UDP, MIN_PROBE_PACKET};
use crate::udp_batch::{monotonic_ns, recv_batch, send_batch, socket_in, RecvBatch};

/// What a sink's receiving thread shares with the rig (both sinks: this UDP one and
/// [`crate::sink_xdp::XdpSink`]).
pub(crate) struct SinkState {
    arrivals: Mutex<Arrivals>,
    /// The last source seen: the gateway's NAT mapping of the generator's flow.
    last_source: Mutex<Option<SocketAddr>>,
    times: Mutex<Option<Arc<SendTimes>>>,
    pub(crate) stop: AtomicBool,
}

impl SinkState {
    pub(crate) fn new() -> Arc<SinkState> {
        Arc::new(SinkState {
            arrivals: Mutex::new(Arrivals::new(0, 0)),
            last_source: Mutex::new(None),
            times: Mutex::new(None),
            stop: AtomicBool::new(false),
        })
    }

    /// See [`Sink::expect`].
    pub(crate) fn expect(
        &self,
        first: u64,
        capacity: u64,
        times: Option<Arc<SendTimes>>,
    ) -> Arrivals {
        *lock(&self.times) = times;
        std::mem::replace(&mut *lock(&self.arrivals), Arrivals::new(first, capacity))
    }

    pub(crate) fn tally(&self) -> crate::probe::Tally {
        lock(&self.arrivals).tally()
    }

    pub(crate) fn last_source(&self) -> Option<SocketAddr> {
        *lock(&self.last_source)
    }

    /// Tallies one received batch: `each` gets a recorder that checks one probe payload (the
    /// UDP payload) received at `t` ns, and returns its result and the source of the batch's
    /// last datagram. The tally is locked at the first probe, not while `each` waits for one.
    pub(crate) fn record_batch<R>(
        &self,
        each: impl FnOnce(&mut dyn FnMut(u64, &[u8])) -> (R, Option<SocketAddr>),
    ) -> R {
        let times = lock(&self.times).clone();
        let mut arrivals = None;
        let (result, source) = each(&mut |t, payload: &[u8]| {
            let arrivals = arrivals.get_or_insert_with(|| lock(&self.arrivals));
            let on_wire = payload.len() + INNER_IP_UDP;
            arrivals.record(payload, on_wire, t, |p| match &times {
                Some(tt) => tt.get(p.seq),
                None => Some(p.stamp_ns),
            });
        });
        drop(arrivals);
        if source.is_some() {
            *lock(&self.last_source) = source;
        }
        result
    }
}

/// A running sink. Dropping it stops and joins its thread.
pub struct Sink {
    socket: UdpSocket,
    shared: Arc<SinkState>,
    thread: Option<JoinHandle<Result<()>>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sink {
    /// Binds `bind` in namespace `netns` and starts receiving.
    pub fn start(netns: &str, bind: SocketAddrV4) -> Result<Sink> {
        Self::on_socket(socket_in(netns, bind)?)
    }

    /// Starts receiving on a socket the caller opened (in whatever namespace it belongs to).
    pub fn on_socket(socket: UdpSocket) -> Result<Sink> {
        // The receive loop checks its stop flag between timeouts.
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let shared = SinkState::new();
        let rx = socket.try_clone()?;
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("bench-sink".into())
            .spawn(move || receive_loop(&rx, &sh))
            .context("spawn the sink thread")?;
        Ok(Sink {
            socket,
            shared,
            thread: Some(thread),
        })
    }

    /// Starts a new tally for sequence numbers `first..first + capacity`, with send times from
    /// `times`; returns the previous tally.
    pub fn expect(&self, first: u64, capacity: u64, times: Option<Arc<SendTimes>>) -> Arrivals {
        self.shared.expect(first, capacity, times)
    }

    /// The current tally so far (a copy of the counts).
    pub fn tally(&self) -> crate::probe::Tally {
        self.shared.tally()
    }

    /// The address the sink receives on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    /// The NAT-mapped source of the generator's flow as the sink saw it.
    pub fn last_source(&self) -> Option<SocketAddr> {
        self.shared.last_source()
    }

    /// Sends probes `first_seq..` of sizes `mix` (inner IPv4 size; the UDP payload is that minus
    /// 28) to `dst` at `rate_pps` (or as fast as possible) for `duration`, stamping each with
    /// its send time.
    pub fn blast(
        &self,
        dst: SocketAddrV4,
        mix: SizeMix,
        rate_pps: Option<f64>,
        duration: Duration,
        first_seq: u64,
    ) -> Sent {
        blast_probes(mix, rate_pps, duration, first_seq, |probes| {
            send_batch(&self.socket, Some(dst), probes)
        })
    }
}

/// Probes per send call.
pub(crate) const BLAST_BATCH: usize = 32;

/// The reverse direction's sending loop, shared by both sinks: probes `first_seq..` of sizes
/// `mix` (inner IPv4 size; the probe, the UDP payload, is that minus 28) at `rate_pps` (or as
/// fast as `send` takes them) for `duration`, each stamped with its send time. `send` gets up
/// to [`BLAST_BATCH`] probes and returns how many it sent; 0 refuses the whole batch.
pub(crate) fn blast_probes(
    mix: SizeMix,
    rate_pps: Option<f64>,
    duration: Duration,
    first_seq: u64,
    mut send: impl FnMut(&[&[u8]]) -> usize,
) -> Sent {
    let mut bufs = vec![vec![0u8; 1500]; BLAST_BATCH];
    let cpu_before = rate_pps.is_none().then(CpuSnapshot::take);
    let start = monotonic_ns();
    let end = start + duration.as_nanos() as u64;
    let pacer = Pacer::new(start, rate_pps, BLAST_BATCH);
    let (mut sent, mut seq) = (0u64, first_seq);
    let mut out = Sent::default();
    loop {
        let t = monotonic_ns();
        if t >= end {
            break;
        }
        let n = pacer.due(t, sent);
        if n == 0 {
            if let Some(at) = pacer.next_batch_at(sent) {
                let wait = at.min(end).saturating_sub(monotonic_ns());
                std::thread::sleep(Duration::from_nanos(wait));
            }
            continue;
        }
        let mut lens = [0usize; BLAST_BATCH];
        for (k, len) in lens.iter_mut().enumerate().take(n) {
            let size = mix.size((seq + k as u64) as usize).max(MIN_PROBE_PACKET);
            *len = size - INNER_IP_UDP;
            write_probe(&mut bufs[k][..*len], seq + k as u64, monotonic_ns());
        }
        let slices: Vec<&[u8]> = (0..n).map(|k| &bufs[k][..lens[k]]).collect();
        let took = send(&slices);
        // A refused batch is skipped (counted sent, so the receiver counts it lost).
        let took = if took == 0 {
            out.refused += n as u64;
            n
        } else {
            took
        };
        out.inner_bytes += lens[..took]
            .iter()
            .map(|l| (l + INNER_IP_UDP) as u64)
            .sum::<u64>();
        sent += took as u64;
        seq += took as u64;
    }
    let elapsed = monotonic_ns() - start;
    out.packets = sent;
    out.elapsed = Duration::from_nanos(elapsed);
    out.sender_limited = pacer.fell_behind(sent, elapsed);
    out.cpu = cpu_before.map(|b| b.split(&CpuSnapshot::take(), out.elapsed));
    out
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn receive_loop(socket: &UdpSocket, shared: &SinkState) -> Result<()> {
    let mut batch = RecvBatch::new(64, 2048);
    while !shared.stop.load(Ordering::Relaxed) {
        let n = recv_batch(socket, &mut batch)?;
        if n == 0 {
            continue;
        }
        let t = monotonic_ns();
        shared.record_batch(|record| {
            for i in 0..n {
                record(t, batch.get_mut(i));
            }
            ((), Some(batch.source(n - 1)))
        });
    }
    Ok(())
}
