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

use lab::{
    ClientKind, GatewayKind, Lab, Node, Topology, GATEWAY_LAN_ADDR, ROUTED_CLIENT_ADDR6,
    SERVER_ADDR,
};

mod e2e_support;
use e2e_support::{
    assert_pings, dataplane, download_masqueraded, download_through_tunnel, gateway_stats,
    root_test, worker_counter, ControlSocket, E2e, Inside,
};

/// The MTU of the router's link towards the client.
const PATH_MTU: u32 = 1400;

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
        let s = gateway_stats(&control);
        let fragmented = worker_counter(&s, "outer_fragmented_ipv6");
        eprintln!(
            "{name}: outer_fragmented_ipv6 {fragmented}, encrypted {}, tx {}, fragment_no_frame {}",
            worker_counter(&s, "encrypted"),
            worker_counter(&s, "tx"),
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
        download_masqueraded(&t, Inside::Ipv6, "blob6-32m.bin", len);
        let after = worker_counter(&gateway_stats(&control), "outer_fragmented_ipv6");
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
