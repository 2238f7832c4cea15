//! `dataplane init` and `dataplane peer add | remove | list` on temporary files, through the
//! real binary: the operator's comments survive, addresses are allocated in order and reused,
//! the client's wg-quick file carries matching keys, the PNG decodes back to that file, and a
//! running gateway (a UAPI server backed by the reference in-memory device) gets the peer
//! without a restart.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use gwconf::{self, HostFacts, LoadOptions};
use slowpath::uapi::{DeviceSnapshot, Errno, SetRequest, UapiBackend, UapiServer};
use wgproto::keys::{PresharedKey, PrivateKey, PublicKey};

const BIN: &str = env!("CARGO_BIN_EXE_dataplane");

fn dataplane(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the dataplane binary runs");
    eprintln!(
        "$ dataplane {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(args: &[&str]) -> String {
    let out = dataplane(args);
    assert!(out.status.success(), "dataplane {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn load(path: &Path) -> gwconf::GatewayConfig {
    let opts = LoadOptions {
        host: HostFacts::unknown(),
        interfaces: None,
    };
    gwconf::load(path, &opts)
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()))
        .config
}

/// `Key = Value` lines of a wg-quick file, by section.
fn wg_quick_fields(text: &str) -> HashMap<(String, String), String> {
    let mut section = String::new();
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            let prev = out.insert(
                (section.clone(), k.trim().to_string()),
                v.trim().to_string(),
            );
            assert!(prev.is_none(), "duplicate key {k} in {section}");
        }
    }
    out
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("ops-peers-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Decodes the QR code in a PNG written by `peer add` (independent decoder: rqrr).
fn decode_qr_png(path: &Path) -> String {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the PNG");
    let (_, content) = grids[0].decode().expect("the QR code decodes");
    content
}

#[test]
fn init_writes_a_loadable_private_file_and_refuses_to_overwrite() {
    let dir = Dir::new("init");
    let gw = dir.s("gw.toml");
    let out = ok(&[
        "init",
        "--config",
        &gw,
        "--interface",
        "wan0",
        "--subnet",
        "10.99.0.0/16",
        "--port",
        "4500",
    ]);
    let cfg = load(&dir.path("gw.toml"));
    assert!(
        out.contains(&cfg.interface.public_key().to_base64()),
        "{out}"
    );
    assert_eq!(cfg.interface.listen_port, 4500);
    assert_eq!(cfg.interface.address[0].to_string(), "10.99.0.1/16");
    assert_eq!(cfg.dataplane.interfaces.wan(), "wan0");
    assert!(cfg.nat.masquerade);
    assert!(cfg.peers.is_empty());
    let mode = std::fs::metadata(dir.path("gw.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the file holds the private key");
    let text = std::fs::read_to_string(dir.path("gw.toml")).unwrap();
    assert!(text.contains("# "), "the template is commented");

    // A second init must not destroy the key.
    let again = dataplane(&["init", "--config", &gw]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(dir.path("gw.toml")).unwrap(), text);
    ok(&["init", "--config", &gw, "--force"]);
    assert_ne!(
        load(&dir.path("gw.toml")).interface.private_key,
        cfg.interface.private_key,
        "--force writes a new key"
    );
    // Bad input is refused with what is allowed.
    let bad = dataplane(&[
        "init",
        "--config",
        &dir.s("x.toml"),
        "--subnet",
        "10.0.0.0/31",
    ]);
    assert!(!bad.status.success());
    assert!(!dir.path("x.toml").exists());
}

#[test]
fn peer_add_remove_list_keep_comments_and_allocate_addresses() {
    let dir = Dir::new("peers");
    let gw = dir.s("gw.toml");
    let out_dir = dir.s("clients");
    let no_gateway = dir.s("no-such-wg0.sock");
    ok(&["init", "--config", &gw, "--interface", "eth0"]);
    // The operator's own comments, in several places.
    let mut text = std::fs::read_to_string(&gw).unwrap();
    text = text.replace("[nat]\n", "[nat] # operator: NAT for the LAN\n");
    text.push_str("# operator's footer note\n");
    std::fs::write(&gw, &text).unwrap();

    let add = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "peer",
            "add",
            name,
            "--config",
            &gw,
            "--out-dir",
            &out_dir,
            "--uapi-socket",
            &no_gateway,
            "--server-url",
            "vpn.example.org",
        ];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let out1 = add("peer1", &["--dns", "10.13.13.1"]);
    assert!(
        out1.contains('\u{2580}') || out1.contains('\u{2584}'),
        "QR in the terminal"
    );
    assert!(out1.contains("no gateway is running"), "{out1}");
    add(
        "peer2",
        &["--allowed-ips", "10.13.13.0/24,172.23.0.0/16", "--no-qr"],
    );
    add("peer3", &["--no-qr"]);

    let after = std::fs::read_to_string(&gw).unwrap();
    for line in text
        .lines()
        .filter(|l| l.starts_with('#') || l.contains("# operator"))
    {
        assert!(after.contains(line), "comment {line:?} lost:\n{after}");
    }
    let cfg = load(dir.path("gw.toml").as_path());
    let by_name: HashMap<&str, &gwconf::PeerConfig> = cfg
        .peers
        .iter()
        .map(|p| (p.name.as_deref().unwrap(), p))
        .collect();
    let addr = |n: &str| by_name[n].allowed_ips[0].to_string();
    assert_eq!(addr("peer1"), "10.13.13.2/32");
    assert_eq!(addr("peer2"), "10.13.13.3/32");
    assert_eq!(addr("peer3"), "10.13.13.4/32");

    // The client file matches the gateway's entry.
    let conf = std::fs::read_to_string(dir.path("clients/peer1.conf")).unwrap();
    let f = wg_quick_fields(&conf);
    let get = |s: &str, k: &str| f[&(s.to_string(), k.to_string())].clone();
    let client_private = PrivateKey::from_base64(&get("[Interface]", "PrivateKey")).unwrap();
    assert_eq!(
        client_private.public_key().as_bytes(),
        by_name["peer1"].public_key.bytes()
    );
    assert_eq!(get("[Interface]", "Address"), "10.13.13.2/32");
    assert_eq!(get("[Interface]", "DNS"), "10.13.13.1");
    assert_eq!(
        get("[Peer]", "PublicKey"),
        cfg.interface.public_key().to_base64()
    );
    let psk = PresharedKey::from_base64(&get("[Peer]", "PresharedKey")).unwrap();
    assert_eq!(
        psk.as_bytes(),
        by_name["peer1"].preshared_key.as_ref().unwrap().bytes()
    );
    assert_eq!(get("[Peer]", "Endpoint"), "vpn.example.org:51820");
    assert_eq!(get("[Peer]", "AllowedIPs"), "0.0.0.0/0");
    let conf2 = std::fs::read_to_string(dir.path("clients/peer2.conf")).unwrap();
    assert!(
        conf2.contains("AllowedIPs = 10.13.13.0/24, 172.23.0.0/16\n"),
        "{conf2}"
    );
    assert!(!conf2.contains("DNS"), "{conf2}");
    let mode = std::fs::metadata(dir.path("clients/peer1.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The PNG is a valid PNG whose QR code is exactly the client file.
    assert_eq!(decode_qr_png(&dir.path("clients/peer1.png")), conf);

    // A duplicate name is refused and leaves the file alone.
    let dup = dataplane(&[
        "peer",
        "add",
        "peer1",
        "--config",
        &gw,
        "--out-dir",
        &out_dir,
        "--uapi-socket",
        &no_gateway,
        "--server-url",
        "x",
    ]);
    assert!(!dup.status.success());
    assert_eq!(std::fs::read_to_string(&gw).unwrap(), after);

    // Remove frees the address; the next peer gets it back.
    let rm = ok(&[
        "peer",
        "remove",
        "peer2",
        "--config",
        &gw,
        "--uapi-socket",
        &no_gateway,
    ]);
    assert!(rm.contains("removed"), "{rm}");
    let cfg = load(dir.path("gw.toml").as_path());
    assert_eq!(cfg.peers.len(), 2);
    assert!(cfg.peers.iter().all(|p| p.name.as_deref() != Some("peer2")));
    add("peer4", &["--no-qr"]);
    let cfg = load(dir.path("gw.toml").as_path());
    let p4 = cfg
        .peers
        .iter()
        .find(|p| p.name.as_deref() == Some("peer4"))
        .unwrap();
    assert_eq!(p4.allowed_ips[0].to_string(), "10.13.13.3/32");
    let final_text = std::fs::read_to_string(&gw).unwrap();
    assert!(final_text.contains("[nat] # operator: NAT for the LAN"));
    assert!(final_text.contains("# operator's footer note"));

    let list = ok(&[
        "peer",
        "list",
        "--config",
        &gw,
        "--uapi-socket",
        &no_gateway,
    ]);
    for n in ["peer1", "peer3", "peer4"] {
        assert!(list.contains(&format!("peer {n}\n")), "{list}");
    }
    assert!(!list.contains("peer2"), "{list}");
    assert!(list.contains("10.13.13.4/32"), "{list}");
    assert!(list.contains("no live data"), "{list}");

    let missing = dataplane(&[
        "peer",
        "remove",
        "nobody",
        "--config",
        &gw,
        "--uapi-socket",
        &no_gateway,
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("peer1"));
}

/// A gateway stand-in: the UAPI server with the reference device model as its backend.
struct FakeGateway {
    device: Mutex<DeviceSnapshot>,
}

impl UapiBackend for FakeGateway {
    fn get(&self) -> DeviceSnapshot {
        self.device.lock().unwrap().clone()
    }
    fn set(&self, request: SetRequest) -> Result<(), Errno> {
        self.device.lock().unwrap().apply(&request);
        Ok(())
    }
}

#[test]
fn peer_add_and_remove_reach_a_running_gateway_through_the_uapi() {
    let dir = Dir::new("live");
    let gw = dir.s("gw.toml");
    let out_dir = dir.s("clients");
    // Dual-stack: both addresses of the peer reach the gateway through the UAPI.
    ok(&[
        "init",
        "--config",
        &gw,
        "--subnet",
        "10.13.13.0/24,fd13::/64",
    ]);
    // The gateway runs from this file: it holds the file's private key.
    let own = PrivateKey::from_bytes(*load(&dir.path("gw.toml")).interface.private_key.bytes());
    let backend = Arc::new(FakeGateway {
        device: Mutex::new(DeviceSnapshot {
            private_key: Some(own),
            listen_port: 51820,
            ..Default::default()
        }),
    });
    let sock = dir.path("wg0.sock");
    let server = UapiServer::start_at(&sock, backend.clone()).unwrap();
    let sock_s = sock.to_str().unwrap();

    let out = ok(&[
        "peer",
        "add",
        "laptop",
        "--config",
        &gw,
        "--out-dir",
        &out_dir,
        "--uapi-socket",
        sock_s,
        "--server-url",
        "203.0.113.7",
        "--no-qr",
    ]);
    assert!(out.contains("applied to the running gateway"), "{out}");
    let cfg = load(dir.path("gw.toml").as_path());
    let entry = &cfg.peers[0];
    {
        let dev = backend.device.lock().unwrap();
        assert_eq!(dev.peers.len(), 1);
        let live = &dev.peers[0];
        assert_eq!(live.public_key.as_bytes(), entry.public_key.bytes());
        assert_eq!(
            entry.allowed_ips,
            [
                "10.13.13.2/32".parse().unwrap(),
                "fd13::2/128".parse().unwrap()
            ]
        );
        assert_eq!(live.allowed_ips, entry.allowed_ips);
        assert_eq!(
            live.preshared_key.as_ref().unwrap().as_bytes(),
            entry.preshared_key.as_ref().unwrap().bytes()
        );
    }
    // Live data shows in the list (transfer counters come from the gateway).
    backend.device.lock().unwrap().peers[0].rx_bytes = 3 << 20;
    let list = ok(&["peer", "list", "--config", &gw, "--uapi-socket", sock_s]);
    assert!(list.contains("peer laptop"), "{list}");
    assert!(
        list.contains("transfer: 3.00 MiB received, 0 B sent"),
        "{list}"
    );
    assert!(list.contains("latest handshake: never"), "{list}");

    // A peer set by `wg set` only, not in the file, is listed too.
    backend
        .device
        .lock()
        .unwrap()
        .peers
        .push(slowpath::uapi::PeerSnapshot::new(PublicKey::from_bytes(
            [9; 32],
        )));
    let list = ok(&["peer", "list", "--config", &gw, "--uapi-socket", sock_s]);
    assert!(list.contains("peer (unnamed)"), "{list}");

    let out = ok(&[
        "peer",
        "remove",
        "laptop",
        "--config",
        &gw,
        "--uapi-socket",
        sock_s,
    ]);
    assert!(out.contains("applied to the running gateway"), "{out}");
    let dev = backend.device.lock().unwrap();
    assert_eq!(dev.peers.len(), 1, "only the wg-set peer is left");
    assert_eq!(dev.peers[0].public_key.as_bytes(), &[9; 32]);
    drop(dev);
    drop(server);
}

#[test]
fn a_gateway_running_another_config_is_not_changed() {
    let dir = Dir::new("other");
    let gw = dir.s("gw.toml");
    ok(&["init", "--config", &gw]);
    // The gateway on the socket was started from some other file: another key.
    let stranger = PrivateKey::from_bytes([0x42; 32]);
    let backend = Arc::new(FakeGateway {
        device: Mutex::new(DeviceSnapshot {
            private_key: Some(stranger.clone()),
            listen_port: 51820,
            ..Default::default()
        }),
    });
    let sock = dir.path("wg0.sock");
    let server = UapiServer::start_at(&sock, backend.clone()).unwrap();
    let sock_s = sock.to_str().unwrap();
    let out = ok(&[
        "peer",
        "add",
        "laptop",
        "--config",
        &gw,
        "--out-dir",
        &dir.s("clients"),
        "--uapi-socket",
        sock_s,
        "--server-url",
        "203.0.113.7",
        "--no-qr",
    ]);
    assert!(
        out.contains("running gateway was NOT changed: it runs another config"),
        "{out}"
    );
    assert!(out.contains(&stranger.public_key().to_base64()), "{out}");
    assert_eq!(
        load(&dir.path("gw.toml")).peers.len(),
        1,
        "the file is edited"
    );
    assert!(backend.device.lock().unwrap().peers.is_empty());

    // Nor is its live data mixed into this file's list.
    backend
        .device
        .lock()
        .unwrap()
        .peers
        .push(slowpath::uapi::PeerSnapshot::new(PublicKey::from_bytes(
            [5; 32],
        )));
    let list = ok(&["peer", "list", "--config", &gw, "--uapi-socket", sock_s]);
    assert!(list.contains("runs another config"), "{list}");
    assert!(!list.contains("(unnamed)"), "{list}");
    backend.device.lock().unwrap().peers.clear();

    // The stranger's own peer is not removed either.
    let theirs = PublicKey::from_bytes([9; 32]);
    backend
        .device
        .lock()
        .unwrap()
        .peers
        .push(slowpath::uapi::PeerSnapshot::new(theirs));
    let out = ok(&[
        "peer",
        "remove",
        "laptop",
        "--config",
        &gw,
        "--uapi-socket",
        sock_s,
    ]);
    assert!(out.contains("NOT changed"), "{out}");
    assert_eq!(backend.device.lock().unwrap().peers.len(), 1);
    drop(server);
}

#[test]
fn a_symlinked_config_stays_a_link_and_client_files_live_beside_it() {
    let dir = Dir::new("symlink");
    std::fs::create_dir_all(dir.path("etc")).unwrap();
    std::fs::create_dir_all(dir.path("conf")).unwrap();
    std::fs::create_dir_all(dir.path("elsewhere")).unwrap();
    let target = dir.path("etc/gw.toml");
    ok(&["init", "--config", target.to_str().unwrap()]);
    let link = dir.path("conf/link.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let link_s = link.to_str().unwrap();
    let no_gateway = dir.s("no-such-wg0.sock");
    // Run from an unrelated directory: nothing may land there.
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir.path("elsewhere"))
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "peer",
        "add",
        "phone",
        "-c",
        link_s,
        "--uapi-socket",
        &no_gateway,
        "--server-url",
        "x.example",
        "--no-qr",
    ]);
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the link was replaced");
    assert_eq!(load(&target).peers.len(), 1, "the edit went to the target");
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(dir.path("conf/peers/phone.conf").exists());
    assert!(dir.path("conf/peers/phone.png").exists());
    assert_eq!(
        std::fs::read_dir(dir.path("elsewhere")).unwrap().count(),
        0,
        "nothing written to the working directory"
    );

    let out = run(&[
        "peer",
        "remove",
        "phone",
        "-c",
        link_s,
        "--uapi-socket",
        &no_gateway,
    ]);
    assert!(out.contains("deleted"), "{out}");
    assert!(
        !dir.path("conf/peers/phone.conf").exists(),
        "private key left"
    );
    assert!(
        !dir.path("conf/peers/phone.png").exists(),
        "private key left"
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(load(&target).peers.is_empty());
}

#[test]
fn peer_add_count_and_several_names_then_show() {
    let dir = Dir::new("count");
    let gw = dir.s("gw.toml");
    let no_gateway = dir.s("no-such-wg0.sock");
    ok(&["init", "--config", &gw]);
    let common = [
        "--config",
        &gw,
        "--uapi-socket",
        &no_gateway,
        "--server-url",
        "x.example",
        "--no-qr",
    ];
    let mut args = vec!["peer", "add", "peer2"];
    args.extend_from_slice(&common);
    ok(&args);
    // PEERS=3: the first free numbers.
    let mut args = vec!["peer", "add", "--count", "3"];
    args.extend_from_slice(&common);
    ok(&args);
    let mut args = vec!["peer", "add", "alice", "bob"];
    args.extend_from_slice(&common);
    ok(&args);
    let names: Vec<String> = load(&dir.path("gw.toml"))
        .peers
        .iter()
        .map(|p| p.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["peer2", "peer1", "peer3", "peer4", "alice", "bob"]);
    for n in &names {
        assert!(dir.path(&format!("peers/{n}.conf")).exists(), "{n}");
    }
    // One bad name in the list: nothing added.
    let before = std::fs::read_to_string(&gw).unwrap();
    let mut args = vec!["peer", "add", "carol", "this-name-is-too-long"];
    args.extend_from_slice(&common);
    let out = dataplane(&args);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&gw).unwrap(), before);
    assert!(!dir.path("peers/carol.conf").exists());

    // show prints the same client file and a QR code.
    let shown = ok(&["peer", "show", "alice", "--config", &gw]);
    let conf = std::fs::read_to_string(dir.path("peers/alice.conf")).unwrap();
    assert!(shown.contains(&conf), "{shown}");
    assert!(
        shown.contains('\u{2580}') || shown.contains('\u{2584}'),
        "QR"
    );
    let missing = dataplane(&["peer", "show", "nobody", "--config", &gw]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("nobody.conf does not exist"), "{err}");
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = Dir::new("ansi");
    let gw = dir.s("gw.toml");
    ok(&["init", "--config", &gw]);
    // No NO_COLOR here: a pipe alone must turn colour off (journald, log files).
    let out = Command::new(BIN)
        .args([
            "peer",
            "add",
            "p1",
            "--config",
            &gw,
            "--server-url",
            "x.example",
            "--no-qr",
        ])
        .args(["--uapi-socket", &dir.s("none.sock")])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("peer added to the config"), "{err}");
    assert!(!err.contains('\x1b'), "ANSI escapes in a pipe: {err:?}");
}

#[test]
fn bad_prefixes_on_the_command_line_say_what_is_wrong() {
    let dir = Dir::new("prefix");
    let gw = dir.s("gw.toml");
    let v6 = dataplane(&["init", "--config", &gw, "--subnet", "fd00:13::/64"]);
    assert!(!v6.status.success());
    let err = String::from_utf8_lossy(&v6.stderr);
    assert!(
        err.contains("no IPv4 subnet") && err.contains("ICMP errors"),
        "{err}"
    );
    ok(&["init", "--config", &gw]);
    let long = dataplane(&[
        "peer",
        "add",
        "p",
        "--config",
        &gw,
        "--server-url",
        "x",
        "--allowed-ips",
        "10.0.0.0/33",
    ]);
    assert!(!long.status.success());
    let err = String::from_utf8_lossy(&long.stderr);
    assert!(err.contains("prefix length /33 is more than 32"), "{err}");
}

/// Runs the binary as uid/gid 65534 with no capabilities (needs root to drop to it).
fn as_nobody(args: &[&str]) -> Option<Output> {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root {
        eprintln!("SKIP: not root (cannot drop to an unprivileged user)");
        return None;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(args)
        .output()
        .expect("setpriv runs");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    Some(out)
}

#[test]
fn unprivileged_users_are_told_about_permissions() {
    let dir = Dir::new("unpriv");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    // stats against a running gateway's socket (root's, 0600): permission, not "not running".
    let sock = dir.path("control.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let Some(out) = as_nobody(&["stats", "--socket", sock.to_str().unwrap()]) else {
        return;
    };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied") && err.contains("run this command as root"),
        "{err}"
    );
    assert!(
        !err.contains("is `dataplane --config ...` running"),
        "{err}"
    );

    // Running the gateway unprivileged names the capabilities, and the OS error once.
    let gw = dir.s("gw.toml");
    ok(&["init", "--config", &gw, "--interface", "lo"]);
    std::fs::set_permissions(&gw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = as_nobody(&["--config", &gw]).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for cap in [
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_BPF",
        "CAP_IPC_LOCK",
        "root",
    ] {
        assert!(err.contains(cap), "{cap} not named: {err}");
    }
    for line in err.lines() {
        assert!(
            line.matches("(os error").count() <= 1,
            "the OS error is repeated: {line}"
        );
    }
}

#[test]
fn wg_quick_files_are_not_edited() {
    let dir = Dir::new("wgquick");
    let conf = dir.path("wg0.conf");
    std::fs::write(&conf, "[Interface]\nPrivateKey = x\n").unwrap();
    let out = dataplane(&[
        "peer",
        "add",
        "p",
        "--config",
        conf.to_str().unwrap(),
        "--server-url",
        "x",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dataplane import"));
}

#[test]
fn every_ops_command_has_help_with_an_example() {
    for cmd in [
        vec!["init"],
        vec!["peer", "add"],
        vec!["peer", "remove"],
        vec!["peer", "list"],
        vec!["peer", "show"],
        vec!["stats"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let text = ok(&args);
        assert!(
            text.contains("Example"),
            "{cmd:?} --help has no example:\n{text}"
        );
    }
}
