//! The namespace lab demo until `dataplane lab` exists (same flags, see `dataplane::lab::LabArgs`):
//! builds the article's setup in network namespaces, runs a gateway in it, sends a ping and an
//! HTTP GET, explains each packet, cleans up.
//!
//! ```sh
//! sudo target/release/examples/lab --dataplane target/release/dataplane --topology both
//! ```

use clap::Parser;
use dataplane::lab::{run_demo, LabArgs};

#[derive(Parser)]
#[command(name = "lab")]
struct Cli {
    #[command(flatten)]
    lab: LabArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Without --dataplane the example runs the reference gateway.
    run_demo(&cli.lab.to_options(None))
}
