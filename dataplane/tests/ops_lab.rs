//! Root test of the operator tools against the real gateway in the namespace lab: after
//! traffic through the tunnel, `dataplane stats` (control socket) and the Prometheus endpoint
//! show non-zero counters, and `dataplane peer add` / `peer remove` change the running gateway
//! without a restart (`wg show wg0 peers` lists the new peer, then no longer).
//!
//! Skipped with a message when not root. Run with
//! `sudo -E cargo test -p dataplane --test ops_lab -- --nocapture`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use lab::{
    is_root, DataplaneGateway, GatewayKind, GwTomlOptions, Lab, Node, Topology, SERVER_ADDR,
};
use ops::StatsSnapshot;

mod ops_support;

const BIN: &str = env!("CARGO_BIN_EXE_dataplane");

/// The test's own files (control socket, client configs), removed even on failure.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The lab, printing the gateway's log when the test fails.
struct Guarded(Lab);

impl Drop for Guarded {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== gateway log ====\n{}\n==== end ====",
                self.0.gateway_log()
            );
        }
    }
}

impl std::ops::Deref for Guarded {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.0
    }
}

impl std::ops::DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.0
    }
}

/// Runs this build's `dataplane` inside the gateway process's network and mount namespaces,
/// where its UAPI socket (/var/run/wireguard/wg0.sock on a private tmpfs) is.
fn dataplane_in_gateway(pid: u32, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--mount", "--net", BIN])
        .args(args)
        .output()
        .expect("nsenter runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "dataplane {args:?} in the gateway: {text}"
    );
    text
}

#[test]
fn stats_metrics_and_live_peer_add_on_the_real_gateway() {
    if !is_root() {
        eprintln!("SKIPPED stats_metrics_and_live_peer_add_on_the_real_gateway: needs root (namespaces, XDP); run as root");
        return;
    }
    let tmp = TempDir(std::env::temp_dir().join(format!("ops-lab-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0).unwrap();
    let control = tmp.0.join("control.sock");
    let mut dp = DataplaneGateway::new(BIN);
    dp.toml = GwTomlOptions {
        mode: None,
        extra_toml: format!(
            "[metrics]\nlisten = \"127.0.0.1:9586\"\n\n[control]\nsocket = \"{}\"\n",
            control.display()
        ),
        ..Default::default()
    };
    dp.ready_timeout = Duration::from_secs(5);
    let mut lab = Guarded(
        Lab::builder(Topology::OneArmed)
            .gateway(GatewayKind::Dataplane(dp))
            .build()
            .expect("the lab with the dataplane gateway"),
    );
    lab.wait_for_handshake(Duration::from_secs(10))
        .expect("wireguard-go handshakes with the gateway");
    lab.ping_from_client(SERVER_ADDR)
        .expect("ping through the tunnel");
    let body = lab
        .http_get_from_client(&format!("http://{SERVER_ADDR}/"))
        .expect("HTTP through the tunnel");
    assert_eq!(body, lab.server_index_body().as_bytes());
    let pid = lab.gateway_pid().expect("the gateway runs");

    // `dataplane stats` over the control socket (a file: reachable from any namespace).
    let out = Command::new(BIN)
        .args(["stats", "--json", "--socket", control.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: StatsSnapshot = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("stats: {snap:#?}");
    let w = &snap.workers[0];
    assert!(w.counters["rx"] > 0 && w.counters["tx"] > 0, "{w:?}");
    assert!(
        w.counters["decrypted"] > 0 && w.counters["encrypted"] > 0,
        "{w:?}"
    );
    assert_eq!(snap.peers.len(), 1);
    let p = &snap.peers[0];
    assert_eq!(p.name.as_deref(), Some("peer1"));
    assert!(p.rx_bytes > 0 && p.tx_bytes > 0, "{p:?}");
    assert!(p.latest_handshake.is_some(), "{p:?}");
    let xdp = &snap.xdp[0];
    assert_eq!(xdp.error, None);
    assert!(xdp.counters["redirect_wireguard"] > 0, "{xdp:?}");
    assert!(
        snap.slow_path["handshakes_received"] > 0,
        "{:?}",
        snap.slow_path
    );
    let text = Command::new(BIN)
        .args(["stats", "--socket", control.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    eprintln!("{text}");
    assert!(text.contains("peer peer1"), "{text}");

    // The metrics endpoint, scraped inside the gateway's namespace.
    let metrics = lab
        .exec_in(
            Node::Gateway,
            &["curl", "-sf", "http://127.0.0.1:9586/metrics"],
        )
        .expect("the metrics endpoint answers");
    let scrape = ops_support::parse(&metrics).expect("valid exposition text");
    let key = lab.keys().client.public.clone();
    let labels = [
        ("interface", "wg0"),
        ("public_key", key.as_str()),
        ("friendly_name", "peer1"),
    ];
    assert!(scrape.value("wireguard_received_bytes_total", &labels) > 0.0);
    assert!(scrape.value("wireguard_sent_bytes_total", &labels) > 0.0);
    assert!(scrape.value("wireguard_latest_handshake_seconds", &labels) > 1.6e9);
    assert!(scrape.value("dataplane_worker_packets_total", &[("stage", "decrypted")]) > 0.0);
    assert!(
        scrape.value(
            "dataplane_xdp_packets_total",
            &[("action", "redirect_wireguard")]
        ) > 0.0
    );

    // `peer add` applies to the running gateway through its UAPI socket.
    let gw_toml = lab.dir().join("gw.toml");
    let gw_toml = gw_toml.to_str().unwrap();
    let out_dir = tmp.0.join("clients");
    let out = dataplane_in_gateway(
        pid,
        &[
            "peer",
            "add",
            "laptop",
            "--config",
            gw_toml,
            "--server-url",
            "172.23.0.3",
            "--out-dir",
            out_dir.to_str().unwrap(),
            "--no-qr",
        ],
    );
    assert!(out.contains("applied to the running gateway"), "{out}");
    let laptop_key = out
        .lines()
        .find_map(|l| l.split("public key ").nth(1))
        .expect("peer add prints the public key")
        .trim()
        .to_string();
    let peers = lab.wg(Node::Gateway, &["show", "wg0", "peers"]).unwrap();
    assert!(peers.contains(&laptop_key), "wg show wg0 peers: {peers}");
    let ips = lab
        .wg(Node::Gateway, &["show", "wg0", "allowed-ips"])
        .unwrap();
    assert!(
        ips.contains(&format!("{laptop_key}\t10.13.13.3/32")),
        "{ips}"
    );
    let list = dataplane_in_gateway(pid, &["peer", "list", "--config", gw_toml]);
    assert!(
        list.contains("peer laptop") && list.contains("transfer:"),
        "{list}"
    );

    let out = dataplane_in_gateway(pid, &["peer", "remove", "laptop", "--config", gw_toml]);
    assert!(out.contains("applied to the running gateway"), "{out}");
    let peers = lab.wg(Node::Gateway, &["show", "wg0", "peers"]).unwrap();
    assert!(!peers.contains(&laptop_key), "{peers}");
    // The first peer still works.
    lab.ping_from_client(SERVER_ADDR)
        .expect("ping after the peer changes");
}
