//! Command-line arguments of the `dataplane` binary (clap derive). Each command's `--help`
//! carries an example.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dataplane",
    version,
    about = "WireGuard gateway on AF_XDP: decrypts, source-NATs and forwards without the kernel in the hot path",
    after_help = "Examples:\n  dataplane --config /etc/dataplane/gw.toml        run the gateway\n  dataplane --config /etc/wireguard/wg0.conf       run from a wg-quick file\n  dataplane check --config gw.toml                 validate a config\n  dataplane import wg0.conf > gw.toml              convert a wg-quick file"
)]
pub struct Cli {
    /// Config file to run: gw.toml, or a wg-quick wg0.conf.
    #[arg(long, short = 'c', value_name = "FILE", global = false)]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,

    /// Log filter (tracing-subscriber EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long, default_value = "info", global = true, value_name = "FILTER")]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config file (gw.toml or wg0.conf) and exit non-zero if it has errors.
    #[command(
        after_help = "Example:\n  dataplane check --config /etc/dataplane/gw.toml\n\nErrors name the file, line and field:\n  gw.toml:7: peer[1].allowed_ips[0]: \"10.0.0.300/32\" is not an IP prefix; expected e.g. 10.13.13.2/32"
    )]
    Check {
        /// The file to check.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Check the file alone: skip the checks against this host (interfaces present,
        /// /proc/sys/net/ipv4/ip_local_port_range, CPUs).
        #[arg(long)]
        offline: bool,
    },
    /// Print the gw.toml equivalent of a wg-quick file (PostUp/PostDown forwarding and
    /// MASQUERADE rules become the built-in NAT).
    #[command(
        after_help = "Example:\n  dataplane import /etc/wireguard/wg0.conf > /etc/dataplane/gw.toml\n  dataplane import wg0.conf --interface wan0 --interface lan0   (two-armed)"
    )]
    Import {
        /// The wg-quick file.
        #[arg(value_name = "WG0_CONF")]
        file: PathBuf,
        /// The NIC(s) to attach to instead of the one inferred from the MASQUERADE rule: once
        /// for one-armed, twice (WAN then LAN) for two-armed.
        #[arg(long, value_name = "NAME")]
        interface: Vec<String>,
    },
    /// Run the gateway for real in a lab of network namespaces reproducing the article (a
    /// wireguard-go client, this gateway, an HTTP server), send traffic through it and explain
    /// each packet; cleans up afterwards. Needs root.
    Lab(dataplane::lab::LabArgs),
}
