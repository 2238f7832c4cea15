//! Fragmented NAT return traffic reaches the tunnel client whole and from the right source.
//!
//! One-armed like the article, wireguard-go client. A UDP server in the LAN answers a small
//! datagram with 4000 bytes: its kernel sends three fragments (1500-byte LAN MTU), of which only
//! the first carries the NAT port. `ping -s 3000` from the client: the server's echo reply comes
//! back as fragments too. The XDP program takes the first fragment of a live mapping and
//! remembers its datagram, so the later ones follow it to the worker; the NAT translates them as
//! a chain, and the worker splits each translated fragment that is longer than the tunnel MTU
//! (1420) at 8-byte boundaries, as the kernel does when it forwards into wg0.
//!
//! Before: every fragment went to the gateway's kernel, which reassembled the reply, found no
//! socket on the NAT port and answered the server with ICMP port unreachable; the client got
//! nothing (and no ping reply).
//!
//! Checked by name: the XDP counter `redirect_nat_fragment`, the workers'
//! `fragmented_into_tunnel`, and the gateway kernel's `Icmp: OutDestUnreachs` (no port
//! unreachable to the server). Then the server sends its fragments last first: the later ones
//! overtake their first, go to the kernel (`pass_fragment`) and the datagram is lost, as said
//! in README.md. Skips with a message when not root. `sudo -E cargo test -p
//! dataplane --test gateway_return_fragments -- --nocapture --test-threads=1`.

use lab::{Lab, Node, Topology, GATEWAY_LAN_ADDR, SERVER_ADDR};
use ops::client::request_stats;

mod e2e_support;
use e2e_support::{assert_pings, ping, root_test, wait_for_file, Background, ControlSocket, E2e};

/// Answers every UDP datagram on port `argv[1]` with 4000 pattern bytes (the kernel fragments
/// it for the 1500-byte LAN); touches `argv[2]` once bound.
const BIG_REPLY_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
open(sys.argv[2], "w").close()
reply = bytes((i * 7 + 3) % 251 for i in range(4000))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(reply, a)
"#;

/// Sends a small datagram to `argv[1]:argv[2]` (up to three times) and prints
/// "<length> <source> <intact|corrupt>" of the first answer, or "NO REPLY".
const SMALL_REQUEST_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
want = bytes((i * 7 + 3) % 251 for i in range(4000))
for _ in range(3):
    s.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
    try:
        d, a = s.recvfrom(65535)
        print(len(d), a[0], "intact" if d == want else "corrupt")
        break
    except socket.timeout:
        pass
else:
    print("NO REPLY")
"#;

/// Answers every UDP datagram on port `argv[1]` with 4000 bytes in three fragments sent last
/// first (a path that reorders), built by hand on a raw socket; touches `argv[2]` once bound.
const REORDERED_REPLY_SERVER: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
open(sys.argv[2], "w").close()
ident = 0x4242
while True:
    d, (addr, port) = s.recvfrom(65535)
    # UDP checksum 0: none (RFC 768), so the datagram needs no pseudo-header sum here.
    dgram = struct.pack("!HHHH", int(sys.argv[1]), port, 8 + 4000, 0) + bytes(4000)
    pieces = [dgram[o:o + 1480] for o in range(0, len(dgram), 1480)]
    ident += 1
    for k in reversed(range(len(pieces))):
        mf = 0x2000 if k + 1 < len(pieces) else 0
        # The kernel fills in the total length and the header checksum (IP_HDRINCL).
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, ident, mf | (k * 1480 // 8), 64, 17, 0,
                          socket.inet_aton("0.0.0.0"), socket.inet_aton(addr))
        raw.sendto(hdr + pieces[k], (addr, 0))
"#;

/// `Icmp: OutDestUnreachs` of the gateway's namespace (per network namespace in the kernel).
fn out_dest_unreachs(t: &Lab) -> u64 {
    let snmp = t
        .exec_in(Node::Gateway, &["cat", "/proc/net/snmp"])
        .unwrap();
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp: "));
    let (names, values) = (icmp.next().unwrap_or(""), icmp.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "OutDestUnreachs")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no Icmp OutDestUnreachs in /proc/net/snmp:\n{snmp}"))
}

#[test]
fn fragmented_return_traffic_reaches_the_client() {
    root_test("return_fragments", |name| {
        let control = ControlSocket::new(name);
        let toml = control.toml();
        let t = E2e::build(name, Topology::OneArmed, false, &toml);
        assert_pings(&t, None, SERVER_ADDR, 3);
        let unreachs_before = out_dest_unreachs(&t);

        let ready = t.dir().join("big-reply-server-ready");
        let ready_s = ready.to_string_lossy().into_owned();
        let _server = Background::start(
            &t.ns_name(Node::Server),
            &["python3", "-c", BIG_REPLY_SERVER, "5002", &ready_s],
        );
        wait_for_file(&ready, "server");

        let server = SERVER_ADDR.to_string();
        let answer = t
            .exec_in(
                Node::Client,
                &["python3", "-c", SMALL_REQUEST_CLIENT, &server, "5002"],
            )
            .unwrap();
        let (_, ping_out) = t
            .try_exec_in(
                Node::Client,
                &[
                    "ping", "-n", "-s", "3000", "-c", "3", "-i", "0.2", "-W", "2", &server,
                ],
            )
            .unwrap();
        let big_pings = lab::parse_ping_received(&ping_out)
            .unwrap_or_else(|| panic!("unexpected ping output:\n{ping_out}"));
        // Small pings still answered, after the big ones.
        let small_pings = ping(&t, Node::Client, None, SERVER_ADDR, 3);
        let unreachs = out_dest_unreachs(&t) - unreachs_before;

        let stats = request_stats(&control.0).expect("stats from the gateway's control socket");
        let worker_sum = |name: &str| -> u64 {
            stats
                .workers
                .iter()
                .map(|w| {
                    w.counters.get(name).copied().unwrap_or(0)
                        + w.drops.get(name).copied().unwrap_or(0)
                })
                .sum()
        };
        let xdp_sum =
            |name: &str| -> u64 { stats.xdp.iter().filter_map(|x| x.counters.get(name)).sum() };
        eprintln!(
            "{name}: answer {:?}; ping -s 3000 {big_pings}/3, ping {small_pings}/3; \
             gateway OutDestUnreachs +{unreachs}; xdp redirect_nat_fragment {}, pass_fragment {}; \
             workers fragmented_into_tunnel {}, fragment_no_frame {}, nat_fragment_unknown {}",
            answer.trim(),
            xdp_sum("redirect_nat_fragment"),
            xdp_sum("pass_fragment"),
            worker_sum("fragmented_into_tunnel"),
            worker_sum("fragment_no_frame"),
            worker_sum("nat_fragment_unknown"),
        );
        assert_eq!(
            answer.trim(),
            format!("4000 {SERVER_ADDR} intact"),
            "the 4000-byte reply arrived whole, from the server"
        );
        assert_eq!(
            big_pings, 3,
            "ping -s 3000: echo replies come back as fragments"
        );
        assert_eq!(small_pings, 3, "small pings after the big ones");
        assert_eq!(
            unreachs, 0,
            "the gateway's kernel answered fragments of a live mapping with destination unreachable"
        );
        // The 4000-byte reply is 3 fragments, each echo reply 3: 2 later fragments each.
        assert!(
            xdp_sum("redirect_nat_fragment") >= 2 + 3 * 2,
            "later fragments redirected by the XDP program"
        );
        // Of each, the first two (1500 bytes on the LAN) do not fit the tunnel's 1420.
        assert!(
            worker_sum("fragmented_into_tunnel") >= 2 + 3 * 2,
            "fragments split for the tunnel"
        );
        assert_eq!(worker_sum("fragment_no_frame"), 0);

        // Reordered: the later fragments arrive before their first, so the XDP program does
        // not know them yet and passes them to the kernel (`pass_fragment`), which holds them
        // until ipfrag_time and drops them. The datagram is lost; nothing else happens.
        let passed_before = xdp_sum("pass_fragment");
        let ready = t.dir().join("reordered-reply-server-ready");
        let ready_s = ready.to_string_lossy().into_owned();
        let _reordering = Background::start(
            &t.ns_name(Node::Server),
            &["python3", "-c", REORDERED_REPLY_SERVER, "5003", &ready_s],
        );
        wait_for_file(&ready, "server");
        let reordered = t
            .exec_in(
                Node::Client,
                &["python3", "-c", SMALL_REQUEST_CLIENT, &server, "5003"],
            )
            .unwrap();
        let stats = request_stats(&control.0).expect("stats from the gateway's control socket");
        let passed: u64 = stats
            .xdp
            .iter()
            .filter_map(|x| x.counters.get("pass_fragment"))
            .sum::<u64>()
            - passed_before;
        eprintln!(
            "{name}: reordered answer {:?}, later fragments passed to the kernel {passed}; \
             NAT address {GATEWAY_LAN_ADDR}",
            reordered.trim()
        );
        assert_eq!(reordered.trim(), "NO REPLY", "a reordered datagram is lost");
        // Three requests, each answered with two later fragments ahead of the first.
        assert_eq!(
            passed,
            3 * 2,
            "reordered later fragments counted as pass_fragment"
        );
        assert_eq!(
            out_dest_unreachs(&t) - unreachs_before,
            0,
            "no destination unreachable for the reordered fragments either"
        );
    });
}
