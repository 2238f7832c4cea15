//! Spoofed TCP RSTs against the NAT's ports, in the namespace lab with the real `dataplane`
//! binary, root only. The sans-IO version is `nat/tests/offpath.rs`.
//!
//! The tunnel client holds an idle TCP connection to a server behind the gateway. From the
//! client's LAN address (not the server) and from the server's address with a wrong port, a
//! raw-socket sender sweeps every port of the NAT range with RSTs, as an off-path attacker
//! would to cut every idle connection's mapping short. What must hold: the gateway drops the
//! RSTs that hit the live mapping and counts them (`nat_offpath_rst`), and the connection
//! still carries data afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use lab::{is_root, Lab, Node, GATEWAY_LAN_ADDR, ONE_ARMED_CLIENT_ADDR, SERVER_ADDR};
use ops::client::request_stats;
use ops::StatsSnapshot;

mod e2e_support;
use e2e_support::lab_with_control_socket;

const ECHO_PORT: u16 = 7777;
/// The gateway's default NAT range (`[nat] ports`).
const NAT_PORTS: (u16, u16) = (61000, 65535);

/// Echo server: one connection, each line sent back; prints the peer (the NAT's external
/// endpoint).
const SERVER_PY: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
c, peer = s.accept()
print(f"peer={peer[0]}:{peer[1]}", flush=True)
while True:
    b = c.recv(4096)
    if not b:
        break
    c.sendall(b)
"#;

/// Client: connects, exchanges one line, stays idle until `flag` exists, exchanges another.
const CLIENT_PY: &str = r#"
import os, socket, sys, time
host, port, flag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 10
while True:
    try:
        c = socket.create_connection((host, port), timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
c.settimeout(5)
c.sendall(b"before\n")
print("before=" + ("ok" if c.recv(64) == b"before\n" else "bad"), flush=True)
while not os.path.exists(flag):
    time.sleep(0.05)
c.sendall(b"after\n")
try:
    print("after=" + ("ok" if c.recv(64) == b"after\n" else "bad"), flush=True)
except OSError as e:
    print(f"after=error:{e}", flush=True)
"#;

/// RST sweep: for each `src:sport`, one RST to every port of `first..=last` at `dst`, built
/// by hand (IP_HDRINCL) so the source can be spoofed. Paced a little so that no ring between
/// here and the gateway overflows. Prints `sent=N`.
const RST_PY: &str = r#"
import socket, struct, sys, time
dst, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
srcs = [(a.split(":")[0], int(a.split(":")[1])) for a in sys.argv[4:]]
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
d = socket.inet_aton(dst)
sent = 0
for src, sport in srcs:
    a = socket.inet_aton(src)
    for port in range(first, last + 1):
        tcp = struct.pack("!HHIIBBHHH", sport, port, 0x12345678, 0, 5 << 4, 0x04, 0, 0, 0)
        c = csum(a + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, sent & 0xffff, 0, 64, 6, 0, a, d)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        s.sendto(ip + tcp, (dst, 0))
        sent += 1
        if sent % 256 == 0:
            time.sleep(0.002)
print(f"sent={sent}", flush=True)
"#;

fn drops(s: &StatsSnapshot, reason: &str) -> u64 {
    s.workers
        .iter()
        .map(|w| w.drops.get(reason).copied().unwrap_or(0))
        .sum()
}

fn stats(socket: &Path) -> StatsSnapshot {
    request_stats(socket).expect("stats over the control socket")
}

#[test]
fn spoofed_rst_sweep_leaves_an_idle_connection_working() {
    if !is_root() {
        eprintln!("SKIPPED spoofed_rst_sweep_leaves_an_idle_connection_working: needs root");
        return;
    }
    let (mut lab, control) = lab_with_control_socket();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_sweep(&mut lab, &control);
    }));
    if let Err(e) = result {
        eprintln!("==== gateway log ====\n{}", lab.gateway_log());
        std::panic::resume_unwind(e);
    }
}

fn run_sweep(lab: &mut Lab, control: &Path) {
    let client_conf = lab.dir().join("client-wg.conf");
    lab.wg(
        Node::Client,
        &["setconf", "wg0", &client_conf.to_string_lossy()],
    )
    .unwrap();
    lab.wait_for_handshake(Duration::from_secs(10))
        .expect("the client's handshake");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !control.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }

    let port = ECHO_PORT.to_string();
    let mut server = lab
        .spawn_background(
            Node::Server,
            "echo-server",
            &["python3", "-c", SERVER_PY, &port],
        )
        .unwrap();
    let flag = lab.dir().join("send-after");
    let flag_s = flag.to_string_lossy().into_owned();
    let server_s = SERVER_ADDR.to_string();
    let mut client = lab
        .spawn_background(
            Node::Client,
            "idle-client",
            &["python3", "-c", CLIENT_PY, &server_s, &port, &flag_s],
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client.log_text().contains("before=") {
        assert!(
            client.exit_status().is_none() && Instant::now() < deadline,
            "the connection did not open: {}",
            client.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        client.log_text().contains("before=ok"),
        "{}",
        client.log_text()
    );
    let external = server.log_text();
    eprintln!("server saw the connection from {}", external.trim());

    let before = stats(control);
    let client_lan = format!("{ONE_ARMED_CLIENT_ADDR}:{ECHO_PORT}");
    let wrong_port = format!("{SERVER_ADDR}:{}", ECHO_PORT + 1);
    let sweep = lab
        .exec_in(
            Node::Client,
            &[
                "python3",
                "-c",
                RST_PY,
                &GATEWAY_LAN_ADDR.to_string(),
                &NAT_PORTS.0.to_string(),
                &NAT_PORTS.1.to_string(),
                &client_lan,
                &wrong_port,
            ],
        )
        .expect("the RST sweep runs");
    let mut after = stats(control);
    // Counted as the worker processes them: wait for the last ones.
    let deadline = Instant::now() + Duration::from_secs(5);
    while drops(&after, "nat_offpath_rst") < drops(&before, "nat_offpath_rst") + 2
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
        after = stats(control);
    }
    let offpath = drops(&after, "nat_offpath_rst") - drops(&before, "nat_offpath_rst");
    let no_mapping = drops(&after, "nat_no_mapping") - drops(&before, "nat_no_mapping");
    eprintln!(
        "sweep: {}; gateway: nat_offpath_rst +{offpath}, nat_no_mapping +{no_mapping}",
        sweep.trim()
    );
    assert!(
        offpath >= 2,
        "the RST from each spoofed source to the live mapping is dropped and counted"
    );

    // The idle connection still works.
    std::fs::write(&flag, b"").unwrap();
    let status = client.wait(Duration::from_secs(10));
    let text = client.log_text();
    assert!(
        text.contains("after=ok"),
        "after the sweep: {text} ({status:?})"
    );
    server.stop(Duration::from_secs(1));
}
