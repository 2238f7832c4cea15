//! `bench [--quick] [--out results/]`: the pipeline benchmark, then (as root) the end-to-end
//! benchmark of this gateway and the two reference gateways in the namespace lab, in one run; writes
//! `results.md` and `results.svg` into the output folder.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use bench::e2e::{self, E2eOptions, Gateway};
use bench::load_sweep::GeneratorKind;
use bench::packets::SizeMix;
use bench::pipeline::{self, PipelineOptions};
use bench::report::{Machine, Report};
use bench::sink_xdp::SinkKind;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    about = "Line-rate benchmarks: pipeline without I/O, and end to end (load generator, iperf3, \
             ping) against wireguard-go and boringtun with iptables MASQUERADE"
)]
struct Args {
    /// Short run (about three minutes on two cores; the full run takes about 27).
    #[arg(long)]
    quick: bool,
    /// Results folder.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// The `dataplane` binary (default: next to this executable; build it with
    /// `cargo build --release -p dataplane`).
    #[arg(long)]
    dataplane: Option<PathBuf>,
    /// AF_XDP mode of the dataplane gateway (`copy` on veth).
    #[arg(long, default_value = "copy")]
    mode: String,
    /// Only the pipeline benchmark.
    #[arg(long)]
    no_e2e: bool,
    /// Only the end-to-end benchmark.
    #[arg(long)]
    no_pipeline: bool,
    /// Pipeline sizes only these (comma-separated: 64,512,1420,imix): short runs for
    /// interleaved before/after rounds.
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
    /// No two-worker pipeline measurement.
    #[arg(long)]
    one_worker: bool,
    /// The load generator's way out of the client namespace: `xdp` (an AF_XDP socket in copy
    /// mode on the client's veth; falls back to sendmmsg with the reason when it cannot attach)
    /// or `sendmmsg` (the kernel's UDP stack).
    #[arg(long, value_enum, default_value_t = GeneratorKind::Xdp)]
    generator: GeneratorKind,
    /// How the sink in the server namespace receives and answers: `xdp` (an AF_XDP socket in
    /// copy mode on the server's veth; falls back to udp with the reason when it cannot
    /// attach) or `udp` (the kernel's UDP stack).
    #[arg(long, value_enum, default_value_t = SinkKind::Xdp)]
    sink: SinkKind,
}

/// A `--sizes` entry as a size mix.
fn parse_mix(s: &str) -> Result<SizeMix> {
    if s.eq_ignore_ascii_case("imix") {
        return Ok(SizeMix::Imix);
    }
    let n: usize = s
        .trim_end_matches('B')
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--sizes: {s:?} is neither a byte count nor imix"))?;
    Ok(SizeMix::Fixed(n))
}

/// One progress line on stderr, overwritten in place on a terminal.
struct Progress {
    started: Instant,
}

impl Progress {
    fn line(&mut self, what: &str) {
        let mut e = std::io::stderr();
        let _ = writeln!(e, "[{:6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut progress = Progress {
        started: Instant::now(),
    };
    let mut report = Report {
        machine: Machine::detect(),
        quick: args.quick,
        ..Report::default()
    };
    progress.line(&format!(
        "machine: {} ({} cores), kernel {}",
        report.machine.cpu, report.machine.cores, report.machine.kernel
    ));
    if !args.no_pipeline {
        let mut opts = if args.quick {
            PipelineOptions::quick()
        } else {
            PipelineOptions::full()
        };
        if !args.sizes.is_empty() {
            opts.mixes = args
                .sizes
                .iter()
                .map(|s| parse_mix(s))
                .collect::<Result<_>>()?;
        }
        opts.two_workers &= !args.one_worker;
        report.pipeline = pipeline::run(&opts, &mut |s| progress.line(s))?;
    }
    if args.no_e2e {
        report
            .skipped
            .push("end-to-end benchmark (--no-e2e)".into());
    } else if !lab::is_root() {
        report
            .skipped
            .push("end-to-end benchmark: needs root for network namespaces".into());
    } else {
        let mut opts = if args.quick {
            E2eOptions::quick()
        } else {
            E2eOptions::full()
        };
        opts.generator = args.generator;
        opts.sink = args.sink;
        let binary = args.dataplane.clone().or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| Some(p.parent()?.join("dataplane")))
        });
        let mut gateways = Vec::new();
        match binary.filter(|p| p.exists()) {
            Some(binary) => gateways.push(Gateway::Dataplane {
                binary,
                mode: args.mode.clone(),
            }),
            None => report.skipped.push(
                "dataplane end to end: no `dataplane` binary next to `bench` (run `cargo build \
                 --release -p dataplane` or pass --dataplane)"
                    .into(),
            ),
        }
        gateways.push(Gateway::Reference);
        match lab::boringtun_binary() {
            Some(_) => gateways.push(Gateway::ReferenceBoringtun),
            None => report.skipped.push(
                "boringtun + iptables MASQUERADE: no boringtun-cli (run \
                 dataplane/scripts/install-deps.sh as root, or set $BORINGTUN_CLI)"
                    .into(),
            ),
        }
        for gw in &gateways {
            match e2e::run_gateway(gw, &opts, &mut |s| progress.line(s)) {
                Ok(r) => report.gateways.push(r),
                Err(e) => {
                    progress.line(&format!("{} failed: {e:#}", gw.short()));
                    report
                        .skipped
                        .push(format!("{} end to end failed: {e:#}", gw.name()));
                }
            }
        }
    }
    report.write(&args.out)?;
    progress.line(&format!(
        "wrote {} and {}",
        args.out.join("results.md").display(),
        args.out.join("results.svg").display()
    ));
    println!("{}", report.markdown());
    Ok(())
}
