//! Outer IPv6 path MTU (issue 17): the client reaches the gateway's IPv6 endpoint through a
//! router whose client-side link is 1400 bytes (`LabBuilder::wan_router`), so the gateway's
//! full-size datagrams (1500 bytes for a 1420-byte inner packet) do not fit. IPv6 routers do
//! not fragment: the router answers each with a Packet Too Big, the gateway's kernel records
//! the path MTU (the slow path's dual-stack socket on the listen port is the one the ICMPv6
//! handler finds), the route cache reads it (`ip -6 route get` shows `mtu 1400`), and the
//! workers cut the datagrams into fragments that fit (`outer_fragmented_ipv6`), as the kernel
//! does for kernel WireGuard. A 32 MiB download with IPv4 inside and one with IPv6 inside
//! (NAT66, so the workers carry the return traffic) arrive byte-identical.
//!
//! Before: the download stalled (curl timed out after 60 s), every full-size datagram to the
//! client lost at the router. Root only, wireguard-go client:
//! `sudo -E cargo test -p dataplane --test gateway_ipv6_pmtu -- --test-threads=1 --nocapture`.

use std::path::Path;
use std::time::Instant;

use lab::{
    ClientKind, GatewayKind, Lab, Node, Topology, GATEWAY_LAN_ADDR, ROUTED_CLIENT_ADDR6,
    SERVER_ADDR,
};
use ops::client::request_stats;
use ops::StatsSnapshot;

mod e2e_support;
use e2e_support::{
    assert_pings, assert_same_file, dataplane, download_through_tunnel, pattern, root_test,
    ControlSocket, E2e,
};

/// The MTU of the router's link towards the client.
const PATH_MTU: u32 = 1400;

/// The sum over workers of the counter `name`.
fn counter(s: &StatsSnapshot, name: &str) -> u64 {
    s.workers
        .iter()
        .map(|w| w.counters.get(name).copied().unwrap_or(0))
        .sum()
}

fn stats(control: &Path) -> StatsSnapshot {
    request_stats(control).expect("stats over the control socket")
}

/// `len` pattern bytes downloaded from the server's IPv6 address through the tunnel (IPv6
/// inside), byte-identical.
fn download6(t: &Lab, file: &str, len: usize) {
    t.write_server_file(file, &pattern(len)).unwrap();
    let url = t.server_url6(file);
    let got = t.dir().join(format!("downloaded-{file}"));
    let got_s = got.to_string_lossy().into_owned();
    let t0 = Instant::now();
    let (ok, out) = t
        .try_exec_in(
            Node::Client,
            &[
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "60",
                "-o",
                &got_s,
                &url,
            ],
        )
        .unwrap();
    assert!(ok, "curl {url} through the tunnel failed: {out}");
    let served = t.dir().join("www").join(file);
    assert_same_file(&served, &got, "the download with IPv6 inside");
    eprintln!(
        "{file}: {len} bytes with IPv6 inside in {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_file(&got);
    let _ = std::fs::remove_file(&served);
}

#[test]
fn downloads_cross_an_ipv6_path_narrower_than_the_gateways_datagrams() {
    root_test("ipv6_pmtu", |name| {
        let control = ControlSocket::new(name);
        let gateway = dataplane(&format!("masquerade_ipv6 = true\n\n{}", control.toml()));
        let builder = Lab::builder(Topology::TwoArmed)
            .client(ClientKind::WireguardGo)
            .client_endpoint_ipv6(true)
            .wan_router(PATH_MTU)
            .gateway(GatewayKind::Dataplane(gateway));
        let mut t = E2e::from_builder(name, builder);
        let endpoint = t.wg(Node::Gateway, &["show", "wg0", "endpoints"]).unwrap();
        let client6 = format!("[{}]:", t.client_underlay_addr6());
        assert!(
            endpoint.contains(&client6),
            "the client is on its routed IPv6 endpoint: {endpoint}"
        );
        assert_eq!(t.client_underlay_addr6(), ROUTED_CLIENT_ADDR6);
        assert_pings(&t, None, SERVER_ADDR, 3);

        // IPv4 inside (source NAT to 172.23.0.3), 32 MiB.
        let len = 32 << 20;
        download_through_tunnel(&t, "blob-32m.bin", len);
        let route = t
            .exec_in(
                Node::Gateway,
                &["ip", "-6", "route", "get", &ROUTED_CLIENT_ADDR6.to_string()],
            )
            .unwrap();
        eprintln!("{name}: gateway: ip -6 route get {ROUTED_CLIENT_ADDR6}: {route}");
        assert!(
            route.contains(&format!("mtu {PATH_MTU}")),
            "the gateway's kernel learned no path MTU: {route}"
        );
        let s = stats(&control.0);
        let fragmented = counter(&s, "outer_fragmented_ipv6");
        eprintln!(
            "{name}: outer_fragmented_ipv6 {fragmented}, encrypted {}, tx {}, fragment_no_frame {}",
            counter(&s, "encrypted"),
            counter(&s, "tx"),
            s.workers
                .iter()
                .map(|w| w.drops.get("fragment_no_frame").copied().unwrap_or(0))
                .sum::<u64>()
        );
        // Most of the download is full-size packets: each was cut in two.
        assert!(
            fragmented as usize >= len / 1420 / 2,
            "outer_fragmented_ipv6 {fragmented}"
        );

        // IPv6 inside (NAT66 in the workers), 32 MiB.
        download6(&t, "blob6-32m.bin", len);
        let after = counter(&stats(&control.0), "outer_fragmented_ipv6");
        assert!(
            (after - fragmented) as usize >= len / 1420 / 2,
            "outer_fragmented_ipv6 {fragmented} -> {after}"
        );
        // The NAT's source stays the gateway's, whatever the path.
        assert!(t
            .server_request_sources()
            .unwrap()
            .iter()
            .all(|s| *s == GATEWAY_LAN_ADDR));
    });
}
