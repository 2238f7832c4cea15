//! The `dataplane` binary's check / import / run commands, asserted on process output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dataplane(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dataplane"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run dataplane")
}

fn configs(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs")
        .join(name)
        .display()
        .to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_accepts_the_examples() {
    for name in ["gw.toml", "gw-two-armed.toml", "wg0.conf"] {
        let out = dataplane(&["check", "--offline", "--config", &configs(name)]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(": OK: "),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn check_reports_errors_with_line_and_field_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("gw.toml");
    let good = std::fs::read_to_string(configs("gw.toml")).unwrap();
    let line_of = |needle: &str| good.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let (port_line, ips_line) = (line_of("listen_port = "), line_of("allowed_ips = "));
    let bad = good
        .replace(
            "allowed_ips = [\"10.13.13.2/32\"]",
            "allowed_ips = [\"10.0.0.300/32\"]",
        )
        .replace("listen_port = 51820", "listen_port = 0");
    std::fs::write(&path, bad).unwrap();
    let out = dataplane(&[
        "check",
        "--offline",
        "--config",
        &path.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let p = path.display();
    assert!(
        err.contains(&format!(
            "{p}:{port_line}: interface.listen_port: 0 is out of range"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{p}:{ips_line}: peer[0].allowed_ips[0]: \"10.0.0.300/32\" is not an IP prefix; expected e.g. 10.13.13.2/32"
        )),
        "{err}"
    );
    assert!(err.contains("2 errors"), "{err}");
}

#[test]
fn check_against_this_host_finds_a_missing_interface() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let cfg = std::fs::read_to_string(configs("gw.toml"))
        .unwrap()
        .replace("interfaces = [\"eth0\"]", "interfaces = [\"nosuchnic9\"]");
    std::fs::write(&path, cfg).unwrap();
    let out = dataplane(&["check", "--config", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("dataplane.interfaces: interface \"nosuchnic9\" does not exist"),
        "{err}"
    );
}

#[test]
fn check_of_a_missing_file() {
    let out = dataplane(&["check", "--config", "/nonexistent/gw.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/gw.toml: cannot read the file"));
}

#[test]
fn import_prints_an_equivalent_gw_toml() {
    let out = dataplane(&["import", &configs("wg0.conf")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    assert!(toml.contains("masquerade = true"), "{toml}");
    assert!(toml.contains("interfaces = [\"eth0\"]"), "{toml}");
    assert!(toml.contains("allowed_ips = [\"10.13.13.2/32\"]"), "{toml}");
    assert!(text(&out.stderr).contains("note: PostUp/PostDown forwarding and MASQUERADE"));
    // The printed file passes check.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, toml).unwrap();
    let out = dataplane(&[
        "check",
        "--offline",
        "--config",
        &path.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn import_into_a_file_makes_it_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    // As the shell's `> gw.toml` with umask 022 creates it.
    let file = std::fs::File::create(&path).unwrap();
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dataplane"))
        .args(["import", &configs("wg0.conf")])
        .stdout(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the private key went into a 0644 file");
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("private_key"));
}

#[test]
fn import_with_two_interfaces_is_two_armed() {
    let out = dataplane(&[
        "import",
        &configs("wg0.conf"),
        "--interface",
        "wan0",
        "--interface",
        "lan0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("interfaces = [\"wan0\", \"lan0\"]"));
}

#[test]
fn import_refuses_unknown_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wg0.conf");
    let conf = std::fs::read_to_string(configs("wg0.conf"))
        .unwrap()
        .replace(
            "PostUp = iptables",
            "PostUp = curl http://example.org; iptables",
        );
    std::fs::write(&path, conf).unwrap();
    let out = dataplane(&["import", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(":5: Interface.PostUp: `curl http://example.org` runs curl"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn run_refuses_an_invalid_config_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let cfg = std::fs::read_to_string(configs("gw.toml"))
        .unwrap()
        .replace("mode = \"auto\"", "mode = \"turbo\"");
    std::fs::write(&path, cfg).unwrap();
    let p = path.display().to_string();
    let out = dataplane(&["--config", &p, "--log-format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("dataplane.mode: \"turbo\" is not a mode"),
        "{err}"
    );
    assert!(err.contains(&format!("{p}: not started")), "{err}");
}

#[test]
fn help_has_examples() {
    for args in [
        vec!["--help"],
        vec!["check", "--help"],
        vec!["import", "--help"],
    ] {
        let out = dataplane(&args);
        assert!(out.status.success());
        assert!(
            text(&out.stdout).contains("Example"),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
}

/// `Key = Value` of a wg-quick file's `section` (the first such key).
fn wg_quick_value(conf: &str, section: &str, key: &str) -> String {
    let mut current = "";
    for line in conf.lines().map(str::trim) {
        if line.starts_with('[') {
            current = line;
        } else if let Some((k, v)) = line.split_once('=') {
            if current == section && k.trim() == key {
                return v.trim().to_string();
            }
        }
    }
    panic!("no {key} in {section} of:\n{conf}")
}

#[test]
fn init_refuses_an_ipv6_only_subnet_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let gw = dir.path().join("gw.toml").display().to_string();
    let out = dataplane(&["init", "--config", &gw, "--subnet", "fd13::/64"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no IPv4 subnet")
            && err.contains("ICMP errors")
            && err.contains("10.13.13.0/24,fd13::/64"),
        "{err}"
    );
    let out = dataplane(&[
        "init",
        "--config",
        &gw,
        "--subnet",
        "10.13.13.0/24,10.14.0.0/24",
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("at most one IPv4 and one IPv6"));
    assert!(!dir.path().join("gw.toml").exists());
}

#[test]
fn dual_stack_init_peer_add_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let gw = dir.path().join("gw.toml").display().to_string();
    let clients = dir.path().join("clients").display().to_string();
    let no_gateway = dir.path().join("no-wg0.sock").display().to_string();
    let out = dataplane(&[
        "init",
        "--config",
        &gw,
        "--subnet",
        "10.13.13.0/24,fd13::/64",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let toml = std::fs::read_to_string(&gw).unwrap();
    assert!(
        toml.contains("address = [\"10.13.13.1/24\", \"fd13::1/64\"]"),
        "{toml}"
    );
    assert!(toml.contains("masquerade_ipv6 = false"), "{toml}");
    let peer = |verb: &str, name: &str, extra: &[&str]| {
        let mut args = vec![
            "peer",
            verb,
            name,
            "--config",
            &gw,
            "--out-dir",
            &clients,
            "--uapi-socket",
            &no_gateway,
        ];
        args.extend_from_slice(extra);
        let out = dataplane(&args);
        assert!(
            out.status.success(),
            "peer {verb} {name}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let out = peer("add", "phone", &["--server-url", "[2001:db8::3]:51820"]);
    assert!(
        out.contains("peer phone added: address 10.13.13.2/32, fd13::2/128,"),
        "{out}"
    );
    // The QR code is printed as before, in half blocks.
    assert!(
        out.contains('\u{2580}') || out.contains('\u{2584}'),
        "{out}"
    );
    peer(
        "add",
        "laptop",
        &["--server-url", "vpn.example.org", "--no-qr"],
    );

    let conf = std::fs::read_to_string(dir.path().join("clients/phone.conf")).unwrap();
    assert_eq!(
        wg_quick_value(&conf, "[Interface]", "Address"),
        "10.13.13.2/32, fd13::2/128"
    );
    assert_eq!(
        wg_quick_value(&conf, "[Peer]", "AllowedIPs"),
        "0.0.0.0/0, ::/0"
    );
    assert_eq!(
        wg_quick_value(&conf, "[Peer]", "Endpoint"),
        "[2001:db8::3]:51820"
    );
    let png = std::fs::read(dir.path().join("clients/phone.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "phone.png is a PNG");
    let toml = std::fs::read_to_string(&gw).unwrap();
    assert!(
        toml.contains("allowed_ips = [\"10.13.13.3/32\", \"fd13::3/128\"]"),
        "laptop gets the next address of each family:\n{toml}"
    );

    let list = text(
        &dataplane(&[
            "peer",
            "list",
            "--config",
            &gw,
            "--uapi-socket",
            &no_gateway,
        ])
        .stdout,
    );
    assert!(
        list.contains("peer phone\n") && list.contains("allowed ips: 10.13.13.2/32, fd13::2/128\n"),
        "{list}"
    );
    peer("remove", "phone", &[]);
    assert!(!dir.path().join("clients/phone.conf").exists());
    let toml = std::fs::read_to_string(&gw).unwrap();
    assert!(!toml.contains("fd13::2/128"), "{toml}");
    // The freed addresses are handed out again, both families.
    let out = peer(
        "add",
        "tablet",
        &["--server-url", "vpn.example.org", "--no-qr"],
    );
    assert!(out.contains("address 10.13.13.2/32, fd13::2/128,"), "{out}");
    let check = dataplane(&["check", "--offline", "--config", &gw]);
    assert!(check.status.success(), "{}", text(&check.stderr));
}

#[test]
fn an_ipv4_only_gateway_still_writes_ipv4_only_clients() {
    let dir = tempfile::tempdir().unwrap();
    let gw = dir.path().join("gw.toml").display().to_string();
    let clients = dir.path().join("clients").display().to_string();
    assert!(dataplane(&["init", "--config", &gw]).status.success());
    let out = dataplane(&[
        "peer",
        "add",
        "p",
        "--config",
        &gw,
        "--out-dir",
        &clients,
        "--uapi-socket",
        &dir.path().join("none.sock").display().to_string(),
        "--server-url",
        "x",
        "--no-qr",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let conf = std::fs::read_to_string(dir.path().join("clients/p.conf")).unwrap();
    assert_eq!(
        wg_quick_value(&conf, "[Interface]", "Address"),
        "10.13.13.2/32"
    );
    assert_eq!(wg_quick_value(&conf, "[Peer]", "AllowedIPs"), "0.0.0.0/0");
}

#[test]
fn import_keeps_ipv6_and_recognises_ip6tables_masquerade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wg0.conf");
    // The article's file made dual-stack the way wg-quick users do it.
    let conf = std::fs::read_to_string(configs("wg0.conf"))
        .unwrap()
        .replace("Address = 10.13.13.1\n", "Address = 10.13.13.1, fd13::1/64\n")
        .replace("AllowedIPs = 10.13.13.2/32\n", "AllowedIPs = 10.13.13.2/32, fd13::2/128\n")
        .replace(
            "-A POSTROUTING -o eth+ -j MASQUERADE\n",
            "-A POSTROUTING -o eth+ -j MASQUERADE; ip6tables -A FORWARD -i %i -j ACCEPT; ip6tables -t nat -A POSTROUTING -o eth+ -j MASQUERADE\n",
        )
        .replace(
            "-D POSTROUTING -o eth+ -j MASQUERADE\n",
            "-D POSTROUTING -o eth+ -j MASQUERADE; ip6tables -D FORWARD -i %i -j ACCEPT; ip6tables -t nat -D POSTROUTING -o eth+ -j MASQUERADE\n",
        );
    assert!(conf.contains("ip6tables -t nat -D"), "{conf}");
    std::fs::write(&path, &conf).unwrap();
    let out = dataplane(&["import", &path.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    assert!(
        toml.contains("address = [\"10.13.13.1/24\", \"fd13::1/64\"]"),
        "{toml}"
    );
    assert!(
        toml.contains("allowed_ips = [\"10.13.13.2/32\", \"fd13::2/128\"]"),
        "{toml}"
    );
    assert!(toml.contains("masquerade_ipv6 = true"), "{toml}");
    assert!(
        text(&out.stderr).contains("masquerade_ipv6 = true"),
        "{}",
        text(&out.stderr)
    );
    let gw = dir.path().join("gw.toml");
    std::fs::write(&gw, toml).unwrap();
    let check = dataplane(&["check", "--offline", "--config", &gw.display().to_string()]);
    assert!(check.status.success(), "{}", text(&check.stderr));

    // Any other ip6tables line is refused like its iptables twin, with the line.
    std::fs::write(
        &path,
        conf.replace(
            "ip6tables -A FORWARD -i %i -j ACCEPT;",
            "ip6tables -A INPUT -p udp --dport 53 -j DROP;",
        ),
    )
    .unwrap();
    let out = dataplane(&["import", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            ":5: Interface.PostUp: `ip6tables -A INPUT -p udp --dport 53 -j DROP` uses -p"
        ),
        "{err}"
    );
}
