//! Root integration tests of the namespace lab itself, with the reference gateway (wireguard-go
//! and iptables MASQUERADE, the article's design in user space): wireguard-go handshakes with
//! wireguard-go, HTTP and ICMP cross the tunnel, the server sees the NATed source, and nothing
//! of the lab is left afterwards, also after a panic. Skipped with a message when not root.
//!
//! These prove the lab before the real gateway is plugged in through `GatewayKind::Dataplane`.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lab::{
    cleanup_orphans, cleanup_stale, is_root, list_namespaces, DataplaneGateway, GatewayKind, Lab,
    Node, Topology, CLIENT_TUNNEL_ADDR, CLIENT_TUNNEL_ADDR6, GATEWAY_LAN_ADDR, GATEWAY_LAN_ADDR6,
    GATEWAY_TUNNEL_ADDR6, SERVER_ADDR, SERVER_ADDR6,
};

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root to create network namespaces (run the tests as root)");
    true
}

fn namespaces_of(prefix: &str) -> Vec<String> {
    let p = format!("{prefix}-");
    list_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&p))
        .collect()
}

/// Deterministic bytes that a truncated or reordered transfer cannot reproduce.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn exercise(topology: Topology) {
    let t0 = Instant::now();
    let mut lab = Lab::builder(topology).build().expect("the lab builds");
    let prefix = lab.prefix().to_owned();
    let dir = lab.dir().to_owned();
    assert_eq!(namespaces_of(&prefix).len(), topology.nodes().len());

    lab.wait_for_handshake(Duration::from_secs(10))
        .expect("wireguard-go client handshakes with the reference gateway");
    let gw_peers = lab.wg_transfer(Node::Gateway).unwrap();
    assert_eq!(gw_peers.len(), 1);
    assert_eq!(gw_peers[0].public_key, lab.keys().client.public);

    let wan = topology.gateway_wan_interface();
    let before = lab.interface_counters(Node::Gateway, wan).unwrap();

    let body = lab
        .http_get_from_client(&format!("http://{SERVER_ADDR}/"))
        .expect("HTTP GET through the tunnel");
    assert_eq!(body, lab.server_index_body().as_bytes());

    let blob = pattern(1 << 20);
    let url = lab.write_server_file("blob.bin", &blob).unwrap();
    let got = lab.http_get_from_client(&url).expect("1 MiB download");
    assert!(
        got == blob,
        "download differs: {} of {} bytes",
        got.len(),
        blob.len()
    );

    // Source NAT: the server only ever saw the gateway's LAN address.
    assert_eq!(
        lab.server_request_sources().unwrap(),
        vec![GATEWAY_LAN_ADDR, GATEWAY_LAN_ADDR]
    );
    lab.ping_from_client(SERVER_ADDR)
        .expect("ICMP echo through the tunnel");
    // ...and cannot reach the client's tunnel address on its own, so replies need the NAT.
    assert!(lab.ping_from(Node::Server, CLIENT_TUNNEL_ADDR).is_err());

    // The traffic went over the gateway's WAN side, encrypted and counted there.
    let after = lab.interface_counters(Node::Gateway, wan).unwrap();
    let d = after.since(&before);
    assert!(d.rx_bytes > blob.len() as u64 / 100, "{d:?}");
    assert!(d.tx_bytes > blob.len() as u64, "{d:?}");
    let client = lab.wg_transfer(Node::Client).unwrap();
    assert!(client[0].rx_bytes > blob.len() as u64, "{client:?}");

    if topology == Topology::TwoArmed {
        // The benchmark reference, briefly: TCP both ways through the tunnel.
        let up = lab
            .iperf3_from_client(Duration::from_secs(1), false)
            .unwrap();
        let down = lab
            .iperf3_from_client(Duration::from_secs(1), true)
            .unwrap();
        eprintln!(
            "reference gateway, two-armed: iperf3 up {:.0} Mbit/s, down {:.0} Mbit/s",
            up / 1e6,
            down / 1e6
        );
        assert!(up > 1e6 && down > 1e6, "up {up} down {down}");
    }

    // Without the gateway nothing gets through: the lab does not leak a direct path.
    lab.stop_gateway().unwrap();
    assert!(lab
        .http_get_from_client_timeout(
            &format!("http://{SERVER_ADDR}/"),
            Duration::from_millis(1500)
        )
        .is_err());

    drop(lab);
    assert!(
        namespaces_of(&prefix).is_empty(),
        "namespaces left: {:?}",
        namespaces_of(&prefix)
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    eprintln!("{} lab test took {:?}", topology.name(), t0.elapsed());
}

#[test]
fn reference_gateway_one_armed() {
    if skip_unless_root("reference_gateway_one_armed") {
        return;
    }
    exercise(Topology::OneArmed);
}

#[test]
fn reference_gateway_two_armed() {
    if skip_unless_root("reference_gateway_two_armed") {
        return;
    }
    exercise(Topology::TwoArmed);
}

/// The dual-stack lab with the reference gateway, the client on the gateway's IPv6 endpoint:
/// the handshake and IPv4 inside run over the IPv6 underlay, IPv6 inside crosses the tunnel
/// (ip6tables MASQUERADE), and the gateway's `wg show` has the client's IPv6 endpoint.
fn exercise_dual_stack(topology: Topology) {
    let mut lab = Lab::builder(topology)
        .client_endpoint_ipv6(true)
        .build()
        .expect("the dual-stack lab builds");
    assert!(lab.ipv6());
    assert_eq!(lab.client_endpoint(), topology.endpoint6().into());
    lab.wait_for_handshake(Duration::from_secs(10))
        .expect("the client handshakes over IPv6");
    let endpoints = lab
        .wg(Node::Gateway, &["show", "wg0", "endpoints"])
        .unwrap();
    let client6 = format!("[{}]:", topology.client_underlay_addr6());
    assert!(endpoints.contains(&client6), "{endpoints}");
    let body = lab
        .http_get_from_client(&format!("http://{SERVER_ADDR}/"))
        .expect("HTTP over IPv4 inside, IPv6 outside");
    assert_eq!(body, lab.server_index_body().as_bytes());
    let body = lab
        .http_get_from_client(&lab.server_url6(""))
        .expect("HTTP over IPv6 inside");
    assert_eq!(body, lab.server_index_body().as_bytes());
    for dst in [GATEWAY_TUNNEL_ADDR6, SERVER_ADDR6, GATEWAY_LAN_ADDR6] {
        let dst = dst.to_string();
        let (ok, out) = lab
            .try_exec_in(Node::Client, &["ping", "-n", "-c", "1", "-W", "2", &dst])
            .unwrap();
        assert!(ok, "ping {dst} from the client:\n{out}");
    }
    // The server cannot reach the client's IPv6 tunnel address itself: replies need the NAT.
    let dst = CLIENT_TUNNEL_ADDR6.to_string();
    let (ok, _) = lab
        .try_exec_in(Node::Server, &["ping", "-n", "-c", "1", "-W", "1", &dst])
        .unwrap();
    assert!(!ok, "the server reached {dst} without the tunnel");
}

#[test]
fn reference_gateway_dual_stack_one_armed() {
    if skip_unless_root("reference_gateway_dual_stack_one_armed") {
        return;
    }
    exercise_dual_stack(Topology::OneArmed);
}

#[test]
fn reference_gateway_dual_stack_two_armed() {
    if skip_unless_root("reference_gateway_dual_stack_two_armed") {
        return;
    }
    exercise_dual_stack(Topology::TwoArmed);
}

#[test]
fn captures_show_the_articles_steps() {
    if skip_unless_root("captures_show_the_articles_steps") {
        return;
    }
    use lab::{classify, ArticleStep};
    let mut lab = Lab::builder(Topology::OneArmed).build().unwrap();
    lab.wait_for_handshake(Duration::from_secs(10)).unwrap();
    let (node, ifname, label) = Topology::OneArmed.wire_capture_points()[0];
    let wire = lab.start_capture(node, ifname, label).unwrap();
    let wg0 = lab.start_capture(Node::Gateway, "wg0", "gw wg0").unwrap();
    lab.ping_from_client(SERVER_ADDR).unwrap();
    let mut pkts = lab.stop_capture(wire).unwrap();
    pkts.extend(lab.stop_capture(wg0).unwrap());
    let steps: std::collections::BTreeSet<_> = pkts
        .iter()
        .filter_map(|p| classify(p, Topology::OneArmed))
        .collect();
    let all: std::collections::BTreeSet<_> = ArticleStep::ALL.into_iter().collect();
    assert_eq!(steps, all, "captured: {pkts:#?}");
    // The article's observation: the packet on eth0 is the wg0 one plus a 14-byte Ethernet header.
    let decrypted = pkts
        .iter()
        .find(|p| classify(p, Topology::OneArmed) == Some(ArticleStep::Decrypted))
        .unwrap();
    let natted = pkts
        .iter()
        .find(|p| classify(p, Topology::OneArmed) == Some(ArticleStep::NatForwarded))
        .unwrap();
    assert_eq!(natted.length, decrypted.length + 14);
}

#[test]
fn lab_is_removed_after_a_panic() {
    if skip_unless_root("lab_is_removed_after_a_panic") {
        return;
    }
    let prefix = Mutex::new(String::new());
    let result = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::builder(Topology::TwoArmed).build().unwrap();
        *prefix.lock().unwrap() = lab.prefix().to_owned();
        panic!("deliberate panic with a running lab");
    }));
    assert!(result.is_err());
    let prefix = prefix.into_inner().unwrap();
    assert!(!prefix.is_empty());
    assert!(namespaces_of(&prefix).is_empty());
    // On panic the files stay for the post-mortem; remove them here.
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&prefix));
}

#[test]
fn stale_and_orphaned_namespaces_are_cleaned() {
    if skip_unless_root("stale_and_orphaned_namespaces_are_cleaned") {
        return;
    }
    let run = |args: &[&str]| {
        assert!(std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap()
            .success())
    };
    // A leftover of a killed run of this very process (same pid, unused counter).
    let stale = format!("wlab{}-stale-client", std::process::id());
    run(&["netns", "add", &stale]);
    let removed = cleanup_stale(&format!("wlab{}-stale", std::process::id())).unwrap();
    assert_eq!(removed, vec![stale.clone()]);
    assert!(!list_namespaces().unwrap().contains(&stale));
    // An orphan: its owner pid is above any pid_max, so it cannot be alive.
    let orphan = "wlab999999999-0-gw".to_owned();
    run(&["netns", "add", &orphan]);
    let removed = cleanup_orphans().unwrap();
    assert!(removed.contains(&orphan), "{removed:?}");
    assert!(!list_namespaces().unwrap().contains(&orphan));
}

#[test]
fn dataplane_hook_writes_gw_toml_and_reports_an_early_exit_with_its_log() {
    if skip_unless_root("dataplane_hook_writes_gw_toml_and_reports_an_early_exit_with_its_log") {
        return;
    }
    // A stand-in gateway that prints its config and fails, as a broken build would.
    let dir = std::env::temp_dir().join(format!("wlab-fake-gw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("fake-dataplane");
    let mut f = std::fs::File::create(&fake).unwrap();
    writeln!(
        f,
        "#!/bin/sh\necho \"fake dataplane args: $*\"\ncat \"$2\"\nexit 3"
    )
    .unwrap();
    drop(f);
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut dp = DataplaneGateway::new(&fake);
    dp.toml.mode = Some("copy".into());
    let err = Lab::builder(Topology::TwoArmed)
        .gateway(GatewayKind::Dataplane(dp))
        .build()
        .err()
        .expect("a gateway that exits must fail the build");
    let msg = format!("{err:#}");
    assert!(msg.contains("exited"), "{msg}");
    assert!(msg.contains("fake dataplane args: --config"), "{msg}");
    // The log carries the gw.toml the lab wrote: the contract's tables and this layout's NICs.
    let toml_text = &msg[msg.find("[interface]").expect("gw.toml in the log")..];
    let end = toml_text.find("\nfake").unwrap_or(toml_text.len());
    let t: toml::Table = toml_text[..end].parse().expect("gw.toml parses");
    assert_eq!(t["interface"]["listen_port"].as_integer(), Some(51820));
    assert_eq!(t["dataplane"]["interfaces"][1].as_str(), Some("lan0"));
    assert_eq!(t["dataplane"]["mode"].as_str(), Some("copy"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_gw_toml_passes_dataplane_check_inside_the_gateway_namespace() {
    if skip_unless_root("lab_gw_toml_passes_dataplane_check_inside_the_gateway_namespace") {
        return;
    }
    // `dataplane check` reads the host facts of the namespace it runs in (interfaces, local
    // port range), so this checks the lab's config against the lab's gateway host.
    let bin = env!("CARGO_BIN_EXE_dataplane");
    for topology in [Topology::OneArmed, Topology::TwoArmed] {
        let lab = Lab::builder(topology).build().unwrap();
        let path = lab
            .write_gateway_toml(&lab::GwTomlOptions::default())
            .unwrap();
        let path = path.to_str().unwrap();
        let out = lab.exec_in(Node::Gateway, &[bin, "check", "--config", path]);
        assert!(
            out.is_ok(),
            "{topology:?}: {out:?}\n{}",
            lab.gateway_toml(&Default::default())
        );
    }
}
