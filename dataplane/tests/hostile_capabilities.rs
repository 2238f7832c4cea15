//! The gateway without root (SECURITY.md "What runs as root"): root only, in the lab.
//!
//! `dataplane` runs as uid/gid 65534 (`nobody`) through `setpriv`, with exactly
//! CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_IPC_LOCK in its ambient, inheritable and
//! bounding sets, as the systemd unit in SECURITY.md gives them. What it writes at run time is
//! prepared for it by root beforehand, as `RuntimeDirectory=` does: `/run/dataplane` (instance
//! lock, control socket, and here its gw.toml) and `/run/wireguard` (UAPI socket), both private
//! tmpfs mounts of the gateway's mount namespace, owned by the service user. `/dev/net/tun` is
//! mode 0600 root on some hosts (this one; Debian's default is 0666): the gateway's mount
//! namespace gets its own node owned by the service user, as a udev rule would give it.
//!
//! What must hold: the process really runs as that user with only those capabilities
//! (`/proc/PID/status`), the client handshakes with it, pings and a download through the tunnel
//! arrive intact, and SIGTERM stops it cleanly (exit 0, no wg0, no XDP program left).

use std::time::{Duration, Instant};

use lab::{
    is_root, DataplaneGateway, GatewayKind, GwTomlOptions, Lab, Node, Topology, SERVER_ADDR,
};
use ops::StatsSnapshot;

/// The service user (`nobody` on Debian).
const SERVICE_UID: u32 = 65534;

/// The four capabilities, by number (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_IPC_LOCK: u32 = 14;
const CAP_BPF: u32 = 39;

/// `setpriv` names of the same four.
const CAPS: &str = "+net_admin,+net_raw,+bpf,+ipc_lock";

/// Runs as root inside the gateway's namespaces after the lab's own setup; `$1` is the binary,
/// `$2 $3` are `--config <lab gw.toml>`. Prepares the runtime directories for the service user,
/// gives it a copy of gw.toml it can read, and drops to it with only the four capabilities.
const SETPRIV_WRAPPER: &str = r#"set -e
u="$SERVICE_UID"
mkdir -p /run/dataplane
if [ -n "$RUNDIR" ]; then
  # Kept across starts, as RuntimeDirectoryPreserve=yes keeps it for the service.
  mount --bind "$RUNDIR" /run/dataplane
else
  mount -t tmpfs -o size=1m,mode=0700 dplab /run/dataplane
fi
chown "$u:$u" /run/dataplane /run/wireguard
mount -t tmpfs -o size=64k,mode=0755 dplab-dev /dev/net
mknod -m 0600 /dev/net/tun c 10 200
chown "$u:$u" /dev/net/tun
bin="$1"; cfg="$3"; shift 3
install -o "$u" -g "$u" -m 0600 "$cfg" /run/dataplane/gw.toml
exec setpriv --reuid="$u" --regid="$u" --clear-groups \
  --inh-caps="-all,$CAPS" --ambient-caps="-all,$CAPS" --bounding-set="-all,$CAPS" \
  "$bin" --config /run/dataplane/gw.toml "$@""#;

fn unprivileged_dataplane() -> DataplaneGateway {
    unprivileged_dataplane_in(None)
}

/// [`unprivileged_dataplane`] with `/run/dataplane` bound to `rundir`, which outlives each run.
fn unprivileged_dataplane_in(rundir: Option<&std::path::Path>) -> DataplaneGateway {
    let mut dp = DataplaneGateway::new(env!("CARGO_BIN_EXE_dataplane"));
    if let Some(dir) = rundir {
        dp.env.push(("RUNDIR".into(), dir.display().to_string()));
    }
    dp.wrapper = ["sh", "-c", SETPRIV_WRAPPER, "sh"]
        .map(String::from)
        .to_vec();
    dp.env.push(("SERVICE_UID".into(), SERVICE_UID.to_string()));
    dp.env.push(("CAPS".into(), CAPS.into()));
    // The control socket in the service user's runtime directory, not the host's /run.
    dp.toml = GwTomlOptions {
        mode: None,
        extra_toml: "[control]\nsocket = \"/run/dataplane/control.sock\"\n".into(),
        ..Default::default()
    };
    dp.ready_timeout = Duration::from_secs(10);
    dp
}

/// A field of /proc/PID/status, e.g. `Uid` or `CapEff`.
fn status_field(pid: u32, name: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

fn cap_set(pid: u32, name: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, name), 16).expect("a hex capability set")
}

/// Deterministic, incompressible-looking bytes for the download.
fn blob(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn runs_as_nobody_with_only_the_four_capabilities() {
    if !is_root() {
        eprintln!("SKIPPED runs_as_nobody_with_only_the_four_capabilities: needs root");
        return;
    }
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("setpriv (util-linux) is missing: apt-get install util-linux");
    }
    let t0 = Instant::now();
    let topology = Topology::OneArmed;
    let mut lab = Lab::builder(topology)
        .gateway(GatewayKind::Dataplane(unprivileged_dataplane()))
        .build()
        .expect("the lab with the unprivileged dataplane gateway builds");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pid = lab.gateway_pid().expect("a gateway pid");
        assert!(
            lab.gateway_exit_status().is_none(),
            "the unprivileged gateway exited:\n{}",
            lab.gateway_log()
        );
        // Who it runs as, and with what.
        let uid = status_field(pid, "Uid");
        let gid = status_field(pid, "Gid");
        let want = (1u64 << CAP_NET_ADMIN)
            | (1u64 << CAP_NET_RAW)
            | (1u64 << CAP_IPC_LOCK)
            | (1u64 << CAP_BPF);
        let (eff, prm, bnd, amb) = (
            cap_set(pid, "CapEff"),
            cap_set(pid, "CapPrm"),
            cap_set(pid, "CapBnd"),
            cap_set(pid, "CapAmb"),
        );
        eprintln!(
            "gateway pid {pid}: Uid {uid}, Gid {gid}, CapEff {eff:016x} CapPrm {prm:016x} \
             CapBnd {bnd:016x} CapAmb {amb:016x}"
        );
        for ids in [&uid, &gid] {
            assert!(
                ids.split_whitespace()
                    .all(|id| id == SERVICE_UID.to_string()),
                "not running as {SERVICE_UID}: {ids}"
            );
        }
        for (name, set) in [
            ("CapEff", eff),
            ("CapPrm", prm),
            ("CapBnd", bnd),
            ("CapAmb", amb),
        ] {
            assert_eq!(set, want, "{name} {set:016x}, want exactly {want:016x}");
        }

        let hs = lab
            .wait_for_handshake(Duration::from_secs(10))
            .expect("the client handshakes with the unprivileged gateway");
        let mut rtts = Vec::new();
        for _ in 0..5 {
            rtts.push(
                lab.ping_from_client(SERVER_ADDR)
                    .expect("ping through the tunnel"),
            );
        }
        let data = blob(2 << 20);
        let url = lab.write_server_file("blob.bin", &data).unwrap();
        let d0 = Instant::now();
        let got = lab
            .http_get_from_client(&url)
            .expect("download through the tunnel");
        let dl = d0.elapsed();
        assert_eq!(got.len(), data.len(), "download length");
        assert!(got == data, "download corrupted");
        eprintln!(
            "handshake after {:.2}s; ping RTTs {:?}; {} MiB downloaded in {:.2}s",
            hs.as_secs_f64(),
            rtts,
            data.len() >> 20,
            dl.as_secs_f64()
        );

        // `dataplane stats` over the control socket in the service user's runtime directory:
        // the XDP counters must be there (they were missing without CAP_SYS_ADMIN until the
        // reader took the map from the loaded program instead of enumerating programs).
        let out = std::process::Command::new("nsenter")
            .args(["--target", &pid.to_string(), "--mount", "--net"])
            .arg(env!("CARGO_BIN_EXE_dataplane"))
            .args(["stats", "--socket", "/run/dataplane/control.sock", "--json"])
            .output()
            .expect("nsenter dataplane stats");
        assert!(
            out.status.success(),
            "dataplane stats: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stats: StatsSnapshot =
            serde_json::from_slice(&out.stdout).expect("stats --json is a StatsSnapshot");
        assert!(!stats.xdp.is_empty(), "no XDP section in stats");
        for x in &stats.xdp {
            assert_eq!(x.error, None, "XDP counters of {}", x.interface);
            let wg = x.counters.get("redirect_wireguard").copied().unwrap_or(0);
            let nat = x.counters.get("redirect_nat_return").copied().unwrap_or(0);
            eprintln!(
                "XDP on {}: redirect_wireguard {wg}, redirect_nat_return {nat}",
                x.interface
            );
            assert!(
                wg > 0 && nat > 0,
                "XDP counters of {}: {:?}",
                x.interface,
                x.counters
            );
        }

        lab.signal_gateway("TERM").unwrap();
        let status = lab.wait_gateway_exit(Duration::from_secs(10));
        let log = lab.gateway_log();
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "exit after SIGTERM: {status:?}; log:\n{log}"
        );
        lab.take_gateway();
        for i in topology.gateway_interfaces() {
            assert!(!lab.xdp_attached(i).unwrap(), "XDP program left on {i}");
        }
        let (has_wg0, _) = lab
            .try_exec_in(Node::Gateway, &["ip", "link", "show", "dev", "wg0"])
            .unwrap();
        assert!(!has_wg0, "wg0 left behind");
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        eprintln!("gateway warnings/errors: {warnings:#?}");
        eprintln!("total {:.1}s", t0.elapsed().as_secs_f64());
    }));
    if let Err(e) = result {
        eprintln!("==== gateway log ====\n{}", lab.gateway_log());
        std::panic::resume_unwind(e);
    }
}

/// A gateway killed with SIGKILL (or by the OOM killer) leaves its XDP program attached. A
/// restart under the service's four capabilities cannot read that program's name (that needs
/// CAP_SYS_ADMIN), so before the fix it took the program for someone else's and refused to
/// start, and `Restart=on-failure` could not bring the gateway back. It now recognises the id
/// the killed run recorded beside its instance lock and replaces the program.
#[test]
fn restarts_after_sigkill_with_only_the_four_capabilities() {
    if !is_root() {
        eprintln!("SKIPPED restarts_after_sigkill_with_only_the_four_capabilities: needs root");
        return;
    }
    let rundir = tempfile::tempdir().expect("a runtime directory");
    let chown = std::process::Command::new("chown")
        .arg(format!("{SERVICE_UID}:{SERVICE_UID}"))
        .arg(rundir.path())
        .status()
        .expect("chown");
    assert!(chown.success());
    let mut lab = Lab::builder(Topology::OneArmed)
        .gateway(GatewayKind::Dataplane(unprivileged_dataplane_in(Some(
            rundir.path(),
        ))))
        .build()
        .expect("the lab with the unprivileged dataplane gateway builds");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lab.wait_for_handshake(Duration::from_secs(10))
            .expect("the client handshakes with the unprivileged gateway");
        lab.ping_from_client(SERVER_ADDR)
            .expect("ping through the gateway before it is killed");
        lab.signal_gateway("KILL").unwrap();
        lab.wait_gateway_exit(Duration::from_secs(10));
        lab.take_gateway();
        assert!(
            lab.xdp_attached("eth0").unwrap(),
            "the killed gateway's XDP program should still be attached (else this tests nothing)"
        );
        lab.start_gateway(GatewayKind::Dataplane(unprivileged_dataplane_in(Some(
            rundir.path(),
        ))))
        .expect("the unprivileged gateway starts again after SIGKILL");
        let log = lab.gateway_log();
        assert!(
            log.contains("recognised by the id it recorded"),
            "the restart did not say it replaced its own program:\n{log}"
        );
        // A fresh session with this instance, as a client does after its rekey timeout.
        let client_conf = lab.dir().join("client-wg.conf");
        lab.wg(
            Node::Client,
            &["setconf", "wg0", &client_conf.to_string_lossy()],
        )
        .unwrap();
        lab.wait_for_handshake(Duration::from_secs(30))
            .expect("the client handshakes with the restarted gateway");
        // The first echo may go while the restarted gateway resolves the server's MAC.
        let answered = (0..5).any(|_| lab.ping_from_client(SERVER_ADDR).is_ok());
        assert!(answered, "no ping through the restarted gateway");
        lab.signal_gateway("TERM").unwrap();
        let status = lab.wait_gateway_exit(Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(0), "exit after SIGTERM");
        lab.take_gateway();
        assert!(
            !lab.xdp_attached("eth0").unwrap(),
            "XDP program left on eth0"
        );
        let left: Vec<_> = std::fs::read_dir(rundir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".prog"))
            .collect();
        assert!(
            left.is_empty(),
            "program id records left after a clean stop: {left:?}"
        );
    }));
    if let Err(e) = result {
        eprintln!("==== gateway log ====\n{}", lab.gateway_log());
        std::panic::resume_unwind(e);
    }
}
