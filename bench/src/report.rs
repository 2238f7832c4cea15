//! What a run writes to its results folder: the machine it ran on, a Markdown table of every
//! figure, and an SVG plot of throughput and latency against packet size.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::e2e::GatewayResult;
use crate::load_sweep::LoadPoint;
use crate::packets::SizeMix;
use crate::pipeline::{Direction, PipelinePoint};

/// Where the figures come from.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    /// /proc/loadavg when the run started (the machine may be shared).
    pub load: String,
}

impl Machine {
    /// Reads /proc: the first `model name` of /proc/cpuinfo, the usable cores, the kernel
    /// release.
    pub fn detect() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Machine {
            load,
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel,
        }
    }
}

/// One run's results.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub machine: Machine,
    pub quick: bool,
    pub pipeline: Vec<PipelinePoint>,
    pub gateways: Vec<GatewayResult>,
    /// Parts that did not run, with the reason.
    pub skipped: Vec<String>,
}

fn mpps(pps: f64) -> String {
    format!("{:.2}", pps / 1e6)
}

/// One headline row: this gateway's figure and each reference's (`None` where it has none).
#[derive(Clone, Debug, PartialEq)]
pub struct Headline {
    pub what: String,
    pub unit: &'static str,
    pub ours: f64,
    pub references: Vec<(String, Option<f64>)>,
}

fn ratio(ours: f64, reference: f64) -> String {
    if reference > 0.0 {
        format!("{:.2}", ours / reference)
    } else {
        "-".into()
    }
}

pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Forward => "client -> server",
        Direction::Reverse => "server -> client",
    }
}

/// The size mixes of `points`, in first-seen order.
fn mixes_of(points: &[LoadPoint]) -> Vec<SizeMix> {
    let mut v: Vec<SizeMix> = Vec::new();
    for p in points {
        if !v.contains(&p.mix) {
            v.push(p.mix);
        }
    }
    v
}

/// The point of `dir` and `mix` with the highest asked rate (full speed above any rate).
pub fn top_point(points: &[LoadPoint], dir: Direction, mix: SizeMix) -> Option<&LoadPoint> {
    let key = |p: &&LoadPoint| p.rate_pps.unwrap_or(f64::INFINITY);
    points
        .iter()
        .filter(|p| p.direction == dir && p.mix == mix)
        .max_by(|a, b| key(a).total_cmp(&key(b)))
}

/// The point of `dir` and `mix` with the lowest asked rate.
pub fn low_point(points: &[LoadPoint], dir: Direction, mix: SizeMix) -> Option<&LoadPoint> {
    let key = |p: &&LoadPoint| p.rate_pps.unwrap_or(f64::INFINITY);
    points
        .iter()
        .filter(|p| p.direction == dir && p.mix == mix)
        .min_by(|a, b| key(a).total_cmp(&key(b)))
}

impl Report {
    /// The Markdown text of the report.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(s, "# Benchmark results\n");
        let _ = writeln!(
            s,
            "- machine: {} ({} cores), kernel {}, load average at start {}\n- run: `bench{}`",
            m.cpu,
            m.cores,
            m.kernel,
            m.load,
            if self.quick { " --quick" } else { "" }
        );
        for g in &self.gateways {
            let _ = writeln!(
                s,
                "- {}: NIC driver {}{}",
                g.gateway,
                g.driver,
                g.afxdp_mode
                    .as_ref()
                    .map(|m| format!(", AF_XDP mode {m}{}", zero_copy_note(m)))
                    .unwrap_or_default()
            );
            if let Some(path) = &g.load_path {
                let _ = writeln!(s, "  - load generator via {path}");
            }
            if let Some(path) = &g.sink_path {
                let _ = writeln!(s, "  - sink via {path}");
            }
            if let Some(cores) = &g.load_cores {
                let _ = writeln!(s, "  - cores: {cores}");
            }
        }
        for k in &self.skipped {
            let _ = writeln!(s, "- not run: {k}");
        }
        if !self.pipeline.is_empty() {
            let _ = writeln!(
                s,
                "\n## Pipeline without I/O (one core per worker)\n\n\
                 Forward: WireGuard frame in -> decrypt, replay check, AllowedIPs, NAT, header \
                 rewrite. Reverse: return traffic -> NAT reverse, AllowedIPs, encrypt, outer \
                 headers. Frames are re-sealed outside the timed region; what the worker's AF_XDP \
                 edge does to each transmitted packet, a check that it can be sent where it is \
                 (no move since its descriptors name the packet's start), is timed (`tx move`). \
                 Ratio = pipeline ns/packet over raw ChaCha20-Poly1305 ns/packet of the same \
                 bytes, the fastest implementation measured in this run (1.0 is the limit; \
                 every candidate is in the table after this one). Gbit/s counts inner packet bytes. Rates are per \
                 on-CPU second of the worker thread (preemption by other load excluded), each the \
                 median of three timed windows after an untimed warm-up (raw cipher figures \
                 alike); the two-worker figure is the sum of both workers' rates, each on its \
                 own thread.\n"
            );
            let _ = writeln!(
                s,
                "| size | fwd Mpps | fwd ns/pkt | fwd Gbit/s | raw open ns | fwd ratio | \
                 rev Mpps | rev ns/pkt | raw seal ns | rev ratio | 2 workers fwd Mpps | \
                 2 workers rev Mpps |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
            for p in &self.pipeline {
                let opt = |v: Option<f64>| v.map(mpps).unwrap_or_else(|| "-".into());
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.0} | {:.2} | {:.0} | {:.2} | {} | {:.0} | {:.0} | {:.2} | {} | {} |",
                    p.mix.label(),
                    mpps(p.forward.pps()),
                    p.forward.ns_per_packet(),
                    p.forward.gbps(p.mix.mean()),
                    p.raw_open.ns_per_packet(),
                    p.forward_ratio(),
                    mpps(p.reverse.pps()),
                    p.reverse.ns_per_packet(),
                    p.raw_seal.ns_per_packet(),
                    p.reverse_ratio(),
                    opt(p.forward_2w),
                    opt(p.reverse_2w),
                );
            }
            if self.pipeline.iter().any(|p| p.underlay6.is_some()) {
                let _ = writeln!(
                    s,
                    "\nOver an IPv6 underlay (the client's endpoint IPv6: outer IPv6 parsed in, \
                     outer IPv6 with its UDP checksum written out), one worker, in the same run; \
                     ratio = IPv6 underlay ns/packet over the IPv4 row above.\n"
                );
                let _ = writeln!(
                    s,
                    "| size | fwd ns/pkt | fwd / IPv4 | rev ns/pkt | rev / IPv4 |"
                );
                let _ = writeln!(s, "|---|---|---|---|---|");
                for p in &self.pipeline {
                    if let Some((f, r)) = &p.underlay6 {
                        let _ = writeln!(
                            s,
                            "| {} | {:.0} | {:.2} | {:.0} | {:.2} |",
                            p.mix.label(),
                            f.ns_per_packet(),
                            f.ns_per_packet() / p.forward.ns_per_packet(),
                            r.ns_per_packet(),
                            r.ns_per_packet() / p.reverse.ns_per_packet(),
                        );
                    }
                }
            }
            if self.pipeline.iter().any(|p| p.inside6.is_some()) {
                let _ = writeln!(
                    s,
                    "\nIPv6 inside that IPv6 underlay (inner IPv6/UDP packets of the same size), \
                     one worker, in the same run: routed (decrypt, source check, route, hop \
                     limit, Ethernet; a routed prefix's return traffic takes the kernel's path \
                     through wg0, so it has no reverse row) and through the IPv6 NAT \
                     (`masquerade_ipv6`, both ways). Ratio = ns/packet over raw \
                     ChaCha20-Poly1305 of the same bytes (the limit, as above); / v4 = over \
                     the IPv6-underlay row with IPv4 inside.\n"
                );
                let _ = writeln!(
                    s,
                    "| size | routed fwd ns/pkt | ratio | / v4 | NAT66 fwd ns/pkt | ratio | / v4 \
                     | NAT66 rev ns/pkt | ratio | / v4 |"
                );
                let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
                for p in &self.pipeline {
                    let (Some(i6), Some((f4, r4))) = (&p.inside6, &p.underlay6) else {
                        continue;
                    };
                    let (open, seal) = (p.raw_open.ns_per_packet(), p.raw_seal.ns_per_packet());
                    let cells =
                        |r: &crate::pipeline::Rate, raw: f64, v4: &crate::pipeline::Rate| {
                            let ns = r.ns_per_packet();
                            format!("{ns:.0} | {:.2} | {:.2}", ns / raw, ns / v4.ns_per_packet())
                        };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} |",
                        p.mix.label(),
                        cells(&i6.routed_forward, open, f4),
                        cells(&i6.nat66_forward, open, f4),
                        cells(&i6.nat66_reverse, seal, r4),
                    );
                }
            }
            let _ = writeln!(
                s,
                "\nRaw ChaCha20-Poly1305 candidates, ns/packet of the same bytes ({}); the \
                 fastest of each column is the limit above.\n",
                crate::pipeline::build_flags()
            );
            let _ = writeln!(s, "| size | implementation | open ns | seal ns |");
            let _ = writeln!(s, "|---|---|---|---|");
            for p in &self.pipeline {
                for c in &p.raw_candidates {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {:.0} | {:.0} |",
                        p.mix.label(),
                        c.imp.label(),
                        c.open.ns_per_packet(),
                        c.seal.ns_per_packet(),
                    );
                }
            }
        }
        if !self.pipeline.is_empty() {
            self.stages_markdown(&mut s);
        }
        if !self.gateways.is_empty() {
            self.end_to_end_markdown(&mut s);
        }
        s
    }

    /// The per-step tables: where one packet's time goes in each direction.
    fn stages_markdown(&self, s: &mut String) {
        let Some(first) = self.pipeline.iter().find_map(|p| p.forward_stages.as_ref()) else {
            return;
        };
        let ghz = first.ghz;
        let _ = writeln!(
            s,
            "\n## Per-step cost (one worker)\n\n\
             ns per packet of each step{}, measured by truncation: passes over the same frames \
             with every frame stopped right after a step, the fastest of {} rounds per stop \
             point; a step costs the difference from the pass stopped before it (so what it \
             leaves in the caches for the next step is counted where it is paid). The last \
             step's pass is the whole pipeline (`whole`, to compare with the table above: the \
             two are separate measurements). A clock read per step would cost more than most \
             steps on a VM, so none is taken. The raw cipher of the same bytes is in the table \
             above: decrypt+replay minus raw open is the header, replay window and key checks.\n",
            ghz.map(|g| format!(", CPU cycles in brackets at {g:.3} GHz"))
                .unwrap_or_default(),
            crate::pipeline::STEP_ROUNDS,
        );
        for dir in [Direction::Forward, Direction::Reverse] {
            let steps = dir.steps();
            let name = match dir {
                Direction::Forward => "forward",
                Direction::Reverse => "reverse",
            };
            let _ = write!(s, "| {name} | ");
            for st in steps {
                let _ = write!(s, "{} | ", st.name());
            }
            let _ = writeln!(s, "whole ns/pkt | non-cipher ns/pkt |");
            let _ = writeln!(s, "|---|{}---|---|", "---|".repeat(steps.len()));
            for p in &self.pipeline {
                let (b, raw) = match dir {
                    Direction::Forward => (p.forward_stages.as_ref(), p.raw_open),
                    Direction::Reverse => (p.reverse_stages.as_ref(), p.raw_seal),
                };
                let Some(b) = b else { continue };
                let _ = write!(s, "| {} | ", p.mix.label());
                for (_, ns) in b.steps() {
                    match ghz {
                        Some(g) => {
                            let _ = write!(s, "{ns:.0} ({:.0}) | ", ns * g);
                        }
                        None => {
                            let _ = write!(s, "{ns:.0} | ");
                        }
                    }
                }
                let _ = writeln!(
                    s,
                    "{:.0} | {:.0} |",
                    b.total_ns(),
                    b.total_ns() - raw.ns_per_packet()
                );
            }
            s.push('\n');
        }
    }

    /// The gateway whose figures the ratios are taken of (`dataplane`), and the references.
    fn split_gateways(&self) -> (Option<&GatewayResult>, Vec<&GatewayResult>) {
        let ours = self.gateways.iter().find(|g| g.short == "dataplane");
        let refs = self
            .gateways
            .iter()
            .filter(|g| g.short != "dataplane")
            .collect();
        (ours, refs)
    }

    /// The headline: this gateway against each reference, measured in the same run.
    pub fn headline(&self) -> Vec<Headline> {
        let (Some(ours), refs) = self.split_gateways() else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        let mut row =
            |what: String, unit: &'static str, pick: &dyn Fn(&GatewayResult) -> Option<f64>| {
                if let Some(v) = pick(ours) {
                    rows.push(Headline {
                        what,
                        unit,
                        ours: v,
                        references: refs.iter().map(|r| (r.short.clone(), pick(r))).collect(),
                    });
                }
            };
        row(
            "TCP client -> server (iperf3 via the wireguard-go client)".into(),
            "Mbit/s",
            &|g| Some(g.tcp_up_bps / 1e6).filter(|v| *v > 0.0),
        );
        row("TCP server -> client".into(), "Mbit/s", &|g| {
            Some(g.tcp_down_bps / 1e6).filter(|v| *v > 0.0)
        });
        for dir in [Direction::Forward, Direction::Reverse] {
            for mix in mixes_of(&ours.load) {
                row(
                    format!(
                        "load generator {}, {}, highest offered load: delivered",
                        direction_name(dir),
                        mix.label()
                    ),
                    "kpps",
                    &|g| top_point(&g.load, dir, mix).map(|p| p.delivered_pps() / 1e3),
                );
            }
        }
        if let Some(mix) = mixes_of(&ours.load).first().copied() {
            row(
                format!(
                    "one-way latency p50, {}, {}, lowest offered load (lower is better)",
                    direction_name(Direction::Forward),
                    mix.label()
                ),
                "us",
                &|g| low_point(&g.load, Direction::Forward, mix).map(|p| p.tally.p50_us),
            );
        }
        rows
    }

    fn end_to_end_markdown(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## End to end in the namespace lab (veth, two-armed)\n\n\
             Every gateway gets a fresh lab in the same run. iperf3 and ping go through the lab's \
             wireguard-go client. The load generator is a WireGuard peer of its own (handshake \
             through `wgproto`, then transport messages sealed ahead and sent at a fixed rate, \
             or as fast as it can: `max`, through an AF_XDP socket on the client's veth or with \
             sendmmsg, as each gateway's line above says); the sink behind the gateway checks \
             every probe (CRC-32, sequence) and times it against the send time (one-way, one \
             clock). Reverse: the sink sends probes back through the gateway's NAT mapping and \
             the generator opens them. Core placement per gateway above.\n"
        );
        let headline = self.headline();
        if !headline.is_empty() {
            let (_, refs) = self.split_gateways();
            let _ = write!(
                s,
                "### Headline: dataplane against each reference\n\n| what | dataplane |"
            );
            for r in &refs {
                let _ = write!(s, " {} | ratio |", r.short);
            }
            let _ = write!(s, "\n|---|---|");
            for _ in &refs {
                let _ = write!(s, "---|---|");
            }
            let _ = writeln!(s);
            for h in &headline {
                let _ = write!(s, "| {} | {:.1} {} |", h.what, h.ours, h.unit);
                for (_, v) in &h.references {
                    match v {
                        Some(v) => {
                            let _ = write!(s, " {:.1} {} | {} |", v, h.unit, ratio(h.ours, *v));
                        }
                        None => {
                            let _ = write!(s, " - | - |");
                        }
                    }
                }
                let _ = writeln!(s);
            }
            let _ = writeln!(s, "\nRatio = dataplane / reference.");
        }
        let _ = writeln!(
            s,
            "\n### TCP (iperf3)\n\n| gateway | TCP up Mbit/s | TCP down Mbit/s |"
        );
        let _ = writeln!(s, "|---|---|---|");
        for g in &self.gateways {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.0} |",
                g.gateway,
                g.tcp_up_bps / 1e6,
                g.tcp_down_bps / 1e6
            );
        }
        let _ = writeln!(
            s,
            "\n### Load generator, fixed offered loads\n\n\
             Sizes are inner IPv4 packets; Mbit/s counts inner bytes. Loss = sent - distinct \
             intact probes received. `*`: the sender could not reach the asked rate. rx drops: \
             packets the receiving end's kernel dropped because the receiver (sink or generator, \
             sharing a core) fell behind: loss of the rig, not of the gateway.\n\n\
             | gateway | direction | size | asked | offered kpps | offered Mbit/s | delivered kpps | \
             delivered Mbit/s | loss % | rx drops | p50 us | p99 us | p99.9 us | corrupt | dup | reordered |"
        );
        let _ = writeln!(
            s,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for g in &self.gateways {
            for p in &g.load {
                let t = &p.tally;
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {}{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
                    g.short,
                    direction_name(p.direction),
                    p.mix.label(),
                    p.rate_label(),
                    if p.sender_limited { "*" } else { "" },
                    p.offered_pps() / 1e3,
                    p.offered_bps() / 1e6,
                    p.delivered_pps() / 1e3,
                    p.delivered_bps() / 1e6,
                    p.loss_percent(),
                    p.receiver_drops
                        .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                    t.p50_us,
                    t.p99_us,
                    t.p999_us,
                    t.corrupted,
                    t.duplicates,
                    t.reordered
                );
            }
            if let Some(e) = &g.load_error {
                let _ = writeln!(
                    s,
                    "| {} | load generator failed: {} |",
                    g.short,
                    e.replace('|', "/")
                );
            }
        }
        self.write_cpu_at_max(s);
        let _ = writeln!(
            s,
            "\n### Ping through the wireguard-go client\n\n\
             | gateway | size | p50 us | p99 us | p99.9 us | replies |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for g in &self.gateways {
            for (size, l) in &g.latency {
                let _ = writeln!(
                    s,
                    "| {} | {size} B | {:.0} | {:.0} | {:.0} | {}/{} |",
                    g.short, l.p50_us, l.p99_us, l.p999_us, l.received, l.sent
                );
            }
        }
        for g in &self.gateways {
            if let Some(stats) = &g.gateway_stats {
                let _ = writeln!(
                    s,
                    "\n### `dataplane stats` after the load points ({})\n\n```\n{}\n```",
                    g.short,
                    stats.trim_end()
                );
            }
        }
    }

    /// Whose cores were full at each `max` point: the shares of every CPU and the busiest
    /// threads while the point was sending.
    fn write_cpu_at_max(&self, s: &mut String) {
        if self.gateways.iter().all(|g| g.cpu_at_max.is_empty()) {
            return;
        }
        let _ = writeln!(
            s,
            "\n### Where the cores went at `max`\n\n\
             While each full-speed point was sending (`/proc/stat` and the threads' own \
             counters): every CPU's user, system and softirq share, and the busiest threads by \
             name in cores (1.00 = one core all the time) with the CPU they last ran on. On veth \
             a packet's receive work (XDP, the AF_XDP copy, the UDP stack) runs in softirq on \
             the core that sent it, so a gateway's core also carries the receiving end's copy \
             and the generator's core the gateway's. `bench` is the bench's main thread (the \
             generator sending forward, the sink sending in reverse), `bench-gen-rx` the \
             generator receiving, `bench-sink-*` the sink receiving, `worker0` the dataplane's \
             worker.\n\n\
             | gateway | direction | size | CPUs | busiest threads |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for g in &self.gateways {
            for m in &g.cpu_at_max {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    g.short,
                    direction_name(m.direction),
                    m.mix.label(),
                    m.split.cpus_line(),
                    m.split.threads_line().replace('|', "/")
                );
            }
        }
    }

    /// Writes `results.md` and `results.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("results.md"), self.markdown())?;
        self.plot(&dir.join("results.svg"))
    }

    /// One line naming where the figures come from (the plot's title).
    fn machine_line(&self) -> String {
        let m = &self.machine;
        let mut line = format!(
            "{} ({} cores), kernel {}, load {}",
            m.cpu, m.cores, m.kernel, m.load
        );
        if let Some(g) = self.gateways.first() {
            let _ = write!(line, "; NIC driver {}", g.driver);
        }
        if let Some(mode) = self.gateways.iter().find_map(|g| g.afxdp_mode.as_ref()) {
            let _ = write!(line, "; AF_XDP {mode} mode{}", zero_copy_note(mode));
        }
        line
    }

    /// Three panels: the pipeline's throughput against packet size; each gateway's delivered
    /// against offered load (load generator, smallest size, both directions); and its one-way
    /// latency against offered load (p50 and p99, client -> server).
    pub fn plot(&self, path: &Path) -> Result<()> {
        let root = SVGBackend::new(path, (1560, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root
            .titled(&self.machine_line(), ("sans-serif", 16))
            .map_err(plot_err)?;
        let panels = root.split_evenly((1, 3));
        let fixed = |m: SizeMix| match m {
            SizeMix::Fixed(n) => Some(n as f64),
            SizeMix::Imix => None,
        };
        let pipe = |f: &dyn Fn(&PipelinePoint) -> Option<f64>| -> Vec<(f64, f64)> {
            self.pipeline
                .iter()
                .filter_map(|p| Some((fixed(p.mix)?, f(p)?)))
                .collect()
        };
        let pipeline_series = vec![
            (
                "forward, 1 core".to_owned(),
                pipe(&|p| Some(p.forward.pps())),
            ),
            (
                "reverse, 1 core".to_owned(),
                pipe(&|p| Some(p.reverse.pps())),
            ),
            (
                "raw ChaCha20-Poly1305 open (fastest)".to_owned(),
                pipe(&|p| Some(p.raw_open.pps())),
            ),
            ("forward, 2 workers".to_owned(), pipe(&|p| p.forward_2w)),
        ];
        draw_panel(
            &panels[0],
            "Pipeline without I/O",
            ("inner IPv4 packet size (bytes)", "packets/s"),
            (0.0, 1500.0),
            true,
            pipeline_series,
        )?;

        let (mix, load_series, latency_series) = self.load_series();
        let label = mix.map(|m| m.label()).unwrap_or_default();
        let xmax = load_series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|&(x, _)| x))
            .fold(10.0, f64::max)
            * 1.05;
        draw_panel(
            &panels[1],
            &format!("Load generator: delivered vs offered, {label}"),
            ("offered kpps", "delivered kpps"),
            (0.0, xmax),
            false,
            load_series,
        )?;
        draw_panel(
            &panels[2],
            &format!("One-way latency client -> server, {label}"),
            ("offered kpps", "microseconds"),
            (0.0, xmax),
            true,
            latency_series,
        )?;
        root.present().map_err(plot_err)?;
        Ok(())
    }

    /// The load generator's series of the first size every gateway ran: delivered against
    /// offered kpps per gateway and direction, and p50/p99 latency against offered kpps.
    #[allow(clippy::type_complexity)]
    fn load_series(
        &self,
    ) -> (
        Option<SizeMix>,
        Vec<(String, Vec<(f64, f64)>)>,
        Vec<(String, Vec<(f64, f64)>)>,
    ) {
        let Some(mix) = self
            .gateways
            .iter()
            .find_map(|g| g.load.first().map(|p| p.mix))
        else {
            return (None, Vec::new(), Vec::new());
        };
        let (mut load, mut latency) = (Vec::new(), Vec::new());
        for g in &self.gateways {
            let points = |dir: Direction| {
                let mut v: Vec<&LoadPoint> = g
                    .load
                    .iter()
                    .filter(|p| p.direction == dir && p.mix == mix)
                    .collect();
                v.sort_by(|a, b| a.offered_pps().total_cmp(&b.offered_pps()));
                v
            };
            for dir in [Direction::Forward, Direction::Reverse] {
                let arrow = match dir {
                    Direction::Forward => "c->s",
                    Direction::Reverse => "s->c",
                };
                load.push((
                    format!("{} {arrow}", g.short),
                    points(dir)
                        .iter()
                        .map(|p| (p.offered_pps() / 1e3, p.delivered_pps() / 1e3))
                        .collect(),
                ));
            }
            for (what, pick) in [
                (
                    "p50",
                    (|p: &LoadPoint| p.tally.p50_us) as fn(&LoadPoint) -> f64,
                ),
                ("p99", |p: &LoadPoint| p.tally.p99_us),
            ] {
                latency.push((
                    format!("{} {what}", g.short),
                    points(Direction::Forward)
                        .iter()
                        .filter(|p| p.tally.latency_samples > 0)
                        .map(|p| (p.offered_pps() / 1e3, pick(p)))
                        .collect(),
                ));
            }
        }
        (Some(mix), load, latency)
    }
}

/// `, not zero-copy` unless the mode is zero-copy.
fn zero_copy_note(mode: &str) -> &'static str {
    if mode.contains("zero") {
        ""
    } else {
        ", not zero-copy"
    }
}

/// One chart of line series with markers and a legend; `log_y` for a logarithmic y axis.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    (xmin, xmax): (f64, f64),
    log_y: bool,
    mut series: Vec<(String, Vec<(f64, f64)>)>,
) -> Result<()> {
    series.retain(|(_, pts)| pts.iter().any(|&(_, y)| y > 0.0));
    let ys = || series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let ymax = ys().fold(1.0, f64::max) * if log_y { 2.0 } else { 1.1 };
    let ymin = ys().filter(|y| *y > 0.0).fold(ymax, f64::min) / 2.0;
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70);
    let colors: Vec<RGBAColor> = (0..series.len())
        .map(|i| Palette99::pick(i).to_rgba())
        .collect();
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .draw()
                .map_err(plot_err)?;
            for ((name, pts), &color) in series.iter().zip(&colors) {
                let pts: Vec<(f64, f64)> = pts.iter().copied().filter(|&(_, y)| y > 0.0).collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(plot_err)?;
            }
            if !series.is_empty() {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperLeft)
                    .draw()
                    .map_err(plot_err)?;
            }
        }};
    }
    if log_y {
        draw!(builder
            .build_cartesian_2d(xmin..xmax, (ymin..ymax).log_scale())
            .map_err(plot_err)?);
    } else {
        draw!(builder
            .build_cartesian_2d(xmin..xmax, 0f64..ymax)
            .map_err(plot_err)?);
    }
    Ok(())
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {e:?}")
}
