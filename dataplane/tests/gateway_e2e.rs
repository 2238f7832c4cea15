//! Root end-to-end tests of the real gateway: the `dataplane` binary of this build, started by
//! the namespace lab on the gw.toml it writes, with wireguard-go as the client. They prove
//! the fast path (ping, a 32 MiB download byte for byte, source NAT, iperf3 both ways,
//! one-armed and two-armed) and the slow path (`wg show`/`wg set` through the UAPI
//! socket, a second peer added live, a service on the gateway host, spoofed inner sources
//! dropped, roaming, SIGHUP reload, clean stop and restart after SIGKILL).
//!
//! Every test builds its own lab (uniquely named namespaces, removed in `Drop` also on
//! failure), prints the gateway's whole log when it fails, and skips with a message when not
//! run as root. The tests take a lock and run one at a time (`e2e_support::serial`). The
//! harness and the client scenarios live in `e2e_support/`, shared with
//! `gateway_boringtun.rs` (the same scenarios with boringtun as the client). Run them with
//! `sudo -E cargo test -p dataplane --test gateway_e2e -- --nocapture` (the Mbit/s are printed);
//! `DATAPLANE_E2E_BIN=target/release/dataplane` runs the same suite against another build.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use fastpath::counters::DropReason;
use lab::e2e::{generate_pair, parse_logged_counters, ExtraWireGuard, LoggedCounters};
use lab::{
    ClientKind, GwTomlOptions, Lab, Node, Topology, CLIENT_TUNNEL_ADDR, GATEWAY_TUNNEL_ADDR,
    SERVER_ADDR, TUNNEL_MTU,
};

#[macro_use]
mod e2e_support;
use e2e_support::{assert_pings, binary, dataplane, ping, serial, skip_unless_root, E2e};

/// The tunnel address the tests give a second peer.
const SECOND_PEER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 13, 13, 3);

/// One `peer` of `wg show wg0 dump`.
#[derive(Debug)]
struct DumpPeer {
    public_key: String,
    endpoint: String,
    allowed_ips: String,
    latest_handshake: u64,
    rx: u64,
    tx: u64,
}

fn wg_dump(lab: &mut Lab, node: Node) -> Vec<DumpPeer> {
    let out = lab
        .wg(node, &["show", "wg0", "dump"])
        .expect("wg show dump");
    // The first line is the interface; peers have 8 tab-separated fields.
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 8).then(|| DumpPeer {
                public_key: f[0].to_owned(),
                endpoint: f[2].to_owned(),
                allowed_ips: f[3].to_owned(),
                latest_handshake: f[4].parse().unwrap_or(0),
                rx: f[5].parse().unwrap_or(0),
                tx: f[6].parse().unwrap_or(0),
            })
        })
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The throughput of every interval of an `iperf3 -J` run, in bits per second (the `sum` of
/// each entry of `intervals`, in order).
fn iperf3_interval_bps(json: &str) -> Vec<f64> {
    // iperf3 pretty-prints with tabs; without whitespace, the top-level `end` object is the
    // only `"end":{` (an interval's `end` is a number).
    let json: String = json.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(start) = json.find("\"intervals\":[") else {
        return Vec::new();
    };
    let end = json[start..]
        .find("\"end\":{")
        .map_or(json.len(), |e| start + e);
    let key = "\"sum\":{";
    let bps = "\"bits_per_second\":";
    let mut v = Vec::new();
    let mut rest = &json[start..end];
    while let Some(at) = rest.find(key) {
        rest = &rest[at + key.len()..];
        if let Some(b) = rest.find(bps) {
            let num: String = rest[b + bps.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
                .collect();
            if let Ok(x) = num.parse() {
                v.push(x);
            }
        }
    }
    v
}

fn gw_has_wg0(lab: &Lab) -> bool {
    lab.try_exec_in(Node::Gateway, &["ip", "link", "show", "dev", "wg0"])
        .expect("ip link show")
        .0
}

/// `[[peer]]` text for gw.toml.
fn peer_toml(public_key: &str, allowed: Ipv4Addr) -> String {
    format!("[[peer]]\nname = \"peer-{allowed}\"\npublic_key = \"{public_key}\"\nallowed_ips = [\"{allowed}/32\"]\n")
}

/// A second WireGuard peer in the client namespace: wireguard-go `wg1` with address
/// 10.13.13.3, listening on 51821, pointed at the gateway. Traffic from source 10.13.13.3 is
/// routed into `wg1` by a policy rule, so `ping -I 10.13.13.3` goes through this peer while
/// everything else keeps using `wg0`.
fn second_peer(lab: &Lab) -> ExtraWireGuard {
    let dev = lab
        .add_wireguard_go(Node::Client, "wg1")
        .expect("second wireguard-go starts");
    let endpoint = lab.topology().endpoint().to_string();
    lab.wg_extra(
        Node::Client,
        &dev,
        &[
            "set",
            "wg1",
            "listen-port",
            "51821",
            "peer",
            &lab.keys().gateway.public,
            "endpoint",
            &endpoint,
            "allowed-ips",
            "0.0.0.0/0",
        ],
    )
    .expect("wg set wg1");
    let addr = format!("{SECOND_PEER_ADDR}/32");
    let mtu = TUNNEL_MTU.to_string();
    let src = SECOND_PEER_ADDR.to_string();
    for argv in [
        vec!["ip", "address", "add", &addr, "dev", "wg1"],
        vec!["ip", "link", "set", "wg1", "mtu", &mtu, "up"],
        vec!["ip", "rule", "add", "from", &src, "lookup", "113"],
        vec![
            "ip",
            "route",
            "add",
            "10.13.13.0/24",
            "dev",
            "wg1",
            "table",
            "113",
        ],
        vec![
            "ip",
            "route",
            "add",
            "172.23.0.0/24",
            "dev",
            "wg1",
            "table",
            "113",
        ],
    ] {
        lab.exec_in(Node::Client, &argv).expect("second peer setup");
    }
    dev
}

/// `python3 -c FIRST_REPLY_PY SRC DST LIMIT`: sends an ICMP echo from SRC every 50 ms until one
/// is answered; prints the milliseconds from the first send to that reply, exits 1 after LIMIT
/// seconds without one.
const FIRST_REPLY_PY: &str = r#"
import os, socket, struct, sys, time
src, dst, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
ident = os.getpid() & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.bind((src, 0))
t0 = time.monotonic(); seq = 0
while time.monotonic() - t0 < limit:
    seq += 1
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"second peer"
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(body), ident, seq) + b"second peer", (dst, 0))
    until = time.monotonic() + 0.05
    while True:
        left = until - time.monotonic()
        if left <= 0: break
        s.settimeout(left)
        try: data, addr = s.recvfrom(4096)
        except socket.timeout: break
        ihl = (data[0] & 15) * 4
        if len(data) < ihl + 8: continue
        typ, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if addr[0] == dst and typ == 0 and rid == ident:
            print("%.1f" % ((time.monotonic() - t0) * 1000)); sys.exit(0)
sys.exit("no reply within %ss" % limit)
"#;

// ---- 1-3. the client scenarios (shared with gateway_boringtun.rs) ----------------------

client_scenario_tests! {
    ClientKind::WireguardGo;
    ping_server_and_gateway_one_armed => ping_server_and_gateway(OneArmed);
    ping_server_and_gateway_two_armed => ping_server_and_gateway(TwoArmed);
    download_32_mib_one_armed => download_32_mib(OneArmed);
    download_32_mib_two_armed => download_32_mib(TwoArmed);
    iperf3_both_directions_one_armed => iperf3_both_directions(OneArmed);
    iperf3_both_directions_two_armed => iperf3_both_directions(TwoArmed);
}

// ---- 4. wg show, and a second peer added live --------------------------------------------------

fn wg_show_and_live_second_peer(name: &'static str, topology: Topology) {
    let _serial = serial();
    let mut t = E2e::build(name, topology, true, "");
    assert_pings(&t, None, SERVER_ADDR, 3);

    // `wg show wg0` as an operator reads it, from the gateway's UAPI socket.
    let show = t.wg(Node::Gateway, &["show", "wg0"]).unwrap();
    let client_pub = t.keys().client.public.clone();
    let endpoint = format!("{}:51820", topology.client_underlay_addr());
    assert!(show.contains("interface: wg0"), "{show}");
    assert!(show.contains("listening port: 51820"), "{show}");
    assert!(show.contains(&format!("peer: {client_pub}")), "{show}");
    assert!(show.contains(&format!("endpoint: {endpoint}")), "{show}");
    assert!(show.contains("latest handshake:"), "{show}");
    assert!(show.contains("transfer:"), "{show}");
    let peers = wg_dump(&mut t, Node::Gateway);
    assert_eq!(peers.len(), 1, "{peers:?}");
    let p = &peers[0];
    assert_eq!(p.public_key, client_pub);
    assert_eq!(p.endpoint, endpoint);
    assert_eq!(p.allowed_ips, format!("{CLIENT_TUNNEL_ADDR}/32"));
    let age = unix_now().saturating_sub(p.latest_handshake);
    assert!(p.latest_handshake > 0 && age < 60, "handshake {age}s ago");
    // The pings above: at least 3 echo requests in (84 bytes each) and replies out.
    assert!(p.rx >= 3 * 84 && p.tx >= 3 * 84, "transfer {p:?}");

    // The first peer's iperf3 flow runs while the second peer is added.
    let server = SERVER_ADDR.to_string();
    let mut flow = t
        .spawn_background(
            Node::Client,
            "iperf3-first-peer",
            &[
                "iperf3",
                "-c",
                &server,
                "-t",
                "6",
                "-i",
                "1",
                "-J",
                "--connect-timeout",
                "3000",
            ],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let second = second_peer(&t);
    let allowed = format!("{SECOND_PEER_ADDR}/32");
    let t_set = Instant::now();
    t.wg(
        Node::Gateway,
        &[
            "set",
            "wg0",
            "peer",
            &second.keys.public,
            "allowed-ips",
            &allowed,
        ],
    )
    .expect("wg set wg0 peer ... allowed-ips 10.13.13.3/32 on the gateway");
    let set_took = t_set.elapsed();
    let (ok, out) = t
        .try_exec_in(
            Node::Client,
            &[
                "python3",
                "-c",
                FIRST_REPLY_PY,
                &SECOND_PEER_ADDR.to_string(),
                &GATEWAY_TUNNEL_ADDR.to_string(),
                "5",
            ],
        )
        .unwrap();
    assert!(
        ok,
        "the second peer got no echo reply from the gateway: {out}\nwg1: {}",
        second.log_text()
    );
    let first_reply_ms: f64 = out.trim().parse().expect("milliseconds");
    let total_ms = set_took.as_secs_f64() * 1e3 + first_reply_ms;
    eprintln!(
        "{name}: second peer: `wg set` took {:.0} ms, first reply {first_reply_ms:.0} ms after \
         its first packet ({total_ms:.0} ms in all, handshake included)",
        set_took.as_secs_f64() * 1e3
    );
    assert!(
        total_ms < 1000.0,
        "second peer passed traffic only after {total_ms:.0} ms"
    );
    // It also reaches the LAN through the fast path, NATed like the first.
    assert_pings(&t, Some(SECOND_PEER_ADDR), SERVER_ADDR, 3);

    // The first peer's flow was not disturbed: it finished, and no second of it was empty.
    let status = flow.wait(Duration::from_secs(15));
    let json = flow.log_text();
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "the first peer's iperf3 failed ({status:?}):\n{json}"
    );
    let intervals = iperf3_interval_bps(&json);
    assert!(intervals.len() >= 5, "iperf3 intervals: {intervals:?}");
    let min = intervals.iter().cloned().fold(f64::INFINITY, f64::min);
    eprintln!(
        "{name}: first peer's iperf3 per second (Mbit/s): {:?}",
        intervals
            .iter()
            .map(|b| (b / 1e6).round())
            .collect::<Vec<_>>()
    );
    assert!(
        min > 0.0,
        "an iperf3 interval of the first peer carried nothing: {intervals:?}"
    );

    let peers = wg_dump(&mut t, Node::Gateway);
    assert_eq!(peers.len(), 2, "{peers:?}");
    let p2 = peers
        .iter()
        .find(|p| p.public_key == second.keys.public)
        .expect("the second peer in wg show");
    assert!(p2.rx > 0 && p2.tx > 0, "{p2:?}");
    assert_eq!(
        p2.endpoint,
        format!("{}:51821", topology.client_underlay_addr())
    );
}

#[test]
fn wg_show_and_live_second_peer_one_armed() {
    if skip_unless_root("wg_show_and_live_second_peer_one_armed") {
        return;
    }
    wg_show_and_live_second_peer("wg_show_and_live_second_peer_one_armed", Topology::OneArmed);
}

#[test]
fn wg_show_and_live_second_peer_two_armed() {
    if skip_unless_root("wg_show_and_live_second_peer_two_armed") {
        return;
    }
    wg_show_and_live_second_peer("wg_show_and_live_second_peer_two_armed", Topology::TwoArmed);
}

// ---- 5. a TCP service on the gateway host -----------------------------------------------------

fn tcp_service_on_gateway(name: &'static str, topology: Topology) {
    let _serial = serial();
    let t = E2e::build(name, topology, false, "");
    let www = t.dir().join("gw-www");
    std::fs::create_dir_all(&www).unwrap();
    let body = format!("served by the gateway host of {}\n", t.prefix());
    std::fs::write(www.join("hello.txt"), &body).unwrap();
    let www_s = www.to_string_lossy().into_owned();
    let bind = GATEWAY_TUNNEL_ADDR.to_string();
    let mut server = t
        .spawn_background(
            Node::Gateway,
            "gw-http-server",
            &[
                "python3",
                "-m",
                "http.server",
                "8080",
                "--bind",
                &bind,
                "--directory",
                &www_s,
            ],
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, out) = t
            .try_exec_in(Node::Gateway, &["ss", "-H", "-ltn", "sport = :8080"])
            .unwrap();
        if !out.trim().is_empty() {
            break;
        }
        assert!(
            server.exit_status().is_none(),
            "http.server on 10.13.13.1 exited:\n{}",
            server.log_text()
        );
        assert!(Instant::now() < deadline, "http.server not listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("http://{GATEWAY_TUNNEL_ADDR}:8080/hello.txt");
    let got = t
        .http_get_from_client(&url)
        .expect("GET from the gateway host's own service through the tunnel");
    assert_eq!(String::from_utf8_lossy(&got), body);
    // The service saw the client's tunnel address: no NAT towards the host itself.
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.starts_with(&CLIENT_TUNNEL_ADDR.to_string()) && l.contains("GET /hello.txt")),
        "http.server log:\n{log}"
    );
}

#[test]
fn tcp_service_on_gateway_one_armed() {
    if skip_unless_root("tcp_service_on_gateway_one_armed") {
        return;
    }
    tcp_service_on_gateway("tcp_service_on_gateway_one_armed", Topology::OneArmed);
}

#[test]
fn tcp_service_on_gateway_two_armed() {
    if skip_unless_root("tcp_service_on_gateway_two_armed") {
        return;
    }
    tcp_service_on_gateway("tcp_service_on_gateway_two_armed", Topology::TwoArmed);
}

// ---- 6. inner source of another peer ----------------------------------------------------------

fn spoofed_inner_source_dropped(name: &'static str, topology: Topology) {
    let _serial = serial();
    // 10.13.13.3 belongs to a second peer of the gateway; the client claims it.
    let other = generate_pair().unwrap();
    let mut t = E2e::build(
        name,
        topology,
        false,
        &peer_toml(&other.public, SECOND_PEER_ADDR),
    );
    assert_pings(&t, None, GATEWAY_TUNNEL_ADDR, 3);
    assert_pings(&t, None, SERVER_ADDR, 3);
    let addr = format!("{SECOND_PEER_ADDR}/32");
    t.exec_in(Node::Client, &["ip", "address", "add", &addr, "dev", "wg0"])
        .unwrap();
    let before = t.wg_transfer(Node::Client).unwrap()[0].tx_bytes;
    // Spoofed towards the gateway itself and towards the LAN: 3 + 3 packets.
    let to_gw = ping(
        &t,
        Node::Client,
        Some(SECOND_PEER_ADDR),
        GATEWAY_TUNNEL_ADDR,
        3,
    );
    let to_lan = ping(&t, Node::Client, Some(SECOND_PEER_ADDR), SERVER_ADDR, 3);
    assert_eq!(
        (to_gw, to_lan),
        (0, 0),
        "packets with another peer's inner source were answered"
    );
    // wireguard-go did send them (its AllowedIPs are 0.0.0.0/0): the gateway dropped them.
    let sent = t.wg_transfer(Node::Client).unwrap()[0].tx_bytes - before;
    assert!(sent >= 6 * 84, "the client sent only {sent} bytes");
    // The real peer is unaffected.
    assert_eq!(ping(&t, Node::Client, None, SERVER_ADDR, 2), 2);

    // The counters are logged on stop.
    t.signal_gateway("TERM").unwrap();
    let status = t.wait_gateway_exit(Duration::from_secs(10));
    assert!(status.is_some(), "the gateway did not stop on SIGTERM");
    let log = t.gateway_log();
    let counters = parse_logged_counters(&log);
    assert!(!counters.is_empty(), "no counters line in the log");
    let dropped: u64 = counters
        .iter()
        .map(|c| c.dropped("source_not_allowed"))
        .sum();
    eprintln!("{name}: source_not_allowed={dropped} (6 spoofed packets sent)");
    assert!(
        dropped >= 6,
        "expected >= 6 source_not_allowed drops, counters: {counters:?}"
    );
    t.take_gateway();
}

#[test]
fn spoofed_inner_source_dropped_one_armed() {
    if skip_unless_root("spoofed_inner_source_dropped_one_armed") {
        return;
    }
    spoofed_inner_source_dropped("spoofed_inner_source_dropped_one_armed", Topology::OneArmed);
}

#[test]
fn spoofed_inner_source_dropped_two_armed() {
    if skip_unless_root("spoofed_inner_source_dropped_two_armed") {
        return;
    }
    spoofed_inner_source_dropped("spoofed_inner_source_dropped_two_armed", Topology::TwoArmed);
}

// ---- 6b. a spoofed outer source does not move the endpoint -----------------------------------

/// `python3 -c REPLAY_PY IFACE GW_IP SPOOF_IP`: captures one WireGuard data message (type 4) the
/// client's wireguard-go sends on IFACE (it makes one by sending a UDP datagram into the
/// tunnel), then sends it again, as is (a replay) and with its last byte flipped (a forgery),
/// from SPOOF_IP:40000. Prints the captured message's length.
const REPLAY_PY: &str = r#"
import socket, struct, sys, time
iface, gw, spoof = sys.argv[1], sys.argv[2], sys.argv[3]
sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
sniff.bind((iface, 0)); sniff.settimeout(0.2)
trigger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
deadline = time.monotonic() + 5; msg = None
while msg is None and time.monotonic() < deadline:
    trigger.sendto(b"make wireguard-go send a data message", ("172.23.0.2", 9))
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        try: f = sniff.recv(65535)
        except socket.timeout: break
        if len(f) < 14 + 20 + 8 or f[12:14] != b"\x08\x00" or f[23] != 17: continue
        ihl = (f[14] & 15) * 4
        dport = struct.unpack("!H", f[14 + ihl + 2:14 + ihl + 4])[0]
        if socket.inet_ntoa(f[30:34]) != gw or dport != 51820: continue
        payload = f[14 + ihl + 8:]
        if len(payload) >= 32 and payload[0] == 4:
            msg = payload; break
if msg is None: sys.exit("no WireGuard data message seen on %s" % iface)
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out.bind((spoof, 40000))
out.sendto(msg, (gw, 51820))
forged = msg[:-1] + bytes([msg[-1] ^ 1])
out.sendto(forged, (gw, 51820))
print(len(msg))
"#;

fn spoofed_outer_source_keeps_endpoint(name: &'static str, topology: Topology) {
    let _serial = serial();
    let mut t = E2e::build(name, topology, false, "");
    assert_pings(&t, None, SERVER_ADDR, 3);
    let endpoint = format!("{}:51820", topology.client_underlay_addr());
    assert_eq!(wg_dump(&mut t, Node::Gateway)[0].endpoint, endpoint);
    let (spoof, cidr) = match topology {
        Topology::OneArmed => (Ipv4Addr::new(172, 23, 0, 77), "172.23.0.77/32"),
        Topology::TwoArmed => (Ipv4Addr::new(198, 18, 0, 77), "198.18.0.77/24"),
    };
    t.exec_in(Node::Client, &["ip", "address", "add", cidr, "dev", "eth0"])
        .unwrap();
    let gw = topology.endpoint().ip().to_string();
    let (ok, out) = t
        .try_exec_in(
            Node::Client,
            &["python3", "-c", REPLAY_PY, "eth0", &gw, &spoof.to_string()],
        )
        .unwrap();
    assert!(ok, "capturing and replaying a data message failed: {out}");
    std::thread::sleep(Duration::from_millis(300));
    let now = t.wg(Node::Gateway, &["show", "wg0", "endpoints"]).unwrap();
    assert!(
        now.contains(&endpoint) && !now.contains(&spoof.to_string()),
        "a replayed or forged data message from {spoof} moved the endpoint: {now:?}"
    );
    // The real peer still gets its replies at its real address.
    assert_eq!(ping(&t, Node::Client, None, SERVER_ADDR, 3), 3);
    t.signal_gateway("TERM").unwrap();
    assert!(t.wait_gateway_exit(Duration::from_secs(10)).is_some());
    let counters = parse_logged_counters(&t.gateway_log());
    let dropped = |reasons: &[DropReason]| -> u64 {
        let per_worker =
            |c: &LoggedCounters| reasons.iter().map(|r| c.dropped(r.name())).sum::<u64>();
        counters.iter().map(per_worker).sum()
    };
    let rejected = dropped(DropReason::DECRYPT);
    let forged = dropped(&[DropReason::DecryptAuthFailed]);
    eprintln!(
        "{name}: decrypt_*={rejected} (auth failed {forged}) after one replay and one forgery"
    );
    assert!(rejected >= 2, "counters: {counters:?}");
    assert!(forged >= 1, "the forgery fails the tag: {counters:?}");
    t.take_gateway();
}

#[test]
fn spoofed_outer_source_keeps_endpoint_one_armed() {
    if skip_unless_root("spoofed_outer_source_keeps_endpoint_one_armed") {
        return;
    }
    spoofed_outer_source_keeps_endpoint(
        "spoofed_outer_source_keeps_endpoint_one_armed",
        Topology::OneArmed,
    );
}

#[test]
fn spoofed_outer_source_keeps_endpoint_two_armed() {
    if skip_unless_root("spoofed_outer_source_keeps_endpoint_two_armed") {
        return;
    }
    spoofed_outer_source_keeps_endpoint(
        "spoofed_outer_source_keeps_endpoint_two_armed",
        Topology::TwoArmed,
    );
}

// ---- 7. roaming -------------------------------------------------------------------------------

fn roaming(name: &'static str, topology: Topology) {
    let _serial = serial();
    let mut t = E2e::build(name, topology, false, "");
    assert_pings(&t, None, SERVER_ADDR, 3);
    let old = format!("{}:51820", topology.client_underlay_addr());
    assert_eq!(wg_dump(&mut t, Node::Gateway)[0].endpoint, old);

    // New underlay address and new port.
    let (new_ip, new_cidr, old_cidr) = match topology {
        Topology::OneArmed => (
            Ipv4Addr::new(172, 23, 0, 11),
            "172.23.0.11/32",
            "172.23.0.10/32",
        ),
        Topology::TwoArmed => (
            Ipv4Addr::new(198, 18, 0, 3),
            "198.18.0.3/24",
            "198.18.0.2/24",
        ),
    };
    let gw = topology.endpoint().ip().to_string();
    let new_ip_s = new_ip.to_string();
    match topology {
        Topology::OneArmed => {
            for argv in [
                vec!["ip", "address", "add", new_cidr, "dev", "eth0"],
                vec![
                    "ip", "route", "replace", &gw, "dev", "eth0", "src", &new_ip_s,
                ],
                vec!["ip", "address", "del", old_cidr, "dev", "eth0"],
            ] {
                t.exec_in(Node::Client, &argv).unwrap();
            }
        }
        Topology::TwoArmed => {
            // Deleting the primary of a /24 would take its secondaries along: delete first.
            for argv in [
                vec!["ip", "address", "del", old_cidr, "dev", "eth0"],
                vec!["ip", "address", "add", new_cidr, "dev", "eth0"],
            ] {
                t.exec_in(Node::Client, &argv).unwrap();
            }
        }
    }
    t.wg(Node::Client, &["set", "wg0", "listen-port", "51999"])
        .unwrap();
    // Traffic continues (the gateway learns the endpoint from the first authenticated packet;
    // its reply may wait for the new neighbour).
    assert_pings(&t, None, SERVER_ADDR, 4);
    assert_eq!(ping(&t, Node::Client, None, SERVER_ADDR, 3), 3);
    let ep = t.wg(Node::Gateway, &["show", "wg0", "endpoints"]).unwrap();
    let want = format!("{new_ip}:51999");
    assert!(
        ep.contains(&want),
        "gateway endpoints after roaming: {ep:?}, want {want}"
    );
}

#[test]
fn roaming_one_armed() {
    if skip_unless_root("roaming_one_armed") {
        return;
    }
    roaming("roaming_one_armed", Topology::OneArmed);
}

#[test]
fn roaming_two_armed() {
    if skip_unless_root("roaming_two_armed") {
        return;
    }
    roaming("roaming_two_armed", Topology::TwoArmed);
}

// ---- 8. SIGHUP reload ------------------------------------------------------------------------

#[test]
fn sighup_reload_adds_a_peer() {
    let name = "sighup_reload_adds_a_peer";
    if skip_unless_root(name) {
        return;
    }
    let _serial = serial();
    let mut t = E2e::build(name, Topology::OneArmed, false, "");
    assert_pings(&t, None, SERVER_ADDR, 3);
    let second = second_peer(&t);
    // Rewrite gw.toml with the second peer (the file the gateway was started on), then SIGHUP.
    // The queue list changes too: a reload cannot apply it, and must say so.
    t.write_gateway_toml(&GwTomlOptions {
        mode: None,
        queues: Some(vec![0]),
        extra_toml: peer_toml(&second.keys.public, SECOND_PEER_ADDR),
    })
    .unwrap();
    t.signal_gateway("HUP").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let peers = t.wg(Node::Gateway, &["show", "wg0", "peers"]).unwrap();
        if peers.lines().any(|l| l.trim() == second.keys.public) {
            assert!(
                peers.lines().any(|l| l.trim() == t.keys().client.public),
                "the first peer vanished on reload: {peers}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after SIGHUP `wg show wg0 peers` still lists only: {peers}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        t.gateway_log().contains("configuration reloaded"),
        "no reload line in the log"
    );
    // The reloaded peer works, and the first one still does.
    let (ok, out) = t
        .try_exec_in(
            Node::Client,
            &[
                "python3",
                "-c",
                FIRST_REPLY_PY,
                &SECOND_PEER_ADDR.to_string(),
                &GATEWAY_TUNNEL_ADDR.to_string(),
                "5",
            ],
        )
        .unwrap();
    assert!(ok, "the reloaded peer gets no reply: {out}");
    assert_eq!(ping(&t, Node::Client, None, SERVER_ADDR, 3), 3);
    let log = t.gateway_log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("dataplane.queues changed")
            && l.contains("restarted")),
        "the ignored change is not named at WARN:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("handshake completed")
            && l.contains(&format!("peer-{SECOND_PEER_ADDR}"))),
        "the reloaded peer is not named in the log:\n{log}"
    );
    // veth has no zero-copy: auto's fallback is expected, not a warning.
    assert!(
        !log.lines()
            .any(|l| l.contains("WARN") && l.contains("AF_XDP bind failed")),
        "{log}"
    );
}

// ---- 9. stop cleanliness, kill -9 and restart ------------------------------------------------

fn stop_and_restart(name: &'static str, topology: Topology) {
    let _serial = serial();
    let mut t = E2e::build(name, topology, false, "");
    assert_pings(&t, None, SERVER_ADDR, 3);
    let ifaces = topology.gateway_interfaces();
    for i in ifaces {
        assert!(
            t.xdp_attached(i).unwrap(),
            "no XDP program on {i} while running"
        );
    }
    assert!(gw_has_wg0(&t));

    // SIGTERM: exit 0, programs detached, wg0 gone.
    t.signal_gateway("TERM").unwrap();
    let status = t.wait_gateway_exit(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status after SIGTERM: {status:?}"
    );
    t.take_gateway();
    for i in ifaces {
        assert!(
            !t.xdp_attached(i).unwrap(),
            "XDP program left on {i} after SIGTERM"
        );
    }
    assert!(!gw_has_wg0(&t), "wg0 left in the gateway namespace");

    // Again with the UAPI directory visible from here: the socket exists while running and is
    // removed on SIGTERM.
    // The control socket (`dataplane stats`) goes into the lab directory too, not the host's
    // /run/dataplane/control.sock.
    let uapi = t.dir().join("run-wireguard");
    let sock = uapi.join("wg0.sock");
    let control = t.dir().join("dataplane.sock");
    t.write_gateway_toml(&GwTomlOptions {
        mode: None,
        extra_toml: format!("[control]\nsocket = \"{}\"\n", control.display()),
        ..Default::default()
    })
    .unwrap();
    t.start_dataplane_with_uapi_dir(dataplane(""), &uapi)
        .unwrap();
    assert!(sock.exists(), "no UAPI socket at {}", sock.display());
    // The control socket comes up after the workers, a moment after the UAPI socket.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !control.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        control.exists(),
        "no control socket at {}",
        control.display()
    );
    t.signal_gateway("TERM").unwrap();
    let status = t.wait_gateway_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
    t.take_gateway();
    assert!(!sock.exists(), "{} left after SIGTERM", sock.display());
    assert!(
        !control.exists(),
        "{} left after SIGTERM",
        control.display()
    );
    for i in ifaces {
        assert!(!t.xdp_attached(i).unwrap(), "XDP program left on {i}");
    }

    // kill -9 leaves the program (and the socket file) behind; the next start replaces them.
    t.start_dataplane_with_uapi_dir(dataplane(""), &uapi)
        .unwrap();
    t.signal_gateway("KILL").unwrap();
    assert!(t.wait_gateway_exit(Duration::from_secs(5)).is_some());
    t.take_gateway();
    let stale = ifaces.iter().any(|i| t.xdp_attached(i).unwrap());
    eprintln!(
        "{name}: after kill -9: XDP program still attached: {stale}, socket file left: {}",
        sock.exists()
    );
    t.start_dataplane_with_uapi_dir(dataplane(""), &uapi)
        .expect("the gateway starts again after kill -9");
    assert!(
        t.gateway_exit_status().is_none(),
        "restart failed:\n{}",
        t.gateway_log()
    );
    if stale {
        assert!(
            t.gateway_log().contains("replac"),
            "the stale program was not reported as replaced"
        );
    }
    // The client still holds a session with the killed gateway: start it afresh, as a client
    // would after its rekey timeout, and check traffic flows through the new instance.
    let conf = t.dir().join("client-wg.conf");
    t.wg(Node::Client, &["setconf", "wg0", &conf.to_string_lossy()])
        .unwrap();
    t.wait_for_handshake(Duration::from_secs(10))
        .expect("handshake with the restarted gateway");
    assert_pings(&t, None, SERVER_ADDR, 3);

    // A second instance on the same interfaces is refused, and the running one is untouched.
    let config = t.dir().join("gw.toml");
    let bin = binary();
    let mut second = t
        .spawn_background(
            Node::Gateway,
            "second-dataplane",
            &[
                "sh",
                "-c",
                "mkdir -p /run/wireguard && mount -t tmpfs wglab2 /run/wireguard && exec \"$@\"",
                "sh",
                &bin,
                "--config",
                &config.to_string_lossy(),
            ],
        )
        .unwrap();
    let status = second.wait(Duration::from_secs(10));
    let log = second.log_text();
    assert!(
        status.is_some_and(|s| !s.success()),
        "a second instance was not refused ({status:?}):\n{log}"
    );
    assert!(
        log.contains("already driven by another dataplane instance"),
        "the refusal does not say why:\n{log}"
    );
    for i in ifaces {
        assert!(
            t.xdp_attached(i).unwrap(),
            "the refused instance removed the program on {i}"
        );
    }
    assert_eq!(ping(&t, Node::Client, None, SERVER_ADDR, 3), 3);

    t.signal_gateway("TERM").unwrap();
    let status = t.wait_gateway_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
    t.take_gateway();
    assert!(!sock.exists());
    assert!(!control.exists());
    for i in ifaces {
        assert!(!t.xdp_attached(i).unwrap(), "XDP program left on {i}");
    }
}

#[test]
fn stop_is_clean_and_restart_after_kill_one_armed() {
    if skip_unless_root("stop_is_clean_and_restart_after_kill_one_armed") {
        return;
    }
    stop_and_restart(
        "stop_is_clean_and_restart_after_kill_one_armed",
        Topology::OneArmed,
    );
}

#[test]
fn stop_is_clean_and_restart_after_kill_two_armed() {
    if skip_unless_root("stop_is_clean_and_restart_after_kill_two_armed") {
        return;
    }
    stop_and_restart(
        "stop_is_clean_and_restart_after_kill_two_armed",
        Topology::TwoArmed,
    );
}

#[test]
fn iperf3_interval_parser_reads_each_second() {
    let j = "{\"start\":{},\"intervals\":\t[{\"streams\":[{\"end\":\t1.0,\"bits_per_second\":1}],
        \"sum\":\t{\"end\":1.0, \"bits_per_second\":\t2.5e8}},
        {\"streams\":[],\"sum\":{\"seconds\":1,\"bits_per_second\":0}}],\"end\":\t{\"sum\":{\"bits_per_second\":9}}}";
    assert_eq!(iperf3_interval_bps(j), vec![2.5e8, 0.0]);
    assert!(iperf3_interval_bps("{}").is_empty());
}
