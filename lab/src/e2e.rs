//! What the end-to-end tests of the real gateway (`dataplane/tests/gateway_*.rs`) need from the
//! lab beyond a ping and a GET: signals and exit status of the gateway, its counters from the
//! log, a gateway whose UAPI directory stays visible from the host after it exits (to prove the
//! socket is removed), extra wireguard-go devices (a second peer), and background processes in
//! a namespace. Like the rest of the lab it only acts on namespaces and processes it created.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::gateway::{DataplaneGateway, GatewayKind, RunningGateway};
pub use super::keys::{generate_pair, KeyPair};
use super::netns::{in_ns, run};
use super::process::Spawned;
use super::topology::Node;
use super::Lab;

/// The dataplane wrapper for [`Lab::start_dataplane_with_uapi_dir`]: `$1` (a host directory) is
/// bind-mounted on /run/wireguard, so the UAPI socket is a file the test can look at after the
/// gateway's mount namespace is gone; a bpffs as in the lab's own wrapper.
const VISIBLE_UAPI_WRAPPER: &str = "d=\"$1\"; shift; mkdir -p /run/wireguard \
     && mount --bind \"$d\" /run/wireguard \
     && { mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; } && exec \"$@\"";

/// The wireguard-go wrapper for extra devices: a private /run/wireguard, as the lab's own.
const PRIVATE_UAPI_WRAPPER: &str =
    "mkdir -p /run/wireguard && mount -t tmpfs -o size=1m,mode=0700 wglab /run/wireguard && exec \"$@\"";

/// A process started in a lab namespace; stopped (SIGTERM, then SIGKILL) when dropped, and in
/// any case killed when the lab deletes its namespace.
pub struct LabProcess {
    inner: Spawned,
}

impl LabProcess {
    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// `Some(status)` once it exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.inner.exit_status()
    }

    /// Its stdout and stderr so far.
    pub fn log_text(&self) -> String {
        self.inner.log_text()
    }

    /// The file its output goes to.
    pub fn log_path(&self) -> &Path {
        &self.inner.log
    }

    /// Waits up to `timeout` for it to exit by itself; SIGKILL after that.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.inner.exit_status() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.inner.stop(Duration::ZERO)
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.inner.stop(grace)
    }
}

/// A wireguard-go device the test added (e.g. a second peer `wg1` in the client namespace).
pub struct ExtraWireGuard {
    /// The interface name inside the namespace.
    pub ifname: String,
    /// Its key pair (fresh from `wg genkey`).
    pub keys: KeyPair,
    process: LabProcess,
}

impl ExtraWireGuard {
    /// The pid of its wireguard-go (for `nsenter`).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }
}

/// One `counters` line of the gateway's log (logged every 10 s and on stop, per worker).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoggedCounters {
    pub worker: u32,
    pub rx: u64,
    pub tx: u64,
    pub decrypted: u64,
    pub encrypted: u64,
    pub to_slowpath: u64,
    /// `(reason, count)` in log order, e.g. `("source_not_allowed", 3)`.
    pub dropped: Vec<(String, u64)>,
}

impl LoggedCounters {
    /// The count of drop `reason` (0 when not logged).
    pub fn dropped(&self, reason: &str) -> u64 {
        self.dropped
            .iter()
            .filter(|(r, _)| r == reason)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The last `counters` line of each worker in `log` (the gateway's tracing output, without
/// colours), in worker order.
pub fn parse_logged_counters(log: &str) -> Vec<LoggedCounters> {
    let mut by_worker: Vec<LoggedCounters> = Vec::new();
    for line in log.lines() {
        // `... INFO dataplane::runtime: counters rx=5 tx=4 ... worker=0 dropped=a=1 b=2`
        let Some(at) = line.find(": counters ") else {
            continue;
        };
        let rest = &line[at + ": counters ".len()..];
        let mut c = LoggedCounters::default();
        let (fields, dropped) = match rest.find("dropped=") {
            Some(d) => (&rest[..d], &rest[d + "dropped=".len()..]),
            None => (rest, ""),
        };
        for kv in fields.split_whitespace() {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            match k {
                "worker" => c.worker = v as u32,
                "rx" => c.rx = v,
                "tx" => c.tx = v,
                "decrypted" => c.decrypted = v,
                "encrypted" => c.encrypted = v,
                "to_slowpath" => c.to_slowpath = v,
                _ => {}
            }
        }
        for kv in dropped.split_whitespace() {
            if let Some((k, v)) = kv.split_once('=') {
                if let Ok(v) = v.parse::<u64>() {
                    c.dropped.push((k.to_owned(), v));
                }
            }
        }
        match by_worker.iter_mut().find(|w| w.worker == c.worker) {
            Some(w) => *w = c,
            None => by_worker.push(c),
        }
    }
    by_worker.sort_by_key(|c| c.worker);
    by_worker
}

impl Lab {
    /// Whether `ifname` in the gateway namespace has an XDP program attached (`ip -d link`).
    pub fn xdp_attached(&self, ifname: &str) -> Result<bool> {
        let out = self.exec_in(Node::Gateway, &["ip", "-d", "link", "show", "dev", ifname])?;
        Ok(out.contains("prog/xdp")
            || out
                .split_whitespace()
                .any(|w| matches!(w, "xdp" | "xdpgeneric" | "xdpdrv" | "xdpoffload")))
    }

    /// Replies to `count` pings (0.2 s apart, 1 s wait each) from `node` to `dst`; 0 when ping
    /// printed no summary.
    pub fn ping_replies(&self, node: Node, dst: Ipv4Addr, count: u32) -> Result<u32> {
        let (c, d) = (count.to_string(), dst.to_string());
        let (_, out) =
            self.try_exec_in(node, &["ping", "-n", "-c", &c, "-i", "0.2", "-W", "1", &d])?;
        Ok(super::parse_ping_received(&out).unwrap_or(0))
    }

    /// Sends `signal` (`HUP`, `TERM`, `KILL`, ...) to the gateway process.
    pub fn signal_gateway(&self, signal: &str) -> Result<()> {
        let pid = self.gateway_pid().context("no gateway is running")?;
        if !signal.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("bad signal name {signal:?}");
        }
        self.note(format!("kill -{signal} {pid} (gateway)"));
        run(Command::new("kill").args([&format!("-{signal}"), &pid.to_string()])).map(|_| ())
    }

    /// Waits up to `timeout` for the gateway process to exit by itself (after a signal); its
    /// status, or `None` if it still runs.
    pub fn wait_gateway_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.gateway_exit_status() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Forgets a gateway that has exited (after [`Lab::wait_gateway_exit`]), so another can
    /// start; stops it first if it still runs. Returns its exit status.
    pub fn take_gateway(&mut self) -> Option<ExitStatus> {
        let mut g = self.gateway.take()?;
        let s = g.process.stop(Duration::from_secs(3));
        self.note(format!("gateway taken down ({s:?})"));
        s
    }

    /// The gateway's log file.
    pub fn gateway_log_path(&self) -> PathBuf {
        self.dir.join("gateway-dataplane.log")
    }

    /// Starts `dataplane` as [`Lab::start_gateway`] does, but with `uapi_dir` (a host
    /// directory) bind-mounted on the gateway's `/run/wireguard`: the UAPI socket, and whether
    /// it is removed on stop, can then be seen from the host (and a SIGKILLed run leaves it
    /// behind, as on a real host). Uses `<lab dir>/gw.toml`, written from `dp.toml` if absent.
    /// The log goes to [`Lab::gateway_log_path`]; an earlier run's to `*.previous.log`.
    pub fn start_dataplane_with_uapi_dir(
        &mut self,
        dp: DataplaneGateway,
        uapi_dir: &Path,
    ) -> Result<()> {
        if self.gateway.is_some() {
            bail!("a gateway is already running in this lab; stop it first");
        }
        std::fs::create_dir_all(uapi_dir)
            .with_context(|| format!("cannot create {}", uapi_dir.display()))?;
        let binary = std::fs::canonicalize(&dp.binary)
            .with_context(|| format!("dataplane binary {} not found", dp.binary.display()))?;
        let config = self.dir.join("gw.toml");
        if !config.exists() {
            self.write_gateway_toml(&dp.toml)?;
        }
        let binary_s = binary.to_string_lossy().into_owned();
        let config_s = config.to_string_lossy().into_owned();
        let dir_s = uapi_dir.to_string_lossy().into_owned();
        let mut argv: Vec<&str> = vec!["sh", "-c", VISIBLE_UAPI_WRAPPER, "sh", &dir_s];
        argv.extend(dp.wrapper.iter().map(String::as_str));
        argv.extend([binary_s.as_str(), "--config", &config_s]);
        argv.extend(dp.args.iter().map(String::as_str));
        let mut cmd = in_ns(&self.ns_name(Node::Gateway), &argv);
        for (k, v) in &dp.env {
            cmd.env(k, v);
        }
        self.record("gw", format!("start dataplane: {}", argv[5..].join(" ")));
        // A restart keeps the earlier run's log beside the new one.
        let log = self.gateway_log_path();
        if log.exists() {
            let previous = self.dir.join("gateway-dataplane.previous.log");
            std::fs::rename(&log, &previous)?;
            self.note(format!(
                "earlier gateway log moved to {}",
                previous.display()
            ));
        }
        let mut p = Spawned::start("gateway-dataplane", cmd, &log)?;
        let deadline = Instant::now() + dp.ready_timeout;
        loop {
            if let Some(status) = p.exit_status() {
                bail!(
                    "dataplane exited ({status}) right after start; its log:\n{}",
                    p.log_text()
                );
            }
            if self
                .wg_quiet(p.pid(), &["show", "wg0", "public-key"])
                .is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                self.note("dataplane has no UAPI socket yet; going on");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.gateway = Some(RunningGateway {
            kind: GatewayKind::Dataplane(dp),
            process: p,
        });
        Ok(())
    }

    /// Starts `argv` in `node` in the background, its output in `<lab dir>/<name>.log`.
    pub fn spawn_background(&self, node: Node, name: &str, argv: &[&str]) -> Result<LabProcess> {
        if name.contains('/') || name.is_empty() {
            bail!("spawn_background: {name:?} must be a plain name");
        }
        Ok(LabProcess {
            inner: self.spawn_in(node, name, argv)?,
        })
    }

    /// Starts another HTTP server in the server namespace on `addr`:80 (an address the test
    /// added there), serving the lab's files, once it listens.
    pub fn start_http_server_on(&self, name: &str, addr: Ipv4Addr) -> Result<LabProcess> {
        if name.contains('/') || name.is_empty() {
            bail!("start_http_server_on: {name:?} must be a plain name");
        }
        Ok(LabProcess {
            inner: self.spawn_http_server(name, addr.into())?,
        })
    }

    /// Starts another wireguard-go device `ifname` in `node` with a fresh key pair and a
    /// private UAPI directory; configure it with [`Lab::wg_extra`].
    pub fn add_wireguard_go(&self, node: Node, ifname: &str) -> Result<ExtraWireGuard> {
        if ifname.is_empty() || ifname.len() > 15 || ifname.contains('/') {
            bail!("bad interface name {ifname:?}");
        }
        let keys = generate_pair()?;
        let name = format!("{}-{ifname}-wireguard-go", node.role());
        let p = self.spawn_in(
            node,
            &name,
            &[
                "sh",
                "-c",
                PRIVATE_UAPI_WRAPPER,
                "sh",
                "wireguard-go",
                "-f",
                ifname,
            ],
        )?;
        let mut dev = ExtraWireGuard {
            ifname: ifname.to_owned(),
            keys,
            process: LabProcess { inner: p },
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self
            .wg_quiet(dev.pid(), &["show", ifname, "public-key"])
            .is_err()
        {
            if let Some(s) = dev.process.exit_status() {
                bail!("wireguard-go {ifname} exited ({s}):\n{}", dev.log_text());
            }
            if Instant::now() > deadline {
                bail!("wireguard-go {ifname} has no UAPI socket after 5 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // `wg set` reads private keys from files only.
        let key_file = self.write_file(&format!("{name}.key"), &dev.keys.private, true)?;
        self.wg_extra(
            node,
            &dev,
            &["set", ifname, "private-key", &key_file.to_string_lossy()],
        )?;
        Ok(dev)
    }

    /// `wg args...` against an extra wireguard-go device of `node`.
    pub fn wg_extra(&self, node: Node, dev: &ExtraWireGuard, args: &[&str]) -> Result<String> {
        self.wg_pid(node, dev.pid(), args)
    }

    /// Runs `argv` in `node` and returns its exit status and combined output, without failing
    /// on a non-zero status (for probes that are expected to fail).
    pub fn try_exec_in(&self, node: Node, argv: &[&str]) -> Result<(bool, String)> {
        self.record(node.role(), argv.join(" "));
        let out = in_ns(&self.ns_name(node), argv)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", argv.join(" ")))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_lines_are_parsed_per_worker_last_wins() {
        let log = "\
2026-01-01T00:00:00Z  INFO dataplane::runtime: gateway running\n\
2026-01-01T00:00:10Z  INFO dataplane::runtime: counters worker=0 rx=5 tx=4 decrypted=3 encrypted=2 to_slowpath=1 dropped=\n\
2026-01-01T00:00:20Z  INFO dataplane::runtime: counters worker=0 rx=9 tx=8 decrypted=7 encrypted=6 to_slowpath=2 dropped=source_not_allowed=3 no_neighbour=1\n";
        let c = parse_logged_counters(log);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].rx, 9);
        assert_eq!(c[0].decrypted, 7);
        assert_eq!(c[0].dropped("source_not_allowed"), 3);
        assert_eq!(c[0].dropped("no_neighbour"), 1);
        assert_eq!(c[0].dropped("tx_full"), 0);
        assert!(parse_logged_counters("no counters here").is_empty());
        // The gateway's current order: every declared counter, then the worker, then drops.
        let log = "2026-01-01T00:00:30Z  INFO dataplane::runtime: counters rx=6 tx=5 decrypted=4 \
                   encrypted=3 keepalives=1 to_slowpath=2 handed_off=0 handed_in=0 nat_entries=7 \
                   capture_skipped=0 worker=1 dropped=decrypt_auth_failed=2\n";
        let c = parse_logged_counters(log);
        assert_eq!((c[0].worker, c[0].rx, c[0].to_slowpath), (1, 6, 2));
        assert_eq!(c[0].dropped, vec![("decrypt_auth_failed".to_string(), 2)]);
    }
}
