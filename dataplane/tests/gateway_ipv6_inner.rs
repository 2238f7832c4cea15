//! IPv6 inside the tunnel, routed by the fast path: a dual-stack lab (`LabBuilder::ipv6`) with
//! the real `dataplane` binary and wireguard-go or boringtun as the client (fd13::2), in the routed layout
//! the README describes: the server routes the tunnel prefix fd13::/64 to the gateway's LAN
//! address, the gateway forwards IPv6, nothing is translated.
//!
//! Shown, one- and two-armed (and two-armed over an IPv6 underlay): ping6 from the client to the server, a 32 MiB HTTP download over
//! IPv6 (bytes compared; the server sees the client's own tunnel address), and `ping -6 -t 1`
//! answered with time exceeded from the gateway's tunnel address. Two-armed only (one-armed,
//! the gateway's single `eth0` also carries the WireGuard datagrams, which a 1280-byte link
//! would not): path MTU discovery, with the LAN down to 1280 bytes, `ping -6 -s 1300` gets
//! packet too big from the gateway and the client's kernel learns the path MTU. The workers'
//! counters, by name, show that the fast path forwarded and answered (`forwarded_ipv6`,
//! `icmpv6_time_exceeded`, `icmpv6_packet_too_big`), not the kernel. Replies come back through
//! the gateway's kernel into wg0, as routed IPv4 does.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use lab::{
    ClientKind, GatewayKind, Lab, Node, Topology, CLIENT_TUNNEL_ADDR6, GATEWAY_LAN_ADDR6,
    GATEWAY_TUNNEL_ADDR6, SERVER_ADDR6, TUNNEL_PREFIX_LEN6,
};

mod e2e_support;
use e2e_support::{
    dataplane, download_inside, gateway_stats, root_test, worker_counter, ControlSocket, E2e,
    Inside,
};

/// The LAN bottleneck of the path MTU check: IPv6's minimum link MTU.
const LAN_MTU: u32 = 1280;

/// The sum over the workers of the counter `name`, from the gateway's control socket.
fn counter(control: &ControlSocket, name: &str) -> u64 {
    worker_counter(&gateway_stats(control), name)
}

/// The tunnel's IPv6 prefix, e.g. `fd13::/64`.
fn tunnel_prefix6() -> String {
    let mask = u128::MAX << (128 - u32::from(TUNNEL_PREFIX_LEN6));
    let net = Ipv6Addr::from(u128::from(CLIENT_TUNNEL_ADDR6) & mask);
    format!("{net}/{TUNNEL_PREFIX_LEN6}")
}

/// The family of the client's endpoint (the outer packets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Underlay {
    Ipv4,
    Ipv6,
}

/// The dual-stack lab with the dataplane gateway, routed: forwarding on in the gateway, the
/// server's route for the tunnel prefix via the gateway's LAN address.
fn routed_lab(
    name: &'static str,
    topology: Topology,
    underlay: Underlay,
    client: ClientKind,
    control: &ControlSocket,
) -> E2e {
    let builder = Lab::builder(topology)
        .gateway(GatewayKind::Dataplane(dataplane(&control.toml())))
        .client(client)
        .ipv6(true)
        .client_endpoint_ipv6(underlay == Underlay::Ipv6);
    let t = E2e::from_builder(name, builder);
    t.exec_in(
        Node::Gateway,
        &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
    )
    .expect("IPv6 forwarding on in the gateway");
    let via = GATEWAY_LAN_ADDR6.to_string();
    t.exec_in(
        Node::Server,
        &["ip", "-6", "route", "add", &tunnel_prefix6(), "via", &via],
    )
    .expect("the server's route for the tunnel prefix");
    t
}

/// `ping -6` from the client with `extra` options; (replies, output).
fn ping6(t: &Lab, extra: &[&str], count: u32) -> (u32, String) {
    let count_s = count.to_string();
    let dst = SERVER_ADDR6.to_string();
    let mut argv = vec!["ping", "-6", "-n", "-c", &count_s, "-i", "0.3", "-W", "1"];
    argv.extend_from_slice(extra);
    argv.push(&dst);
    let (_, out) = t.try_exec_in(Node::Client, &argv).expect("ping runs");
    let got = lab::parse_ping_received(&out).unwrap_or_else(|| panic!("ping output:\n{out}"));
    (got, out)
}

fn routed_ipv6_inside(
    name: &'static str,
    topology: Topology,
    underlay: Underlay,
    client: ClientKind,
) {
    let control = ControlSocket::new(name);
    let t = routed_lab(name, topology, underlay, client, &control);

    // ping6: the first echo may be lost while the gateway's NDP resolves the server.
    let (got, out) = ping6(&t, &[], 5);
    assert!(got >= 4, "ping6 {SERVER_ADDR6}: {got} of 5 replies\n{out}");
    let forwarded = counter(&control, "forwarded_ipv6");
    assert!(
        forwarded >= 4,
        "the echo requests were not routed by the fast path: forwarded_ipv6 {forwarded}"
    );

    // 32 MiB over IPv6 inside: the client's ACKs are routed by the workers, the data comes
    // back through the gateway's kernel into wg0.
    let to_slow = counter(&control, "to_slowpath");
    let sources = download_inside(&t, Inside::Ipv6, "blob6-32m.bin", 32 << 20).sources;
    let client = IpAddr::from(CLIENT_TUNNEL_ADDR6);
    assert!(
        !sources.is_empty() && sources.iter().all(|s| *s == client),
        "routed, not translated: the server saw {sources:?}, not only {client}"
    );
    let forwarded_now = counter(&control, "forwarded_ipv6");
    let to_slow_now = counter(&control, "to_slowpath");
    eprintln!(
        "{name}: forwarded_ipv6 +{}, to_slowpath +{} during the download",
        forwarded_now - forwarded,
        to_slow_now - to_slow
    );
    assert!(
        forwarded_now - forwarded >= 1000,
        "the download's packets from the client were not routed by the fast path: \
         forwarded_ipv6 +{}",
        forwarded_now - forwarded
    );
    assert!(
        to_slow_now - to_slow < 100,
        "the client's packets went through the kernel: to_slowpath +{}",
        to_slow_now - to_slow
    );

    // Hop limit 1: time exceeded from the gateway's tunnel address.
    let (got, out) = ping6(&t, &["-t", "1"], 2);
    let from = format!("From {GATEWAY_TUNNEL_ADDR6}");
    assert!(
        got == 0 && out.contains(&from) && out.contains("Time exceeded"),
        "ping -6 -t 1 must get time exceeded from {GATEWAY_TUNNEL_ADDR6}:\n{out}"
    );
    let exceeded = counter(&control, "icmpv6_time_exceeded");
    assert!(exceeded >= 1, "icmpv6_time_exceeded {exceeded}");

    if topology == Topology::OneArmed {
        eprintln!(
            "{name}: path MTU not checked one-armed: the gateway's single eth0 carries the \
             WireGuard datagrams too, which a {LAN_MTU}-byte link would not"
        );
        return;
    }
    path_mtu_discovery(name, &t, &control);
}

/// The LAN goes down to 1280 bytes: a 1348-byte echo request (inside the tunnel's 1420) gets
/// packet too big from the gateway's fast path, the client's kernel learns the path MTU and
/// fragments the next ones itself (fragments go through the gateway's kernel).
fn path_mtu_discovery(name: &str, t: &Lab, control: &ControlSocket) {
    let mtu = LAN_MTU.to_string();
    for (node, ifname) in [(Node::Gateway, "lan0"), (Node::Server, "eth0")] {
        t.exec_in(node, &["ip", "link", "set", "dev", ifname, "mtu", &mtu])
            .expect("ip link set mtu");
    }
    let dst = SERVER_ADDR6.to_string();
    let learned = || {
        let out = t
            .exec_in(Node::Client, &["ip", "-6", "route", "get", &dst])
            .expect("ip -6 route get");
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == "mtu")
            .and_then(|w| w[1].parse::<u32>().ok())
    };
    assert_eq!(learned(), None, "the client knew a path MTU before");
    // The gateway's route cache follows the link's MTU from a notification: give it a moment.
    std::thread::sleep(Duration::from_millis(300));
    let (got, out) = ping6(t, &["-s", "1300"], 4);
    let too_big = counter(control, "icmpv6_packet_too_big");
    eprintln!("{name}: ping -6 -s 1300 over a {LAN_MTU}-byte LAN:\n{out}");
    assert!(
        too_big >= 1,
        "no packet too big from the fast path: icmpv6_packet_too_big {too_big}\n{out}"
    );
    assert!(
        out.contains(&format!("From {GATEWAY_TUNNEL_ADDR6}")) && out.contains("Packet too big"),
        "ping must report packet too big from {GATEWAY_TUNNEL_ADDR6}:\n{out}"
    );
    assert_eq!(
        learned(),
        Some(LAN_MTU),
        "the client's kernel learned the path MTU"
    );
    assert!(
        got >= 2,
        "after learning the path MTU, the client's fragmented echoes are answered: {got} of 4"
    );
}

#[test]
fn routed_ipv6_inside_one_armed() {
    root_test("routed_ipv6_inside_one_armed", |name| {
        routed_ipv6_inside(
            name,
            Topology::OneArmed,
            Underlay::Ipv4,
            ClientKind::WireguardGo,
        )
    });
}

#[test]
fn routed_ipv6_inside_two_armed() {
    root_test("routed_ipv6_inside_two_armed", |name| {
        routed_ipv6_inside(
            name,
            Topology::TwoArmed,
            Underlay::Ipv4,
            ClientKind::WireguardGo,
        )
    });
}

/// IPv6 in IPv6: the client's endpoint is the gateway's IPv6 WAN address; the errors go back
/// with an IPv6 outer header.
#[test]
fn routed_ipv6_inside_over_ipv6_underlay_two_armed() {
    root_test("routed_ipv6_inside_over_ipv6_underlay_two_armed", |name| {
        routed_ipv6_inside(
            name,
            Topology::TwoArmed,
            Underlay::Ipv6,
            ClientKind::WireguardGo,
        )
    });
}

#[test]
fn routed_ipv6_inside_boringtun_one_armed() {
    root_test("routed_ipv6_inside_boringtun_one_armed", |name| {
        routed_ipv6_inside(
            name,
            Topology::OneArmed,
            Underlay::Ipv4,
            ClientKind::Boringtun,
        )
    });
}

#[test]
fn routed_ipv6_inside_boringtun_two_armed() {
    root_test("routed_ipv6_inside_boringtun_two_armed", |name| {
        routed_ipv6_inside(
            name,
            Topology::TwoArmed,
            Underlay::Ipv4,
            ClientKind::Boringtun,
        )
    });
}

/// boringtun over the IPv6 underlay too: IPv6 in IPv6.
#[test]
fn routed_ipv6_inside_over_ipv6_underlay_boringtun_two_armed() {
    root_test(
        "routed_ipv6_inside_over_ipv6_underlay_boringtun_two_armed",
        |name| {
            routed_ipv6_inside(
                name,
                Topology::TwoArmed,
                Underlay::Ipv6,
                ClientKind::Boringtun,
            )
        },
    );
}
