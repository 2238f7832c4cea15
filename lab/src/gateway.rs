//! The gateway under test in the `gw` namespace, pluggable: the article's design rebuilt in user
//! space (wireguard-go or boringtun `wg0` + iptables MASQUERADE, the benchmarks' references), or
//! this project's `dataplane` binary started on a gw.toml the lab writes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::configs::{self, GwTomlOptions};
use super::process::Spawned;
use super::topology::{
    Node, CLIENT_TUNNEL_ADDR, CLIENT_TUNNEL_ADDR6, GATEWAY_TUNNEL_ADDR, GATEWAY_TUNNEL_ADDR6,
    TUNNEL_MTU, TUNNEL_PREFIX_LEN, TUNNEL_PREFIX_LEN6,
};
use super::userspace_wg::ClientKind;
use super::Lab;

/// Which gateway runs in the `gw` namespace.
#[derive(Clone, Debug)]
pub enum GatewayKind {
    /// The article's gateway in user space: wireguard-go `wg0` (10.13.13.1/24, port 51820),
    /// `iptables -A FORWARD -i/-o wg0 -j ACCEPT`, `iptables -t nat -A POSTROUTING -o eth+ -j
    /// MASQUERADE` (`-o lan0` when two-armed), `net.ipv4.ip_forward=1`.
    Reference,
    /// The same article gateway with boringtun (`boringtun-cli`) as `wg0` instead of
    /// wireguard-go: same addresses, iptables rules and forwarding. A second, independent
    /// reference for the benchmarks.
    ReferenceBoringtun,
    /// `dataplane --config <lab dir>/gw.toml [args]`.
    Dataplane(DataplaneGateway),
}

impl GatewayKind {
    pub fn name(&self) -> &'static str {
        match self {
            GatewayKind::Reference => "reference (wireguard-go + iptables MASQUERADE)",
            GatewayKind::ReferenceBoringtun => "reference (boringtun + iptables MASQUERADE)",
            GatewayKind::Dataplane(_) => "dataplane",
        }
    }

    /// True for the article's design in user space (a `wg0` TUN device, kernel forwarding and
    /// iptables MASQUERADE), whichever WireGuard implementation runs `wg0`.
    pub fn is_reference(&self) -> bool {
        matches!(
            self,
            GatewayKind::Reference | GatewayKind::ReferenceBoringtun
        )
    }
}

/// How to run the project's gateway in the lab.
#[derive(Clone, Debug)]
pub struct DataplaneGateway {
    /// The `dataplane` executable.
    pub binary: PathBuf,
    /// Arguments after `--config <file>`.
    pub args: Vec<String>,
    /// A command the binary is started through, inside the namespace and after the lab's own
    /// setup (private `/run/wireguard`, bpffs): `wrapper... <binary> --config <file> args...`,
    /// e.g. `setpriv` with fewer privileges. Empty: the binary itself.
    pub wrapper: Vec<String>,
    /// Extra environment, e.g. `RUST_LOG`.
    pub env: Vec<(String, String)>,
    /// What goes into gw.toml beyond the contract's minimum (mode, extra tables).
    pub toml: GwTomlOptions,
    /// How long to wait for the gateway's UAPI socket (`wg show wg0` through nsenter). When it
    /// does not appear but the process still runs, the lab goes on (the handshake will tell).
    pub ready_timeout: Duration,
}

impl DataplaneGateway {
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        DataplaneGateway {
            binary: binary.into(),
            args: Vec::new(),
            wrapper: Vec::new(),
            // The log is a file that gets printed; no colour escapes in it.
            env: vec![("NO_COLOR".into(), "1".into())],
            toml: GwTomlOptions::default(),
            ready_timeout: Duration::from_secs(3),
        }
    }
}

/// The running gateway.
pub(crate) struct RunningGateway {
    pub kind: GatewayKind,
    pub process: Spawned,
}

/// The dataplane wrapper: private UAPI directory as for wireguard-go, and a bpffs on
/// /sys/fs/bpf (the `/sys` that `ip netns exec` mounts has none).
const DATAPLANE_WRAPPER: &str =
    "mkdir -p /run/wireguard && mount -t tmpfs -o size=1m,mode=0700 wglab /run/wireguard \
     && { mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; } && exec \"$@\"";

impl Lab {
    /// Starts `kind` in the `gw` namespace (stop a running one first with
    /// [`Lab::stop_gateway`]).
    pub fn start_gateway(&mut self, kind: GatewayKind) -> Result<()> {
        if self.gateway.is_some() {
            bail!("a gateway is already running in this lab; stop_gateway() first");
        }
        self.note(format!("starting the gateway: {}", kind.name()));
        match &kind {
            GatewayKind::Reference => self.start_reference(ClientKind::WireguardGo, kind.clone()),
            GatewayKind::ReferenceBoringtun => {
                self.start_reference(ClientKind::Boringtun, kind.clone())
            }
            GatewayKind::Dataplane(dp) => self.start_dataplane(dp.clone(), kind.clone()),
        }
    }

    fn start_reference(&mut self, wg: ClientKind, kind: GatewayKind) -> Result<()> {
        // Userspace stand-in for `ip link add dev wg0 type wireguard` (no kernel module here).
        let p = self.spawn_wg_device(Node::Gateway, wg, &format!("gateway-{}", wg.name()))?;
        let pid = p.pid();
        self.gateway = Some(RunningGateway { kind, process: p });
        let path = self.write_file(
            "gw-wg.conf",
            &configs::gateway_setconf(&self.keys, self.ipv6),
            true,
        )?;
        // The article's wg-quick steps, one by one.
        self.wg_pid(
            Node::Gateway,
            pid,
            &["setconf", "wg0", &path.to_string_lossy()],
        )?;
        let addr = format!("{GATEWAY_TUNNEL_ADDR}/{TUNNEL_PREFIX_LEN}");
        let mtu = TUNNEL_MTU.to_string();
        let peer = format!("{CLIENT_TUNNEL_ADDR}/32");
        self.ip(
            Node::Gateway,
            &["-4", "address", "add", &addr, "dev", "wg0"],
        )?;
        self.ip(
            Node::Gateway,
            &["link", "set", "mtu", &mtu, "up", "dev", "wg0"],
        )?;
        self.ip(Node::Gateway, &["-4", "route", "add", &peer, "dev", "wg0"])?;
        let out = self.topology.masquerade_out_match();
        self.exec_in(
            Node::Gateway,
            &["iptables", "-A", "FORWARD", "-i", "wg0", "-j", "ACCEPT"],
        )?;
        self.exec_in(
            Node::Gateway,
            &["iptables", "-A", "FORWARD", "-o", "wg0", "-j", "ACCEPT"],
        )?;
        self.exec_in(
            Node::Gateway,
            &[
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                out,
                "-j",
                "MASQUERADE",
            ],
        )?;
        // Docker enables forwarding for the article's container; a fresh namespace has it off.
        self.exec_in(Node::Gateway, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        if self.ipv6 {
            self.start_reference6()?;
        }
        Ok(())
    }

    /// The IPv6 half of the reference gateway in a dual-stack lab: `wg0` `fd13::1/64`, the
    /// same FORWARD and MASQUERADE rules with ip6tables, IPv6 forwarding. WireGuard itself
    /// (wireguard-go, boringtun) listens on both families already.
    fn start_reference6(&mut self) -> Result<()> {
        let addr = format!("{GATEWAY_TUNNEL_ADDR6}/{TUNNEL_PREFIX_LEN6}");
        let peer = format!("{CLIENT_TUNNEL_ADDR6}/128");
        self.ip(
            Node::Gateway,
            &["-6", "address", "add", &addr, "dev", "wg0"],
        )?;
        self.ip(Node::Gateway, &["-6", "route", "add", &peer, "dev", "wg0"])?;
        let out = self.topology.masquerade_out_match();
        for rule in [
            &["-A", "FORWARD", "-i", "wg0", "-j", "ACCEPT"][..],
            &["-A", "FORWARD", "-o", "wg0", "-j", "ACCEPT"],
            &[
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                out,
                "-j",
                "MASQUERADE",
            ],
        ] {
            let mut argv = vec!["ip6tables"];
            argv.extend_from_slice(rule);
            self.exec_in(Node::Gateway, &argv)?;
        }
        // Forwarding on makes the gateway a router: it stops taking router advertisements,
        // which the lab turned off anyway.
        self.exec_in(
            Node::Gateway,
            &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
        )?;
        Ok(())
    }

    fn start_dataplane(&mut self, dp: DataplaneGateway, kind: GatewayKind) -> Result<()> {
        let binary = std::fs::canonicalize(&dp.binary)
            .with_context(|| format!("dataplane binary {} not found", dp.binary.display()))?;
        let config = self.write_gateway_toml(&dp.toml)?;
        let binary_s = binary.to_string_lossy().into_owned();
        let config_s = config.to_string_lossy().into_owned();
        let mut argv: Vec<&str> = vec!["sh", "-c", DATAPLANE_WRAPPER, "sh"];
        argv.extend(dp.wrapper.iter().map(String::as_str));
        argv.extend([binary_s.as_str(), "--config", &config_s]);
        argv.extend(dp.args.iter().map(String::as_str));
        let mut cmd = super::netns::in_ns(&self.ns_name(Node::Gateway), &argv);
        for (k, v) in &dp.env {
            cmd.env(k, v);
        }
        self.record("gw", format!("start dataplane: {}", argv[4..].join(" ")));
        let mut p = Spawned::start(
            "gateway-dataplane",
            cmd,
            &self.dir.join("gateway-dataplane.log"),
        )?;
        let deadline = Instant::now() + dp.ready_timeout;
        loop {
            if let Some(status) = p.exit_status() {
                bail!(
                    "dataplane exited ({status}) right after start; its log ({}):\n{}",
                    p.log.display(),
                    p.log_text()
                );
            }
            if self
                .wg_quiet(p.pid(), &["show", "wg0", "public-key"])
                .is_ok()
            {
                self.note("dataplane answers on its UAPI socket (wg show wg0)");
                break;
            }
            if Instant::now() > deadline {
                self.note(format!(
                    "dataplane runs but has no UAPI socket after {:.1}s; going on",
                    dp.ready_timeout.as_secs_f64()
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.gateway = Some(RunningGateway { kind, process: p });
        Ok(())
    }

    /// Stops the gateway (SIGTERM, then SIGKILL after 3 s) and undoes the reference gateway's
    /// iptables rules and forwarding, so another gateway can start in the same namespace.
    pub fn stop_gateway(&mut self) -> Result<()> {
        let Some(mut g) = self.gateway.take() else {
            return Ok(());
        };
        let status = g.process.stop(Duration::from_secs(3));
        self.note(format!(
            "gateway {} stopped ({})",
            g.kind.name(),
            status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into())
        ));
        if g.kind.is_reference() {
            self.exec_in(Node::Gateway, &["iptables", "-F", "FORWARD"])?;
            self.exec_in(
                Node::Gateway,
                &["iptables", "-t", "nat", "-F", "POSTROUTING"],
            )?;
            self.exec_in(Node::Gateway, &["sysctl", "-qw", "net.ipv4.ip_forward=0"])?;
            if self.ipv6 {
                self.exec_in(Node::Gateway, &["ip6tables", "-F", "FORWARD"])?;
                self.exec_in(
                    Node::Gateway,
                    &["ip6tables", "-t", "nat", "-F", "POSTROUTING"],
                )?;
                self.exec_in(
                    Node::Gateway,
                    &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"],
                )?;
            }
        }
        Ok(())
    }

    /// The kind of the running gateway, if any.
    pub fn gateway_kind(&self) -> Option<&GatewayKind> {
        self.gateway.as_ref().map(|g| &g.kind)
    }

    pub(crate) fn gateway_kind_name(&self) -> &'static str {
        self.gateway_kind().map(GatewayKind::name).unwrap_or("no")
    }

    /// The gateway process's pid (wireguard-go, boringtun or dataplane).
    pub fn gateway_pid(&self) -> Option<u32> {
        self.gateway.as_ref().map(|g| g.process.pid())
    }

    /// `Some(status)` if the gateway process has exited.
    pub fn gateway_exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.gateway.as_mut().and_then(|g| g.process.exit_status())
    }

    /// The gateway's stdout+stderr so far.
    pub fn gateway_log(&self) -> String {
        self.gateway
            .as_ref()
            .map(|g| g.process.log_text())
            .unwrap_or_default()
    }

    /// The gw.toml the lab writes for `dataplane` (same keys, same topology).
    pub fn gateway_toml(&self, opts: &GwTomlOptions) -> String {
        configs::gw_toml_with(self.topology, &self.keys, opts, self.ipv6)
    }

    /// Writes [`Lab::gateway_toml`] to `<lab dir>/gw.toml` (mode 0600) and returns its path; the
    /// dataplane gateway is started on this file.
    pub fn write_gateway_toml(&self, opts: &GwTomlOptions) -> Result<PathBuf> {
        self.write_file("gw.toml", &self.gateway_toml(opts), true)
    }

    /// The article's wg-quick `wg0.conf` for this lab's keys and layout.
    pub fn gateway_wg_quick_conf(&self) -> String {
        configs::article_wg0_conf(self.topology, &self.keys)
    }
}
