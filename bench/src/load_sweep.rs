//! Fixed offered loads through one gateway in a lab: the [`Generator`] (a real WireGuard peer in
//! the client namespace) against the [`Sink`] (behind the gateway, in the server namespace), in
//! both directions, at each size and rate of a [`SweepPlan`].
//!
//! The generator joins the gateway as a peer of its own: a fresh key pair, added to the running
//! gateway with `wg set wg0 peer ... allowed-ips` (the same UAPI for `dataplane`, wireguard-go
//! and boringtun), with the tunnel address [`GENERATOR_TUNNEL_ADDR`]. The lab's wireguard-go
//! client keeps its own session and stays idle while the generator runs.
//!
//! Forward: the generator sends sealed probes to the sink; the gateway decrypts and source-NATs
//! them; the sink checks each and takes its one-way latency from the generator's send-time
//! table. Reverse: the sink sends probes back to the NAT mapping it saw; the gateway un-NATs and
//! encrypts them; the generator opens and checks them, latency from the sink's stamp. Every
//! point uses its own range of sequence numbers, so late packets of an earlier point are told
//! apart (counted foreign), not counted twice.
//!
//! The generator's messages leave the client namespace through an AF_XDP socket on its veth
//! ([`crate::loadgen_xdp`], the default) or through its UDP socket with `sendmmsg(2)`
//! ([`GeneratorKind`]); where AF_XDP cannot attach, the rig falls back to `sendmmsg` and says
//! why ([`LoadRig::path`]). The sink likewise receives and answers through an AF_XDP socket on
//! the server's veth ([`crate::sink_xdp`], the default) or a UDP socket ([`SinkKind`]), with
//! the same fallback ([`LoadRig::sink_path`]).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lab::{Lab, Node, SERVER_ADDR};
use rand_core::OsRng;
use wgproto::keys::{PrivateKey, PublicKey};

use crate::cores::LoadCores;
use crate::cpu_split::CpuSplit;
use crate::loadgen::{Generator, GeneratorConfig, Load, Sent};
use crate::loadgen_xdp::{OuterHeaders, XdpPath};
use crate::packets::SizeMix;
use crate::pipeline::Direction;
use crate::probe::{Arrivals, SendTimes, Tally};
use crate::sink_xdp::{SinkKind, SinkPath};

/// The generator's tunnel address: outside the lab's client (10.13.13.2) and the tests' second
/// peer (10.13.13.3), inside the gateway's 10.13.13.0/24.
pub const GENERATOR_TUNNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 13, 13, 4);
/// The inner source port of the generator's flow.
pub const GENERATOR_TUNNEL_PORT: u16 = 40_000;
/// Where the sink listens on the server.
pub const SINK_PORT: u16 = 9_000;
/// Send-time slots: more than the packets in flight at any rate the lab reaches.
const SEND_TIME_SLOTS: usize = 1 << 20;
/// Memory for the packets sealed ahead per point (the rest is sealed while sending, and the
/// point is then marked sender-limited): 4 M packets at 64 B, 360 k at 1420 B, enough for a
/// second at the rates either generator reaches here (256 MiB was not, at 1420 B through
/// AF_XDP).
const POOL_BYTES: usize = 512 << 20;
/// The lab client's interface (both topologies), where the AF_XDP generator binds.
const CLIENT_IFNAME: &str = "eth0";
/// The lab server's interface (both topologies), where the AF_XDP sink binds.
const SERVER_IFNAME: &str = "eth0";

/// How the generator's transport messages leave the client namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GeneratorKind {
    /// Prebuilt frames through an AF_XDP socket (copy mode) on the client's veth; falls back
    /// to `sendmmsg` with the reason when it cannot attach.
    #[default]
    Xdp,
    /// The generator's UDP socket, `sendmmsg(2)` / `recvmmsg(2)`.
    Sendmmsg,
}
/// A point at full speed expects at most this many packets per second (the tally's bitmap).
const MAX_PPS: f64 = 4e6;
/// How a point ends after its last packet was sent: once arrivals have stopped for `quiet`
/// (packets still queued in the gateway or the sockets arrive meanwhile), or after `limit` in
/// all. What has not arrived by then counts as lost.
#[derive(Clone, Copy, Debug)]
pub struct Drain {
    pub quiet: Duration,
    pub limit: Duration,
}

impl Default for Drain {
    /// For the benchmark: a release-built gateway empties its rings in milliseconds.
    fn default() -> Self {
        Drain {
            quiet: Duration::from_millis(150),
            limit: Duration::from_secs(1),
        }
    }
}

/// Which offered loads to run.
#[derive(Clone, Debug)]
pub struct SweepPlan {
    pub mixes: Vec<SizeMix>,
    /// Packets per second; `None` is as fast as the sender can.
    pub rates: Vec<Option<f64>>,
    /// How long each point sends, per direction.
    pub duration: Duration,
}

impl SweepPlan {
    pub fn quick() -> Self {
        SweepPlan {
            mixes: vec![SizeMix::Fixed(64), SizeMix::Fixed(1420)],
            rates: vec![Some(10_000.0), Some(40_000.0), None],
            duration: Duration::from_millis(1000),
        }
    }

    pub fn full() -> Self {
        SweepPlan {
            mixes: crate::packets::STANDARD_MIXES.to_vec(),
            rates: vec![
                Some(5_000.0),
                Some(20_000.0),
                Some(50_000.0),
                Some(100_000.0),
                None,
            ],
            duration: Duration::from_secs(3),
        }
    }
}

/// One offered load in one direction, as the receiver saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadPoint {
    pub direction: Direction,
    pub mix: SizeMix,
    /// The rate asked for; `None` is full speed.
    pub rate_pps: Option<f64>,
    /// Packets the sender handed to the kernel (refused ones included: the receiver misses
    /// them too).
    pub sent: u64,
    pub elapsed: Duration,
    /// Inner IPv4 bytes sent.
    pub sent_bytes: u64,
    /// The sender could not keep up with the asked rate (offered is then what it managed).
    pub sender_limited: bool,
    /// Packets the receiving end's kernel dropped because the receiver fell behind (the sink's
    /// or the generator's UDP socket buffer, `RcvbufErrors`; the generator's AF_XDP rx or fill
    /// ring), when known: a loss there is the load rig's, not the gateway's.
    pub receiver_drops: Option<u64>,
    pub tally: Tally,
}

impl LoadPoint {
    fn new(
        direction: Direction,
        mix: SizeMix,
        rate_pps: Option<f64>,
        sent: &Sent,
        tally: Tally,
        receiver_drops: Option<u64>,
    ) -> Self {
        LoadPoint {
            receiver_drops,
            direction,
            mix,
            rate_pps,
            sent: sent.packets,
            elapsed: sent.elapsed,
            sent_bytes: sent.inner_bytes,
            sender_limited: sent.sender_limited,
            tally,
        }
    }

    pub fn offered_pps(&self) -> f64 {
        self.sent as f64 / self.secs()
    }

    /// Inner IPv4 bits per second offered.
    pub fn offered_bps(&self) -> f64 {
        self.sent_bytes as f64 * 8.0 / self.secs()
    }

    /// Distinct intact packets per second of sending time.
    pub fn delivered_pps(&self) -> f64 {
        self.tally.unique as f64 / self.secs()
    }

    pub fn delivered_bps(&self) -> f64 {
        self.tally.unique_bytes as f64 * 8.0 / self.secs()
    }

    pub fn loss_percent(&self) -> f64 {
        self.tally.loss_percent(self.sent)
    }

    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    /// `10 kpps`, `200 pps`, or `max` for full speed.
    pub fn rate_label(&self) -> String {
        match self.rate_pps {
            Some(r) if r < 1e3 => format!("{r:.0} pps"),
            Some(r) => format!("{:.0} kpps", r / 1e3),
            None => "max".into(),
        }
    }
}

/// The generator and the sink attached to a lab's running gateway.
pub struct LoadRig {
    generator: Generator,
    /// The AF_XDP path, when it is the one in use.
    xdp: Option<XdpPath>,
    /// Which path the generator uses, and why (for the report).
    path: String,
    sink: SinkPath,
    /// Which path the sink uses, and why.
    sink_path: String,
    times: Arc<SendTimes>,
    next_seq: u64,
    /// The cores the generator's and the sink's threads run on ([`crate::cores`]).
    cores: LoadCores,
    /// The namespaces of the sink and the generator, for their kernels' drop counters.
    server_ns: String,
    client_ns: String,
    /// When a point ends (tests of a debug-built gateway wait longer).
    pub drain: Drain,
    /// Where the cores went while each full-speed point was sending, in sweep order.
    pub cpu_at_max: Vec<MaxPointCpu>,
}

/// The cores' split while a full-speed (`max`) point was sending: whose core was full.
#[derive(Clone, Debug, PartialEq)]
pub struct MaxPointCpu {
    pub direction: Direction,
    pub mix: SizeMix,
    pub split: CpuSplit,
}

impl LoadRig {
    /// [`LoadRig::attach_paths`] the default paths (AF_XDP where it attaches).
    pub fn attach(lab: &mut Lab) -> Result<LoadRig> {
        Self::attach_paths(lab, GeneratorKind::default(), SinkKind::default())
    }

    /// [`LoadRig::attach_paths`] with the default sink (AF_XDP where it attaches).
    pub fn attach_with(lab: &mut Lab, kind: GeneratorKind) -> Result<LoadRig> {
        Self::attach_paths(lab, kind, SinkKind::default())
    }

    /// Adds a fresh peer to the lab's gateway, starts the sink of `sink_kind` on the server,
    /// completes the generator's handshake with the gateway and opens the generator's `kind`
    /// of path.
    pub fn attach_paths(
        lab: &mut Lab,
        kind: GeneratorKind,
        sink_kind: SinkKind,
    ) -> Result<LoadRig> {
        let private = PrivateKey::generate(&mut OsRng);
        let public = private.public_key().to_base64();
        let allowed = format!("{GENERATOR_TUNNEL_ADDR}/32");
        lab.wg(
            Node::Gateway,
            &["set", "wg0", "peer", &public, "allowed-ips", &allowed],
        )
        .context("adding the load generator as a peer of the gateway")?;
        let gateway_public = PublicKey::from_base64(&lab.keys().gateway.public)
            .map_err(|e| anyhow::anyhow!("the lab's gateway key: {e}"))?;
        let topology = lab.topology();
        let sink_addr = SocketAddrV4::new(SERVER_ADDR, SINK_PORT);
        let cores = LoadCores::for_this_machine();
        lab.note(format!("load generator and sink cores: {}", cores.note));
        let (sink, sink_path) = {
            // The sink's thread inherits the mask; this thread gets its own back.
            let _pinned = cores.pin_sink()?;
            SinkPath::start(
                sink_kind,
                &lab.ns_name(Node::Server),
                SERVER_IFNAME,
                sink_addr,
            )?
        };
        lab.note(format!("sink path: {sink_path}"));
        let cfg = GeneratorConfig {
            netns: lab.ns_name(Node::Client),
            bind: SocketAddrV4::new(topology.client_underlay_addr(), 0),
            gateway: topology.endpoint(),
            gateway_public,
            preshared: None,
            tunnel_addr: GENERATOR_TUNNEL_ADDR,
            tunnel_port: GENERATOR_TUNNEL_PORT,
            sink: sink_addr,
        };
        lab.note(format!(
            "load generator: peer {public} ({allowed}) from {} to the sink at {sink_addr}",
            cfg.bind.ip()
        ));
        let generator = Generator::connect(cfg, private)?;
        lab.note("load generator: handshake with the gateway done");
        let (xdp, path) = match kind {
            GeneratorKind::Sendmmsg => (None, "sendmmsg (asked)".to_owned()),
            GeneratorKind::Xdp => match Self::open_xdp(lab, &generator) {
                Ok(x) => {
                    let i = x.info();
                    let path = format!(
                        "AF_XDP {} mode on the client's {} (XDP program in {} mode)",
                        i.bind_mode, i.ifname, i.attach_mode
                    );
                    (Some(x), path)
                }
                Err(e) => {
                    let path = format!("sendmmsg (AF_XDP could not attach: {e:#})");
                    eprintln!("load generator: {path}");
                    (None, path)
                }
            },
        };
        lab.note(format!("load generator path: {path}"));
        Ok(LoadRig {
            generator,
            xdp,
            path,
            sink,
            sink_path,
            times: Arc::new(SendTimes::new(SEND_TIME_SLOTS)),
            next_seq: 1,
            cores,
            server_ns: lab.ns_name(Node::Server),
            client_ns: lab.ns_name(Node::Client),
            drain: Drain::default(),
            cpu_at_max: Vec::new(),
        })
    }

    /// The AF_XDP path: the frames carry the UDP socket's addresses (the gateway's endpoint
    /// for this peer) and the MACs the handshake resolved.
    fn open_xdp(lab: &Lab, generator: &Generator) -> Result<XdpPath> {
        let SocketAddr::V4(src) = generator.local_addr()? else {
            bail!("the generator's socket is not IPv4");
        };
        let netns = lab.ns_name(Node::Client);
        let headers =
            OuterHeaders::resolve(&netns, CLIENT_IFNAME, src, generator.config().gateway)?;
        XdpPath::open(&netns, CLIENT_IFNAME, headers)
    }

    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The generator, to change (tests aim it at a wrong port).
    pub fn generator_mut(&mut self) -> &mut Generator {
        &mut self.generator
    }

    /// Which path the generator's messages take, and why (a fallback says what failed).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the AF_XDP path is in use.
    pub fn uses_xdp(&self) -> bool {
        self.xdp.is_some()
    }

    /// The AF_XDP path's outer headers, to change (tests send deliberately wrong frames).
    pub fn xdp_headers_mut(&mut self) -> Option<&mut OuterHeaders> {
        self.xdp.as_mut().map(XdpPath::headers_mut)
    }

    /// Where the generator's and the sink's threads run.
    pub fn cores(&self) -> &LoadCores {
        &self.cores
    }

    /// The AF_XDP socket's kernel drop counters, when that path is in use.
    pub fn xdp_kernel_drops(&self) -> Option<String> {
        self.xdp.as_ref().map(XdpPath::kernel_drops)
    }

    pub fn sink(&self) -> &SinkPath {
        &self.sink
    }

    /// Which path the sink receives and answers on, and why (a fallback says what failed).
    pub fn sink_path(&self) -> &str {
        &self.sink_path
    }

    /// The AF_XDP sink's kernel drop counters, when that path is in use.
    pub fn sink_kernel_drops(&self) -> Option<String> {
        match &self.sink {
            SinkPath::Xdp(x) => Some(x.kernel_drops()),
            SinkPath::Udp(_) => None,
        }
    }

    /// Datagrams the sink's kernel dropped so far because the sink fell behind: its UDP
    /// socket's buffer (`RcvbufErrors`) or its AF_XDP rings.
    fn sink_drops(&self) -> Option<u64> {
        match &self.sink {
            SinkPath::Xdp(x) => Some(x.rx_drops()),
            SinkPath::Udp(_) => udp_rcvbuf_errors(&self.server_ns),
        }
    }

    /// A fresh range of sequence numbers for `capacity` packets.
    fn range(&mut self, capacity: u64) -> u64 {
        let first = self.next_seq;
        // A gap between ranges: a late packet of this point is foreign to the next.
        self.next_seq += capacity + (1 << 20);
        first
    }

    fn capacity(rate: Option<f64>, duration: Duration) -> u64 {
        let pps = rate.unwrap_or(MAX_PPS).min(MAX_PPS);
        (pps * duration.as_secs_f64()).ceil() as u64 + 1024
    }

    /// Generator -> gateway -> sink at `rate` for `duration`.
    pub fn forward(
        &mut self,
        mix: SizeMix,
        rate: Option<f64>,
        duration: Duration,
    ) -> Result<LoadPoint> {
        self.generator.ensure_fresh()?;
        let _pinned = self.cores.pin_generator()?;
        let capacity = Self::capacity(rate, duration);
        let first = self.range(capacity);
        self.sink.expect(first, capacity, Some(self.times.clone()));
        let load = Load {
            mix,
            rate_pps: rate,
            duration,
            first_seq: first,
            pool: crate::loadgen::pool_slots(mix, POOL_BYTES),
        };
        let sink_drops = self.sink_drops();
        let sent = match self.xdp.as_mut() {
            Some(x) => x.send(&self.generator, &load, &self.times)?,
            None => self.generator.send(&load, &self.times)?,
        };
        self.note_max_cpu(&sent, Direction::Forward, mix);
        self.drain.wait(|| self.sink.tally().received);
        let tally = self.sink.expect(0, 0, None).tally();
        let drops = delta(sink_drops, self.sink_drops());
        Ok(LoadPoint::new(
            Direction::Forward,
            mix,
            rate,
            &sent,
            tally,
            drops,
        ))
    }

    /// Sink -> gateway -> generator at `rate` for `duration`, to the NAT mapping of the
    /// generator's flow (run [`LoadRig::forward`] first: it makes the mapping).
    pub fn reverse(
        &mut self,
        mix: SizeMix,
        rate: Option<f64>,
        duration: Duration,
    ) -> Result<LoadPoint> {
        let Some(SocketAddr::V4(mapped)) = self.sink.last_source() else {
            bail!("the sink has seen no packet of the generator: no NAT mapping to answer");
        };
        // The sink sends from this thread, the generator receives on one it spawns.
        let _pinned = self.cores.pin_sink()?;
        let capacity = Self::capacity(rate, duration);
        let first = self.range(capacity);
        let arrivals = Mutex::new(Arrivals::new(first, capacity));
        let stop = AtomicBool::new(false);
        let rx_drops = |rig: &LoadRig| match &rig.xdp {
            Some(x) => Some(x.rx_drops()),
            None => udp_rcvbuf_errors(&rig.client_ns),
        };
        let drops_before = rx_drops(self);
        let generator = &self.generator;
        let xdp = self.xdp.as_mut();
        let sink = &self.sink;
        let drain = self.drain;
        let cores = &self.cores;
        let (sent, received) = std::thread::scope(|s| {
            // Named: the report's thread shares at `max` list it.
            let rx = std::thread::Builder::new()
                .name("bench-gen-rx".into())
                .spawn_scoped(s, || {
                    let _pinned = cores.pin_generator()?;
                    match xdp {
                        Some(x) => x.receive(generator, &arrivals, &stop).map(|_| ()),
                        None => generator.receive(&arrivals, None, &stop).map(|_| ()),
                    }
                })
                .expect("the generator's receive thread starts");
            // The receiver is up before the first packet is due.
            std::thread::sleep(Duration::from_millis(20));
            let sent = sink.blast(mapped, mix, rate, duration, first);
            drain.wait(|| lock(&arrivals).tally().received);
            stop.store(true, Ordering::Relaxed);
            (sent, rx.join())
        });
        let sent = sent?;
        self.note_max_cpu(&sent, Direction::Reverse, mix);
        match received {
            Ok(r) => {
                r?;
            }
            Err(_) => bail!("the generator's receive thread panicked"),
        }
        let tally = lock(&arrivals).tally();
        let drops = delta(drops_before, rx_drops(self));
        Ok(LoadPoint::new(
            Direction::Reverse,
            mix,
            rate,
            &sent,
            tally,
            drops,
        ))
    }

    /// Keeps the cores' split of a full-speed send for the report.
    fn note_max_cpu(&mut self, sent: &Sent, direction: Direction, mix: SizeMix) {
        if let Some(split) = &sent.cpu {
            self.cpu_at_max.push(MaxPointCpu {
                direction,
                mix,
                split: split.clone(),
            });
        }
    }

    /// Every point of `plan`, forward then reverse per point, into `points`; `progress` gets
    /// one line each. A point that fails ends the sweep with its error, and the points measured
    /// before it stay in `points` for the report.
    pub fn sweep(
        &mut self,
        plan: &SweepPlan,
        points: &mut Vec<LoadPoint>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<()> {
        for &mix in &plan.mixes {
            for &rate in &plan.rates {
                let f = self.forward(mix, rate, plan.duration)?;
                progress(&point_line(&f));
                points.push(f);
                let r = self.reverse(mix, rate, plan.duration)?;
                progress(&point_line(&r));
                points.push(r);
            }
        }
        Ok(())
    }
}

/// `UdpRcvbufErrors` of namespace `ns` (/proc/net/snmp): datagrams dropped because a socket's
/// receive buffer was full.
fn udp_rcvbuf_errors(ns: &str) -> Option<u64> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?.split_whitespace();
    let values = udp.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
}

fn delta(before: Option<u64>, after: Option<u64>) -> Option<u64> {
    Some(after?.saturating_sub(before?))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drain {
    /// Waits until `count` has not grown for `quiet`, at most `limit`.
    fn wait(&self, count: impl Fn() -> u64) {
        let start = Instant::now();
        let mut last = count();
        let mut since = Instant::now();
        while start.elapsed() < self.limit {
            std::thread::sleep(Duration::from_millis(25));
            let now = count();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= self.quiet {
                break;
            }
        }
    }
}

/// One progress line for a point.
pub fn point_line(p: &LoadPoint) -> String {
    let dir = match p.direction {
        Direction::Forward => "generator -> sink",
        Direction::Reverse => "sink -> generator",
    };
    format!(
        "  {dir} {} at {}: offered {:.1} kpps, delivered {:.1} kpps ({:.1} Mbit/s), loss {:.1} %, \
         p50 {:.0} us, p99 {:.0} us{}{}",
        p.mix.label(),
        p.rate_label(),
        p.offered_pps() / 1e3,
        p.delivered_pps() / 1e3,
        p.delivered_bps() / 1e6,
        p.loss_percent(),
        p.tally.p50_us,
        p.tally.p99_us,
        if p.tally.corrupted > 0 {
            format!(", {} corrupted", p.tally.corrupted)
        } else {
            String::new()
        },
        match p.receiver_drops {
            Some(n) if n > 0 => format!(", {n} dropped by the receiver's kernel (rig-bound)"),
            _ => String::new(),
        }
    )
}
