//! Path MTU discovery through the gateway: an inner packet too big for the next hop,
//! with DF set, is answered with ICMP fragmentation needed carrying the next hop's MTU, and the
//! TCP stacks on either side adapt, so transfers complete byte-identical. Root lab tests with
//! the real `dataplane` binary and wireguard-go as the client (`e2e_support/`).
//!
//! Two bottlenecks, one per direction of `pipeline.rs`:
//! - The LAN (two-armed only: one-armed, the gateway's single `eth0` also carries the
//!   WireGuard datagrams, which a 1280-byte link would not). `lan0` and the server's `eth0` go
//!   down to 1280 bytes, below the tunnel's 1420. The server advertises the MSS of a 1420-byte
//!   path (`advmss 1380` on its route, as a host whose own link is wider than the bottleneck),
//!   so the client's segments are too big for the LAN and only the gateway's ICMP
//!   (`forward_inner`, next-hop MTU 1280, sent into the tunnel) makes them fit.
//! - The tunnel. The client advertises MSS 1460 (`advmss` on its routes into `wg0`), so the
//!   server's 1500-byte segments are larger than the tunnel's 1420; the gateway answers the
//!   server (`return_traffic`, MTU 1420) and the server's TCP shrinks its segments.
//!
//! Each test checks what the kernel learned: `ip route get` shows the learned MTU in its route
//! cache (a PMTU exception) only after an ICMP fragmentation needed for that destination.

use std::net::Ipv4Addr;
use std::time::Duration;

use lab::{
    Lab, Node, Topology, CLIENT_TUNNEL_ADDR, GATEWAY_LAN_ADDR, GATEWAY_TUNNEL_ADDR, LAN_PREFIX_LEN,
    SERVER_ADDR,
};

mod e2e_support;
use e2e_support::{assert_same_file, download_through_tunnel, pattern, ping, root_test, E2e};

/// The LAN bottleneck's MTU: IPv6's minimum, a common real-world tunnel-in-tunnel MTU.
const LAN_MTU: u32 = 1280;
/// The tunnel's MTU (gw.toml's `mtu`, the client's `wg0`).
const TUNNEL_MTU: u32 = lab::TUNNEL_MTU;
/// Where the upload sink listens on the server.
const SINK_PORT: u16 = 9000;

/// `python3 -c SINK_PY ADDR PORT FILE`: accepts one TCP connection, writes what arrives to
/// FILE until the peer closes, then prints the peer's address and the byte count and closes.
/// Prints `listening` once it accepts connections.
const SINK_PY: &str = r#"
import socket, sys
addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((addr, port)); l.listen(1)
print("listening", flush=True)
l.settimeout(30)
c, peer = l.accept()
c.settimeout(30)
n = 0
with open(path, "wb") as f:
    while True:
        b = c.recv(1 << 16)
        if not b: break
        f.write(b); n += len(b)
print(peer[0], n, flush=True)
c.close()
"#;

/// `python3 -c SEND_PY ADDR PORT FILE`: sends FILE over one TCP connection, half-closes, and
/// waits for the receiver to close (so everything sent was received).
const SEND_PY: &str = r#"
import socket, sys
addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((addr, port), timeout=25)
with open(path, "rb") as f:
    s.sendfile(f)
s.shutdown(socket.SHUT_WR)
while s.recv(4096): pass
print("sent")
"#;

/// Replaces `node`'s route to the LAN (172.23.0.0/24) by `dev <dev_and_rest> advmss <advmss>`:
/// the MSS its TCP offers to LAN hosts, independent of its own link's MTU.
fn replace_lan_route(lab: &Lab, node: Node, dev_and_rest: &[&str], advmss: &str) {
    let mask = u32::MAX << (32 - u32::from(LAN_PREFIX_LEN));
    let lan = format!(
        "{}/{LAN_PREFIX_LEN}",
        Ipv4Addr::from(u32::from(SERVER_ADDR) & mask)
    );
    let mut argv = vec!["ip", "route", "replace", &lan, "dev"];
    argv.extend_from_slice(dev_and_rest);
    argv.extend(["advmss", advmss]);
    lab.exec_in(node, &argv)
        .expect("ip route replace ... advmss");
}

/// The MTU `ip route get dst` in `node` reports from the route cache (a learned path MTU), if
/// any: `172.23.0.2 dev wg0 src 10.13.13.2 uid 0 \    cache expires 598sec mtu 1280`.
fn learned_mtu(lab: &Lab, node: Node, dst: Ipv4Addr) -> Option<u32> {
    let out = lab
        .exec_in(node, &["ip", "route", "get", &dst.to_string()])
        .expect("ip route get");
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "mtu")
        .and_then(|w| w[1].parse().ok())
}

/// Forgets what `node` learned about path MTUs (PMTU exceptions are tied to the cache's
/// generation, which the flush bumps), and checks it did.
fn forget_path_mtus(lab: &Lab, node: Node, dst: Ipv4Addr) {
    lab.exec_in(node, &["ip", "route", "flush", "cache"])
        .expect("ip route flush cache");
    assert_eq!(
        learned_mtu(lab, node, dst),
        None,
        "the route cache of {} still has a learned MTU for {dst}",
        node.role()
    );
}

/// Sets `ifname`'s MTU in `node`.
fn set_mtu(lab: &Lab, node: Node, ifname: &str, mtu: u32) {
    lab.exec_in(
        node,
        &["ip", "link", "set", "dev", ifname, "mtu", &mtu.to_string()],
    )
    .expect("ip link set mtu");
}

/// `ping -M do -s SIZE` (DF set, no local fragmentation) from the client to the server, until
/// the gateway's fragmentation-needed answer shows (the gateway learns the new link MTU from
/// rtnetlink a moment after the change). Returns ping's output.
fn ping_until_frag_needed(t: &Lab, size: u32) -> String {
    let size_s = size.to_string();
    let dst = SERVER_ADDR.to_string();
    let mut last = String::new();
    for _ in 0..10 {
        let (_, out) = t
            .try_exec_in(
                Node::Client,
                &[
                    "ping", "-n", "-M", "do", "-s", &size_s, "-c", "2", "-i", "0.2", "-W", "1",
                    &dst,
                ],
            )
            .expect("ping runs");
        if out.contains("Frag needed") {
            return out;
        }
        last = out;
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no fragmentation needed for a {size}-byte ping with DF; ping printed:\n{last}");
}

// ---- the LAN is the bottleneck: ICMP into the tunnel, the client adapts ---------------------

fn lan_bottleneck(name: &'static str) {
    let t = E2e::build(name, Topology::TwoArmed, false, "");
    ping(&t, Node::Client, None, SERVER_ADDR, 2);
    set_mtu(
        &t,
        Node::Gateway,
        t.topology().gateway_lan_interface(),
        LAN_MTU,
    );
    set_mtu(&t, Node::Server, "eth0", LAN_MTU);
    // MSS = MTU - 20 (IPv4) - 20 (TCP).
    let advmss = (TUNNEL_MTU - 40).to_string();
    let server = SERVER_ADDR.to_string();
    let route = ["eth0", "proto", "kernel", "scope", "link", "src", &server];
    replace_lan_route(&t, Node::Server, &route, &advmss);

    // (1) A 1420-byte echo with DF (1392 + 8 ICMP + 20 IP) fits the tunnel but not the LAN:
    // the gateway answers from its tunnel address with the LAN's MTU.
    let inner = TUNNEL_MTU - 28;
    let out = ping_until_frag_needed(&t, inner);
    eprintln!("{name}: ping -M do -s {inner}:\n{}", out.trim_end());
    let from = format!("From {GATEWAY_TUNNEL_ADDR} ");
    let want = format!("Frag needed and DF set (mtu = {LAN_MTU})");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&from) && l.contains(&want)),
        "no `{from}... {want}` in ping's output:\n{out}"
    );
    assert_eq!(learned_mtu(&t, Node::Client, SERVER_ADDR), Some(LAN_MTU));
    // Small packets still pass.
    assert_eq!(ping(&t, Node::Client, None, SERVER_ADDR, 3), 3);

    // (2) A TCP upload that starts with 1420-byte segments, from a client that knows nothing
    // of the bottleneck: it completes byte-identical only if the client's TCP adapts.
    forget_path_mtus(&t, Node::Client, SERVER_ADDR);
    let data = t.dir().join("upload-8m.bin");
    std::fs::write(&data, pattern(8 << 20)).unwrap();
    let received = t.dir().join("received-8m.bin");
    let (data_s, received_s) = (
        data.to_string_lossy().into_owned(),
        received.to_string_lossy().into_owned(),
    );
    let server = SERVER_ADDR.to_string();
    let port = SINK_PORT.to_string();
    let mut sink = t
        .spawn_background(
            Node::Server,
            "upload-sink",
            &["python3", "-u", "-c", SINK_PY, &server, &port, &received_s],
        )
        .unwrap();
    let started = std::time::Instant::now();
    while !sink.log_text().contains("listening") {
        assert!(sink.exit_status().is_none(), "sink: {}", sink.log_text());
        assert!(started.elapsed() < Duration::from_secs(5), "sink not up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t0 = std::time::Instant::now();
    let (ok, out) = t
        .try_exec_in(
            Node::Client,
            &["python3", "-c", SEND_PY, &server, &port, &data_s],
        )
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(ok, "the upload failed: {out}\nsink: {}", sink.log_text());
    let status = sink.wait(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "sink: {status:?} {}",
        sink.log_text()
    );
    let hash = assert_same_file(&data, &received, "the 8 MiB upload");
    // The server saw the gateway's address (source NAT) and every byte.
    let log = sink.log_text();
    let want = format!("{GATEWAY_LAN_ADDR} {}", 8 << 20);
    assert!(log.lines().any(|l| l == want), "sink printed {log:?}");
    let learned = learned_mtu(&t, Node::Client, SERVER_ADDR);
    eprintln!(
        "{name}: 8 MiB upload in {secs:.2}s, sha256 {hash}; the client learned mtu {learned:?} \
         for {SERVER_ADDR}"
    );
    assert_eq!(
        learned,
        Some(LAN_MTU),
        "the client's TCP did not get fragmentation needed from the gateway"
    );
    let _ = std::fs::remove_file(&data);
    let _ = std::fs::remove_file(&received);
}

#[test]
fn lan_bottleneck_frag_needed_into_tunnel_and_upload_adapts_two_armed() {
    root_test(
        "lan_bottleneck_frag_needed_into_tunnel_and_upload_adapts_two_armed",
        lan_bottleneck,
    );
}

// ---- the tunnel is the bottleneck: ICMP to the server, the server adapts ---------------------

fn tunnel_bottleneck(name: &'static str, topology: Topology) {
    let t = E2e::build(name, topology, false, "");
    ping(&t, Node::Client, None, SERVER_ADDR, 2);
    // The client's SYN offers MSS 1460, so the server sends full 1500-byte packets.
    let src = CLIENT_TUNNEL_ADDR.to_string();
    replace_lan_route(&t, Node::Client, &["wg0", "src", &src], "1460");
    forget_path_mtus(&t, Node::Server, GATEWAY_LAN_ADDR);
    let secs = download_through_tunnel(&t, "blob-8m.bin", 8 << 20);
    let learned = learned_mtu(&t, Node::Server, GATEWAY_LAN_ADDR);
    eprintln!(
        "{name}: 8 MiB download in {secs:.2}s; the server learned mtu {learned:?} for \
         {GATEWAY_LAN_ADDR}"
    );
    assert_eq!(
        learned,
        Some(TUNNEL_MTU),
        "the server's TCP did not get fragmentation needed with the tunnel MTU from the gateway"
    );
}

#[test]
fn tunnel_bottleneck_frag_needed_to_server_and_download_adapts_one_armed() {
    root_test(
        "tunnel_bottleneck_frag_needed_to_server_and_download_adapts_one_armed",
        |n| tunnel_bottleneck(n, Topology::OneArmed),
    );
}

#[test]
fn tunnel_bottleneck_frag_needed_to_server_and_download_adapts_two_armed() {
    root_test(
        "tunnel_bottleneck_frag_needed_to_server_and_download_adapts_two_armed",
        |n| tunnel_bottleneck(n, Topology::TwoArmed),
    );
}
