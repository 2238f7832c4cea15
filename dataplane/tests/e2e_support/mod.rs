//! The harness of the root end-to-end tests of the real gateway (`gateway_e2e.rs` with
//! wireguard-go as the client, `gateway_boringtun.rs` with boringtun, `gateway_pmtu.rs`): a lab
//! running this build's `dataplane` ([`E2e`]), one-at-a-time locking, the root check, ping and
//! transfer probes, and the client scenarios (ping, 32 MiB download, iperf3 both ways)
//! written once and run with either client ([`ClientKind`]).
//!
//! Every lab is built by `lab` (uniquely named namespaces, removed in `Drop` also on
//! failure); a failing test prints the gateway's whole log. Tests skip with a message only when
//! not run as root.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lab::{
    is_root, ClientKind, DataplaneGateway, GatewayKind, GwTomlOptions, Lab, Node, Topology,
    GATEWAY_LAN_ADDR, GATEWAY_LAN_ADDR6, GATEWAY_TUNNEL_ADDR, SERVER_ADDR,
};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: the machine has two cores, and a throughput or timing check next to
/// another test's 32 MiB download would measure the other test. A failed test does not poison
/// the others.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// True (after saying why) when the test cannot run here: it needs root.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces, veth, XDP, TUN); run as root");
    true
}

/// Runs the root test `body` under `name`, one at a time, unless it must be skipped.
pub fn root_test(name: &'static str, body: impl FnOnce(&'static str)) {
    if skip_unless_root(name) {
        return;
    }
    let _serial = serial();
    body(name);
}

/// The `dataplane` binary under test: this build's, or `$DATAPLANE_E2E_BIN` (e.g. a release
/// build, to see the throughput the unoptimised test build hides).
pub fn binary() -> String {
    std::env::var("DATAPLANE_E2E_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_dataplane").into())
}

/// The gateway under test, XDP mode left to `auto` as deployed.
pub fn dataplane(extra_toml: &str) -> DataplaneGateway {
    let mut dp = DataplaneGateway::new(binary());
    dp.toml = GwTomlOptions {
        mode: None,
        extra_toml: extra_toml.to_owned(),
        ..Default::default()
    };
    dp.ready_timeout = Duration::from_secs(5);
    dp
}

/// A lab running the real gateway, its client handshaken. On a failing test it prints the
/// gateway's whole log first (the lab itself then prints the tail of every process's log and
/// its trace, and keeps its directory).
pub struct E2e {
    lab: Lab,
    started: Instant,
    name: &'static str,
}

impl E2e {
    /// A lab with wireguard-go as the client.
    pub fn build(name: &'static str, topology: Topology, iperf3: bool, extra_toml: &str) -> E2e {
        E2e::build_for(ClientKind::WireguardGo, name, topology, iperf3, extra_toml)
    }

    /// A lab with `client` as the client's WireGuard.
    pub fn build_for(
        client: ClientKind,
        name: &'static str,
        topology: Topology,
        iperf3: bool,
        extra_toml: &str,
    ) -> E2e {
        E2e::build_with(client, name, topology, iperf3, dataplane(extra_toml))
    }

    /// A lab with `client` as the client's WireGuard and `gateway` as configured by the caller
    /// (e.g. another XDP mode).
    pub fn build_with(
        client: ClientKind,
        name: &'static str,
        topology: Topology,
        iperf3: bool,
        gateway: DataplaneGateway,
    ) -> E2e {
        let builder = Lab::builder(topology)
            .gateway(GatewayKind::Dataplane(gateway))
            .client(client)
            .iperf3_server(iperf3);
        E2e::from_builder(name, builder)
    }

    /// A lab from `builder` (which names the gateway, the client and options such as
    /// [`lab::LabBuilder::ipv6`]), its client handshaken.
    pub fn from_builder(name: &'static str, builder: lab::LabBuilder) -> E2e {
        let started = Instant::now();
        let lab = builder
            .build()
            .unwrap_or_else(|e| panic!("{name}: the lab with the dataplane gateway: {e:#}"));
        let (topology, client) = (lab.topology(), lab.client_kind());
        let mut t = E2e { lab, started, name };
        let hs = t
            .wait_for_handshake(Duration::from_secs(10))
            .unwrap_or_else(|e| {
                panic!(
                    "{name}: {} handshakes with the dataplane gateway: {e:#}",
                    client.name()
                )
            });
        eprintln!(
            "{name} ({}, {} client): handshake after {:.0} ms",
            topology.name(),
            client.name(),
            hs.as_secs_f64() * 1e3
        );
        t
    }
}

impl Deref for E2e {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl DerefMut for E2e {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}

impl Drop for E2e {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== {} failed after {:.1}s; gateway log ({}) ====\n{}\n==== end of gateway log ====",
                self.name,
                self.started.elapsed().as_secs_f64(),
                self.lab.gateway_log_path().display(),
                self.lab.gateway_log()
            );
        } else {
            eprintln!(
                "{} took {:.1}s",
                self.name,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// `ping -c count` from `node` (optionally from source `from`); the number of replies.
pub fn ping(lab: &Lab, node: Node, from: Option<Ipv4Addr>, dst: Ipv4Addr, count: u32) -> u32 {
    let count_s = count.to_string();
    let dst_s = dst.to_string();
    let from_s = from.map(|a| a.to_string());
    let mut argv = vec!["ping", "-n", "-c", &count_s, "-i", "0.2", "-W", "1"];
    if let Some(f) = &from_s {
        argv.extend(["-I", f.as_str()]);
    }
    argv.push(&dst_s);
    let (_, out) = lab.try_exec_in(node, &argv).expect("ping runs");
    lab::parse_ping_received(&out).unwrap_or_else(|| panic!("unexpected ping output:\n{out}"))
}

/// Pings until replies come (the first packets to a new next hop may be lost while the
/// gateway's neighbour resolves) and asserts most of `count` were answered.
pub fn assert_pings(lab: &Lab, from: Option<Ipv4Addr>, dst: Ipv4Addr, count: u32) {
    let got = ping(lab, Node::Client, from, dst, count);
    assert!(
        got >= 1 && got + 1 >= count,
        "ping {dst} from the client: {got} of {count} replies (at most the first may be lost)"
    );
}

/// Deterministic bytes a truncated, reordered or corrupted transfer cannot reproduce.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn sha256_of(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Asserts that the file at `got` has the length and SHA-256 of `want`; returns the hash.
pub fn assert_same_file(want: &Path, got: &Path, what: &str) -> String {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert_eq!(len(got), len(want), "{what}: length");
    let (w, g) = (sha256_of(want), sha256_of(got));
    assert_eq!(g, w, "{what}: sha256");
    g
}

/// curl's limit for a download: a guard against a hang, not a speed check. The debug build of
/// the gateway on a loaded 2-core machine has taken 21 s for 32 MiB with a boringtun client.
const DOWNLOAD_LIMIT_SECS: &str = "60";

/// The address family of the packets inside the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inside {
    Ipv4,
    Ipv6,
}

/// A download through the tunnel: the seconds it took and the source of every request the
/// server of that family has logged so far.
pub struct Downloaded {
    pub secs: f64,
    pub sources: Vec<IpAddr>,
}

/// Serves `len` pattern bytes as `name` on the lab's HTTP server of the `inside` family
/// (the IPv6 one needs a dual-stack lab), downloads them with curl from the client through
/// the tunnel, and asserts the copy is byte-identical.
pub fn download_inside(t: &Lab, inside: Inside, name: &str, len: usize) -> Downloaded {
    let url = t.write_server_file(name, &pattern(len)).unwrap();
    let url = match inside {
        Inside::Ipv4 => url,
        Inside::Ipv6 => t.server_url6(name),
    };
    let served = t.dir().join("www").join(name);
    let got = t.dir().join(format!("downloaded-{name}"));
    let got_s = got.to_string_lossy().into_owned();
    let t0 = Instant::now();
    let (ok, out) = t
        .try_exec_in(
            Node::Client,
            &[
                "curl",
                "-g",
                "-sS",
                "--fail",
                "--max-time",
                DOWNLOAD_LIMIT_SECS,
                "-o",
                &got_s,
                &url,
            ],
        )
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(ok, "curl {url} through the tunnel failed: {out}");
    let hash = assert_same_file(
        &served,
        &got,
        &format!("download of {name} ({inside:?} inside)"),
    );
    eprintln!(
        "{name}: {len} bytes with {inside:?} inside in {secs:.2}s = {:.0} Mbit/s, sha256 {hash}",
        len as f64 * 8.0 / secs / 1e6
    );
    let _ = std::fs::remove_file(&got);
    let _ = std::fs::remove_file(&served);
    let sources = match inside {
        Inside::Ipv4 => t
            .server_request_sources()
            .unwrap()
            .into_iter()
            .map(IpAddr::from)
            .collect(),
        Inside::Ipv6 => t
            .server6_request_sources()
            .unwrap()
            .into_iter()
            .map(IpAddr::from)
            .collect(),
    };
    Downloaded { secs, sources }
}

/// [`download_inside`], asserting source NAT: the server saw only the gateway's LAN address of
/// that family. Returns the seconds taken.
pub fn download_masqueraded(t: &Lab, inside: Inside, name: &str, len: usize) -> f64 {
    let d = download_inside(t, inside, name, len);
    let want: IpAddr = match inside {
        Inside::Ipv4 => GATEWAY_LAN_ADDR.into(),
        Inside::Ipv6 => GATEWAY_LAN_ADDR6.into(),
    };
    assert!(!d.sources.is_empty(), "the server logged no request");
    assert!(
        d.sources.iter().all(|s| *s == want),
        "sources seen by the server: {:?} (want only {want})",
        d.sources
    );
    d.secs
}

/// [`download_masqueraded`] with IPv4 inside.
pub fn download_through_tunnel(t: &Lab, name: &str, len: usize) -> f64 {
    download_masqueraded(t, Inside::Ipv4, name, len)
}

// ---- the client scenarios, for either client ---------------------------------------------

/// One `#[test]` per `name => scenario(Topology);` line, running the scenario with `$client`
/// through [`root_test`] (skipped when not root, one at a time). Unused in the files that only
/// take the harness.
#[allow(unused_macros)]
macro_rules! client_scenario_tests {
    ($client:expr; $($test:ident => $scenario:ident($topology:ident);)*) => {
        $(
            #[test]
            fn $test() {
                $crate::e2e_support::root_test(stringify!($test), |name| {
                    $crate::e2e_support::$scenario(
                        name,
                        lab::Topology::$topology,
                        $client,
                    )
                });
            }
        )*
    };
}

/// The client pings the server (through the fast path: decrypt, source NAT, forward, and back)
/// and the gateway's own wg0 address (the slow path hands it to the kernel through wg0).
pub fn ping_server_and_gateway(name: &'static str, topology: Topology, client: ClientKind) {
    let t = E2e::build_for(client, name, topology, false, "");
    assert_pings(&t, None, SERVER_ADDR, 3);
    assert_pings(&t, None, GATEWAY_TUNNEL_ADDR, 3);
    // Both again, now that every neighbour is known: nothing may be lost.
    assert_eq!(ping(&t, Node::Client, None, SERVER_ADDR, 5), 5);
    assert_eq!(ping(&t, Node::Client, None, GATEWAY_TUNNEL_ADDR, 5), 5);
}

/// A 32 MiB download from the server arrives byte-identical, and the server saw the gateway's
/// address as the source.
pub fn download_32_mib(name: &'static str, topology: Topology, client: ClientKind) {
    let t = E2e::build_for(client, name, topology, false, "");
    // Resolve the gateway's next hops first (the first packets to a new neighbour may drop).
    ping(&t, Node::Client, None, SERVER_ADDR, 2);
    download_through_tunnel(&t, "blob-32m.bin", 32 << 20);
}

/// iperf3 TCP from the client to the server and back (`-R`) through the gateway.
pub fn iperf3_both_directions(name: &'static str, topology: Topology, client: ClientKind) {
    let mut t = E2e::build_for(client, name, topology, true, "");
    ping(&t, Node::Client, None, SERVER_ADDR, 2);
    let up = t
        .iperf3_from_client(Duration::from_secs(3), false)
        .expect("iperf3 client -> server through the gateway");
    let down = t
        .iperf3_from_client(Duration::from_secs(3), true)
        .expect("iperf3 -R server -> client through the gateway");
    eprintln!(
        "{name} ({} client): iperf3 TCP client->server {:.0} Mbit/s, server->client (-R) {:.0} \
         Mbit/s",
        client.name(),
        up / 1e6,
        down / 1e6
    );
    assert!(up > 1e6, "client->server only {up} bit/s");
    assert!(down > 1e6, "server->client only {down} bit/s");
}

/// A per-test `[control] socket` path for the gateway under test, removed even on failure.
pub struct ControlSocket(pub std::path::PathBuf);

impl ControlSocket {
    /// `<tmp>/dataplane-<name>-<pid>.sock`.
    pub fn new(name: &str) -> Self {
        ControlSocket(
            std::env::temp_dir().join(format!("dataplane-{name}-{}.sock", std::process::id())),
        )
    }

    /// The gw.toml lines that put the control socket there.
    pub fn toml(&self) -> String {
        format!("[control]\nsocket = \"{}\"\n", self.0.display())
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Waits up to 10 s for `path` to exist: the file a helper script writes once it listens.
pub fn wait_for_file(path: &Path, what: &str) {
    let since = std::time::Instant::now();
    while !path.exists() {
        assert!(
            since.elapsed() < std::time::Duration::from_secs(10),
            "{what} never ready ({} not written in 10 s)",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A process in a namespace, killed on drop.
pub struct Background(pub std::process::Child);

impl Background {
    /// Starts `argv` in namespace `ns`, its output piped.
    pub fn start(ns: &str, argv: &[&str]) -> Self {
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {argv:?} in {ns}: {e}"));
        Background(child)
    }

    /// Waits for the process and returns its stdout and stderr.
    pub fn output(mut self) -> String {
        let child = std::mem::replace(
            &mut self.0,
            std::process::Command::new("true")
                .spawn()
                .expect("true runs"),
        );
        let out = child.wait_with_output().expect("waiting for the process");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The one-armed lab with the dataplane gateway, restarted with a control socket of its own;
/// the path of that socket.
pub fn lab_with_control_socket() -> (Lab, std::path::PathBuf) {
    let mut dp = DataplaneGateway::new(env!("CARGO_BIN_EXE_dataplane"));
    dp.ready_timeout = Duration::from_secs(5);
    let mut lab = Lab::builder(Topology::OneArmed)
        .gateway(GatewayKind::Dataplane(dp.clone()))
        .build()
        .expect("the lab with the dataplane gateway builds");
    // Restart with a control socket of this lab's own (its directory is known only now).
    lab.signal_gateway("TERM").unwrap();
    lab.wait_gateway_exit(Duration::from_secs(10));
    lab.take_gateway();
    let control = lab.dir().join("control.sock");
    lab.write_gateway_toml(&GwTomlOptions {
        mode: None,
        extra_toml: format!("[control]\nsocket = \"{}\"\n", control.display()),
        ..Default::default()
    })
    .unwrap();
    let uapi = lab.dir().join("run-wireguard");
    lab.start_dataplane_with_uapi_dir(dp, &uapi)
        .expect("the gateway restarts with a control socket");
    (lab, control)
}

/// The gateway's stats over its control socket.
pub fn gateway_stats(control: &ControlSocket) -> ops::StatsSnapshot {
    ops::client::request_stats(&control.0).expect("stats over the gateway's control socket")
}

/// The sum over the workers of the counter `name`.
pub fn worker_counter(s: &ops::StatsSnapshot, name: &str) -> u64 {
    s.workers.iter().map(|w| w.counter(name)).sum()
}

/// The sum over the interfaces of the XDP program's counter `name`.
pub fn xdp_counter(s: &ops::StatsSnapshot, name: &str) -> u64 {
    s.xdp
        .iter()
        .map(|x| x.counters.get(name).copied().unwrap_or(0))
        .sum()
}
