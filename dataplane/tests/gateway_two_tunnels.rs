//! Two gateways on one host: the lab's gateway (device `wg0`, one-armed on `eth0`, the default
//! name) and a second one in the same network namespace (device `wg1`, `[interface] name`,
//! two-armed on `eth1`/`eth2`, port 51821, tunnel 10.14.14.0/24), each with a wireguard-go
//! client. Both share `/run/wireguard` and `/run/dataplane` as two services on a host do (the
//! lab's private directories, bind-mounted into both gateways' mount namespaces).
//!
//! Checked: the second gateway starts; both clients ping and download through their own
//! gateway at the same time; `wg show wg0` and `wg show wg1` each list their own peer;
//! `dataplane stats -c` finds each gateway by its config (its default control socket is named
//! for the device); `dataplane peer add -c` on the second reaches only the second.

mod e2e_support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e_support::{assert_same_file, pattern, root_test, Background, E2e};
use lab::e2e::{ExtraWireGuard, LabProcess};
use lab::{ClientKind, Lab, Node, Topology, GATEWAY_LAN_ADDR, SERVER_ADDR, TUNNEL_MTU};
use ops::StatsSnapshot;

/// The second gateway's wires and addresses (RFC 2544 and private ranges unused by the lab).
const WAN1_GW: &str = "198.19.0.1";
const WAN1_CLIENT: &str = "198.19.0.2";
const LAN1_GW: Ipv4Addr = Ipv4Addr::new(172, 24, 0, 3);
const SERVER2: Ipv4Addr = Ipv4Addr::new(172, 24, 0, 2);
const TUNNEL2_GW: Ipv4Addr = Ipv4Addr::new(10, 14, 14, 1);
const TUNNEL2_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 14, 14, 2);
const PORT2: u16 = 51821;
/// Bytes each client downloads while the other does too.
const DOWNLOAD_LEN: usize = 8 << 20;

/// The dataplane wrapper for both gateways: the lab's `$1` and `$2` directories on
/// /run/wireguard and /run/dataplane (shared by the two, private to the test), a bpffs.
const SHARED_RUN_WRAPPER: &str = "w=\"$1\"; d=\"$2\"; shift 2; \
     mkdir -p /run/wireguard /run/dataplane \
     && mount --bind \"$w\" /run/wireguard && mount --bind \"$d\" /run/dataplane \
     && { mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; } && exec \"$@\"";

fn binary() -> String {
    e2e_support::binary()
}

/// Runs `argv` in the host view both gateways share (the first gateway's mount namespace:
/// /run/wireguard and /run/dataplane as the gateways see them) and its network namespace.
fn in_gateway_view(pid: u32, argv: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--mount", "--net", "--"])
        .args(argv)
        .output()
        .unwrap_or_else(|e| panic!("nsenter {argv:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok_in_gateway_view(pid: u32, argv: &[&str]) -> String {
    let (ok, text) = in_gateway_view(pid, argv);
    assert!(ok, "{argv:?} failed:\n{text}");
    text
}

fn stats(pid: u32, config: &Path) -> StatsSnapshot {
    let cfg = config.to_string_lossy();
    let json = ok_in_gateway_view(pid, &[&binary(), "stats", "-c", &cfg, "--json"]);
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("stats -c {cfg}: {e}:\n{json}"))
}

fn counter(s: &StatsSnapshot, name: &str) -> u64 {
    s.workers
        .iter()
        .map(|w| w.counters.get(name).copied().unwrap_or(0))
        .sum()
}

/// The second gateway's wires: `eth1` (WAN, to the client namespace's `wan1`) and `eth2`
/// (LAN, to the server namespace's `lan1`). Removed with the lab's namespaces.
fn wire_second_site(lab: &Lab) {
    let (gw, client, server) = (
        lab.ns_name(Node::Gateway),
        lab.ns_name(Node::Client),
        lab.ns_name(Node::Server),
    );
    for (a_if, a_ns, b_if, b_ns) in [
        ("eth1", &gw, "wan1", &client),
        ("eth2", &gw, "lan1", &server),
    ] {
        let (ok, out) = lab
            .try_exec_in(
                Node::Gateway,
                &[
                    "ip", "link", "add", "name", a_if, "netns", a_ns, "type", "veth", "peer",
                    "name", b_if, "netns", b_ns,
                ],
            )
            .unwrap();
        assert!(ok, "veth {a_if}/{b_if}: {out}");
    }
    let wan_gw = format!("{WAN1_GW}/24");
    let wan_client = format!("{WAN1_CLIENT}/24");
    let lan_gw = format!("{LAN1_GW}/24");
    let lan_server = format!("{SERVER2}/24");
    for (node, argv) in [
        (
            Node::Gateway,
            vec!["ip", "addr", "add", &wan_gw, "dev", "eth1"],
        ),
        (Node::Gateway, vec!["ip", "link", "set", "eth1", "up"]),
        (
            Node::Gateway,
            vec!["ip", "addr", "add", &lan_gw, "dev", "eth2"],
        ),
        (Node::Gateway, vec!["ip", "link", "set", "eth2", "up"]),
        (
            Node::Client,
            vec!["ip", "addr", "add", &wan_client, "dev", "wan1"],
        ),
        (Node::Client, vec!["ip", "link", "set", "wan1", "up"]),
        (
            Node::Server,
            vec!["ip", "addr", "add", &lan_server, "dev", "lan1"],
        ),
        (Node::Server, vec!["ip", "link", "set", "lan1", "up"]),
    ] {
        lab.exec_in(node, &argv).unwrap();
    }
}

/// The second gateway's gw.toml: device wg1, its own port, subnet and NICs, and no
/// `[control]`: the default socket must not be the first gateway's.
fn second_gw_toml(private_key: &str, client_public: &str) -> String {
    format!(
        "[interface]\nname = \"wg1\"\nprivate_key = \"{private_key}\"\nlisten_port = {PORT2}\n\
         address = [\"{TUNNEL2_GW}/24\"]\nmtu = {TUNNEL_MTU}\n\n\
         [[peer]]\nname = \"bob\"\npublic_key = \"{client_public}\"\nallowed_ips = [\"{TUNNEL2_CLIENT}/32\"]\n\n\
         [dataplane]\ninterfaces = [\"eth1\", \"eth2\"]\n\n[nat]\nmasquerade = true\n"
    )
}

/// The second client: wireguard-go `wgb` in the client namespace, peer of the second gateway
/// over `wan1`, routing 10.14.14.0/24 and the second LAN into the tunnel.
fn second_client(lab: &Lab, gateway_public: &str) -> ExtraWireGuard {
    let dev = lab
        .add_wireguard_go(Node::Client, "wgb")
        .expect("the second client's wireguard-go starts");
    let endpoint = format!("{WAN1_GW}:{PORT2}");
    lab.wg_extra(
        Node::Client,
        &dev,
        &[
            "set",
            "wgb",
            "listen-port",
            "51822",
            "peer",
            gateway_public,
            "endpoint",
            &endpoint,
            "allowed-ips",
            "0.0.0.0/0",
            "persistent-keepalive",
            "25",
        ],
    )
    .expect("wg set wgb");
    let addr = format!("{TUNNEL2_CLIENT}/32");
    let mtu = TUNNEL_MTU.to_string();
    for argv in [
        vec!["ip", "address", "add", &addr, "dev", "wgb"],
        vec!["ip", "link", "set", "wgb", "mtu", &mtu, "up"],
        vec!["ip", "route", "add", "10.14.14.0/24", "dev", "wgb"],
        vec!["ip", "route", "add", "172.24.0.0/24", "dev", "wgb"],
    ] {
        lab.exec_in(Node::Client, &argv)
            .expect("second client setup");
    }
    dev
}

/// Starts the second gateway on `config` with the shared run directories; waits until it
/// answers `wg show wg1` (or exits: then its log says why).
fn start_second_gateway(
    lab: &Lab,
    first_pid: u32,
    config: &Path,
    uapi: &Path,
    run: &Path,
) -> LabProcess {
    let bin = std::fs::canonicalize(binary()).unwrap();
    let (bin_s, cfg_s) = (bin.to_string_lossy(), config.to_string_lossy());
    let (uapi_s, run_s) = (uapi.to_string_lossy(), run.to_string_lossy());
    let mut p = lab
        .spawn_background(
            Node::Gateway,
            "gateway-wg1",
            &[
                "env",
                "NO_COLOR=1",
                "sh",
                "-c",
                SHARED_RUN_WRAPPER,
                "sh",
                &uapi_s,
                &run_s,
                &bin_s,
                "--config",
                &cfg_s,
            ],
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = p.exit_status() {
            panic!(
                "the second gateway (wg1) exited ({status}) while the first runs:\n{}",
                p.log_text()
            );
        }
        if in_gateway_view(first_pid, &["wg", "show", "wg1", "public-key"]).0 {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "the second gateway has no UAPI socket wg1.sock after 10 s:\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A ping and a download from the client namespace, started in the background.
fn traffic(ns: &str, ping_dst: Ipv4Addr, url: &str, out: &Path) -> (Background, Background) {
    let dst = ping_dst.to_string();
    let out_s = out.to_string_lossy();
    let ping = Background::start(
        ns,
        &["ping", "-n", "-c", "20", "-i", "0.1", "-W", "1", &dst],
    );
    let curl = Background::start(
        ns,
        &[
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "60",
            "-o",
            &out_s,
            url,
        ],
    );
    (ping, curl)
}

fn assert_ping_output(what: &str, out: &str) {
    let got = lab::parse_ping_received(out).unwrap_or_else(|| panic!("{what}: ping:\n{out}"));
    assert!(got >= 18, "{what}: {got} of 20 pings answered:\n{out}");
}

#[test]
fn two_gateways_on_one_host_each_with_its_own_device_and_sockets() {
    root_test("two_gateways_on_one_host", |name| {
        // The lab's gateway (wg0) runs first with its own private /run/wireguard; it is
        // restarted below with the shared directories. On failure `E2e` prints its log.
        let mut t = E2e::build_for(ClientKind::WireguardGo, name, Topology::OneArmed, false, "");
        run(&mut t);
    });
}

fn run(lab: &mut Lab) {
    let uapi = lab.dir().join("run-wireguard");
    let rundir = lab.dir().join("run-dataplane");
    std::fs::create_dir_all(&rundir).unwrap();
    let config0 = lab.dir().join("gw.toml");

    // The first gateway again, now on the shared /run/wireguard and /run/dataplane; its
    // gw.toml (the lab's) names no device and no control socket: wg0 and its defaults.
    lab.signal_gateway("TERM").unwrap();
    lab.wait_gateway_exit(Duration::from_secs(10));
    lab.take_gateway();
    let mut dp = e2e_support::dataplane("");
    let rundir_s = rundir.to_string_lossy().into_owned();
    dp.wrapper = vec![
        "sh".into(),
        "-c".into(),
        "mkdir -p /run/dataplane && mount --bind \"$0\" /run/dataplane && exec \"$@\"".into(),
        rundir_s,
    ];
    lab.start_dataplane_with_uapi_dir(dp, &uapi)
        .expect("the first gateway restarts with the shared run directories");
    let first = lab.gateway_pid().unwrap();
    // The client's session was with the stopped run: start over (a fresh handshake).
    let client_conf = lab.dir().join("client-wg.conf");
    lab.wg(
        Node::Client,
        &["setconf", "wg0", &client_conf.to_string_lossy()],
    )
    .unwrap();

    // The second gateway, same namespace, its own NICs, port, subnet and device.
    wire_second_site(lab);
    let gw2_keys = lab::e2e::generate_pair().unwrap();
    let client2 = second_client(lab, &gw2_keys.public);
    let config1 = lab.dir().join("gw1.toml");
    std::fs::write(
        &config1,
        second_gw_toml(&gw2_keys.private, &client2.keys.public),
    )
    .unwrap();
    // It holds a private key (the gateway warns otherwise).
    std::fs::set_permissions(
        &config1,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let second = start_second_gateway(lab, first, &config1, &uapi, &rundir);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        with_both_running(lab, first, &config0, &config1, &client2, &rundir, &uapi);
    }));
    if let Err(e) = result {
        eprintln!("==== second gateway (wg1) log ====\n{}", second.log_text());
        std::panic::resume_unwind(e);
    }
    drop(second);
}

fn with_both_running(
    lab: &mut Lab,
    first: u32,
    config0: &Path,
    config1: &Path,
    client2: &ExtraWireGuard,
    rundir: &Path,
    uapi: &Path,
) {
    // One UAPI socket and one control socket per device, side by side.
    for f in ["wg0.sock", "wg1.sock"] {
        assert!(uapi.join(f).exists(), "no /run/wireguard/{f}");
    }
    // The control sockets open once the workers run, just after the UAPI socket.
    let deadline = Instant::now() + Duration::from_secs(5);
    for f in ["wg0.control.sock", "wg1.control.sock"] {
        while !rundir.join(f).exists() {
            assert!(Instant::now() < deadline, "no /run/dataplane/{f}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // The second gateway's LAN server: the lab's files, on 172.24.0.2.
    let www = lab.dir().join("www");
    let server2 = lab.start_http_server_on("http-server-2", SERVER2).unwrap();
    let blob = pattern(DOWNLOAD_LEN);
    lab.write_server_file("two-tunnels.bin", &blob).unwrap();
    drop(blob);
    let served = www.join("two-tunnels.bin");
    let got0 = lab.dir().join("got-wg0.bin");
    let got1 = lab.dir().join("got-wg1.bin");
    let url0 = format!("http://{SERVER_ADDR}/two-tunnels.bin");
    let url1 = format!("http://{SERVER2}/two-tunnels.bin");

    // Handshakes first (wireguard-go starts one on the first packet), then both at once.
    let ns = lab.ns_name(Node::Client);
    let deadline = Instant::now() + Duration::from_secs(15);
    for dst in [SERVER_ADDR, SERVER2] {
        let dst_s = dst.to_string();
        while !lab
            .try_exec_in(Node::Client, &["ping", "-n", "-c", "1", "-W", "1", &dst_s])
            .unwrap()
            .0
        {
            assert!(
                Instant::now() < deadline,
                "no reply from {dst} through its gateway"
            );
        }
    }
    let (ping0, curl0) = traffic(&ns, SERVER_ADDR, &url0, &got0);
    let (ping1, curl1) = traffic(&ns, SERVER2, &url1, &got1);
    let outputs = [
        ("wg0 ping", ping0.output()),
        ("wg1 ping", ping1.output()),
        ("wg0 curl", curl0.output()),
        ("wg1 curl", curl1.output()),
    ];
    assert_ping_output("through wg0", &outputs[0].1);
    assert_ping_output("through wg1", &outputs[1].1);
    assert_same_file(
        &served,
        &got0,
        &format!("download through wg0 ({})", outputs[2].1),
    );
    assert_same_file(
        &served,
        &got1,
        &format!("download through wg1 ({})", outputs[3].1),
    );
    // Each download left through its own gateway's NAT.
    let sources0 = lab.server_request_sources().unwrap();
    assert!(
        !sources0.is_empty() && sources0.iter().all(|s| *s == GATEWAY_LAN_ADDR),
        "the first server saw {sources0:?}"
    );
    let log2 = server2.log_text();
    assert!(
        log2.contains(&format!("{LAN1_GW} - - ")) && !log2.contains("10.14.14."),
        "the second server's log:\n{log2}"
    );

    // `wg show` of each device lists its own peer only.
    let peers0 = ok_in_gateway_view(first, &["wg", "show", "wg0", "peers"]);
    let peers1 = ok_in_gateway_view(first, &["wg", "show", "wg1", "peers"]);
    let client1_public = lab.keys().client.public.clone();
    assert_eq!(peers0.trim(), client1_public, "wg show wg0 peers");
    assert_eq!(peers1.trim(), client2.keys.public, "wg show wg1 peers");

    // `stats -c` finds each gateway by its config.
    let (s0, s1) = (stats(first, config0), stats(first, config1));
    assert_eq!(
        (s0.interface.as_str(), s1.interface.as_str()),
        ("wg0", "wg1")
    );
    let nics = |s: &StatsSnapshot| {
        s.xdp
            .iter()
            .map(|x| x.interface.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(nics(&s0), ["eth0"]);
    assert_eq!(nics(&s1), ["eth1", "eth2"]);
    let keys = |s: &StatsSnapshot| {
        s.peers
            .iter()
            .map(|p| p.public_key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&s0), std::slice::from_ref(&client1_public));
    assert_eq!(keys(&s1), std::slice::from_ref(&client2.keys.public));
    for (what, s) in [("wg0", &s0), ("wg1", &s1)] {
        let decrypted = counter(s, "decrypted");
        assert!(
            decrypted >= (DOWNLOAD_LEN / 1500 / 8) as u64,
            "{what}: only {decrypted} packets decrypted"
        );
    }

    // `peer add -c gw1.toml` reaches wg1 (its UAPI socket by the config's name) and not wg0.
    let cfg1 = config1.to_string_lossy();
    let out = ok_in_gateway_view(
        first,
        &[
            &binary(),
            "peer",
            "add",
            "carol",
            "-c",
            &cfg1,
            "--no-qr",
            "--server-url",
            WAN1_GW,
        ],
    );
    assert!(
        out.contains("applied to the running gateway"),
        "peer add:\n{out}"
    );
    let peers1 = ok_in_gateway_view(first, &["wg", "show", "wg1", "peers"]);
    assert_eq!(
        peers1.lines().count(),
        2,
        "wg show wg1 peers after peer add:\n{peers1}"
    );
    let peers0 = ok_in_gateway_view(first, &["wg", "show", "wg0", "peers"]);
    assert_eq!(
        peers0.trim(),
        client1_public,
        "wg0 changed by a peer add on wg1"
    );
    let cfg0_text = std::fs::read_to_string(config0).unwrap();
    assert!(!cfg0_text.contains("carol"), "gw.toml of wg0 changed");
    // And the first tunnel still carries traffic.
    assert!(
        lab.ping_from_client(SERVER_ADDR).is_ok(),
        "the first client lost its tunnel after a peer add on the second gateway"
    );
    let _ = std::fs::remove_file(PathBuf::from(&got0));
    let _ = std::fs::remove_file(PathBuf::from(&got1));
}
