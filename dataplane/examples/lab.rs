//! The namespace lab demo until `dataplane lab` exists: builds the article's setup in network
//! namespaces, runs a gateway in it, sends a request and a ping, explains each packet, cleans up.
//!
//! ```sh
//! sudo target/release/examples/lab --dataplane target/release/dataplane --topology both
//! ```

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use dataplane::lab::{run_demo, DataplaneGateway, DemoOptions, Topology};

#[derive(Clone, Copy, ValueEnum)]
enum Layout {
    OneArmed,
    TwoArmed,
    Both,
}

/// Runs the article's WireGuard gateway in a lab of network namespaces and explains each packet.
#[derive(Parser)]
#[command(after_help = "Example: sudo lab --dataplane target/release/dataplane --topology both")]
struct Args {
    /// The dataplane binary to run as the gateway; without it (or if it fails) the reference
    /// gateway (wireguard-go + iptables MASQUERADE) runs.
    #[arg(long)]
    dataplane: Option<PathBuf>,
    /// `[dataplane] mode` for the gw.toml the lab writes (auto, zerocopy, copy, skb).
    #[arg(long)]
    mode: Option<String>,
    /// Which layout(s) to run.
    #[arg(long, value_enum, default_value = "one-armed")]
    topology: Layout,
    /// Do not capture and explain packets.
    #[arg(long)]
    no_capture: bool,
    /// Print every command the lab runs.
    #[arg(long, short)]
    verbose: bool,
    /// Keep configs, logs and pcap captures in the lab directory.
    #[arg(long)]
    keep: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dataplane = args.dataplane.map(|b| {
        let mut dp = DataplaneGateway::new(b);
        dp.toml.mode = args.mode.clone();
        dp
    });
    let opts = DemoOptions {
        dataplane,
        topologies: match args.topology {
            Layout::OneArmed => vec![Topology::OneArmed],
            Layout::TwoArmed => vec![Topology::TwoArmed],
            Layout::Both => vec![Topology::OneArmed, Topology::TwoArmed],
        },
        capture: !args.no_capture,
        verbose: args.verbose,
        keep_files: args.keep,
        ..DemoOptions::default()
    };
    run_demo(&opts)
}
