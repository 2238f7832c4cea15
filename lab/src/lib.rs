//! The namespace lab: the article's setup (a WireGuard client, the gateway, an HTTP server) built
//! from network namespaces and veth pairs on one machine, for the README's first command, the
//! root integration tests and the end-to-end benchmarks.
//!
//! The lab owns: creating uniquely named namespaces, wiring them one-armed or two-armed
//! ([`Topology`]), the client's WireGuard (wireguard-go or boringtun, [`ClientKind`]), the
//! server's HTTP/iperf3 processes, starting the gateway under test ([`GatewayKind`]), probes
//! (HTTP GET, ICMP echo, handshake, counters), captures, a readable trace of what it did, and
//! tearing all of it down in `Drop` (also on panic). It drives the system only through commands
//! (`ip`, `wg`, `wireguard-go`, `boringtun-cli`, `iptables`, `tshark`, `python3`), and reads
//! its own devices' UAPI sockets through `/proc/<pid>/root`; it never enters a namespace itself
//! and has no unsafe code.
//! It must never touch a namespace or process it did not create.
//!
//! The client is wireguard-go or boringtun ([`ClientKind`]). Both keep their UAPI socket in
//! `/var/run/wireguard/<ifname>.sock` (`/run` on Debian), a path shared by every namespace. To
//! let the client, a reference gateway and concurrent labs all call their device `wg0`, each
//! such process (and the `dataplane` gateway) runs with a private tmpfs on `/run/wireguard`
//! inside the mount namespace `ip netns exec` gives it, and `wg` reaches it with
//! `nsenter --target <pid> --mount --net`.
//!
//! Client routing: the article's client has `AllowedIPs = 0.0.0.0/0` and wg-quick's policy
//! routing. The lab keeps that AllowedIPs (cryptokey routing) but installs kernel routes only for
//! 172.23.0.0/24 and 10.13.13.0/24 into `wg0`, plus a host route to the gateway's endpoint over
//! the underlay, so the WireGuard UDP itself never loops into the tunnel.

#![forbid(unsafe_code)]

mod capture;
mod cli;
mod configs;
mod demo;
pub mod e2e;
mod gateway;
mod keys;
mod netns;
mod probes;
mod process;
mod topology;
mod userspace_wg;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub use capture::{classify, ArticleStep, CaptureId, CapturedPacket};
pub use cli::{LabArgs, LabLayout};
pub use configs::{article_wg0_conf, gw_toml, gw_toml_with, GwTomlOptions};
pub use demo::{run_demo, DemoOptions};
pub use gateway::{DataplaneGateway, GatewayKind};
pub use keys::{KeyPair, LabKeys};
pub use netns::{cleanup_orphans, cleanup_stale, list_namespaces, NAME_TAG};
pub use probes::{parse_ping_received, IfCounters, PeerTransfer};
pub use topology::*;
pub use userspace_wg::{
    boringtun_binary, ClientKind, BORINGTUN_ENV, BORINGTUN_INSTALLED, BORINGTUN_VERSION,
};

use netns::{command_line, in_ns, run};
use process::Spawned;

/// `eprintln!` that never panics: the lab prints from `Drop`, possibly while unwinding with
/// stderr closed (`lab | head`), and a panic there would abort before the namespaces are gone.
macro_rules! to_stderr {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// True when the process can build namespaces (root). Root tests skip with a message otherwise.
pub fn is_root() -> bool {
    // Without libc: the effective uid is in /proc/self/status ("Uid: real effective ...").
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// One thing the lab did, for its printout.
#[derive(Clone, Debug)]
pub struct TraceStep {
    /// Since the lab was created.
    pub at: Duration,
    /// The namespace role (`client`, `gw`, ...) or `lab`.
    pub node: String,
    /// The command run, or a note.
    pub what: String,
}

/// Configures and builds a [`Lab`].
#[derive(Clone, Debug)]
pub struct LabBuilder {
    topology: Topology,
    gateway: GatewayKind,
    client: ClientKind,
    preshared_key: bool,
    iperf3: bool,
    echo: bool,
    keep_dir: bool,
    gateway_queues: u32,
    ipv6: bool,
    client_endpoint_ipv6: bool,
    wan_router_mtu: Option<u32>,
}

impl LabBuilder {
    /// Two-armed only: the client sits behind a router namespace (`rt`) instead of on the
    /// gateway's WAN wire, on a second WAN prefix ([`ROUTED_CLIENT_ADDR`],
    /// [`ROUTED_CLIENT_ADDR6`]), and the wire between router and client has MTU `mtu`: a
    /// plain Linux router with forwarding on, which sends Packet Too Big (ICMPv6) and
    /// "fragmentation needed" (ICMP, for DF packets) for what does not fit, and fragments
    /// IPv4 without DF. The gateway routes the client's prefix via [`WAN_ROUTER_ADDR`] /
    /// [`WAN_ROUTER_ADDR6`]. Off by default.
    pub fn wan_router(mut self, mtu: u32) -> Self {
        self.wan_router_mtu = Some(mtu);
        self
    }

    /// Dual-stack: every wire also gets the IPv6 addresses of [`topology`](crate::topology)
    /// (`*_ADDR6`; the one-armed client a /128 with a host route to the gateway, as for IPv4),
    /// the client's `wg0` `fd13::2` with routes for the LAN's and the tunnel's IPv6 prefixes, the
    /// gateway's `wg0` `fd13::1/64` in the configs the lab writes, and the HTTP server also
    /// listens on its IPv6 address. Off by default: IPv6 is then disabled in every namespace.
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// The client reaches the gateway at [`Topology::endpoint6`] instead of
    /// [`Topology::endpoint`]. Implies [`LabBuilder::ipv6`].
    pub fn client_endpoint_ipv6(mut self, on: bool) -> Self {
        self.client_endpoint_ipv6 = on;
        self.ipv6 |= on;
        self
    }

    /// The gateway to start in the `gw` namespace (default: [`GatewayKind::Reference`]).
    pub fn gateway(mut self, kind: GatewayKind) -> Self {
        self.gateway = kind;
        self
    }

    /// The WireGuard implementation of the client's `wg0` (default: [`ClientKind::WireguardGo`]).
    pub fn client(mut self, kind: ClientKind) -> Self {
        self.client = kind;
        self
    }

    /// Whether the peers share a preshared key, as the article's container sets up (default on).
    pub fn preshared_key(mut self, on: bool) -> Self {
        self.preshared_key = on;
        self
    }

    /// Also run `iperf3 -s` on the server (port 5201).
    pub fn iperf3_server(mut self, on: bool) -> Self {
        self.iperf3 = on;
        self
    }

    /// Print each trace step to stderr as it happens (the demo does; tests need not).
    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    /// Keep the lab directory (configs, keys, logs, captures) after drop.
    pub fn keep_dir(mut self, on: bool) -> Self {
        self.keep_dir = on;
        self
    }

    /// RX/TX queues of the veths that reach the gateway (default 1). With more, the sending
    /// side spreads flows over the gateway's queues by hash, as RSS does on a NIC, so each of
    /// the gateway's workers gets its share.
    pub fn gateway_queues(mut self, n: u32) -> Self {
        self.gateway_queues = n.max(1);
        self
    }

    /// Creates namespaces and wires, starts the server, the gateway and the client. Does not wait
    /// for a handshake ([`Lab::wait_for_handshake`]). On error everything made so far is removed.
    pub fn build(self) -> Result<Lab> {
        if !is_root() {
            bail!("the lab needs root (network namespaces, veth pairs, TUN devices)");
        }
        if self.wan_router_mtu.is_some() && self.topology != Topology::TwoArmed {
            bail!("a WAN router needs the two-armed layout");
        }
        let prefix = netns::unique_prefix();
        // A namespace with our exact prefix can only be a leftover of a killed process that had
        // our pid: it is stale.
        netns::cleanup_stale(&format!("{prefix}-"))?;
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // It holds private keys.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let keys = LabKeys::generate(self.preshared_key)?;
        let mut lab = Lab {
            prefix,
            topology: self.topology,
            dir,
            keys,
            namespaces: Vec::new(),
            client_kind: self.client,
            client_wg: None,
            gateway: None,
            http: None,
            iperf3: None,
            captures: Vec::new(),
            gateway_queues: self.gateway_queues,
            ipv6: self.ipv6,
            client_endpoint_ipv6: self.client_endpoint_ipv6,
            wan_router_mtu: self.wan_router_mtu,
            http6: None,
            trace: Mutex::new(Vec::new()),
            started: Instant::now(),
            echo: self.echo,
            keep_dir: self.keep_dir,
        };
        lab.note(format!(
            "building the {} {} lab, namespaces {}-*, files in {}",
            lab.topology.name(),
            if lab.ipv6 { "dual-stack" } else { "IPv4" },
            lab.prefix,
            lab.dir.display()
        ));
        lab.create_namespaces()?;
        lab.wire()?;
        if lab.ipv6 {
            lab.wire6()?;
        }
        lab.start_http_server()?;
        if self.iperf3 {
            lab.start_iperf3_server()?;
        }
        lab.start_gateway(self.gateway)?;
        lab.start_client()?;
        Ok(lab)
    }
}

/// A running lab. Dropping it stops every process it started and deletes its namespaces.
pub struct Lab {
    prefix: String,
    topology: Topology,
    dir: PathBuf,
    keys: LabKeys,
    namespaces: Vec<(Node, String)>,
    client_kind: ClientKind,
    client_wg: Option<Spawned>,
    gateway: Option<gateway::RunningGateway>,
    http: Option<Spawned>,
    iperf3: Option<Spawned>,
    captures: Vec<Option<(String, Spawned, PathBuf)>>,
    /// Queues of each veth end that touches the gateway ([`LabBuilder::gateway_queues`]).
    gateway_queues: u32,
    /// Dual-stack ([`LabBuilder::ipv6`]).
    ipv6: bool,
    /// The client's endpoint is the gateway's IPv6 one ([`LabBuilder::client_endpoint_ipv6`]).
    client_endpoint_ipv6: bool,
    /// The MTU of the client's wire behind the WAN router ([`LabBuilder::wan_router`]).
    wan_router_mtu: Option<u32>,
    /// The HTTP server on [`SERVER_ADDR6`] in a dual-stack lab.
    http6: Option<Spawned>,
    trace: Mutex<Vec<TraceStep>>,
    started: Instant,
    echo: bool,
    keep_dir: bool,
}

/// The wireguard-go/boringtun wrapper: a private `/run/wireguard` (see the module docs), then exec.
const PRIVATE_UAPI_DIR: &str =
    "mkdir -p /run/wireguard && mount -t tmpfs -o size=1m,mode=0700 wglab /run/wireguard && exec \"$@\"";

impl Lab {
    /// A builder for `topology` with the reference gateway.
    pub fn builder(topology: Topology) -> LabBuilder {
        LabBuilder {
            topology,
            gateway: GatewayKind::Reference,
            client: ClientKind::WireguardGo,
            preshared_key: true,
            iperf3: false,
            echo: false,
            keep_dir: false,
            gateway_queues: 1,
            ipv6: false,
            client_endpoint_ipv6: false,
            wan_router_mtu: None,
        }
    }

    /// The client's own underlay address: [`Topology::client_underlay_addr`], or
    /// [`ROUTED_CLIENT_ADDR`] behind a WAN router.
    pub fn client_underlay_addr(&self) -> Ipv4Addr {
        match self.wan_router_mtu {
            Some(_) => ROUTED_CLIENT_ADDR,
            None => self.topology.client_underlay_addr(),
        }
    }

    /// The client's own IPv6 underlay address: [`Topology::client_underlay_addr6`], or
    /// [`ROUTED_CLIENT_ADDR6`] behind a WAN router.
    pub fn client_underlay_addr6(&self) -> std::net::Ipv6Addr {
        match self.wan_router_mtu {
            Some(_) => ROUTED_CLIENT_ADDR6,
            None => self.topology.client_underlay_addr6(),
        }
    }

    /// True for a dual-stack lab ([`LabBuilder::ipv6`]).
    pub fn ipv6(&self) -> bool {
        self.ipv6
    }

    /// Where the client was configured to reach the gateway: [`Topology::endpoint6`] with
    /// [`LabBuilder::client_endpoint_ipv6`], else [`Topology::endpoint`].
    pub fn client_endpoint(&self) -> std::net::SocketAddr {
        if self.client_endpoint_ipv6 {
            self.topology.endpoint6().into()
        } else {
            self.topology.endpoint().into()
        }
    }

    /// The name prefix of this lab's namespaces and directory, e.g. `wlab4242-0`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The lab's directory: keys, configs, logs and captures.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn keys(&self) -> &LabKeys {
        &self.keys
    }

    /// The WireGuard implementation the client runs.
    pub fn client_kind(&self) -> ClientKind {
        self.client_kind
    }

    /// The namespace name of `node`, e.g. `wlab4242-0-gw`.
    pub fn ns_name(&self, node: Node) -> String {
        format!("{}-{}", self.prefix, node.role())
    }

    /// Records a note in the trace.
    pub fn note(&self, what: impl Into<String>) {
        self.record("lab", what.into());
    }

    fn record(&self, node: &str, what: String) {
        let step = TraceStep {
            at: self.started.elapsed(),
            node: node.to_owned(),
            what,
        };
        if self.echo {
            to_stderr!(
                "[lab +{:>6.3}s] [{}] {}",
                step.at.as_secs_f64(),
                step.node,
                step.what
            );
        }
        if let Ok(mut t) = self.trace.lock() {
            t.push(step);
        }
    }

    /// Everything the lab did so far.
    pub fn trace(&self) -> Vec<TraceStep> {
        self.trace.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The trace as text, one step a line.
    pub fn trace_text(&self) -> String {
        let mut s = String::new();
        for t in self.trace() {
            let _ = writeln!(s, "+{:.3}s [{}] {}", t.at.as_secs_f64(), t.node, t.what);
        }
        s
    }

    /// Runs `argv` inside `node`'s namespace; stdout on success. Recorded in the trace.
    pub fn exec_in(&self, node: Node, argv: &[&str]) -> Result<String> {
        self.record(node.role(), argv.join(" "));
        run(&mut in_ns(&self.ns_name(node), argv))
    }

    /// `ip -n <ns> args...`, recorded in the trace as `ip args...`.
    fn ip(&self, node: Node, args: &[&str]) -> Result<String> {
        self.record(node.role(), format!("ip {}", args.join(" ")));
        let mut cmd = Command::new("ip");
        cmd.arg("-n").arg(self.ns_name(node)).args(args);
        run(&mut cmd)
    }

    /// The pid owning `node`'s `wg0` UAPI socket: the client's WireGuard, or the gateway.
    fn uapi_pid(&mut self, node: Node) -> Result<u32> {
        match node {
            Node::Client => self.client_wg.as_ref().map(Spawned::pid),
            Node::Gateway => self.gateway.as_ref().map(|g| g.process.pid()),
            _ => None,
        }
        .with_context(|| format!("no WireGuard device runs in {}", node.role()))
    }

    /// Runs `wg args...` against `node`'s `wg0` (client, or gateway when it has a UAPI socket).
    pub fn wg(&mut self, node: Node, args: &[&str]) -> Result<String> {
        let pid = self.uapi_pid(node)?;
        self.wg_pid(node, pid, args)
    }

    fn wg_pid(&self, node: Node, pid: u32, args: &[&str]) -> Result<String> {
        self.record(node.role(), format!("wg {}", args.join(" ")));
        self.wg_quiet(pid, args)
    }

    fn wg_quiet(&self, pid: u32, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("nsenter");
        cmd.args(["--target", &pid.to_string(), "--mount", "--net", "wg"])
            .args(args);
        run(&mut cmd)
    }

    /// The raw UAPI `get` answer (up to the blank line that ends it) of the `wg0` whose process
    /// is `pid`. Its socket is in the process's private `/run/wireguard`, which
    /// `/proc/<pid>/root` reaches from here without entering a namespace or running a command
    /// (this is polled; `wg show` would drop what [`probes::parse_uapi_handshaken_peers`] needs).
    fn uapi_get(&self, pid: u32) -> Result<String> {
        use std::io::{Read as _, Write as _};
        let path = format!("/proc/{pid}/root/run/wireguard/wg0.sock");
        let mut sock = std::os::unix::net::UnixStream::connect(&path)
            .with_context(|| format!("cannot connect to the UAPI socket {path}"))?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        sock.write_all(b"get=1\n\n")?;
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while !answer.ends_with(b"\n\n") {
            let n = sock
                .read(&mut chunk)
                .with_context(|| format!("reading the UAPI answer from {path}"))?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    /// Starts a long-running process in `node` with its output in `<dir>/<name>.log`.
    fn spawn_in(&self, node: Node, name: &str, argv: &[&str]) -> Result<Spawned> {
        let cmd = in_ns(&self.ns_name(node), argv);
        self.record(node.role(), format!("start {name}: {}", argv.join(" ")));
        Spawned::start(name, cmd, &self.dir.join(format!("{name}.log")))
    }

    /// Starts `kind`'s `wg0` in `node` with a private UAPI directory and waits for its socket.
    fn spawn_wg_device(&self, node: Node, kind: ClientKind, name: &str) -> Result<Spawned> {
        let program = kind.argv("wg0")?;
        let mut argv = vec!["sh", "-c", PRIVATE_UAPI_DIR, "sh"];
        argv.extend(program.iter().map(String::as_str));
        let mut p = self.spawn_in(node, name, &argv)?;
        let what = kind.name();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self
                .wg_quiet(p.pid(), &["show", "wg0", "public-key"])
                .is_ok()
            {
                return Ok(p);
            }
            if let Some(status) = p.exit_status() {
                bail!(
                    "{what} in {} exited ({status}) while starting:\n{}",
                    node.role(),
                    p.log_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{what} in {} did not open its UAPI socket within 5 s:\n{}",
                    node.role(),
                    p.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn write_file(&self, name: &str, text: &str, private: bool) -> Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if private {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(path)
    }

    fn create_namespaces(&mut self) -> Result<()> {
        let router = self.wan_router_mtu.map(|_| Node::Router);
        for &node in self.topology.nodes().iter().chain(router.as_ref()) {
            let ns = self.ns_name(node);
            self.record("lab", format!("ip netns add {ns}"));
            run(Command::new("ip").args(["netns", "add", &ns]))?;
            self.namespaces.push((node, ns));
            self.ip(node, &["link", "set", "lo", "up"])?;
            if self.ipv6 {
                // Dual-stack, but no router solicitations or autoconfiguration: every address
                // is set by the lab.
                self.exec_in(
                    node,
                    &[
                        "sysctl",
                        "-qw",
                        "net.ipv6.conf.all.accept_ra=0",
                        "net.ipv6.conf.default.accept_ra=0",
                    ],
                )?;
            } else {
                // No IPv6 chatter (router solicitations, MLD) in the captures or the fast path.
                self.exec_in(
                    node,
                    &[
                        "sysctl",
                        "-qw",
                        "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1",
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// A veth pair created directly inside the two namespaces (no name ever exists on the host).
    fn veth(&self, a: Node, a_if: &str, b: Node, b_if: &str) -> Result<()> {
        let (na, nb) = (self.ns_name(a), self.ns_name(b));
        self.record(
            "lab",
            format!("veth {}:{a_if} <-> {}:{b_if}", a.role(), b.role()),
        );
        // Both ends get the queues when the pair touches the gateway: the sender's tx queue
        // (picked by flow hash) is the receiver's rx queue on veth.
        let queues = if self.gateway_queues > 1 && (a == Node::Gateway || b == Node::Gateway) {
            let q = self.gateway_queues.to_string();
            vec![
                "numtxqueues".to_string(),
                q.clone(),
                "numrxqueues".into(),
                q,
            ]
        } else {
            Vec::new()
        };
        let mut cmd = Command::new("ip");
        cmd.args(["link", "add", "name", a_if])
            .args(&queues)
            .args(["netns", &na, "type", "veth", "peer", "name", b_if])
            .args(&queues)
            .args(["netns", &nb]);
        run(&mut cmd)?;
        Ok(())
    }

    fn wire(&mut self) -> Result<()> {
        let lan = format!("{GATEWAY_LAN_ADDR}/{LAN_PREFIX_LEN}");
        let server = format!("{SERVER_ADDR}/{LAN_PREFIX_LEN}");
        match self.topology {
            Topology::OneArmed => {
                // The `sw` namespace is the article's Docker bridge. Veths and bridge keep
                // their default features, as Docker's do: kernel senders hand over partial
                // checksums (tx checksum offload), which the gateway must complete.
                self.ip(Node::Switch, &["link", "add", "br0", "type", "bridge"])?;
                for (node, port) in [
                    (Node::Client, "client"),
                    (Node::Gateway, "gw"),
                    (Node::Server, "server"),
                ] {
                    self.veth(node, "eth0", Node::Switch, port)?;
                    self.ip(Node::Switch, &["link", "set", port, "master", "br0", "up"])?;
                }
                self.ip(Node::Switch, &["link", "set", "br0", "up"])?;
                let client = format!("{ONE_ARMED_CLIENT_ADDR}/32");
                let gw = GATEWAY_LAN_ADDR.to_string();
                let client_src = ONE_ARMED_CLIENT_ADDR.to_string();
                self.ip(Node::Client, &["addr", "add", &client, "dev", "eth0"])?;
                self.ip(Node::Client, &["link", "set", "eth0", "up"])?;
                self.ip(
                    Node::Client,
                    &["route", "add", &gw, "dev", "eth0", "src", &client_src],
                )?;
                self.ip(Node::Gateway, &["addr", "add", &lan, "dev", "eth0"])?;
                self.ip(Node::Gateway, &["link", "set", "eth0", "up"])?;
                self.ip(Node::Server, &["addr", "add", &server, "dev", "eth0"])?;
                self.ip(Node::Server, &["link", "set", "eth0", "up"])?;
            }
            Topology::TwoArmed if self.wan_router_mtu.is_some() => {
                self.wire_router()?;
                self.veth(Node::Gateway, "lan0", Node::Server, "eth0")?;
                self.ip(Node::Gateway, &["addr", "add", &lan, "dev", "lan0"])?;
                self.ip(Node::Gateway, &["link", "set", "lan0", "up"])?;
                self.ip(Node::Server, &["addr", "add", &server, "dev", "eth0"])?;
                self.ip(Node::Server, &["link", "set", "eth0", "up"])?;
            }
            Topology::TwoArmed => {
                self.veth(Node::Client, "eth0", Node::Gateway, "wan0")?;
                self.veth(Node::Gateway, "lan0", Node::Server, "eth0")?;
                let client = format!("{TWO_ARMED_CLIENT_ADDR}/24");
                let wan = format!("{TWO_ARMED_GATEWAY_WAN_ADDR}/24");
                self.ip(Node::Client, &["addr", "add", &client, "dev", "eth0"])?;
                self.ip(Node::Client, &["link", "set", "eth0", "up"])?;
                self.ip(Node::Gateway, &["addr", "add", &wan, "dev", "wan0"])?;
                self.ip(Node::Gateway, &["link", "set", "wan0", "up"])?;
                self.ip(Node::Gateway, &["addr", "add", &lan, "dev", "lan0"])?;
                self.ip(Node::Gateway, &["link", "set", "lan0", "up"])?;
                self.ip(Node::Server, &["addr", "add", &server, "dev", "eth0"])?;
                self.ip(Node::Server, &["link", "set", "eth0", "up"])?;
            }
        }
        Ok(())
    }

    /// The two-armed WAN through the router ([`LabBuilder::wan_router`]): client `eth0` <->
    /// router `c0` (the narrow wire), router `g0` <-> gateway `wan0`, IPv4 addresses and the
    /// routes across (IPv6 in [`Lab::wire6`]).
    fn wire_router(&mut self) -> Result<()> {
        let mtu = self.wan_router_mtu.unwrap_or(1500).to_string();
        self.veth(Node::Client, "eth0", Node::Router, "c0")?;
        self.veth(Node::Router, "g0", Node::Gateway, "wan0")?;
        self.exec_in(
            Node::Router,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ],
        )?;
        let with_len = |a: Ipv4Addr| format!("{a}/{WAN_PREFIX_LEN}");
        for (node, ifname, addr, mtu) in [
            (Node::Client, "eth0", ROUTED_CLIENT_ADDR, Some(&mtu)),
            (Node::Router, "c0", WAN_ROUTER_CLIENT_SIDE_ADDR, Some(&mtu)),
            (Node::Router, "g0", WAN_ROUTER_ADDR, None),
            (Node::Gateway, "wan0", TWO_ARMED_GATEWAY_WAN_ADDR, None),
        ] {
            self.ip(node, &["addr", "add", &with_len(addr), "dev", ifname])?;
            match mtu {
                Some(m) => self.ip(node, &["link", "set", ifname, "mtu", m, "up"])?,
                None => self.ip(node, &["link", "set", ifname, "up"])?,
            };
        }
        let gw_net = prefix4(TWO_ARMED_GATEWAY_WAN_ADDR, WAN_PREFIX_LEN);
        let client_net = prefix4(ROUTED_CLIENT_ADDR, WAN_PREFIX_LEN);
        let via = WAN_ROUTER_CLIENT_SIDE_ADDR.to_string();
        self.ip(Node::Client, &["route", "add", &gw_net, "via", &via])?;
        let via = WAN_ROUTER_ADDR.to_string();
        self.ip(Node::Gateway, &["route", "add", &client_net, "via", &via])?;
        Ok(())
    }

    /// The IPv6 half of [`Lab::wire`] (dual-stack labs), then waits out duplicate address
    /// detection: a tentative address can be neither a source nor a target yet.
    fn wire6(&mut self) -> Result<()> {
        let with_len = |a: std::net::Ipv6Addr, len: u8| format!("{a}/{len}");
        let server = with_len(SERVER_ADDR6, LAN_PREFIX_LEN6);
        let lan = with_len(GATEWAY_LAN_ADDR6, LAN_PREFIX_LEN6);
        match self.topology {
            Topology::OneArmed => {
                let client = with_len(ONE_ARMED_CLIENT_ADDR6, 128);
                let gw = GATEWAY_LAN_ADDR6.to_string();
                let client_src = ONE_ARMED_CLIENT_ADDR6.to_string();
                self.ip(Node::Client, &["-6", "addr", "add", &client, "dev", "eth0"])?;
                self.ip(Node::Gateway, &["-6", "addr", "add", &lan, "dev", "eth0"])?;
                self.ip(Node::Server, &["-6", "addr", "add", &server, "dev", "eth0"])?;
                // A route may name only a source address that passed DAD.
                self.wait_for_dad()?;
                self.ip(
                    Node::Client,
                    &["-6", "route", "add", &gw, "dev", "eth0", "src", &client_src],
                )?;
            }
            Topology::TwoArmed if self.wan_router_mtu.is_some() => {
                for (node, ifname, addr) in [
                    (Node::Client, "eth0", ROUTED_CLIENT_ADDR6),
                    (Node::Router, "c0", WAN_ROUTER_CLIENT_SIDE_ADDR6),
                    (Node::Router, "g0", WAN_ROUTER_ADDR6),
                    (Node::Gateway, "wan0", TWO_ARMED_GATEWAY_WAN_ADDR6),
                ] {
                    let a = with_len(addr, WAN_PREFIX_LEN6);
                    self.ip(node, &["-6", "addr", "add", &a, "dev", ifname])?;
                }
                self.ip(Node::Gateway, &["-6", "addr", "add", &lan, "dev", "lan0"])?;
                self.ip(Node::Server, &["-6", "addr", "add", &server, "dev", "eth0"])?;
                self.wait_for_dad()?;
                let gw_net = prefix6(TWO_ARMED_GATEWAY_WAN_ADDR6, WAN_PREFIX_LEN6);
                let client_net = prefix6(ROUTED_CLIENT_ADDR6, WAN_PREFIX_LEN6);
                let via = WAN_ROUTER_CLIENT_SIDE_ADDR6.to_string();
                self.ip(Node::Client, &["-6", "route", "add", &gw_net, "via", &via])?;
                let via = WAN_ROUTER_ADDR6.to_string();
                self.ip(
                    Node::Gateway,
                    &["-6", "route", "add", &client_net, "via", &via],
                )?;
            }
            Topology::TwoArmed => {
                let client = with_len(TWO_ARMED_CLIENT_ADDR6, WAN_PREFIX_LEN6);
                let wan = with_len(TWO_ARMED_GATEWAY_WAN_ADDR6, WAN_PREFIX_LEN6);
                self.ip(Node::Client, &["-6", "addr", "add", &client, "dev", "eth0"])?;
                self.ip(Node::Gateway, &["-6", "addr", "add", &wan, "dev", "wan0"])?;
                self.ip(Node::Gateway, &["-6", "addr", "add", &lan, "dev", "lan0"])?;
                self.ip(Node::Server, &["-6", "addr", "add", &server, "dev", "eth0"])?;
                self.wait_for_dad()?;
            }
        }
        Ok(())
    }

    /// Waits until no address in the lab is `tentative` (DAD takes ~1-2 s after a link comes
    /// up). Turning DAD off would hide what a real host goes through.
    pub fn wait_for_dad(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        for (node, _) in &self.namespaces {
            loop {
                let mut cmd = Command::new("ip");
                cmd.arg("-n")
                    .arg(self.ns_name(*node))
                    .args(["-6", "addr", "show", "tentative"]);
                let out = run(&mut cmd)?;
                if out.trim().is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "IPv6 addresses in {} still tentative after 10 s:\n{out}",
                        node.role()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.note("IPv6 duplicate address detection done");
        Ok(())
    }

    /// The body `GET /` returns: names the lab, so a test can tell it from anything else.
    pub fn server_index_body(&self) -> String {
        format!("wgxdp lab {}: hello from {SERVER_ADDR}\n", self.prefix)
    }

    fn www(&self) -> PathBuf {
        self.dir.join("www")
    }

    /// The URL of `/<name>` on the HTTP server's IPv6 address (dual-stack labs, which serve the
    /// same files on both; see [`Lab::write_server_file`]).
    pub fn server_url6(&self, name: &str) -> String {
        format!("http://[{SERVER_ADDR6}]/{name}")
    }

    /// Puts `data` at `/<name>` on the HTTP server; returns its URL.
    pub fn write_server_file(&self, name: &str, data: &[u8]) -> Result<String> {
        if name.contains('/') || name.starts_with('.') || name.is_empty() {
            bail!("write_server_file: {name:?} must be a plain file name");
        }
        std::fs::write(self.www().join(name), data)?;
        Ok(format!("http://{SERVER_ADDR}/{name}"))
    }

    /// Waits until something listens on TCP `addr`:`port` in `node`.
    fn wait_listening(&self, node: Node, addr: IpAddr, port: u16, p: &mut Spawned) -> Result<()> {
        let filter = format!("src {}", std::net::SocketAddr::new(addr, port));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = run(&mut in_ns(
                &self.ns_name(node),
                &["ss", "-H", "-ltn", &filter],
            ))?;
            if !out.trim().is_empty() {
                return Ok(());
            }
            if let Some(s) = p.exit_status() {
                bail!("{} exited ({s}) while starting:\n{}", p.name, p.log_text());
            }
            if Instant::now() > deadline {
                bail!("{} is not listening on port {port} after 5 s", p.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn start_http_server(&mut self) -> Result<()> {
        std::fs::create_dir_all(self.www())?;
        std::fs::write(self.www().join("index.html"), self.server_index_body())?;
        self.http = Some(self.spawn_http_server("http-server", SERVER_ADDR.into())?);
        if self.ipv6 {
            self.http6 = Some(self.spawn_http_server("http-server6", SERVER_ADDR6.into())?);
        }
        Ok(())
    }

    /// Starts python's http.server on `addr`:80 in the server namespace, serving the lab's
    /// files, and waits until it listens. It logs each request's peer address: the NAT checks
    /// read it.
    fn spawn_http_server(&self, name: &str, addr: IpAddr) -> Result<Spawned> {
        let www = self.www().to_string_lossy().into_owned();
        let addr_s = addr.to_string();
        let mut p = self.spawn_in(
            Node::Server,
            name,
            &[
                "python3",
                "-u",
                "-m",
                "http.server",
                "80",
                "--bind",
                &addr_s,
                "--directory",
                &www,
            ],
        )?;
        self.wait_listening(Node::Server, addr, 80, &mut p)?;
        Ok(p)
    }

    /// Starts `iperf3 -s` on the server (port 5201) if it is not running yet.
    pub fn start_iperf3_server(&mut self) -> Result<()> {
        if self.iperf3.is_some() {
            return Ok(());
        }
        let addr = SERVER_ADDR.to_string();
        let mut p = self.spawn_in(Node::Server, "iperf3", &["iperf3", "-s", "-B", &addr])?;
        self.wait_listening(Node::Server, SERVER_ADDR.into(), 5201, &mut p)?;
        self.iperf3 = Some(p);
        Ok(())
    }

    fn start_client(&mut self) -> Result<()> {
        let kind = self.client_kind;
        let p = self.spawn_wg_device(Node::Client, kind, &format!("client-{}", kind.name()))?;
        let pid = p.pid();
        self.client_wg = Some(p);
        let conf = configs::client_setconf(
            self.topology,
            &self.keys,
            self.ipv6,
            self.client_endpoint_ipv6,
        );
        let path = self.write_file("client-wg.conf", &conf, true)?;
        self.wg_pid(
            Node::Client,
            pid,
            &["setconf", "wg0", &path.to_string_lossy()],
        )?;
        let addr = format!("{CLIENT_TUNNEL_ADDR}/32");
        let src = CLIENT_TUNNEL_ADDR.to_string();
        let mtu = TUNNEL_MTU.to_string();
        self.ip(Node::Client, &["address", "add", &addr, "dev", "wg0"])?;
        self.ip(
            Node::Client,
            &["link", "set", "mtu", &mtu, "up", "dev", "wg0"],
        )?;
        let lan = format!("{}/{LAN_PREFIX_LEN}", Ipv4Addr::new(172, 23, 0, 0));
        let tunnel = format!("{}/{TUNNEL_PREFIX_LEN}", Ipv4Addr::new(10, 13, 13, 0));
        for net in [&lan, &tunnel] {
            self.ip(
                Node::Client,
                &["route", "add", net, "dev", "wg0", "src", &src],
            )?;
        }
        if self.ipv6 {
            // No DAD to wait for: the kernel skips it on a TUN device (IFF_NOARP).
            let addr = format!("{CLIENT_TUNNEL_ADDR6}/128");
            let src = CLIENT_TUNNEL_ADDR6.to_string();
            self.ip(Node::Client, &["-6", "address", "add", &addr, "dev", "wg0"])?;
            let lan = prefix6(SERVER_ADDR6, LAN_PREFIX_LEN6);
            let tunnel = prefix6(CLIENT_TUNNEL_ADDR6, TUNNEL_PREFIX_LEN6);
            for net in [&lan, &tunnel] {
                self.ip(
                    Node::Client,
                    &["-6", "route", "add", net, "dev", "wg0", "src", &src],
                )?;
            }
        }
        Ok(())
    }

    /// Polls the client's UAPI until the gateway peer has a session (a handshake); sends
    /// one ICMP echo to the gateway's tunnel address first so that the client starts the
    /// handshake. Returns how long it took.
    pub fn wait_for_handshake(&mut self, timeout: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        let pid = self.uapi_pid(Node::Client)?;
        let gateway_hex = probes::key_hex(&self.keys.gateway.public)
            .context("the gateway's public key is not a base64 WireGuard key")?;
        self.note(format!(
            "waiting up to {:.1}s for the client's handshake with the gateway",
            timeout.as_secs_f64()
        ));
        // The echo's answer does not matter; it only makes the client initiate (whitepaper 6.2:
        // a handshake is started when there is data to send and no current session).
        let trigger = in_ns(
            &self.ns_name(Node::Client),
            &[
                "python3",
                "-c",
                probes::PING_PY,
                &GATEWAY_TUNNEL_ADDR.to_string(),
                "1",
            ],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
        let result = loop {
            let out = self.uapi_get(pid)?;
            let done = probes::parse_uapi_handshaken_peers(&out).contains(&gateway_hex);
            if done {
                break Ok(t0.elapsed());
            }
            if let Some(g) = self.gateway.as_mut() {
                if let Some(s) = g.process.exit_status() {
                    break Err(anyhow::anyhow!(
                        "the gateway exited ({s}) before a handshake; its log:\n{}",
                        g.process.log_text()
                    ));
                }
            }
            if t0.elapsed() > timeout {
                break Err(anyhow::anyhow!(
                    "no handshake between client and gateway within {:.1}s ({} gateway); \
                     client `wg show`:\n{}",
                    timeout.as_secs_f64(),
                    self.gateway_kind_name(),
                    self.wg_quiet(pid, &["show", "wg0"]).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Ok(mut child) = trigger {
            let _ = child.kill();
            let _ = child.wait();
        }
        match &result {
            Ok(d) => self.note(format!("handshake done after {:.3}s", d.as_secs_f64())),
            Err(e) => self.note(format!("handshake failed: {e}")),
        }
        result
    }

    /// GET `url` from the client namespace (through the tunnel when the URL is on the LAN);
    /// returns the body. Fails on connection errors, timeouts and non-2xx statuses.
    pub fn http_get_from_client(&self, url: &str) -> Result<Vec<u8>> {
        self.http_get_from_client_timeout(url, Duration::from_secs(10))
    }

    /// [`Lab::http_get_from_client`] with an explicit timeout (per socket operation).
    pub fn http_get_from_client_timeout(&self, url: &str, timeout: Duration) -> Result<Vec<u8>> {
        self.record("client", format!("HTTP GET {url}"));
        let secs = format!("{:.3}", timeout.as_secs_f64());
        let mut cmd = in_ns(
            &self.ns_name(Node::Client),
            &["python3", "-c", probes::HTTP_GET_PY, url, &secs],
        );
        let out = cmd
            .output()
            .with_context(|| format!("cannot run `{}`", command_line(&cmd)))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or("");
            bail!("HTTP GET {url} from the client failed: {last}");
        }
        Ok(out.stdout)
    }

    /// One ICMP echo from the client to `addr`; the round-trip time.
    pub fn ping_from_client(&self, addr: Ipv4Addr) -> Result<Duration> {
        self.ping_from(Node::Client, addr)
    }

    /// One ICMP echo from `node` to `addr` (2 s timeout); the round-trip time.
    pub fn ping_from(&self, node: Node, addr: Ipv4Addr) -> Result<Duration> {
        self.record(node.role(), format!("ICMP echo to {addr}"));
        let mut cmd = in_ns(
            &self.ns_name(node),
            &["python3", "-c", probes::PING_PY, &addr.to_string(), "2"],
        );
        let out = cmd.output()?;
        if !out.status.success() {
            bail!(
                "ping {addr} from {} failed: {}",
                node.role(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let ms: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context("ping helper printed no round-trip time")?;
        Ok(Duration::from_secs_f64(ms / 1000.0))
    }

    /// Runs an iperf3 TCP test from the client to the server's `iperf3 -s` (started on demand)
    /// through the tunnel for `duration`; `reverse` makes the server send. Returns the received
    /// throughput in bits per second.
    pub fn iperf3_from_client(&mut self, duration: Duration, reverse: bool) -> Result<f64> {
        self.start_iperf3_server()?;
        let secs = duration.as_secs().max(1).to_string();
        let server = SERVER_ADDR.to_string();
        let mut argv = vec![
            "iperf3",
            "-c",
            &server,
            "-t",
            &secs,
            "-J",
            "--connect-timeout",
            "3000",
        ];
        if reverse {
            argv.push("-R");
        }
        self.record("client", argv.join(" "));
        let out = in_ns(&self.ns_name(Node::Client), &argv).output()?;
        let json = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "iperf3 from the client failed ({}): {}",
                out.status,
                json.lines()
                    .find(|l| l.contains("\"error\""))
                    .unwrap_or("")
                    .trim()
            );
        }
        probes::parse_iperf3_received_bps(&json).with_context(|| {
            // Exit status 0 without a result: say what iperf3 did print.
            let tail: Vec<&str> = json.lines().rev().take(12).collect();
            let stderr = String::from_utf8_lossy(&out.stderr);
            format!(
                "iperf3 printed (last lines, reversed): {tail:?}; stderr: {:?}",
                stderr.trim()
            )
        })
    }

    /// The counters of `ifname` in `node` (what `ip -s link` shows).
    pub fn interface_counters(&self, node: Node, ifname: &str) -> Result<IfCounters> {
        if ifname.contains('/') || ifname.contains("..") {
            bail!("bad interface name {ifname:?}");
        }
        let mut argv = vec!["cat".to_owned()];
        for f in probes::COUNTER_FILES {
            argv.push(format!("/sys/class/net/{ifname}/statistics/{f}"));
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = run(&mut in_ns(&self.ns_name(node), &argv))?;
        probes::parse_counters(&out)
    }

    /// `wg show wg0 transfer` of `node` (client, or a gateway with a UAPI socket).
    pub fn wg_transfer(&mut self, node: Node) -> Result<Vec<PeerTransfer>> {
        let pid = self.uapi_pid(node)?;
        Ok(probes::parse_transfer(
            &self.wg_quiet(pid, &["show", "wg0", "transfer"])?,
        ))
    }

    /// The source address of every request the HTTP server logged so far. With a NATing gateway
    /// these are all 172.23.0.3.
    pub fn server_request_sources(&self) -> Result<Vec<Ipv4Addr>> {
        let http = self
            .http
            .as_ref()
            .context("the HTTP server is not running")?;
        Ok(probes::parse_http_log_sources(&http.log_text()))
    }

    /// [`Lab::server_request_sources`] of the IPv6 HTTP server (a dual-stack lab).
    pub fn server6_request_sources(&self) -> Result<Vec<std::net::Ipv6Addr>> {
        let http = self
            .http6
            .as_ref()
            .context("the IPv6 HTTP server is not running (a dual-stack lab has it)")?;
        Ok(probes::parse_http_log_sources(&http.log_text()))
    }

    /// Starts a capture on `ifname` in `node`, labelled `label` in the results. Returns once the
    /// capture is live.
    pub fn start_capture(&mut self, node: Node, ifname: &str, label: &str) -> Result<CaptureId> {
        let id = self.captures.len();
        let pcap = self.dir.join(format!("capture-{id}.pcap"));
        let pcap_s = pcap.to_string_lossy().into_owned();
        let mut p = self.spawn_in(
            node,
            &format!("capture-{id}"),
            &["python3", "-c", probes::CAPTURE_PY, ifname, &pcap_s],
        )?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0) == 0 {
            if let Some(s) = p.exit_status() {
                bail!("capture on {ifname} exited ({s}):\n{}", p.log_text());
            }
            if Instant::now() > deadline {
                bail!("capture on {ifname} did not start within 5 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.captures.push(Some((label.to_owned(), p, pcap)));
        Ok(CaptureId(id))
    }

    /// Stops a capture and decodes it with tshark. The pcap file stays in the lab directory.
    pub fn stop_capture(&mut self, id: CaptureId) -> Result<Vec<CapturedPacket>> {
        let (label, mut p, pcap) = self
            .captures
            .get_mut(id.0)
            .and_then(Option::take)
            .context("no such running capture")?;
        // Give packets in flight a moment to reach the capture before stopping it.
        std::thread::sleep(Duration::from_millis(50));
        p.stop(Duration::from_secs(3));
        let mut cmd = Command::new("tshark");
        cmd.args(["-n", "-r"]).arg(&pcap).args(["-T", "fields"]);
        for f in capture::TSHARK_FIELDS {
            cmd.args(["-e", f]);
        }
        let out = run(&mut cmd)?;
        Ok(capture::parse_tshark_fields(&label, &out))
    }

    /// Path of a capture's pcap file.
    pub fn capture_file(&self, id: CaptureId) -> PathBuf {
        self.dir.join(format!("capture-{}.pcap", id.0))
    }

    fn dump_logs_to_stderr(&self) {
        let procs = [
            self.gateway.as_ref().map(|g| &g.process),
            self.client_wg.as_ref(),
            self.http.as_ref(),
        ];
        for p in procs.into_iter().flatten() {
            let text = p.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            to_stderr!(
                "---- lab {}: {} (`{}`), last {} log lines ----",
                self.prefix,
                p.name,
                p.command_line,
                tail.len()
            );
            for l in tail {
                to_stderr!("{l}");
            }
        }
        to_stderr!(
            "---- lab {}: trace ----\n{}",
            self.prefix,
            self.trace_text()
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        if failing {
            self.dump_logs_to_stderr();
        }
        for c in self.captures.iter_mut().flatten() {
            c.1.stop(Duration::from_secs(1));
        }
        self.captures.clear();
        if let Some(mut g) = self.gateway.take() {
            g.process.stop(Duration::from_secs(3));
        }
        for p in [
            self.client_wg.take(),
            self.iperf3.take(),
            self.http.take(),
            self.http6.take(),
        ]
        .into_iter()
        .flatten()
        {
            drop(p);
        }
        for (_, ns) in self.namespaces.drain(..).rev() {
            if let Err(e) = netns::delete_namespace(&ns) {
                to_stderr!("lab: cannot delete namespace {ns}: {e:#}");
            }
        }
        if failing || self.keep_dir {
            to_stderr!("lab: files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
