//! `dataplane-lab`: the README's first command. Builds the article's setup in network
//! namespaces (a wireguard-go client, the gateway, an HTTP server), runs the `dataplane`
//! binary as the gateway, sends a ping and an HTTP GET through it, explains each packet the way
//! the article's diagram does, and cleans up. Needs root.
//!
//! ```sh
//! sudo target/release/dataplane-lab --topology both --keep
//! ```

use std::path::PathBuf;

use clap::Parser;
use lab::{run_demo, LabArgs};

/// Runs the article's gateway in a lab of network namespaces (needs root).
#[derive(Parser)]
#[command(name = "dataplane-lab", version)]
struct Cli {
    #[command(flatten)]
    lab: LabArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    run_demo(&cli.lab.to_options(beside_me("dataplane")))
}

/// `name` in this program's directory, where cargo puts the workspace's binaries.
fn beside_me(name: &str) -> Option<PathBuf> {
    let path = std::env::current_exe().ok()?.parent()?.join(name);
    path.exists().then_some(path)
}
