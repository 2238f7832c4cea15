//! The lab's command-line arguments (`dataplane-lab`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::demo::DemoOptions;
use super::gateway::DataplaneGateway;
use super::topology::Topology;

/// Which layouts the demo runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LabLayout {
    /// One interface for WireGuard and the LAN, as in the article.
    OneArmed,
    /// WAN and LAN interfaces.
    TwoArmed,
    /// One-armed, then two-armed.
    Both,
}

/// Runs the article's gateway in a lab of network namespaces, sends a ping and an HTTP GET
/// through it and explains each packet (needs root).
#[derive(Clone, Debug, Args)]
#[command(after_help = "Example:\n  sudo dataplane-lab --topology both --keep")]
pub struct LabArgs {
    /// Which layout(s) to run.
    #[arg(long, value_enum, default_value = "one-armed")]
    pub topology: LabLayout,
    /// The dataplane binary to run as the gateway (default: `dataplane` beside this program,
    /// as cargo builds them). If it fails to start or to handshake, the demo says why and runs
    /// the reference gateway instead.
    #[arg(long, value_name = "PATH")]
    pub dataplane: Option<PathBuf>,
    /// Run the reference gateway (wireguard-go + iptables MASQUERADE) only.
    #[arg(long, conflicts_with = "dataplane")]
    pub reference: bool,
    /// `[dataplane] mode` in the gw.toml the lab writes (auto, zerocopy, copy, skb).
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// Do not capture and explain packets.
    #[arg(long)]
    pub no_capture: bool,
    /// Print every command the lab runs.
    #[arg(long, short)]
    pub verbose: bool,
    /// Keep configs, logs and pcap captures in the lab directory.
    #[arg(long)]
    pub keep: bool,
}

impl LabArgs {
    /// The demo options; `default_binary` is the gateway when `--dataplane` is not given
    /// (`dataplane` beside `dataplane-lab`).
    pub fn to_options(&self, default_binary: Option<PathBuf>) -> DemoOptions {
        let binary = if self.reference {
            None
        } else {
            self.dataplane.clone().or(default_binary)
        };
        let dataplane = binary.map(|b| {
            let mut dp = DataplaneGateway::new(b);
            dp.toml.mode = self.mode.clone();
            dp
        });
        DemoOptions {
            dataplane,
            topologies: match self.topology {
                LabLayout::OneArmed => vec![Topology::OneArmed],
                LabLayout::TwoArmed => vec![Topology::TwoArmed],
                LabLayout::Both => vec![Topology::OneArmed, Topology::TwoArmed],
            },
            capture: !self.no_capture,
            verbose: self.verbose,
            keep_files: self.keep,
            ..DemoOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        lab: LabArgs,
    }

    #[test]
    fn flags_map_to_options() {
        let w = Wrapper::parse_from(["x", "--topology", "both", "--mode", "copy", "--keep"]);
        let o = w.lab.to_options(Some("/usr/bin/dataplane".into()));
        assert_eq!(o.topologies, vec![Topology::OneArmed, Topology::TwoArmed]);
        let dp = o.dataplane.unwrap();
        assert_eq!(dp.binary, PathBuf::from("/usr/bin/dataplane"));
        assert_eq!(dp.toml.mode.as_deref(), Some("copy"));
        assert!(o.keep_files && o.capture);

        let w = Wrapper::parse_from(["x", "--reference"]);
        assert!(w.lab.to_options(Some("/bin/dp".into())).dataplane.is_none());
        assert!(Wrapper::try_parse_from(["x", "--reference", "--dataplane", "/bin/dp"]).is_err());
    }
}
