//! What a run writes to its results folder: the machine it ran on, a Markdown table of every
//! figure, and an SVG plot of throughput and latency against packet size.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::e2e::GatewayResult;
use crate::packets::SizeMix;
use crate::pipeline::PipelinePoint;

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
                    .map(|m| format!(", AF_XDP mode {m} (copy mode is not zero-copy)"))
                    .unwrap_or_default()
            );
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
                 headers. Frames are re-sealed outside the timed region (no copy timed). \
                 Ratio = pipeline ns/packet over raw ChaCha20-Poly1305 ns/packet of the same \
                 bytes (1.0 is the limit). Gbit/s counts inner packet bytes. Rates are per \
                 on-CPU second of the worker thread (preemption by other load excluded); the \
                 two-worker figure is the sum of both workers' rates, each on its own thread.\n"
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
        }
        if !self.gateways.is_empty() {
            let _ = writeln!(
                s,
                "\n## End to end in the namespace lab (veth, two-armed)\n\n\
                 The client is wireguard-go in its own namespace for both gateways; iperf3 and \
                 ping run from it to the server behind the gateway.\n"
            );
            let _ = writeln!(s, "| gateway | TCP up Mbit/s | TCP down Mbit/s |");
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
            if let [a, b, ..] = self.gateways.as_slice() {
                let _ = writeln!(
                    s,
                    "\nRatio {} / {}: TCP up {:.2}, down {:.2}.",
                    a.short,
                    b.short,
                    a.tcp_up_bps / b.tcp_up_bps.max(1.0),
                    a.tcp_down_bps / b.tcp_down_bps.max(1.0)
                );
            }
            let _ = writeln!(
                s,
                "\n| gateway | size | UDP offered kpps | UDP delivered kpps | delivered Mbit/s | \
                 loss % | ping p50 us | p99 us | p99.9 us | replies |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
            for g in &self.gateways {
                for u in &g.udp {
                    let lat = g
                        .latency
                        .iter()
                        .find(|(size, _)| *size == u.size)
                        .map(|(_, l)| *l)
                        .unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "| {} | {} B | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {}/{} |",
                        g.short,
                        u.size,
                        u.sent_pps / 1e3,
                        u.received_pps / 1e3,
                        u.received_bps / 1e6,
                        u.lost_percent,
                        lat.p50_us,
                        lat.p99_us,
                        lat.p999_us,
                        lat.received,
                        lat.sent
                    );
                }
            }
        }
        s
    }

    /// Writes `results.md` and `results.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("results.md"), self.markdown())?;
        self.plot(&dir.join("results.svg"))
    }

    /// Throughput (packets/s, log scale) and latency (µs) against inner packet size.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(640);
        let fixed = |m: SizeMix| match m {
            SizeMix::Fixed(n) => Some(n as f64),
            SizeMix::Imix => None,
        };
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        let pipe = |f: &dyn Fn(&PipelinePoint) -> Option<f64>| -> Vec<(f64, f64)> {
            self.pipeline
                .iter()
                .filter_map(|p| Some((fixed(p.mix)?, f(p)?)))
                .collect()
        };
        series.push((
            "pipeline forward, 1 core".into(),
            pipe(&|p| Some(p.forward.pps())),
        ));
        series.push((
            "pipeline reverse, 1 core".into(),
            pipe(&|p| Some(p.reverse.pps())),
        ));
        series.push((
            "raw ChaCha20-Poly1305 open".into(),
            pipe(&|p| Some(p.raw_open.pps())),
        ));
        series.push((
            "pipeline forward, 2 workers".into(),
            pipe(&|p| p.forward_2w),
        ));
        for g in &self.gateways {
            series.push((
                format!("e2e UDP delivered, {}", g.short),
                g.udp
                    .iter()
                    .map(|u| (u.size as f64, u.received_pps))
                    .collect(),
            ));
        }
        series.retain(|(_, pts)| pts.iter().any(|&(_, y)| y > 0.0));
        let ymax = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
            .fold(1e3, f64::max)
            * 2.0;
        let mut chart = ChartBuilder::on(&left)
            .caption("Throughput vs packet size", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..1500f64, (1e3f64..ymax).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("inner IPv4 packet size (bytes)")
            .y_desc("packets/s")
            .draw()
            .map_err(plot_err)?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<_> = pts.iter().copied().filter(|&(_, y)| y > 0.0).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerLeft)
            .draw()
            .map_err(plot_err)?;

        let lat_max = self
            .gateways
            .iter()
            .flat_map(|g| g.latency.iter().map(|(_, l)| l.p99_us))
            .fold(100.0, f64::max)
            * 1.2;
        let mut chart = ChartBuilder::on(&right)
            .caption("Ping round trip through the gateway", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..1500f64, 0f64..lat_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("IPv4 packet size (bytes)")
            .y_desc("microseconds")
            .draw()
            .map_err(plot_err)?;
        let mut i = 0;
        for g in &self.gateways {
            for (what, pick) in [
                ("p50", (|l: &crate::e2e::Latency| l.p50_us) as fn(&_) -> f64),
                ("p99", |l: &crate::e2e::Latency| l.p99_us),
            ] {
                let color = Palette99::pick(i + 4).to_rgba();
                i += 1;
                let pts: Vec<(f64, f64)> = g
                    .latency
                    .iter()
                    .map(|(size, l)| (*size as f64, pick(l)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(format!("{} {what}", g.short))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(plot_err)?;
            }
        }
        if !self.gateways.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
        Ok(())
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {e:?}")
}
