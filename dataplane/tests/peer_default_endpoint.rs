//! `peer add` without `--server-url` writes the WAN interface's address as the client's
//! endpoint: its primary IPv4 address, or on an IPv6-only WAN (DS-Lite, many home servers) its
//! routed IPv6 address in brackets. Before, an IPv6-only WAN was an error.
//!
//! Root (a network namespace with a veth `eth0`); skips with a message otherwise.
//! `sudo -E cargo test -p dataplane --test peer_default_endpoint -- --test-threads=1`.

use std::process::{Command, Output};

use lab::{GATEWAY_LAN_ADDR, GATEWAY_LAN_ADDR6, LAN_PREFIX_LEN, LAN_PREFIX_LEN6, LISTEN_PORT};

mod e2e_support;
use e2e_support::root_test;

/// A network namespace of this test, deleted on drop (also on failure).
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("dpcfg{}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        Netns(name)
    }

    fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(argv)
            .output()
            .expect("ip netns exec runs")
    }

    fn ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_default_endpoint_is_the_wan_address_ipv4_first_else_ipv6() {
    root_test("peer_default_endpoint", |_| {
        let ns = Netns::new();
        let dir = tempfile::tempdir().unwrap();
        let gw = dir.path().join("gw.toml").display().to_string();
        let clients = dir.path().join("clients").display().to_string();
        let none = dir.path().join("no-gateway.sock").display().to_string();
        let bin = env!("CARGO_BIN_EXE_dataplane");
        // A veth pair inside the namespace (this kernel has no dummy driver).
        ns.ok(&[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ]);
        ns.ok(&["ip", "link", "set", "eth0", "up"]);
        ns.ok(&["ip", "link", "set", "eth1", "up"]);
        let v6 = format!("{GATEWAY_LAN_ADDR6}/{LAN_PREFIX_LEN6}");
        ns.ok(&["ip", "-6", "address", "add", &v6, "dev", "eth0"]);
        ns.ok(&[bin, "init", "--config", &gw, "--interface", "eth0"]);
        let add = |name: &str| {
            ns.ok(&[
                bin,
                "peer",
                "add",
                name,
                "--config",
                &gw,
                "--out-dir",
                &clients,
                "--uapi-socket",
                &none,
                "--no-qr",
            ]);
            std::fs::read_to_string(dir.path().join(format!("clients/{name}.conf"))).unwrap()
        };
        // IPv6 only (its link-local address is not taken).
        let conf = add("p6");
        let want = format!("Endpoint = [{GATEWAY_LAN_ADDR6}]:{LISTEN_PORT}\n");
        assert!(conf.contains(&want), "{conf}");
        // With an IPv4 address too, IPv4 as before.
        let v4 = format!("{GATEWAY_LAN_ADDR}/{LAN_PREFIX_LEN}");
        ns.ok(&["ip", "address", "add", &v4, "dev", "eth0"]);
        let conf = add("p4");
        let want = format!("Endpoint = {GATEWAY_LAN_ADDR}:{LISTEN_PORT}\n");
        assert!(conf.contains(&want), "{conf}");
    });
}
