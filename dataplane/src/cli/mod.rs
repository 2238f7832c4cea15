//! Command-line arguments of the `dataplane` binary (clap derive). Each command's `--help`
//! carries an example.

pub mod capture;
pub mod ops;

use ::ops::capture::session::{SNAPLEN_MAX, SNAPLEN_MIN};
use clap::{Args, Parser, Subcommand, ValueEnum};
use fastpath::capture::CapturePoint;
use ipnet::IpNet;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dataplane",
    version,
    about = "WireGuard gateway on AF_XDP: decrypts, source-NATs and forwards without the kernel in the hot path",
    after_help = "Examples:\n  dataplane init --interface eth0                  write gw.toml with a new gateway key\n  dataplane peer add phone --server-url vpn.example.org   add a peer, print its QR code\n  dataplane stats --watch                          live counters of the running gateway\n  dataplane capture --point decrypted -w wg0.pcap  what the article's `tcpdump -i wg0` showed\n  dataplane --config /etc/dataplane/gw.toml        run the gateway\n  dataplane --config /etc/wireguard/wg0.conf       run from a wg-quick file\n  dataplane check --config gw.toml                 validate a config\n  dataplane import wg0.conf > gw.toml              convert a wg-quick file"
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
    /// Write a new gw.toml, commented, with a freshly generated gateway key.
    #[command(
        after_help = "Example:\n  dataplane init --config /etc/dataplane/gw.toml --interface eth0 --subnet 10.13.13.0/24 --port 51820\n  dataplane init --interface eth0 --subnet 10.13.13.0/24,fd13::/64           dual-stack tunnel\n\nThe gateway takes each subnet's first address (10.13.13.1/24, fd13::1/64); `dataplane peer add` hands out the next ones\n(10.13.13.2/32 and fd13::2/128). IPv6 inside the tunnel is routed unless [nat] masquerade_ipv6 = true."
    )]
    Init {
        /// The file to write (refused if it exists, unless --force).
        #[arg(long, short = 'c', value_name = "FILE", default_value = "gw.toml")]
        config: PathBuf,
        /// The NIC WireGuard arrives on and NATed traffic leaves by (one-armed, as eth0 in the
        /// article).
        #[arg(long, value_name = "NAME", default_value = "eth0")]
        interface: String,
        /// The tunnel device ([interface] name): wg1 for a second gateway on this host; it
        /// names the UAPI socket (/var/run/wireguard/NAME.sock) and the control socket.
        #[arg(long, value_name = "NAME", default_value = gwconf::schema::defaults::DEVICE_NAME,
              value_parser = gwconf::values::device_name)]
        name: String,
        /// The tunnel subnet (the linuxserver container's INTERNAL_SUBNET), IPv4, or IPv4 and
        /// IPv6 for a dual-stack tunnel (10.13.13.0/24,fd13::/64). IPv6 alone is refused: the
        /// gateway sends ICMP errors into the tunnel from its IPv4 tunnel address.
        #[arg(long = "subnet", value_name = "CIDR[,CIDR6]", default_value = "10.13.13.0/24", value_parser = gwconf::values::tunnel_subnets)]
        subnets: gwconf::init::TunnelSubnets,
        /// The UDP port peers send to.
        #[arg(long, value_name = "PORT", default_value_t = 51820, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// Replace an existing file (its gateway key is lost: every peer needs the new public key).
        #[arg(long)]
        force: bool,
    },
    /// Add, remove or list peers (gw.toml and the running gateway).
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Counters of the running gateway, through its control socket.
    #[command(
        after_help = "Examples:\n  dataplane stats                            once, from /run/dataplane/wg0.control.sock\n  dataplane stats --config gw.toml --watch   every second with rates; the socket is [control] socket of gw.toml\n  dataplane stats --json                     the raw snapshot, for scripts"
    )]
    Stats {
        /// Config of the running gateway, to find its [control] socket.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// The control socket (overrides --config).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Refresh every second, with per-second rates; Ctrl-C to stop.
        #[arg(long, short = 'w')]
        watch: bool,
        /// Print the snapshot as JSON.
        #[arg(long, conflicts_with = "watch")]
        json: bool,
    },
    /// Capture packets inside the running gateway into a pcap file (Wireshark, tshark,
    /// tcpdump -r), at one point of the pipeline. Packets taken by AF_XDP never reach the
    /// kernel, so `tcpdump -i eth0` on the gateway does not see them; this does.
    #[command(
        after_help = "Points:\n  wire-in    every frame the workers receive (Ethernet): WireGuard from peers, NAT return traffic\n  decrypted  the tunnel's cleartext (raw IP), as on wg0: packets just decrypted, replies just before sealing\n  nat        the LAN side of the source NAT (raw IP): after the source rewrite, and replies before the reverse\n  wire-out   every frame the workers transmit (Ethernet)\n\nExamples:\n  dataplane capture --point decrypted -w wg0.pcap --config gw.toml       until Ctrl-C\n  dataplane capture --point wire-in -w eth0.pcap --count 100\n  dataplane capture --point nat -w - --duration 10 | tshark -r -\n  tshark -r eth0.pcap -d udp.port==51820,wg                              decode WireGuard\n\nA summary (packets written, packets skipped because this reader was too slow) goes to stderr.\nThe file is readable at any time, also after Ctrl-C. One capture at a time per gateway."
    )]
    Capture {
        /// Where to capture: wire-in, decrypted, nat or wire-out.
        #[arg(long, short = 'p', value_name = "POINT", value_parser = parse_point)]
        point: CapturePoint,
        /// The pcap file to write (replaced if it exists); `-` for stdout.
        #[arg(long = "write", short = 'w', value_name = "FILE")]
        write: PathBuf,
        /// Stop after this many packets.
        #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Stop after this many seconds (fractions allowed).
        #[arg(long, short = 'd', value_name = "SECS", value_parser = parse_seconds)]
        duration: Option<std::time::Duration>,
        /// Bytes kept of each packet (the rest is cut, its original length recorded); the
        /// default keeps every frame whole (a UMEM frame is 4096 bytes).
        #[arg(long, short = 's', value_name = "N", default_value_t = 4096,
              value_parser = clap::value_parser!(u32).range(i64::from(SNAPLEN_MIN)..=i64::from(SNAPLEN_MAX)))]
        snaplen: u32,
        /// Config of the running gateway, to find its [control] socket.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// The control socket (overrides --config).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
}

/// A prefix such as 0.0.0.0/0, with an error that says which part is wrong.
fn parse_prefix(s: &str) -> Result<IpNet, String> {
    s.trim()
        .parse()
        .map_err(|_| gwconf::values::prefix_problem(s, "0.0.0.0/0"))
}

fn parse_point(s: &str) -> Result<CapturePoint, String> {
    s.parse()
}

fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1e9 => Ok(std::time::Duration::from_secs_f64(v)),
        _ => Err(format!(
            "{s:?} is not a number of seconds above 0, e.g. 10 or 0.5"
        )),
    }
}

/// Where peer commands find the config and the running gateway.
#[derive(Debug, Args)]
pub struct PeerTarget {
    /// The gateway's gw.toml.
    #[arg(long, short = 'c', value_name = "FILE", default_value = "gw.toml")]
    pub config: PathBuf,
    /// UAPI socket of the running gateway (as `wg` uses it); default
    /// /var/run/wireguard/NAME.sock for the config's [interface] name NAME (wg0).
    #[arg(long, value_name = "PATH")]
    pub uapi_socket: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Generate a peer's keys, give it the next free tunnel address, append it to gw.toml
    /// (comments kept), write NAME.conf and NAME.png (QR code), print the QR code, and apply
    /// it to the running gateway without a restart.
    #[command(
        after_help = "Examples:\n  dataplane peer add phone --config /etc/dataplane/gw.toml --server-url vpn.example.org --dns 10.13.13.1\n  dataplane peer add --count 3 --server-url vpn.example.org       peer1, peer2, peer3\n\nThe linuxserver/wireguard settings map as: PEERS -> --count N (or several names), SERVERURL -> --server-url,\nSERVERPORT -> the port in --server-url (default: listen_port), PEERDNS -> --dns, ALLOWEDIPS -> --allowed-ips.\nScan the QR code with the WireGuard app, or copy NAME.conf to the client (`wg-quick up ./NAME.conf`).\nThe terminal QR code is drawn for a dark background."
    )]
    Add {
        /// The peer's name: 1-15 of A-Z a-z 0-9 _ = + . - (it names NAME.conf); several names
        /// add several peers.
        #[arg(value_name = "NAME", required_unless_present = "count")]
        names: Vec<String>,
        /// Add N peers named peer1, peer2, ... (the first numbers not taken), as the
        /// container's PEERS=N.
        #[arg(long, value_name = "N", conflicts_with = "names",
              value_parser = clap::value_parser!(u16).range(1..=1000))]
        count: Option<u16>,
        #[command(flatten)]
        target: PeerTarget,
        /// host[:port] clients connect to; default: the WAN interface's IPv4 address (its
        /// IPv6 address on an IPv6-only WAN) and the listen port.
        #[arg(long, value_name = "HOST[:PORT]")]
        server_url: Option<String>,
        /// DNS server(s) for the client's [Interface] DNS (none by default: the gateway runs no
        /// resolver).
        #[arg(long, value_name = "ADDR", value_delimiter = ',')]
        dns: Vec<String>,
        /// What the client sends into the tunnel (default 0.0.0.0/0: everything).
        #[arg(long, value_name = "CIDR", value_delimiter = ',', value_parser = parse_prefix)]
        allowed_ips: Vec<IpNet>,
        /// PersistentKeepalive for clients behind NAT, in seconds.
        #[arg(long, value_name = "SECONDS")]
        keepalive: Option<u16>,
        /// Where NAME.conf and NAME.png are written; default: `peers/` beside the config.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// Do not print the QR code.
        #[arg(long)]
        no_qr: bool,
    },
    /// Remove a peer from gw.toml and from the running gateway, and delete its NAME.conf and
    /// NAME.png (they hold the client's private key).
    #[command(
        after_help = "Example:\n  dataplane peer remove phone --config /etc/dataplane/gw.toml"
    )]
    Remove {
        name: String,
        #[command(flatten)]
        target: PeerTarget,
        /// Where `peer add` wrote NAME.conf and NAME.png; default: `peers/` beside the config.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Print a peer's client file and its QR code again (from NAME.conf written by `peer add`).
    #[command(
        after_help = "Example:\n  dataplane peer show phone --config /etc/dataplane/gw.toml"
    )]
    Show {
        name: String,
        #[command(flatten)]
        target: PeerTarget,
        /// Where `peer add` wrote NAME.conf; default: `peers/` beside the config.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// Do not print the QR code.
        #[arg(long)]
        no_qr: bool,
    },
    /// List peers: names, keys and addresses from gw.toml; endpoint, latest handshake and
    /// transfer from the running gateway.
    #[command(after_help = "Example:\n  dataplane peer list --config /etc/dataplane/gw.toml")]
    List {
        #[command(flatten)]
        target: PeerTarget,
    },
}
