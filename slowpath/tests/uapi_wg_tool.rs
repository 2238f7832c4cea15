//! The stock `wg` tool (wireguard-tools) against our UAPI server with an in-memory backend:
//! `wg show`, `wg show dump`, `wg showconf` read what the backend reports, and `wg set` reaches
//! the backend as exactly the request it means.
//!
//! Needs root (the socket lives in /var/run/wireguard) and `wg` on PATH; skips otherwise.

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use slowpath::uapi::{
    DeviceSnapshot, Errno, PeerSnapshot, PeerUpdate, PresharedKey, PrivateKey, PublicKey,
    SetRequest, UapiBackend, UapiServer,
};

#[derive(Default)]
struct MemoryBackend {
    device: Mutex<DeviceSnapshot>,
    received: Mutex<Vec<SetRequest>>,
    refuse_with: Mutex<Option<Errno>>,
}

impl UapiBackend for MemoryBackend {
    fn get(&self) -> DeviceSnapshot {
        self.device.lock().unwrap().clone()
    }

    fn set(&self, request: SetRequest) -> Result<(), Errno> {
        if let Some(errno) = *self.refuse_with.lock().unwrap() {
            return Err(errno);
        }
        self.device.lock().unwrap().apply(&request);
        self.received.lock().unwrap().push(request);
        Ok(())
    }
}

fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root: /var/run/wireguard is root's".into());
    }
    if Command::new("wg").arg("--version").output().is_err() {
        return Some("`wg` (wireguard-tools) not installed".into());
    }
    None
}

fn b64(key: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(key)
}

fn wg(args: &[&str]) -> Output {
    let out = Command::new("wg").args(args).output().expect("run wg");
    eprintln!(
        "$ wg {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn wg_ok(args: &[&str]) -> String {
    let out = wg(args);
    assert!(out.status.success(), "wg {args:?} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn trimmed_lines(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).collect()
}

#[test]
fn wg_show_showconf_and_set_through_the_uapi_socket() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIP wg_show_showconf_and_set_through_the_uapi_socket: {reason}");
        return;
    }
    let name = format!("wgt{}", std::process::id());

    // Any 32 bytes are a valid Curve25519 private key (clamping is applied on use); `wg`
    // derives the public key it prints itself.
    let private = [0x48u8; 32];
    let peer1 = [0x11u8; 32];
    let psk = [0x5au8; 32];
    let handshake = SystemTime::now() - Duration::from_secs(65);
    let mut first = PeerSnapshot::new(PublicKey::from_bytes(peer1));
    first.preshared_key = Some(PresharedKey::from_bytes(psk));
    first.endpoint = Some("192.0.2.7:51820".parse().unwrap());
    first.last_handshake = Some(handshake);
    first.rx_bytes = 1536;
    first.tx_bytes = 3 * 1024 * 1024;
    first.persistent_keepalive_interval = 25;
    first.allowed_ips = vec!["10.13.13.2/32".parse().unwrap()];

    let backend = Arc::new(MemoryBackend::default());
    *backend.device.lock().unwrap() = DeviceSnapshot {
        private_key: Some(PrivateKey::from_bytes(private)),
        listen_port: 51820,
        fwmark: 0,
        peers: vec![first],
    };
    // Dropped at the end of the test or on a failed assertion: the socket file goes with it.
    let server = UapiServer::start(&name, Arc::clone(&backend)).expect("start UAPI server");
    let socket = server.path().to_path_buf();
    assert_eq!(
        socket.to_str().unwrap(),
        format!("/var/run/wireguard/{name}.sock")
    );

    // wg show: human form, including handshake age and transfer formatting.
    let show = wg_ok(&["show", &name]);
    let lines = trimmed_lines(&show);
    assert!(
        lines.contains(&format!("interface: {name}").as_str()),
        "{show}"
    );
    assert!(lines.contains(&"listening port: 51820"), "{show}");
    assert!(
        lines.contains(&format!("peer: {}", b64(&peer1)).as_str()),
        "{show}"
    );
    assert!(lines.contains(&"preshared key: (hidden)"), "{show}");
    assert!(lines.contains(&"endpoint: 192.0.2.7:51820"), "{show}");
    assert!(lines.contains(&"allowed ips: 10.13.13.2/32"), "{show}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("latest handshake: 1 minute, ") && l.ends_with(" seconds ago")),
        "{show}"
    );
    assert!(
        lines.contains(&"transfer: 1.50 KiB received, 3.00 MiB sent"),
        "{show}"
    );
    assert!(
        lines.contains(&"persistent keepalive: every 25 seconds"),
        "{show}"
    );

    // wg show dump: exact numbers (handshake seconds, byte counters).
    let dump = wg_ok(&["show", &name, "dump"]);
    let rows: Vec<Vec<&str>> = dump.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{dump}");
    assert_eq!(rows[0][0], b64(&private));
    assert_eq!(rows[0][2], "51820");
    assert_eq!(rows[0][3], "off");
    let handshake_secs = handshake
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    assert_eq!(
        rows[1],
        vec![
            b64(&peer1).as_str(),
            b64(&psk).as_str(),
            "192.0.2.7:51820",
            "10.13.13.2/32",
            handshake_secs.as_str(),
            "1536",
            "3145728",
            "25"
        ]
    );

    // wg showconf: the config-file form.
    let conf = wg_ok(&["showconf", &name]);
    let lines = trimmed_lines(&conf);
    for want in [
        "[Interface]".to_string(),
        "ListenPort = 51820".into(),
        format!("PrivateKey = {}", b64(&private)),
        "[Peer]".into(),
        format!("PublicKey = {}", b64(&peer1)),
        format!("PresharedKey = {}", b64(&psk)),
        "AllowedIPs = 10.13.13.2/32".into(),
        "Endpoint = 192.0.2.7:51820".into(),
        "PersistentKeepalive = 25".into(),
    ] {
        assert!(
            lines.contains(&want.as_str()),
            "missing {want:?} in\n{conf}"
        );
    }

    // wg set: a second peer; the backend must receive exactly this request.
    let peer2 = [0x22u8; 32];
    wg_ok(&[
        "set",
        &name,
        "peer",
        &b64(&peer2),
        "allowed-ips",
        "10.0.0.2/32",
        "endpoint",
        "127.0.0.1:5555",
    ]);
    let mut want = PeerUpdate::new(PublicKey::from_bytes(peer2));
    want.endpoint = Some("127.0.0.1:5555".parse().unwrap());
    want.replace_allowed_ips = true;
    want.allowed_ips = vec!["10.0.0.2/32".parse().unwrap()];
    assert_eq!(
        *backend.received.lock().unwrap(),
        vec![SetRequest {
            peers: vec![want],
            ..SetRequest::default()
        }]
    );

    // ... and wg show prints it back; a peer without a handshake has no handshake line.
    let show = wg_ok(&["show", &name]);
    let lines = trimmed_lines(&show);
    assert!(
        lines.contains(&format!("peer: {}", b64(&peer2)).as_str()),
        "{show}"
    );
    assert!(lines.contains(&"endpoint: 127.0.0.1:5555"), "{show}");
    assert!(lines.contains(&"allowed ips: 10.0.0.2/32"), "{show}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("latest handshake:"))
            .count(),
        1,
        "{show}"
    );
    assert_eq!(
        wg_ok(&["show", &name, "endpoints"])
            .lines()
            .filter(|l| l.ends_with("127.0.0.1:5555") || l.ends_with("192.0.2.7:51820"))
            .count(),
        2
    );

    // Removal through wg set.
    wg_ok(&["set", &name, "peer", &b64(&peer2), "remove"]);
    assert!(!wg_ok(&["show", &name]).contains(&b64(&peer2)));

    // A backend refusal reaches the operator as the right error message.
    *backend.refuse_with.lock().unwrap() = Some(Errno::ADDR_IN_USE);
    let refused = wg(&["set", &name, "listen-port", "4000"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Address already in use"),
        "{refused:?}"
    );

    drop(server);
    assert!(
        !socket.exists(),
        "socket must be removed when the server stops"
    );
    assert!(!wg(&["show", &name]).status.success());
}
