//! A dual-stack tunnel: with `[interface] address = ["10.13.13.1/24", "fd13::1/64"]` the
//! gateway's wg0 carries both addresses and the kernel's connected route of each prefix, the
//! IPv6 one usable at once (no DAD on a point-to-point device, so never "tentative"), while
//! the IPv6 link-local address stays suppressed as on kernel WireGuard. The lab's namespaces
//! have `net.ipv6.conf.default.disable_ipv6 = 1` (as Docker containers without IPv6 do):
//! the gateway turns IPv6 on for its own wg0, which failed before with EACCES. A client with
//! `Address = fd13::2` pings fd13::1 through the tunnel: the decrypted IPv6 echo goes to the
//! kernel through wg0, and its reply comes back out of wg0 to be sealed.
//!
//! Skips with a message when not root. `sudo -E cargo test -p dataplane --test
//! gateway_tunnel_ipv6 -- --nocapture --test-threads=1`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lab::{
    GwTomlOptions, Node, Topology, CLIENT_TUNNEL_ADDR, CLIENT_TUNNEL_ADDR6, GATEWAY_TUNNEL_ADDR,
    GATEWAY_TUNNEL_ADDR6, TUNNEL_PREFIX_LEN, TUNNEL_PREFIX_LEN6,
};

mod e2e_support;
use e2e_support::{ping, root_test, ControlSocket, E2e};

/// The lab's gw.toml with the IPv6 tunnel address beside the IPv4 one and the client's IPv6
/// address in its AllowedIPs.
fn dual_stack_gw_toml(t: &E2e, control: &ControlSocket) -> String {
    let v4 = format!("\"{GATEWAY_TUNNEL_ADDR}/{TUNNEL_PREFIX_LEN}\"");
    let v6 = format!("\"{GATEWAY_TUNNEL_ADDR6}/{TUNNEL_PREFIX_LEN6}\"");
    let peer4 = format!("\"{CLIENT_TUNNEL_ADDR}/32\"");
    let peer6 = format!("\"{CLIENT_TUNNEL_ADDR6}/128\"");
    let ipv4_only = t.gateway_toml(&GwTomlOptions::default());
    let text = ipv4_only
        .replace(
            &format!("address = [{v4}]"),
            &format!("address = [{v4}, {v6}]"),
        )
        .replace(
            &format!("allowed_ips = [{peer4}]"),
            &format!("allowed_ips = [{peer4}, {peer6}]"),
        );
    assert!(
        text.contains(&v6) && text.contains(&peer6),
        "the lab's gw.toml changed shape:\n{ipv4_only}"
    );
    text + &control.toml()
}

/// `ip -6 -o address show dev wg0` in the gateway, once no address is tentative.
fn wg0_ipv6_addresses(t: &E2e) -> String {
    let since = Instant::now();
    loop {
        let out = t
            .exec_in(
                Node::Gateway,
                &["ip", "-6", "-o", "address", "show", "dev", "wg0"],
            )
            .unwrap();
        if !out.contains("tentative") || since.elapsed() > Duration::from_secs(5) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn wg0_carries_its_ipv6_address_and_route() {
    root_test("wg0_carries_its_ipv6_address_and_route", |name| {
        let mut t = E2e::build(name, Topology::OneArmed, false, "");
        // Restart the gateway on the dual-stack file.
        t.signal_gateway("TERM").unwrap();
        t.wait_gateway_exit(Duration::from_secs(10));
        t.take_gateway();
        let gw_toml = t.dir().join("gw.toml");
        let control = ControlSocket::new(name);
        std::fs::write(&gw_toml, dual_stack_gw_toml(&t, &control)).unwrap();
        let uapi = t.dir().join("run-wireguard");
        t.start_dataplane_with_uapi_dir(e2e_support::dataplane(""), &uapi)
            .expect("the gateway starts with a dual-stack [interface] address");

        let addrs = wg0_ipv6_addresses(&t);
        let want = format!("inet6 {GATEWAY_TUNNEL_ADDR6}/{TUNNEL_PREFIX_LEN6} scope global");
        assert!(addrs.contains(&want), "wg0 lacks {want}:\n{addrs}");
        assert!(!addrs.contains("tentative"), "{addrs}");
        assert!(
            !addrs.contains("fe80:"),
            "wg0 has a link-local address:\n{addrs}"
        );
        let v4 = t
            .exec_in(
                Node::Gateway,
                &["ip", "-4", "-o", "address", "show", "dev", "wg0"],
            )
            .unwrap();
        let want4 = format!("inet {GATEWAY_TUNNEL_ADDR}/{TUNNEL_PREFIX_LEN}");
        assert!(v4.contains(&want4), "wg0 lacks {want4}:\n{v4}");
        let prefix6 = format!(
            "{}/{TUNNEL_PREFIX_LEN6}",
            ipnet::Ipv6Net::new(GATEWAY_TUNNEL_ADDR6, TUNNEL_PREFIX_LEN6)
                .unwrap()
                .network()
        );
        let routes = t
            .exec_in(Node::Gateway, &["ip", "-6", "route", "show", "dev", "wg0"])
            .unwrap();
        assert!(
            routes
                .lines()
                .any(|l| l.starts_with(&format!("{prefix6} "))),
            "no route {prefix6} dev wg0:\n{routes}"
        );

        // The client: its IPv6 tunnel address, ::/0 into the tunnel, a fresh session with the
        // restarted gateway.
        let client_conf = t.dir().join("client-wg.conf");
        let conf = std::fs::read_to_string(&client_conf)
            .unwrap()
            .replace("AllowedIPs = 0.0.0.0/0", "AllowedIPs = 0.0.0.0/0, ::/0");
        let dual_conf = t.dir().join("client-wg-dual-stack.conf");
        std::fs::write(&dual_conf, conf).unwrap();
        t.wg(
            Node::Client,
            &["setconf", "wg0", &dual_conf.to_string_lossy()],
        )
        .unwrap();
        // The lab turns IPv6 off in its namespaces; the client's wg0 needs it.
        t.exec_in(
            Node::Client,
            &["sysctl", "-qw", "net.ipv6.conf.wg0.disable_ipv6=0"],
        )
        .unwrap();
        let client6 = format!("{CLIENT_TUNNEL_ADDR6}/{TUNNEL_PREFIX_LEN6}");
        t.exec_in(
            Node::Client,
            &["ip", "-6", "address", "add", &client6, "dev", "wg0"],
        )
        .unwrap();
        t.wait_for_handshake(Duration::from_secs(10))
            .expect("the client handshakes with the restarted gateway");

        // The session is new: let IPv4 settle it (the first packet after a restart can meet
        // the old session) before IPv6 is held to every echo answered.
        ping(&t, Node::Client, None, GATEWAY_TUNNEL_ADDR, 2);
        let before = stats(&control);
        // What `tcpdump -i wg0` would show, from inside the gateway: the decrypted echoes.
        let pcap = t.dir().join("decrypted-ipv6.pcap");
        let capture = std::process::Command::new(env!("CARGO_BIN_EXE_dataplane"))
            .args([
                "capture",
                "--point",
                "decrypted",
                "--count",
                "3",
                "--duration",
                "10",
            ])
            .args(["--socket", control.0.to_str().unwrap()])
            .args(["-w", pcap.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("dataplane capture starts");
        wait_until_capturing(&control);
        let dst = GATEWAY_TUNNEL_ADDR6.to_string();
        let (ok, out) = t
            .try_exec_in(
                Node::Client,
                &["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", &dst],
            )
            .unwrap();
        assert!(
            ok && out.contains("3 received"),
            "ping -6 {dst} through the tunnel:\n{out}"
        );

        let out = capture.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("done: 3 packets at decrypted"), "{log}");
        let rows = tshark_rows(&pcap, &["ipv6.src", "ipv6.dst", "icmpv6.type"]);
        let request = vec![
            CLIENT_TUNNEL_ADDR6.to_string(),
            GATEWAY_TUNNEL_ADDR6.to_string(),
            "128".to_string(),
        ];
        assert_eq!(rows, vec![request; 3], "the decrypted capture");

        // The counters see IPv6 as they see IPv4: decrypted, handed to the kernel, and the
        // replies the kernel routed into wg0 sealed back to the peer.
        let after = stats(&control);
        let grew = |key: &str| after[key] - before[key];
        assert!(grew("decrypted") >= 3, "{after:?}");
        assert!(grew("to_slowpath") >= 3, "{after:?}");
        assert!(
            grew("host_packets_in") >= 3 && grew("host_packets_out") >= 3,
            "{after:?}"
        );
        // The per-peer metrics (prometheus_wireguard_exporter's) carry both families.
        let snap = ops::client::request_stats(&control.0).unwrap();
        let metrics = ops::metrics::render(&snap);
        let label = format!("allowed_ips=\"{CLIENT_TUNNEL_ADDR}/32,{CLIENT_TUNNEL_ADDR6}/128\"");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("wireguard_received_bytes_total{") && l.contains(&label)),
            "{metrics}"
        );
    });
}

/// The gateway's counters: the workers' summed, and the slow path's, by name.
fn stats(control: &ControlSocket) -> BTreeMap<String, u64> {
    let snap = ops::client::request_stats(&control.0).expect("stats over the control socket");
    let mut sum = snap.slow_path.clone();
    for w in &snap.workers {
        for (k, v) in &w.counters {
            *sum.entry(k.clone()).or_default() += v;
        }
    }
    sum
}

/// Waits until every worker reports the running capture.
fn wait_until_capturing(control: &ControlSocket) {
    let since = Instant::now();
    loop {
        let snap = ops::client::request_stats(&control.0).expect("stats over the control socket");
        if !snap.workers.is_empty() && snap.workers.iter().all(|w| w.capture.is_some()) {
            return;
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "the capture never attached"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tshark -r file -T fields -e ...`: one row of fields per packet.
fn tshark_rows(file: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.args([
        "-r",
        file.to_str().unwrap(),
        "-n",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}
