//! The host's own traffic while the gateway runs (issue 14, item 6): the gateway shares its
//! LAN address with the host (one-armed, as in the article), and the NAT's port range is a
//! part of that address's ports. Before the fix the XDP program took every packet to a port
//! or echo id in the range, so the host's pings with an id in it and a service listening on a
//! port in it went to the workers and were dropped (`nat_no_mapping`). The program now takes
//! only what a live mapping holds (src/xdp/live_ports.rs), and the range is reserved from the
//! host's ephemeral ports while the gateway runs (src/reserved_ports.rs).
//!
//! Shown with the real gateway and a wireguard-go client: 200 pings from the gateway's
//! namespace to the server with an echo id in the NAT range while the client pings the same
//! server through the tunnel, every reply arriving on both sides; a TCP listener on a port in
//! the range accepting a connection from the server; the reservation present while running
//! and gone after.
//!
//! Skips with a message when not root. `sudo -E cargo test -p dataplane --test
//! gateway_host_traffic -- --nocapture --test-threads=1`.

use lab::{Node, Topology, GATEWAY_LAN_ADDR, SERVER_ADDR};

mod e2e_support;
use e2e_support::{assert_pings, ping, root_test, Background, E2e};

/// An echo id and a TCP port inside the default NAT range (61000-65535).
const HOST_ECHO_ID: &str = "62000";
const HOST_TCP_PORT: u16 = 62500;
const RESERVED: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

#[test]
fn host_pings_and_listener_in_the_nat_range_keep_working() {
    root_test("host_traffic_in_nat_range", |name| {
        let mut t = E2e::build(name, Topology::OneArmed, false, "");
        assert_pings(&t, None, SERVER_ADDR, 3);
        let reserved = t.exec_in(Node::Gateway, &["cat", RESERVED]).unwrap();
        assert!(
            reserved.contains("61000-65535"),
            "NAT range not reserved while the gateway runs: {reserved:?}"
        );

        let gw_ns = t.ns_name(Node::Gateway);
        let server = SERVER_ADDR.to_string();
        let host_ping = Background::start(
            &gw_ns,
            &[
                "ping",
                "-n",
                "-c",
                "200",
                "-i",
                "0.01",
                "-W",
                "2",
                "-e",
                HOST_ECHO_ID,
                &server,
            ],
        );
        let tunnel = ping(&t, Node::Client, None, SERVER_ADDR, 20);
        let host_out = host_ping.output();
        let host = lab::parse_ping_received(&host_out)
            .unwrap_or_else(|| panic!("unexpected ping output:\n{host_out}"));
        eprintln!(
            "{name}: host 200 pings (id {HOST_ECHO_ID}): {host} replies; tunnel 20: {tunnel}"
        );
        assert_eq!(
            host, 200,
            "the host's pings with an id in the NAT range:\n{host_out}"
        );
        assert_eq!(
            tunnel, 20,
            "the client's pings through the tunnel meanwhile"
        );

        let port = HOST_TCP_PORT.to_string();
        let bind = GATEWAY_LAN_ADDR.to_string();
        let _listener = Background::start(
            &gw_ns,
            &[
                "python3",
                "-m",
                "http.server",
                &port,
                "--bind",
                &bind,
                "--directory",
                "/",
            ],
        );
        let url = format!("http://{GATEWAY_LAN_ADDR}:{HOST_TCP_PORT}/");
        let mut answered = false;
        for _ in 0..20 {
            let (ok, _) = t
                .try_exec_in(
                    Node::Server,
                    &[
                        "curl",
                        "-sS",
                        "--fail",
                        "--max-time",
                        "2",
                        "-o",
                        "/dev/null",
                        &url,
                    ],
                )
                .unwrap();
            if ok {
                answered = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        assert!(
            answered,
            "a host service on port {HOST_TCP_PORT} (in the NAT range) unreachable from the LAN"
        );

        t.stop_gateway().unwrap();
        let after = t.exec_in(Node::Gateway, &["cat", RESERVED]).unwrap();
        assert!(
            !after.contains("61000-65535"),
            "the reservation outlived the gateway: {after:?}"
        );
    });
}
