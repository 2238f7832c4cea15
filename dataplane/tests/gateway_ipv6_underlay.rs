//! Issue 17, the outer half: a client reaches the gateway over an IPv6 underlay. The lab is
//! dual-stack (`LabBuilder::ipv6`) and the client's endpoint is the gateway's IPv6 address
//! (`[2001:db8::3]:51820` two-armed); IPv4 rides inside. The client pings the server and
//! downloads 32 MiB byte-identical; the XDP program's `redirect_wireguard` and the worker's
//! `decrypted`/`encrypted` counters (read by name from `dataplane stats --json`) show that the
//! fast path carried it, and `wg show` on the gateway has the client's IPv6 endpoint. Roaming:
//! a client that started on the IPv4 endpoint moves to the IPv6 one (`wg set ... endpoint`)
//! and pings at once; the replies reach it on the new path (it does not roam back), traffic
//! goes on, and the gateway follows it. wireguard-go and boringtun clients.
//!
//! Before the fast path took outer IPv6, the XDP program handed these datagrams to the
//! worker, which dropped them (`unsupported`): no handshake completed.
//! `sudo -E cargo test -p dataplane --test gateway_ipv6_underlay -- --test-threads=1`.

use std::process::Command;

use lab::{ClientKind, GatewayKind, Lab, Node, Topology, SERVER_ADDR};
use ops::StatsSnapshot;

mod e2e_support;

use e2e_support::{
    assert_pings, dataplane, download_through_tunnel, ping, root_test, ControlSocket, E2e,
};

const BIN: &str = env!("CARGO_BIN_EXE_dataplane");

/// A dual-stack lab running this build's gateway with a control socket; the client's endpoint
/// is the gateway's IPv6 one when `endpoint6`.
fn dual_stack(
    name: &'static str,
    topology: Topology,
    client: ClientKind,
    endpoint6: bool,
) -> (E2e, ControlSocket) {
    dual_stack_with(name, Lab::builder(topology).client(client), endpoint6)
}

/// [`dual_stack`] from a builder with more options.
fn dual_stack_with(
    name: &'static str,
    builder: lab::LabBuilder,
    endpoint6: bool,
) -> (E2e, ControlSocket) {
    let control = ControlSocket::new(name);
    let builder = builder
        .ipv6(true)
        .client_endpoint_ipv6(endpoint6)
        .gateway(GatewayKind::Dataplane(dataplane(&control.toml())));
    (E2e::from_builder(name, builder), control)
}

/// `dataplane stats --json` over the control socket.
fn stats(control: &ControlSocket) -> StatsSnapshot {
    let out = Command::new(BIN)
        .args(["stats", "--json", "--socket"])
        .arg(&control.0)
        .output()
        .expect("dataplane stats runs");
    assert!(
        out.status.success(),
        "dataplane stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stats JSON")
}

/// (XDP `redirect_wireguard` summed over interfaces, worker `decrypted`, worker `encrypted`).
fn fast_path_counts(s: &StatsSnapshot) -> (u64, u64, u64) {
    let xdp = s
        .xdp
        .iter()
        .map(|x| x.counters.get("redirect_wireguard").copied().unwrap_or(0))
        .sum();
    let worker = |c: &str| -> u64 {
        s.workers
            .iter()
            .map(|w| w.counters.get(c).copied().unwrap_or(0))
            .sum()
    };
    (xdp, worker("decrypted"), worker("encrypted"))
}

/// The endpoint the gateway's `wg show` has for the client.
fn gateway_sees_endpoint(t: &mut Lab) -> String {
    let out = t.wg(Node::Gateway, &["show", "wg0", "endpoints"]).unwrap();
    out.split_whitespace().nth(1).unwrap_or_default().to_owned()
}

/// Ping and a 32 MiB download over the IPv6 underlay, carried by the fast path.
fn ping_and_download_over_ipv6(name: &'static str, topology: Topology, client: ClientKind) {
    let (mut t, control) = dual_stack(name, topology, client, true);
    let client6 = format!("[{}]:", topology.client_underlay_addr6());
    assert!(
        gateway_sees_endpoint(&mut t).starts_with(&client6),
        "the gateway's endpoint for the client: {}",
        gateway_sees_endpoint(&mut t)
    );
    assert_pings(&t, None, SERVER_ADDR, 3);
    assert_eq!(ping(&t, Node::Client, None, SERVER_ADDR, 5), 5);
    let before = fast_path_counts(&stats(&control));
    let len = 32 << 20;
    download_through_tunnel(&t, "blob-32m.bin", len);
    let s = stats(&control);
    let after = fast_path_counts(&s);
    eprintln!("{name}: (redirect_wireguard, decrypted, encrypted) {before:?} -> {after:?}");
    // At least one full-size packet per 1420 bytes went to the client, sealed by a worker, and
    // the client's ACKs came in through the XDP program and were opened by a worker.
    let sealed = after.2 - before.2;
    assert!(sealed as usize >= len / 1420, "encrypted {sealed}");
    let opened = after.1 - before.1;
    assert!(opened > 200, "decrypted {opened}");
    assert!(after.0 - before.0 >= opened, "redirect_wireguard {after:?}");
    let w = &s.workers[0];
    assert_eq!(w.drops.get("unsupported").copied().unwrap_or(0), 0, "{w:?}");
    assert_eq!(w.drops.get("no_route").copied().unwrap_or(0), 0, "{w:?}");
    // Nothing of it went through the slow path's socket.
    assert_eq!(s.slow_path.get("outer_datagrams").copied().unwrap_or(0), 0);
}

/// The client starts on the IPv4 endpoint and moves to the IPv6 one; the gateway follows it
/// (an authenticated packet from the new address) and traffic goes on.
fn roams_from_ipv4_to_ipv6(name: &'static str, topology: Topology, client: ClientKind) {
    let (mut t, control) = dual_stack(name, topology, client, false);
    let client4 = format!("{}:", topology.client_underlay_addr());
    assert!(gateway_sees_endpoint(&mut t).starts_with(&client4));
    assert_pings(&t, None, SERVER_ADDR, 3);
    let client6 = format!("[{}]:", topology.client_underlay_addr6());
    let roams = |s: &StatsSnapshot| -> u64 {
        s.workers
            .iter()
            .map(|w| w.counters.get("endpoint_roamed").copied().unwrap_or(0))
            .sum()
    };
    let roamed_before = roams(&stats(&control));
    let seen = move_client_endpoint(&mut t, &topology.endpoint6().to_string(), &client6);
    assert!(
        seen.starts_with(&client6),
        "the gateway did not roam: {seen}"
    );
    // A worker moved the endpoint on the first packet from the new address.
    let roamed = roams(&stats(&control)) - roamed_before;
    assert!(roamed >= 1, "endpoint_roamed +{roamed}");
    let before = fast_path_counts(&stats(&control));
    assert_pings(&t, None, SERVER_ADDR, 5);
    let seen = gateway_sees_endpoint(&mut t);
    assert!(seen.starts_with(&client6), "roamed back: {seen}");
    download_through_tunnel(&t, "blob-4m.bin", 4 << 20);
    let after = fast_path_counts(&stats(&control));
    eprintln!("{name}: (redirect_wireguard, decrypted, encrypted) {before:?} -> {after:?}");
    assert!(
        after.2 - before.2 >= (4 << 20) / 1420,
        "{before:?} -> {after:?}"
    );
    // And back to IPv4: roaming goes both ways.
    let seen = move_client_endpoint(&mut t, &topology.endpoint().to_string(), &client4);
    assert!(seen.starts_with(&client4), "not back on IPv4: {seen}");
    assert_pings(&t, None, SERVER_ADDR, 3);
}

/// Points the client at `endpoint` and pings the server through the tunnel at once, then
/// returns the endpoint the gateway shows once it starts with `expect` (or after 2 s).
///
/// The first ping is the client's first packet from the new address, and its reply is sealed
/// before the slow path has published anything: the worker that opened the ping moved the
/// peer's learned endpoint (`fastpath/src/roaming.rs`). wireguard-go roams to the source of
/// any authenticated packet and its old path is still alive here, so a reply sealed to the old
/// endpoint (from the gateway's old address) would move it back: the client must still be at
/// `endpoint` after the pings, and they must be answered.
fn move_client_endpoint(t: &mut Lab, endpoint: &str, expect: &str) -> String {
    let gw_key = t.keys().gateway.public.clone();
    t.wg(
        Node::Client,
        &["set", "wg0", "peer", gw_key.as_str(), "endpoint", endpoint],
    )
    .unwrap();
    let answered = ping(t, Node::Client, None, SERVER_ADDR, 5);
    let client_at = t.wg(Node::Client, &["show", "wg0", "endpoints"]).unwrap();
    let client_at = client_at.split_whitespace().nth(1).unwrap_or_default();
    assert_eq!(
        client_at, endpoint,
        "the client roamed back to where a reply came from ({answered} of 5 pings answered)"
    );
    assert!(
        answered >= 4,
        "{answered} of 5 pings answered after the move"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut seen = gateway_sees_endpoint(t);
    while !seen.starts_with(expect) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        seen = gateway_sees_endpoint(t);
    }
    seen
}

/// A client whose IPv6 path to the gateway has a smaller MTU than its tunnel needs: its kernel
/// fragments every full-size datagram (IPv6 routers never do). The XDP program passes the
/// fragments (an extension header) to the kernel, which reassembles them into the slow path's
/// dual-stack socket; worker 0 runs them through the pipeline as IPv6 frames. Before the socket
/// was dual-stack it was IPv4 only and the datagrams were lost.
#[test]
fn fragmented_ipv6_outer_datagrams_are_accepted() {
    root_test("ipv6_outer_fragments", |name| {
        let builder = Lab::builder(Topology::TwoArmed).iperf3_server(true);
        let (mut t, control) = dual_stack_with(name, builder, true);
        assert_pings(&t, None, SERVER_ADDR, 3);
        t.exec_in(Node::Client, &["ip", "link", "set", "eth0", "mtu", "1400"])
            .unwrap();
        let up = t
            .iperf3_from_client(std::time::Duration::from_secs(3), false)
            .expect("iperf3 client -> server through the tunnel");
        let s = stats(&control);
        let reassembled = s.slow_path.get("outer_datagrams").copied().unwrap_or(0);
        eprintln!(
            "{name}: iperf3 upload {:.1} Mbit/s, {reassembled} IPv6 datagrams reassembled by the kernel",
            up / 1e6
        );
        assert!(
            up > 1e6,
            "upload through a fragmenting IPv6 path: only {up} bit/s"
        );
        assert!(reassembled > 100, "outer_datagrams {reassembled}");
    });
}

macro_rules! scenarios {
    ($($test:ident => $scenario:ident($topology:ident, $client:ident);)*) => {
        $(
            #[test]
            fn $test() {
                root_test(stringify!($test), |name| {
                    $scenario(name, Topology::$topology, ClientKind::$client)
                });
            }
        )*
    };
}

scenarios! {
    ipv6_endpoint_two_armed => ping_and_download_over_ipv6(TwoArmed, WireguardGo);
    ipv6_endpoint_one_armed => ping_and_download_over_ipv6(OneArmed, WireguardGo);
    roaming_ipv4_to_ipv6_two_armed => roams_from_ipv4_to_ipv6(TwoArmed, WireguardGo);
    boringtun_ipv6_endpoint_two_armed => ping_and_download_over_ipv6(TwoArmed, Boringtun);
}
