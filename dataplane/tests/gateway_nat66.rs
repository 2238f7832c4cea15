//! IPv6 source NAT in the real gateway (`[nat] masquerade_ipv6 = true`, ip6tables MASQUERADE):
//! a dual-stack lab whose client (wireguard-go, inside address fd13::2) reaches the server's
//! IPv6 address through the tunnel, while the server has no route to the tunnel prefix at
//! all: the replies can come back only to the gateway's own LAN address, through the NAT.
//! ping6, an ICMPv6 port unreachable back to a UDP socket, and an HTTP download of 32 MiB over
//! IPv6 inside, byte-identical, the server's log showing only the gateway's IPv6 LAN address as
//! the source; the IPv6 NAT's counters by name over the control socket. One- and two-armed,
//! with wireguard-go and with boringtun as the client.
//!
//! Path MTU discovery for the LAN side, as `gateway_pmtu.rs` shows it for IPv4: the client
//! advertises MSS 1440 (`advmss` on its IPv6 route into `wg0`), so the server's segments are
//! 1500-byte IPv6 packets, larger than the tunnel's 1420. IPv6 is never fragmented on the way:
//! only the gateway's ICMPv6 packet too big (from its LAN address, quoting the segment as the
//! server sent it) makes the server's TCP shrink them; without it the download stalls. The
//! server's kernel shows the learned MTU for the gateway's address.
//!
//! Root only: `sudo -E cargo test -p dataplane --test gateway_nat66 -- --test-threads=1 --nocapture`.

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use lab::{
    prefix6, ClientKind, GatewayKind, Lab, Node, Topology, CLIENT_TUNNEL_ADDR6, GATEWAY_LAN_ADDR6,
    LAN_PREFIX_LEN6, SERVER_ADDR6, TUNNEL_MTU,
};
use ops::client::request_stats;
use ops::StatsSnapshot;

mod e2e_support;
use e2e_support::{
    dataplane, download_masqueraded, root_test, worker_counter, ControlSocket, E2e, Inside,
};

/// A dual-stack lab with IPv6 masquerading on, `client` as the client's WireGuard, and a
/// control socket.
fn nat66_lab(
    name: &'static str,
    topology: Topology,
    client: ClientKind,
    control: &ControlSocket,
) -> E2e {
    let gateway = dataplane(&format!("masquerade_ipv6 = true\n\n{}", control.toml()));
    let builder = Lab::builder(topology)
        .gateway(GatewayKind::Dataplane(gateway))
        .client(client)
        .ipv6(true);
    E2e::from_builder(name, builder)
}

/// Stats once the workers published what the NAT counted (they do about once a second).
fn stats_after(control: &Path, name: &str, at_least: u64) -> StatsSnapshot {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = request_stats(control).expect("stats over the control socket");
        if worker_counter(&s, name) >= at_least || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The server must not know the tunnel prefix: only the NAT can bring its replies back.
fn assert_server_has_no_route_to_the_tunnel(t: &Lab) {
    let routes = t
        .exec_in(Node::Server, &["ip", "-6", "route", "show"])
        .expect("ip -6 route");
    assert!(
        !routes.contains("fd13") && !routes.contains("default"),
        "the server has a route the test must not rely on:\n{routes}"
    );
    let (reachable, out) = t
        .try_exec_in(Node::Server, &["ip", "-6", "route", "get", "fd13::2"])
        .expect("ip -6 route get runs");
    assert!(!reachable, "the server can route to fd13::2:\n{out}");
}

/// ping6 from the client's tunnel address; the replies received.
fn ping6(t: &Lab, count: u32) -> u32 {
    let count_s = count.to_string();
    let dst = SERVER_ADDR6.to_string();
    let (_, out) = t
        .try_exec_in(
            Node::Client,
            &[
                "ping", "-6", "-n", "-c", &count_s, "-i", "0.2", "-W", "1", &dst,
            ],
        )
        .expect("ping -6 runs");
    lab::parse_ping_received(&out).unwrap_or_else(|| panic!("unexpected ping output:\n{out}"))
}

/// A connected UDP socket of the client sends to a closed port of the server: the server's
/// ICMPv6 port unreachable must come back through the NAT (the XDP program takes it by the
/// port quoted in it, the NAT reverts the quote) for the socket to see ECONNREFUSED.
const PORT_UNREACHABLE_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(1)
s.connect((sys.argv[1], 9))
for _ in range(5):
    try:
        s.send(b"anyone?")
        s.recv(64)
    except ConnectionRefusedError:
        print("refused", flush=True)
        sys.exit(0)
    except socket.timeout:
        pass
print("no error came back", flush=True)
"#;

fn ping6_and_download_32_mib(name: &'static str, topology: Topology, client: ClientKind) {
    let control = ControlSocket::new(name);
    let t = nat66_lab(name, topology, client, &control);
    assert_server_has_no_route_to_the_tunnel(&t);

    // The first echo may be lost while the gateway resolves the server's neighbour entry.
    let first = ping6(&t, 3);
    assert!(first >= 2, "ping6 through NAT66: {first} of 3 replies");
    assert_eq!(ping6(&t, 5), 5, "ping6 once the neighbours are known");

    download_masqueraded(&t, Inside::Ipv6, "blob6-32m.bin", 32 << 20);

    let dst = SERVER_ADDR6.to_string();
    let (_, out) = t
        .try_exec_in(Node::Client, &["python3", "-c", PORT_UNREACHABLE_PY, &dst])
        .expect("python3 runs");
    assert_eq!(
        out.trim(),
        "refused",
        "ICMPv6 port unreachable through NAT66"
    );

    // 32 MiB is over 20 000 segments each way.
    let s = stats_after(&control.0, "nat66_inbound", 20_000);
    let (out6, in6) = (
        worker_counter(&s, "nat66_outbound"),
        worker_counter(&s, "nat66_inbound"),
    );
    eprintln!("{name}: nat66_outbound {out6}, nat66_inbound {in6}");
    assert!(out6 >= 8 + 1_000, "nat66_outbound {out6}");
    assert!(in6 >= 8 + 20_000, "nat66_inbound {in6}");
    assert!(
        worker_counter(&s, "nat66_entries") >= 1,
        "a live IPv6 mapping"
    );
}

#[test]
fn nat66_ping6_and_download_32_mib_one_armed() {
    root_test("nat66_ping6_and_download_32_mib_one_armed", |name| {
        ping6_and_download_32_mib(name, Topology::OneArmed, ClientKind::WireguardGo)
    });
}

#[test]
fn nat66_ping6_and_download_32_mib_two_armed() {
    root_test("nat66_ping6_and_download_32_mib_two_armed", |name| {
        ping6_and_download_32_mib(name, Topology::TwoArmed, ClientKind::WireguardGo)
    });
}

#[test]
fn nat66_ping6_and_download_32_mib_boringtun_one_armed() {
    root_test(
        "nat66_ping6_and_download_32_mib_boringtun_one_armed",
        |name| ping6_and_download_32_mib(name, Topology::OneArmed, ClientKind::Boringtun),
    );
}

#[test]
fn nat66_ping6_and_download_32_mib_boringtun_two_armed() {
    root_test(
        "nat66_ping6_and_download_32_mib_boringtun_two_armed",
        |name| ping6_and_download_32_mib(name, Topology::TwoArmed, ClientKind::Boringtun),
    );
}

// ---- the tunnel is the bottleneck: ICMPv6 packet too big to the server ---------------------

/// The MTU `ip -6 route get dst` in `node` reports (a learned path MTU), if any:
/// `2001:db8:23::3 from :: dev eth0 src 2001:db8:23::2 metric 256 expires 597sec mtu 1420 ...`.
fn learned_mtu6(t: &Lab, node: Node, dst: Ipv6Addr) -> Option<u32> {
    let out = t
        .exec_in(node, &["ip", "-6", "route", "get", &dst.to_string()])
        .expect("ip -6 route get");
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "mtu")
        .and_then(|w| w[1].parse().ok())
}

fn tunnel_bottleneck(name: &'static str, topology: Topology) {
    let control = ControlSocket::new(name);
    let t = nat66_lab(name, topology, ClientKind::WireguardGo, &control);
    assert!(ping6(&t, 3) >= 2, "ping6 through NAT66");
    // The client's SYN offers MSS 1440 (1500 - 40 - 20): the server sends 1500-byte packets.
    let lan = prefix6(SERVER_ADDR6, LAN_PREFIX_LEN6);
    let src = CLIENT_TUNNEL_ADDR6.to_string();
    t.exec_in(
        Node::Client,
        &[
            "ip", "-6", "route", "replace", &lan, "dev", "wg0", "src", &src, "advmss", "1440",
        ],
    )
    .expect("ip -6 route replace ... advmss");
    assert_eq!(
        learned_mtu6(&t, Node::Server, GATEWAY_LAN_ADDR6),
        None,
        "the server knew a path MTU before"
    );
    download_masqueraded(&t, Inside::Ipv6, "blob6-mss1440-32m.bin", 32 << 20);
    let learned = learned_mtu6(&t, Node::Server, GATEWAY_LAN_ADDR6);
    let sent = stats_after(&control.0, "icmpv6_packet_too_big", 1);
    let too_big = worker_counter(&sent, "icmpv6_packet_too_big");
    eprintln!(
        "{name}: the server learned mtu {learned:?} for {GATEWAY_LAN_ADDR6}; \
         icmpv6_packet_too_big {too_big}"
    );
    assert!(too_big >= 1, "icmpv6_packet_too_big {too_big}");
    assert_eq!(
        learned,
        Some(TUNNEL_MTU),
        "the server's TCP did not get packet too big with the tunnel MTU from the gateway"
    );
}

#[test]
fn nat66_tunnel_bottleneck_packet_too_big_to_server_one_armed() {
    root_test(
        "nat66_tunnel_bottleneck_packet_too_big_to_server_one_armed",
        |n| tunnel_bottleneck(n, Topology::OneArmed),
    );
}

#[test]
fn nat66_tunnel_bottleneck_packet_too_big_to_server_two_armed() {
    root_test(
        "nat66_tunnel_bottleneck_packet_too_big_to_server_two_armed",
        |n| tunnel_bottleneck(n, Topology::TwoArmed),
    );
}
