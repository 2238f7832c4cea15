//! The pipeline benchmark without I/O: real WireGuard frames in UMEM-like frame buffers run
//! through [`Pipeline::process`] on one core (decrypt, replay check, AllowedIPs, NAT, header
//! rewrite; and return traffic through NAT reverse, AllowedIPs and encrypt), next to the raw
//! ChaCha20-Poly1305 cost of the same bytes measured in the same run: the limit. Every
//! implementation in [`RawImpl`] is measured and the fastest is the limit, so the ratio cannot
//! flatter the pipeline by comparing it with a slow cipher.
//!
//! Honest timing with a replay window: every transport message is accepted once, so a [`Lane`]
//! holds a pool of frames, seals them all with fresh counters *outside* the timed region, then
//! times one pass of the pipeline over the pool, and repeats. No copy is inside the timed
//! region: each frame is processed in place exactly once per preparation, as a worker
//! processes a frame the NIC wrote. What the worker's AF_XDP edge does to every packet it
//! transmits is timed with it ([`Step::TxMove`]): a check that it can be sent where it is, no
//! move since the edge's descriptors name the packet's start. The reverse direction is
//! prepared the same way (the return
//! packet written into the frame untimed, NAT reverse + seal timed).
//!
//! Times are the thread's on-CPU time ([`CpuStopwatch`]), not wall-clock time: on a shared
//! machine a preempted thread would otherwise be charged for other processes' work. Packets per
//! second are therefore per on-CPU second of one core.

use std::hint::black_box;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use fastpath::frame::sendable_in_place;
use fastpath::pipeline::{Pipeline, Verdict};
use fastpath::stage_cycles::Step;
use wgproto::keypair::padding_len;

use crate::fixture::{
    server_macs, Client, Fixture, Inside, MTU, SERVER_ADDR, SERVER_ADDR6, SERVER_PORT,
};
use crate::packets::{inner_udp, plain_frame, seal_frame, SizeMix, FRAME_SIZE, HEADROOM};

/// Distinct UDP flows per lane (each a NAT mapping).
pub const FLOWS: usize = 64;
/// First inside source port of a lane's flows.
pub const FIRST_FLOW_PORT: u16 = 40000;
/// Frames per batch, as the worker's default `batch_size`: the pipeline's end-of-batch work
/// (per-peer counters, replay-window locks) runs this often, as in the worker.
const WORKER_BATCH: usize = 64; // gwconf::schema::defaults::BATCH_SIZE (not a dependency)

/// On-CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID): the machine is shared, and
/// time the thread spends preempted must not count as packet processing.
pub struct CpuStopwatch(Duration);

impl CpuStopwatch {
    pub fn now() -> Duration {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
            .map(Duration::from)
            .unwrap_or_default()
    }

    pub fn start() -> Self {
        CpuStopwatch(Self::now())
    }

    pub fn elapsed(&self) -> Duration {
        Self::now().saturating_sub(self.0)
    }
}

/// A number of packets processed in an amount of on-CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rate {
    pub packets: u64,
    pub elapsed: Duration,
}

impl Rate {
    pub fn ns_per_packet(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.packets.max(1) as f64
    }

    pub fn pps(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }

    /// Bit rate of packets of `mean_bytes`.
    pub fn gbps(&self, mean_bytes: f64) -> f64 {
        self.pps() * mean_bytes * 8.0 / 1e9
    }
}

/// Which way a lane's frames go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client -> gateway (WireGuard in) -> server: decrypt, source check, NAT, rewrite.
    Forward,
    /// Server -> gateway (NAT return traffic) -> client: NAT reverse, encrypt.
    Reverse,
}

impl Direction {
    /// The pipeline steps a packet of this direction passes, in order.
    pub fn steps(self) -> &'static [Step] {
        match self {
            Direction::Forward => &[
                Step::Parse,
                Step::Decrypt,
                Step::PeerState,
                Step::AllowedIps,
                Step::Route,
                Step::Nat,
                Step::TxHeader,
                Step::TxMove,
            ],
            Direction::Reverse => &[
                Step::Parse,
                Step::NatReverse,
                Step::PeerLookup,
                Step::Seal,
                Step::OuterHeaders,
                Step::TxMove,
            ],
        }
    }
}

/// Rounds of the per-step measurement: every stop point once per round, the fastest round of
/// each kept (the least disturbed by other load).
pub const STEP_ROUNDS: usize = 3;

/// Where one direction's time goes (see [`fastpath::stage_cycles`]): for each step, the
/// fastest pass with every frame stopped right after it, in ns per packet. The last step's is
/// the whole pipeline.
#[derive(Clone, Debug)]
pub struct StageBreakdown {
    pub cumulative: Vec<(Step, f64)>,
    /// The clock rate /proc/cpuinfo gives (`cpu MHz`), in GHz: cycles = ns x this.
    pub ghz: Option<f64>,
}

impl StageBreakdown {
    /// Each step's own cost: the difference from the step before (0 for a negative one,
    /// which is noise).
    pub fn steps(&self) -> Vec<(Step, f64)> {
        let mut before = 0.0;
        self.cumulative
            .iter()
            .map(|&(s, ns)| {
                let own = (ns - before).max(0.0);
                before = ns;
                (s, own)
            })
            .collect()
    }

    pub fn total_ns(&self) -> f64 {
        self.cumulative.last().map_or(0.0, |(_, ns)| *ns)
    }
}

/// One worker's frames for one client and one size mix.
pub struct Lane {
    fixture: Arc<Fixture>,
    client: usize,
    pipeline: Pipeline,
    mix: SizeMix,
    pool: Vec<u8>,
    lens: Vec<usize>,
    /// Frames end early ([`Pipeline::stop_after`]): `Consumed` is what they come out as.
    stopping: bool,
    /// Where each transmitted packet is in its frame after the last run.
    out: Vec<(usize, usize)>,
    /// Inner packets of the forward direction, one per pool slot.
    forward: Vec<Vec<u8>>,
    /// Return packets (server -> NAT external endpoint), one per pool slot.
    reverse: Vec<Vec<u8>>,
    /// Frames that did not come out as `Verdict::Tx`, and the first such verdict.
    pub not_sent: u64,
    pub first_failure: Option<Verdict>,
}

impl Lane {
    /// A lane of `pool` frames for `fixture.clients[client]` on that client's worker. Runs one
    /// untimed forward pass so the NAT mappings exist, then builds the return packets to them.
    pub fn new(fixture: Arc<Fixture>, client: usize, mix: SizeMix, pool: usize) -> Result<Lane> {
        let c = fixture.clients.get(client).context("no such client")?;
        let pipeline = fixture.pipeline(c.worker)?;
        let pool = pool.max(1);
        let inside = fixture.inside;
        let forward = (0..pool)
            .map(|i| {
                inner_udp(
                    flow_src(c, inside, i),
                    server(inside),
                    mix.size(i),
                    i as u64,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mut lane = Lane {
            client,
            pipeline,
            mix,
            pool: vec![0u8; pool * FRAME_SIZE],
            lens: vec![0; pool],
            out: vec![(0, 0); pool],
            stopping: false,
            forward,
            reverse: Vec::new(),
            not_sent: 0,
            first_failure: None,
            fixture,
        };
        lane.prepare(Direction::Forward)?;
        lane.run(Direction::Forward, pool);
        lane.check()?;
        let c = &lane.fixture.clients[client];
        let mut reverse = Vec::with_capacity(pool);
        for i in 0..pool {
            let from = flow_src(c, inside, i);
            let external: SocketAddr = match (inside, from) {
                (Inside::Ipv4, SocketAddr::V4(from)) => {
                    let nat = lane.pipeline.nat().context("the pipeline has no NAT")?;
                    nat.lookup_inside(nat::Protocol::Udp, from)
                        .with_context(|| format!("no NAT mapping for {from}"))?
                        .external
                        .into()
                }
                (Inside::Ipv6Nat66, SocketAddr::V6(from)) => {
                    let nat = lane.pipeline.nat6().context("the pipeline has no NAT66")?;
                    nat.lookup_inside(nat::Protocol::Udp, from)
                        .with_context(|| format!("no NAT66 mapping for {from}"))?
                        .external
                        .into()
                }
                // Routed IPv6 comes back through the gateway's kernel and wg0, not a worker.
                _ => break,
            };
            reverse.push(inner_udp(server(inside), external, mix.size(i), i as u64)?);
        }
        lane.reverse = reverse;
        Ok(lane)
    }

    pub fn mix(&self) -> SizeMix {
        self.mix
    }

    pub fn pool_len(&self) -> usize {
        self.lens.len()
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Ends every frame after `step` from now on (`None`: the whole pipeline again).
    pub fn stop_after(&mut self, step: Option<Step>) {
        self.stopping = step.is_some();
        self.pipeline.stop_after(step);
    }

    /// The packet frame `i` was transmitted as in the last run.
    pub fn transmitted(&self, i: usize) -> &[u8] {
        let (start, len) = self.out[i];
        &self.pool[i * FRAME_SIZE..(i + 1) * FRAME_SIZE][start..start + len]
    }

    /// The inner packet slot `i` carries forward, and the return packet it gets back.
    pub fn packets(&self, i: usize) -> (&[u8], Option<&[u8]>) {
        (&self.forward[i], self.reverse.get(i).map(Vec::as_slice))
    }

    /// The client this lane sends as.
    pub fn client(&self) -> &crate::fixture::Client {
        &self.fixture.clients[self.client]
    }

    /// Writes every frame for `dir` (untimed): fresh seals for the forward direction, the
    /// return packets for the reverse one.
    pub fn prepare(&mut self, dir: Direction) -> Result<()> {
        if dir == Direction::Reverse && self.reverse.is_empty() {
            bail!("no return traffic through the pipeline: routed IPv6 takes the kernel's path");
        }
        let c = &self.fixture.clients[self.client];
        for (i, frame) in self.pool.chunks_exact_mut(FRAME_SIZE).enumerate() {
            self.lens[i] = match dir {
                Direction::Forward => seal_frame(
                    frame,
                    &c.keypair,
                    self.fixture.now,
                    MTU,
                    c.wire_to_gateway(),
                    &self.forward[i],
                )?,
                Direction::Reverse => plain_frame(frame, server_macs(), &self.reverse[i])?,
            };
        }
        Ok(())
    }

    /// Runs the first `n` prepared frames through the pipeline (the timed part). Returns the
    /// verdict of the last one.
    pub fn run(&mut self, _dir: Direction, n: usize) -> Option<Verdict> {
        let batch = self.fixture.batch();
        let mut last = None;
        for (i, frame) in self.pool.chunks_exact_mut(FRAME_SIZE).take(n).enumerate() {
            let v = self.pipeline.process(&batch, frame, HEADROOM, self.lens[i]);
            if (i + 1) % WORKER_BATCH == 0 {
                self.pipeline.end_batch(&batch);
            }
            if let Verdict::Tx { start, len, .. } = v {
                // What the worker's AF_XDP edge does before it queues the frame (timed: it is
                // part of what a packet costs): it is sent from where it is, nothing moves.
                if !sendable_in_place(start, len) || start + len > frame.len() {
                    self.not_sent += 1;
                    self.first_failure.get_or_insert(v);
                    continue;
                }
                // Where the packet is sent from: tests read the frame back.
                self.out[i] = (start, len);
            } else if !(self.stopping && v == Verdict::Consumed) {
                self.not_sent += 1;
                self.first_failure.get_or_insert(v);
            }
            last = Some(black_box(v));
        }
        self.pipeline.end_batch(&batch);
        last
    }

    /// Fails if any frame so far was not transmitted.
    pub fn check(&self) -> Result<()> {
        if self.not_sent > 0 {
            bail!(
                "{} packets were not transmitted by the pipeline; first verdict {:?}",
                self.not_sent,
                self.first_failure
            );
        }
        Ok(())
    }

    /// Time spent processing `packets` packets in `dir`, preparing untimed between passes.
    pub fn time(&mut self, dir: Direction, packets: u64) -> Result<Duration> {
        let mut left = packets;
        let mut spent = Duration::ZERO;
        while left > 0 {
            let n = left.min(self.pool_len() as u64) as usize;
            self.prepare(dir)?;
            let t = CpuStopwatch::start();
            self.run(dir, n);
            spent += t.elapsed();
            left -= n as u64;
        }
        Ok(spent)
    }
}

/// The inside source endpoint of pool slot `i`, of the family the client sends inside.
fn flow_src(c: &Client, inside: Inside, i: usize) -> SocketAddr {
    let port = FIRST_FLOW_PORT + (i % FLOWS) as u16;
    if inside.is_ipv6() {
        SocketAddrV6::new(c.tunnel_addr6, port, 0, 0).into()
    } else {
        SocketAddrV4::new(c.tunnel_addr, port).into()
    }
}

/// The server endpoint the flows go to, of the family the clients send inside.
fn server(inside: Inside) -> SocketAddr {
    if inside.is_ipv6() {
        SocketAddrV6::new(SERVER_ADDR6, SERVER_PORT, 0, 0).into()
    } else {
        SocketAddrV4::new(SERVER_ADDR, SERVER_PORT).into()
    }
}

/// A ChaCha20-Poly1305 implementation the raw reference can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawImpl {
    /// The `chacha20poly1305` crate (RustCrypto), key schedule held.
    RustCrypto,
    /// `ring`, through `wgproto::crypto` exactly as the data path calls it (key built per call).
    Ring,
}

impl RawImpl {
    pub const ALL: [RawImpl; 2] = [RawImpl::RustCrypto, RawImpl::Ring];

    pub fn label(self) -> &'static str {
        match self {
            RawImpl::RustCrypto => "RustCrypto chacha20poly1305",
            RawImpl::Ring => "ring",
        }
    }
}

/// How this binary was compiled, which decides which SIMD paths the ciphers can take: ring
/// picks AVX2 at run time, RustCrypto's Poly1305 only inlines its AVX2 code when the target
/// enables it at compile time.
pub fn build_flags() -> String {
    format!(
        "profile {}, target-cpu {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if cfg!(target_feature = "avx2") {
            "with AVX2 enabled at compile time"
        } else {
            "default (no compile-time AVX2)"
        }
    )
}

/// Raw ChaCha20-Poly1305 over exactly the bytes the pipeline encrypts or decrypts for the
/// same packets (inner packet plus WireGuard padding; the 16-byte tag computed or checked).
pub struct RawAead {
    imp: RawImpl,
    cipher: ChaCha20Poly1305,
    key: [u8; 32],
    bodies: Vec<Vec<u8>>,
    tags: Vec<[u8; 16]>,
    counter: u64,
}

impl RawAead {
    /// The reference on the implementation the data path uses.
    pub fn new(mix: SizeMix, pool: usize) -> RawAead {
        Self::with(RawImpl::Ring, mix, pool)
    }

    pub fn with(imp: RawImpl, mix: SizeMix, pool: usize) -> RawAead {
        let bodies = (0..pool.max(1))
            .map(|i| {
                let n = mix.size(i);
                vec![0x5a; n + padding_len(n, MTU)]
            })
            .collect::<Vec<_>>();
        let key = [0x42; 32];
        RawAead {
            imp,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            key,
            tags: vec![[0; 16]; bodies.len()],
            bodies,
            counter: 0,
        }
    }

    fn nonce(counter: u64) -> Nonce {
        wgproto::crypto::counter_nonce(counter).into()
    }

    fn seal_range(&mut self, n: usize) -> Result<()> {
        let first = self.counter;
        for (i, body) in self.bodies.iter_mut().take(n).enumerate() {
            let counter = first + i as u64;
            self.tags[i] = match self.imp {
                RawImpl::RustCrypto => self
                    .cipher
                    .encrypt_in_place_detached(&Self::nonce(counter), &[], body)
                    .map_err(|_| anyhow::anyhow!("raw seal failed"))?
                    .into(),
                RawImpl::Ring => wgproto::crypto::aead_seal_in_place(&self.key, counter, &[], body),
            };
        }
        Ok(())
    }

    /// Time to seal `packets` packets.
    pub fn time_seal(&mut self, packets: u64) -> Result<Duration> {
        let mut left = packets;
        let mut spent = Duration::ZERO;
        while left > 0 {
            let n = left.min(self.bodies.len() as u64) as usize;
            let t = CpuStopwatch::start();
            self.seal_range(n)?;
            spent += t.elapsed();
            self.counter += n as u64;
            left -= n as u64;
        }
        Ok(spent)
    }

    /// Time to authenticate and decrypt `packets` packets (sealed untimed before each pass).
    pub fn time_open(&mut self, packets: u64) -> Result<Duration> {
        let mut left = packets;
        let mut spent = Duration::ZERO;
        while left > 0 {
            let n = left.min(self.bodies.len() as u64) as usize;
            self.seal_range(n)?;
            let first = self.counter;
            let t = CpuStopwatch::start();
            for (i, body) in self.bodies.iter_mut().take(n).enumerate() {
                let counter = first + i as u64;
                let ok = match self.imp {
                    RawImpl::RustCrypto => self
                        .cipher
                        .decrypt_in_place_detached(
                            &Self::nonce(counter),
                            &[],
                            body,
                            Tag::from_slice(&self.tags[i]),
                        )
                        .is_ok(),
                    RawImpl::Ring => wgproto::crypto::aead_open_in_place(
                        &self.key,
                        counter,
                        &[],
                        body,
                        &self.tags[i],
                    )
                    .is_ok(),
                };
                if !ok {
                    bail!("raw open failed");
                }
            }
            spent += t.elapsed();
            self.counter += n as u64;
            left -= n as u64;
        }
        Ok(spent)
    }
}

/// One implementation's raw figures for one size mix.
#[derive(Clone, Debug)]
pub struct RawCandidate {
    pub imp: RawImpl,
    pub open: Rate,
    pub seal: Rate,
}

/// Timed windows behind every headline figure (pipeline and raw cipher alike); the median is
/// the figure.
const WINDOWS: u32 = 3;

/// A figure: `f(packets) -> time` run untimed for a quarter of `budget` (warm-up), then
/// [`WINDOWS`] windows of `budget / WINDOWS` of timed work each, in chunks of `chunk` packets;
/// the median window. One window right after a one-chunk warm-up was the figure until
/// 2026-12-03: the first window of a run came out 8-12 % slower than the next ones at 1420 B,
/// and single windows of one lane spread from 928 to 1083 ns per packet on this VM
/// (`bench/results/windows-2026-12-03/`).
fn measure(
    chunk: u64,
    budget: Duration,
    mut f: impl FnMut(u64) -> Result<Duration>,
) -> Result<Rate> {
    let mut warm = Duration::ZERO;
    while warm < budget / 4 {
        warm += f(chunk)?; // caches, branch predictors, NAT and replay state
    }
    let mut windows = Vec::with_capacity(WINDOWS as usize);
    for _ in 0..WINDOWS {
        windows.push(window(chunk, budget / WINDOWS, &mut f)?);
    }
    windows.sort_by(|a, b| a.ns_per_packet().total_cmp(&b.ns_per_packet()));
    Ok(windows[windows.len() / 2])
}

/// One window of at least `budget` of timed work after a one-chunk warm-up: the per-step
/// table's unit, which keeps the fastest of its rounds instead.
fn measure_once(
    chunk: u64,
    budget: Duration,
    mut f: impl FnMut(u64) -> Result<Duration>,
) -> Result<Rate> {
    f(chunk)?; // warm-up: caches, branch predictors, NAT and replay state
    window(chunk, budget, &mut f)
}

/// Chunks of `chunk` packets until `budget` of timed work is done.
fn window(
    chunk: u64,
    budget: Duration,
    f: &mut impl FnMut(u64) -> Result<Duration>,
) -> Result<Rate> {
    let mut rate = Rate::default();
    while rate.elapsed < budget {
        rate.elapsed += f(chunk)?;
        rate.packets += chunk;
    }
    Ok(rate)
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub mixes: Vec<SizeMix>,
    /// Frames per lane (a small UMEM).
    pub pool: usize,
    /// Timed work per measurement.
    pub budget: Duration,
    /// Also run two workers on two threads.
    pub two_workers: bool,
}

impl PipelineOptions {
    pub fn quick() -> Self {
        PipelineOptions {
            mixes: crate::packets::STANDARD_MIXES.to_vec(),
            pool: 512,
            budget: Duration::from_millis(400),
            two_workers: true,
        }
    }

    pub fn full() -> Self {
        PipelineOptions {
            budget: Duration::from_secs(3),
            ..Self::quick()
        }
    }
}

/// The figures of one size mix.
#[derive(Clone, Debug)]
pub struct PipelinePoint {
    pub mix: SizeMix,
    pub forward: Rate,
    pub reverse: Rate,
    /// Raw AEAD open of the forward direction's bytes, seal of the reverse direction's: the
    /// fastest of `raw_candidates` for each (the ratios' denominators).
    pub raw_open: Rate,
    pub raw_seal: Rate,
    /// Every implementation measured, in [`RawImpl::ALL`] order.
    pub raw_candidates: Vec<RawCandidate>,
    /// Per-step cost of each direction (a separate measurement, see [`StageBreakdown`]).
    pub forward_stages: Option<StageBreakdown>,
    pub reverse_stages: Option<StageBreakdown>,
    /// Aggregates of two workers on two threads (sum of both workers' packet rates).
    pub forward_2w: Option<f64>,
    pub reverse_2w: Option<f64>,
    /// Forward and reverse of one worker with the client on an IPv6 underlay (outer IPv6 in,
    /// outer IPv6 with its UDP checksum out), for the sizes of [`UNDERLAY6_SIZES`].
    pub underlay6: Option<(Rate, Rate)>,
    /// IPv6 inside that IPv6 underlay, one worker, for the same sizes.
    pub inside6: Option<Inside6Rates>,
}

/// The fixed sizes the IPv6-underlay rows (IPv4 and IPv6 inside) are measured for.
pub const UNDERLAY6_SIZES: [usize; 2] = [64, 1420];

/// One worker's rates with IPv6 inside an IPv6 underlay.
#[derive(Clone, Copy, Debug)]
pub struct Inside6Rates {
    /// Routed (no NAT): decrypt, source check, route, hop limit, Ethernet. The return traffic
    /// of a routed prefix goes through the gateway's kernel and wg0, not through a worker.
    pub routed_forward: Rate,
    /// Through the IPv6 NAT (`masquerade_ipv6`): the routed steps plus the translation.
    pub nat66_forward: Rate,
    /// NAT66 return traffic: reverse translation, hop limit, AllowedIPs, seal, outer IPv6.
    pub nat66_reverse: Rate,
}

impl PipelinePoint {
    /// Pipeline time per packet over raw AEAD time per packet (>= 1; 1 is the limit).
    pub fn forward_ratio(&self) -> f64 {
        self.forward.ns_per_packet() / self.raw_open.ns_per_packet()
    }

    pub fn reverse_ratio(&self) -> f64 {
        self.reverse.ns_per_packet() / self.raw_seal.ns_per_packet()
    }
}

/// One worker, one direction: the rate over `budget`.
pub fn measure_lane(
    fixture: &Arc<Fixture>,
    client: usize,
    mix: SizeMix,
    dir: Direction,
    opts: &PipelineOptions,
) -> Result<Rate> {
    let mut lane = Lane::new(fixture.clone(), client, mix, opts.pool)?;
    let chunk = opts.pool as u64;
    let rate = measure(chunk, opts.budget, |n| lane.time(dir, n))?;
    lane.check()?;
    Ok(rate)
}

/// One worker, one direction, stopped after each step in turn ([`STEP_ROUNDS`] rounds, each
/// stop point measured for a third of the budget).
pub fn measure_stages(
    fixture: &Arc<Fixture>,
    client: usize,
    mix: SizeMix,
    dir: Direction,
    opts: &PipelineOptions,
) -> Result<StageBreakdown> {
    let mut lane = Lane::new(fixture.clone(), client, mix, opts.pool)?;
    let chunk = opts.pool as u64;
    let steps = dir.steps();
    let mut best = vec![f64::INFINITY; steps.len()];
    for _ in 0..STEP_ROUNDS {
        for (i, &step) in steps.iter().enumerate() {
            let last = i + 1 == steps.len();
            lane.stop_after((!last).then_some(step));
            let rate = measure_once(chunk, opts.budget / 3, |n| lane.time(dir, n))?;
            best[i] = best[i].min(rate.ns_per_packet());
        }
    }
    lane.check()?;
    Ok(StageBreakdown {
        cumulative: steps.iter().copied().zip(best).collect(),
        ghz: cpu_ghz(),
    })
}

/// The first `cpu MHz` of /proc/cpuinfo, in GHz (the nominal rate on a VM).
fn cpu_ghz() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    Some(mhz / 1000.0)
}

/// Two workers on two threads over the same tables (each with its own client, as RSS spreads
/// peers over queues, and its own NAT partition), started together; the sum of their rates.
pub fn measure_two_workers(
    fixture: &Arc<Fixture>,
    mix: SizeMix,
    dir: Direction,
    opts: &PipelineOptions,
) -> Result<f64> {
    if fixture.clients.len() < 2 {
        bail!("two workers need a fixture with two clients");
    }
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|client| {
            let fixture = fixture.clone();
            let barrier = barrier.clone();
            let opts = opts.clone();
            std::thread::spawn(move || -> Result<Rate> {
                let lane = Lane::new(fixture, client, mix, opts.pool);
                barrier.wait();
                let mut lane = lane?;
                let rate = measure(opts.pool as u64, opts.budget, |n| lane.time(dir, n))?;
                lane.check()?;
                Ok(rate)
            })
        })
        .collect();
    let mut total = 0.0;
    for h in handles {
        let rate = h
            .join()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        total += rate.pps();
    }
    Ok(total)
}

/// The whole pipeline benchmark; `progress` gets one line per measurement.
pub fn run(opts: &PipelineOptions, progress: &mut dyn FnMut(&str)) -> Result<Vec<PipelinePoint>> {
    let one = Arc::new(Fixture::new(1)?);
    let one6 = Arc::new(Fixture::ipv6_underlay(1)?);
    let routed6 = Arc::new(Fixture::ipv6_inside(1, Inside::Ipv6Routed)?);
    let nat66 = Arc::new(Fixture::ipv6_inside(1, Inside::Ipv6Nat66)?);
    let two = if opts.two_workers {
        Some(Arc::new(Fixture::new(2)?))
    } else {
        None
    };
    let mut points = Vec::new();
    for &mix in &opts.mixes {
        progress(&format!("pipeline {}: forward", mix.label()));
        let forward = measure_lane(&one, 0, mix, Direction::Forward, opts)?;
        progress(&format!("pipeline {}: reverse", mix.label()));
        let reverse = measure_lane(&one, 0, mix, Direction::Reverse, opts)?;
        progress(&format!("pipeline {}: per step", mix.label()));
        let forward_stages = Some(measure_stages(&one, 0, mix, Direction::Forward, opts)?);
        let reverse_stages = Some(measure_stages(&one, 0, mix, Direction::Reverse, opts)?);
        let mut raw_candidates = Vec::new();
        for imp in RawImpl::ALL {
            progress(&format!(
                "pipeline {}: raw ChaCha20-Poly1305 ({})",
                mix.label(),
                imp.label()
            ));
            let mut raw = RawAead::with(imp, mix, opts.pool);
            let open = measure(opts.pool as u64, opts.budget, |n| raw.time_open(n))?;
            let seal = measure(opts.pool as u64, opts.budget, |n| raw.time_seal(n))?;
            raw_candidates.push(RawCandidate { imp, open, seal });
        }
        let fastest = |f: fn(&RawCandidate) -> Rate| {
            raw_candidates
                .iter()
                .map(f)
                .min_by(|a, b| a.ns_per_packet().total_cmp(&b.ns_per_packet()))
                .expect("at least one implementation")
        };
        let raw_open = fastest(|c| c.open);
        let raw_seal = fastest(|c| c.seal);
        let (mut underlay6, mut inside6) = (None, None);
        if matches!(mix, SizeMix::Fixed(n) if UNDERLAY6_SIZES.contains(&n)) {
            progress(&format!("pipeline {}: IPv6 underlay", mix.label()));
            let f = measure_lane(&one6, 0, mix, Direction::Forward, opts)?;
            let r = measure_lane(&one6, 0, mix, Direction::Reverse, opts)?;
            underlay6 = Some((f, r));
            progress(&format!("pipeline {}: IPv6 inside, routed", mix.label()));
            let routed_forward = measure_lane(&routed6, 0, mix, Direction::Forward, opts)?;
            progress(&format!("pipeline {}: IPv6 inside, NAT66", mix.label()));
            let nat66_forward = measure_lane(&nat66, 0, mix, Direction::Forward, opts)?;
            let nat66_reverse = measure_lane(&nat66, 0, mix, Direction::Reverse, opts)?;
            inside6 = Some(Inside6Rates {
                routed_forward,
                nat66_forward,
                nat66_reverse,
            });
        }
        let (mut forward_2w, mut reverse_2w) = (None, None);
        if let Some(two) = &two {
            progress(&format!("pipeline {}: two workers", mix.label()));
            forward_2w = Some(measure_two_workers(two, mix, Direction::Forward, opts)?);
            reverse_2w = Some(measure_two_workers(two, mix, Direction::Reverse, opts)?);
        }
        points.push(PipelinePoint {
            mix,
            forward,
            reverse,
            raw_open,
            raw_seal,
            raw_candidates,
            forward_stages,
            reverse_stages,
            forward_2w,
            reverse_2w,
            underlay6,
            inside6,
        });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_is_the_median_window_after_an_untimed_warm_up() {
        let ms = Duration::from_millis;
        // Per-chunk times: one warm-up chunk (8 ms of a 30 ms budget's 7.5 ms warm-up), then
        // three windows of 10 ms each: 5 ms per chunk, 10 ms per chunk, 2 ms per chunk.
        let mut times = [8, 5, 5, 10, 2, 2, 2, 2, 2].map(ms).into_iter();
        let rate = measure(100, ms(30), |_| {
            times.next().context("measured more than the budget asks")
        })
        .unwrap();
        assert_eq!(times.next(), None, "every window ran to its budget");
        assert_eq!(
            rate,
            Rate {
                packets: 200,
                elapsed: ms(10)
            },
            "the middle window (5 ms per chunk), not the first, the fastest or their sum"
        );
    }

    #[test]
    fn a_per_step_figure_is_one_window_after_one_warm_up_chunk() {
        let ms = Duration::from_millis;
        let mut times = [50, 4, 4, 4].map(ms).into_iter();
        let rate = measure_once(10, ms(10), |_| times.next().context("too many chunks")).unwrap();
        assert_eq!(
            rate,
            Rate {
                packets: 30,
                elapsed: ms(12)
            }
        );
    }
}
