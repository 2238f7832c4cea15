//! Masquerading, nothing from the tunnel leaves the gateway with a tunnel source address.
//! Before the fix the fast path handed inner packets it did not translate (other protocols
//! than TCP/UDP/ICMP, IP options, fragments) to the kernel through wg0; with forwarding on, as
//! on a host that runs containers, the kernel forwarded them with the client's private source.
//! Now other protocols are dropped and counted (`nat_unsupported_protocol`) and IP options are
//! translated like any header.
//!
//! Two-armed, wireguard-go client, `ip_forward` on in the gateway's namespace: the client sends
//! GRE and SCTP (raw sockets) and pings with the record-route option; a listener in the
//! server's namespace sees every IPv4 packet arriving. The option pings are answered, nothing
//! arrives from 10.13.13.x, and the gateway counts the dropped protocols.
//!
//! Fragments from the tunnel (the client's kernel fragments a 3000-byte UDP datagram for the
//! 1420-byte tunnel) are translated as a chain, without reassembly: the first fragment like a
//! whole packet, the later ones by the address the first got. The server receives the whole
//! datagram from the gateway's address and its answer reaches the client; before, the
//! fragments went to the kernel and left with the client's address (then were dropped,
//! `nat_fragment`).
//!
//! Skips with a message when not root. `sudo -E cargo test -p dataplane --test
//! gateway_nat_exceptions -- --nocapture --test-threads=1`.

use std::process::{Command, Stdio};

use lab::{Node, Topology, GATEWAY_LAN_ADDR, SERVER_ADDR};
use ops::client::request_stats;

mod e2e_support;
use e2e_support::{assert_pings, root_test, wait_for_file, Background, ControlSocket, E2e};

/// Prints `FROM <src> <proto>` for every IPv4 packet arriving in the namespace from the tunnel's
/// addresses, until the UDP datagram "STOP" to port 9 arrived and the stragglers had a second.
const LISTENER: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.settimeout(0.2)
open(sys.argv[1], "w").close()
stop = None
while stop is None or time.time() < stop:
    try:
        d, a = s.recvfrom(65535)
    except socket.timeout:
        continue
    if a[2] == socket.PACKET_OUTGOING:
        continue
    ip = d[14:]
    if len(ip) < 20:
        continue
    src, proto, hl = socket.inet_ntoa(ip[12:16]), ip[9], (ip[0] & 15) * 4
    if src.startswith("10.13.13."):
        print("FROM", src, proto, flush=True)
    if proto == 17 and ip[hl + 2:hl + 4] == b"\x00\x09" and ip[hl + 8:hl + 12] == b"STOP":
        stop = time.time() + 1
print("END", flush=True)
"#;

/// Sends one datagram of IP protocol `argv[2]` to `argv[1]` through a raw socket.
const RAW_SEND: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, int(sys.argv[2]))
for _ in range(3):
    s.sendto(b"\x00" * 32, (sys.argv[1], 0))
"#;

#[test]
fn untranslated_protocols_and_options_never_leave_with_a_tunnel_source() {
    root_test("nat_exceptions", |name| {
        let control = ControlSocket::new(name);
        let toml = control.toml();
        let t = E2e::build(name, Topology::TwoArmed, false, &toml);
        assert_pings(&t, None, SERVER_ADDR, 3);
        // A host running containers forwards: what the fast path hands the kernel goes on.
        t.exec_in(Node::Gateway, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .unwrap();

        let ready = t.dir().join("listener-ready");
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns_name(Node::Server)])
            .args(["python3", "-c", LISTENER])
            .arg(&ready)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("listener starts");
        let mut listener = Background(child);
        wait_for_file(&ready, "listener");

        let server = SERVER_ADDR.to_string();
        for proto in ["47", "132"] {
            t.exec_in(Node::Client, &["python3", "-c", RAW_SEND, &server, proto])
                .unwrap();
        }
        let (_, out) = t
            .try_exec_in(
                Node::Client,
                &[
                    "ping", "-n", "-R", "-c", "3", "-i", "0.2", "-W", "2", &server,
                ],
            )
            .unwrap();
        let options_replies = lab::parse_ping_received(&out)
            .unwrap_or_else(|| panic!("unexpected ping output:\n{out}"));
        // The end marker, through the tunnel and the NAT like the rest.
        t.exec_in(
            Node::Client,
            &[
                "python3",
                "-c",
                "import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\
                 .sendto(b'STOP', (sys.argv[1], 9))",
                &server,
            ],
        )
        .unwrap();
        let out = std::mem::replace(
            &mut listener.0,
            Command::new("true").spawn().expect("true runs"),
        )
        .wait_with_output()
        .expect("listener output");
        let seen = String::from_utf8_lossy(&out.stdout).into_owned();
        let stats = request_stats(&control.0).expect("stats from the gateway's control socket");
        let dropped: u64 = stats
            .workers
            .iter()
            .filter_map(|w| w.drops.get("nat_unsupported_protocol"))
            .sum();
        eprintln!(
            "{name}: record-route pings answered {options_replies}/3; \
             nat_unsupported_protocol {dropped}; listener:\n{seen}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            seen.contains("END"),
            "the listener never saw the end marker"
        );
        assert!(
            !seen.contains("FROM"),
            "packets left the gateway with a tunnel source address:\n{seen}"
        );
        assert_eq!(options_replies, 3, "pings with IP options (record route)");
        assert_eq!(dropped, 6, "GRE and SCTP datagrams dropped and counted");
    });
}

/// Answers every UDP datagram on port `argv[1]` with "<its length> <its source address>".
const UDP_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
open(sys.argv[2], "w").close()
while True:
    d, a = s.recvfrom(65535)
    s.sendto(("%d %s" % (len(d), a[0])).encode(), a)
"#;

/// Sends a datagram of `argv[3]` bytes to `argv[1]:argv[2]` without DF (the kernel fragments
/// it), up to three times, and prints the first answer.
const UDP_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
s.settimeout(2)
for _ in range(3):
    s.sendto(bytes(int(sys.argv[3])), (sys.argv[1], int(sys.argv[2])))
    try:
        print(s.recvfrom(100)[0].decode())
        break
    except socket.timeout:
        pass
else:
    print("NO REPLY")
"#;

#[test]
fn fragmented_datagrams_from_the_tunnel_are_translated() {
    root_test("nat_inner_fragments", |name| {
        let control = ControlSocket::new(name);
        let toml = control.toml();
        let t = E2e::build(name, Topology::TwoArmed, false, &toml);
        assert_pings(&t, None, SERVER_ADDR, 3);
        t.exec_in(Node::Gateway, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .unwrap();

        let ready = t.dir().join("udp-server-ready");
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns_name(Node::Server)])
            .args(["python3", "-c", UDP_SERVER, "5001"])
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("UDP server starts");
        let _server = Background(child);
        wait_for_file(&ready, "server");
        let server = SERVER_ADDR.to_string();
        let answer = t
            .exec_in(
                Node::Client,
                &["python3", "-c", UDP_CLIENT, &server, "5001", "3000"],
            )
            .unwrap();
        let stats = request_stats(&control.0).expect("stats from the gateway's control socket");
        let drops = |reason: &str| -> u64 {
            stats
                .workers
                .iter()
                .filter_map(|w| w.drops.get(reason))
                .sum()
        };
        eprintln!(
            "{name}: answer {:?}; nat_fragment {}, nat_fragment_unknown {}",
            answer.trim(),
            drops("nat_fragment"),
            drops("nat_fragment_unknown")
        );
        assert_eq!(
            answer.trim(),
            format!("3000 {GATEWAY_LAN_ADDR}"),
            "the server got the whole datagram from the gateway's address, its answer arrived"
        );
    });
}
