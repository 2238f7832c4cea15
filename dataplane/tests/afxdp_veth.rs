//! Root integration tests of the AF_XDP edge on veth pairs between network namespaces this
//! test creates (and deletes, also on panic): the XDP program redirects WireGuard UDP to the
//! socket and passes everything else to the kernel; frames sent from the socket reach the
//! peer; two sockets on one shared UMEM forward between interfaces; detach leaves nothing;
//! a second instance is refused; a stale program of a killed instance is replaced; a foreign
//! program is left alone.
//!
//! Skipped (with a printed reason) when not run as root.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use dataplane::afxdp::{attach_program, BoundMode, Frame, Mode, XskConfig, XskGroup, RX_OFFSET};
use dataplane::instance_lock::LockError;
use dataplane::xdp::{
    AttachMode, LivePortsWriter, RedirectConfig, XdpCounter, XdpError, XdpProgram,
};
use nat::{PortObserver, Protocol};

const LISTEN_PORT: u16 = 51820;

fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: AF_XDP veth tests need root (network namespaces, XDP attach)");
            return;
        }
    };
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A gateway namespace with `n` veth links, link `i` to its own peer namespace:
/// gateway side `<tag>g<i>` 10.77.<i>.1/24 MAC 02:00:00:00:<i>:01, peer side `<tag>h<i>`
/// 10.77.<i>.2/24 MAC 02:00:00:00:<i>:02. Deleted on drop.
struct Lab {
    tag: String,
    namespaces: Vec<String>,
}

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

impl Lab {
    fn new(links: usize) -> Lab {
        let tag = format!(
            "dx{}{}",
            std::process::id() % 100_000,
            LAB_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            tag: tag.clone(),
            namespaces: Vec::new(),
        };
        let gw = lab.gw_ns();
        run(&["ip", "netns", "add", &gw]);
        lab.namespaces.push(gw.clone());
        run(&["ip", "-n", &gw, "link", "set", "lo", "up"]);
        for i in 0..links {
            let peer = lab.peer_ns(i);
            run(&["ip", "netns", "add", &peer]);
            lab.namespaces.push(peer.clone());
            let (g, h) = (lab.gw_if(i), lab.peer_if(i));
            run(&[
                "ip",
                "link",
                "add",
                &g,
                "address",
                &mac_str(gw_mac(i)),
                "netns",
                &gw,
                "type",
                "veth",
                "peer",
                "name",
                &h,
                "address",
                &mac_str(peer_mac(i)),
                "netns",
                &peer,
            ]);
            run(&[
                "ip",
                "-n",
                &gw,
                "addr",
                "add",
                &format!("10.77.{i}.1/24"),
                "dev",
                &g,
            ]);
            run(&[
                "ip",
                "-n",
                &peer,
                "addr",
                "add",
                &format!("10.77.{i}.2/24"),
                "dev",
                &h,
            ]);
            run(&["ip", "-n", &gw, "link", "set", &g, "up"]);
            run(&["ip", "-n", &peer, "link", "set", &h, "up"]);
            run(&["ip", "-n", &peer, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn gw_ns(&self) -> String {
        format!("{}gw", self.tag)
    }
    fn peer_ns(&self, i: usize) -> String {
        format!("{}p{i}", self.tag)
    }
    fn gw_if(&self, i: usize) -> String {
        format!("{}g{i}", self.tag)
    }
    fn peer_if(&self, i: usize) -> String {
        format!("{}h{i}", self.tag)
    }

    /// `ip -d link show` of gateway interface `i`.
    fn gw_link_details(&self, i: usize) -> String {
        run(&[
            "ip",
            "-n",
            &self.gw_ns(),
            "-d",
            "link",
            "show",
            "dev",
            &self.gw_if(i),
        ])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn gw_mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, i as u8, 1]
}
fn peer_mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, i as u8, 2]
}
fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Moves the calling thread into network namespace `ns`.
fn enter_netns(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    // SAFETY: setns on a valid namespace fd; affects only the calling thread's network view.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a new thread inside namespace `ns`.
fn spawn_in<T: Send + 'static>(
    ns: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::spawn(move || {
        enter_netns(&ns);
        f()
    })
}

fn wg_config() -> RedirectConfig {
    RedirectConfig {
        listen_port: Some(LISTEN_PORT),
        ..RedirectConfig::default()
    }
}

fn small_xsk() -> XskConfig {
    XskConfig {
        ring_size: 256,
        frames_per_socket: 1024,
        batch_size: 32,
    }
}

/// Parsed view of an Ethernet/IPv4/UDP frame: (src ip, dst ip, src port, dst port, payload).
fn parse_udp(frame: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, Vec<u8>)> {
    let p = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst) = match p.net? {
        etherparse::NetSlice::Ipv4(ip) => {
            (ip.header().source_addr(), ip.header().destination_addr())
        }
        _ => return None,
    };
    match p.transport? {
        etherparse::TransportSlice::Udp(u) => Some((
            src,
            dst,
            u.source_port(),
            u.destination_port(),
            u.payload().to_vec(),
        )),
        _ => None,
    }
}

/// Writes a complete Ethernet/IPv4/UDP frame (checksums computed) at `buf[at..]`; returns
/// its length.
#[allow(clippy::too_many_arguments)]
fn write_udp(
    buf: &mut [u8],
    at: usize,
    eth: ([u8; 6], [u8; 6]),
    ip: (Ipv4Addr, Ipv4Addr),
    ports: (u16, u16),
    payload: &[u8],
) -> usize {
    let builder = etherparse::PacketBuilder::ethernet2(eth.0, eth.1)
        .ipv4(ip.0.octets(), ip.1.octets(), 64)
        .udp(ports.0, ports.1);
    let len = builder.size(payload.len());
    let mut out = &mut buf[at..at + len];
    builder.write(&mut out, payload).expect("frame fits");
    len
}

/// What the gateway-side loop saw.
struct GwReport {
    bound: BoundMode,
    attach: AttachMode,
    received: Vec<Vec<u8>>,
    counters: dataplane::xdp::XdpCounters,
    stats_ok: bool,
    free_before: usize,
    free_after: usize,
}

/// Gateway side of the echo test: one socket on link 0; every datagram to the listen port is
/// answered from the socket with the same payload, built 32 bytes *before* where it was
/// received (so the tx path must honour `set_packet`).
fn gw_echo_loop(
    ifname: String,
    mode: Mode,
    ready: mpsc::Sender<()>,
    stop: mpsc::Receiver<()>,
) -> GwReport {
    let program = attach_program(&ifname, mode, &wg_config()).expect("attach");
    let mut group = XskGroup::new(0, &[&program], mode, &small_xsk()).expect("xsk group");
    let bound = group.socket_info(0).mode;
    let free_before = group.free_frames();
    ready.send(()).unwrap();

    let mut batch: Vec<Frame> = Vec::with_capacity(64);
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stop.try_recv().is_err() && Instant::now() < deadline {
        group.rx(0, &mut batch, 64);
        for mut f in batch.drain(..) {
            assert_eq!(
                f.start(),
                RX_OFFSET,
                "received packets start after the XDP headroom"
            );
            let bytes = group.packet(&f).to_vec();
            received.push(bytes.clone());
            match parse_udp(&bytes) {
                Some((src, dst, sport, dport, payload)) if dport == LISTEN_PORT => {
                    let at = f.start() - 32;
                    let len = write_udp(
                        group.buf_mut(&mut f),
                        at,
                        (gw_mac(0), peer_mac(0)),
                        (dst, src),
                        (dport, sport),
                        &payload,
                    );
                    f.set_packet(at, len).unwrap();
                    group.tx(0, f).expect("tx");
                }
                _ => group.release(f),
            }
        }
        group.service().expect("service");
        group.wait_readable(20).expect("poll");
    }
    // Let completions come back so the pool is whole again.
    for _ in 0..50 {
        group.service().unwrap();
        if group.free_frames() + 256 >= free_before {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let stats_ok = group.stats(0).is_ok();
    let counters = program.counters().expect("counters");
    let free_after = group.free_frames();
    let attach = program.mode();
    drop(group);
    drop(program);
    GwReport {
        bound,
        attach,
        received,
        counters,
        stats_ok,
        free_before,
        free_after,
    }
}

/// Sends `n` frames 10.77.0.2:40000 -> 10.77.0.1:LISTEN_PORT with an 802.1Q tag (VLAN 100)
/// from `ns` out of `ifname`, through a raw packet socket (python3, as the lab's probes).
fn send_tagged_udp(ns: &str, ifname: &str, n: usize) {
    let script = format!(
        r#"
import socket, struct
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s > 0xffff: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
payload = b"tagged"
udp = struct.pack("!HHHH", 40000, {port}, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 bytes([10, 77, 0, 2]), bytes([10, 77, 0, 1]))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
eth = bytes({dst:?}) + bytes({src:?}) + struct.pack("!HHH", 0x8100, 100, 0x0800)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("{ifname}", 0))
for _ in range({n}): s.send(eth + ip + udp)
"#,
        port = LISTEN_PORT,
        dst = gw_mac(0),
        src = peer_mac(0),
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sending tagged frames: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn echo_test(mode: Mode, expect_bound: BoundMode, expect_attach: AttachMode) {
    let lab = Lab::new(1);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel();
    let ifname = lab.gw_if(0);
    let gw = spawn_in(lab.gw_ns(), move || {
        gw_echo_loop(ifname, mode, ready_tx, stop_rx)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("gateway side ready");

    // A kernel UDP socket on the gateway, on a port the program must pass.
    let kernel_rx = spawn_in(lab.gw_ns(), || {
        let s = UdpSocket::bind("10.77.0.1:5555").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        s.recv_from(&mut buf)
            .map(|(n, _)| buf[..n].to_vec())
            .unwrap_or_default()
    });

    let peer = spawn_in(lab.peer_ns(0), || {
        let s = UdpSocket::bind("10.77.0.2:40000").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let gw = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), LISTEN_PORT);
        let mut echoed = None;
        for _ in 0..30 {
            s.send_to(b"hello-xdp", gw).unwrap();
            let mut buf = [0u8; 64];
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                echoed = Some((buf[..n].to_vec(), from));
                break;
            }
        }
        // To a port the program passes: must reach the kernel socket, not ours.
        for _ in 0..5 {
            s.send_to(b"to-kernel", "10.77.0.1:5555").unwrap();
            thread::sleep(Duration::from_millis(50));
        }
        echoed
    });
    let echoed = peer.join().unwrap();
    let kernel_got = kernel_rx.join().unwrap();
    // 802.1Q-tagged UDP to the WireGuard port (sent raw: this kernel has no VLAN devices):
    // passed to the kernel, never redirected (the pipeline takes untagged frames only; the
    // frame check below fails on any frame the socket saw that is not the plain echo).
    send_tagged_udp(&lab.peer_ns(0), &lab.peer_if(0), 5);

    // Ping is answered by the gateway's kernel while the program and socket are in place.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.peer_ns(0),
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            "10.77.0.1",
        ])
        .output()
        .unwrap();

    stop_tx.send(()).unwrap();
    let report = gw.join().unwrap();

    assert_eq!(report.bound, expect_bound, "socket mode");
    assert_eq!(report.attach, expect_attach, "XDP attach mode");
    let (payload, from) = echoed.expect("no echo came back from the AF_XDP socket");
    assert_eq!(payload, b"hello-xdp");
    assert_eq!(from.to_string(), format!("10.77.0.1:{LISTEN_PORT}"));
    assert_eq!(
        kernel_got, b"to-kernel",
        "non-WireGuard UDP must reach the kernel"
    );
    assert!(
        ping.status.success(),
        "ping through XDP_PASS failed: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // Every frame the socket saw was WireGuard-port UDP from the peer, with the right bytes.
    assert!(!report.received.is_empty());
    for frame in &report.received {
        let (src, dst, sport, dport, payload) = parse_udp(frame).expect("UDP frame");
        assert_eq!(
            (src, dst, sport, dport),
            (
                Ipv4Addr::new(10, 77, 0, 2),
                Ipv4Addr::new(10, 77, 0, 1),
                40000,
                LISTEN_PORT
            )
        );
        assert_eq!(payload, b"hello-xdp");
        assert_eq!(&frame[0..6], &gw_mac(0), "destination MAC");
        assert_eq!(&frame[6..12], &peer_mac(0), "source MAC");
    }
    let c = &report.counters;
    assert_eq!(
        c.get(XdpCounter::RedirectWireguard),
        report.received.len() as u64,
        "{c:?}"
    );
    assert!(c.get(XdpCounter::PassNotIp) >= 1, "ARP passed: {c:?}");
    assert!(
        c.get(XdpCounter::PassVlan) >= 5,
        "tagged frames passed: {c:?}"
    );
    assert!(
        c.get(XdpCounter::PassNotOurs) >= 2,
        "ICMP + UDP 5555: {c:?}"
    );
    assert!(report.stats_ok, "XDP_STATISTICS readable");
    assert_eq!(report.free_after, report.free_before, "no frame lost");

    // Detached on drop.
    let link = lab.gw_link_details(0);
    assert!(
        !link.contains("prog/xdp"),
        "XDP program still attached: {link}"
    );
}

#[test]
fn afxdp_copy_mode_redirects_wireguard_passes_the_rest_and_transmits() {
    require_root!();
    echo_test(Mode::Copy, BoundMode::Copy, AttachMode::Driver);
}

#[test]
fn afxdp_skb_mode_redirects_wireguard_passes_the_rest_and_transmits() {
    require_root!();
    echo_test(Mode::Skb, BoundMode::Skb, AttachMode::Generic);
}

#[test]
fn afxdp_auto_mode_on_veth_falls_back_to_copy() {
    require_root!();
    // veth has native XDP but no zero-copy AF_XDP: auto must settle on copy.
    echo_test(Mode::Auto, BoundMode::Copy, AttachMode::Driver);
}

#[test]
fn afxdp_zerocopy_mode_on_veth_is_refused_with_a_bind_error() {
    require_root!();
    let lab = Lab::new(1);
    let ifname = lab.gw_if(0);
    let err = spawn_in(lab.gw_ns(), move || {
        let program = attach_program(&ifname, Mode::ZeroCopy, &wg_config()).expect("attach");
        XskGroup::new(0, &[&program], Mode::ZeroCopy, &small_xsk())
            .err()
            .map(|e| e.to_string())
    })
    .join()
    .unwrap();
    let err = err.expect("zero-copy bind on veth should fail");
    assert!(err.contains("zerocopy"), "{err}");
    let link = lab.gw_link_details(0);
    assert!(!link.contains("prog/xdp"), "left attached: {link}");
}

#[test]
fn afxdp_two_sockets_share_a_umem_and_forward_between_interfaces() {
    require_root!();
    let lab = Lab::new(2);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (if0, if1) = (lab.gw_if(0), lab.gw_if(1));
    let gw = spawn_in(lab.gw_ns(), move || {
        let p0 = attach_program(&if0, Mode::Copy, &wg_config()).unwrap();
        let p1 = attach_program(&if1, Mode::Copy, &wg_config()).unwrap();
        let mut group = XskGroup::new(0, &[&p0, &p1], Mode::Copy, &small_xsk()).unwrap();
        ready_tx.send(()).unwrap();
        let mut batch = Vec::with_capacity(64);
        let mut forwarded = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while stop_rx.try_recv().is_err() && Instant::now() < deadline {
            group.rx(0, &mut batch, 64);
            for mut f in batch.drain(..) {
                let Some((_, _, _, _, payload)) = parse_udp(group.packet(&f)) else {
                    group.release(f);
                    continue;
                };
                // Re-address to peer 1 in place (same frame, other socket: no copy).
                let at = f.start();
                let len = write_udp(
                    group.buf_mut(&mut f),
                    at,
                    (gw_mac(1), peer_mac(1)),
                    (Ipv4Addr::new(10, 77, 1, 1), Ipv4Addr::new(10, 77, 1, 2)),
                    (LISTEN_PORT, 41000),
                    &payload,
                );
                f.set_packet(at, len).unwrap();
                group.tx(1, f).unwrap();
                forwarded += 1;
            }
            group.service().unwrap();
            group.wait_readable(20).unwrap();
        }
        forwarded
    });
    ready_rx.recv_timeout(Duration::from_secs(20)).unwrap();

    let receiver = spawn_in(lab.peer_ns(1), || {
        let s = UdpSocket::bind("10.77.1.2:41000").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 64];
        s.recv_from(&mut buf)
            .map(|(n, from)| (buf[..n].to_vec(), from.to_string()))
            .ok()
    });
    // The receiving peer must know the gateway's MAC without ARP through our socket: ARP is
    // passed to the kernel, which answers it; sending from the gateway needs no ARP at all.
    let sender = spawn_in(lab.peer_ns(0), || {
        let s = UdpSocket::bind("10.77.0.2:0").unwrap();
        for _ in 0..40 {
            s.send_to(b"across-arms", "10.77.0.1:51820").unwrap();
            thread::sleep(Duration::from_millis(100));
        }
    });
    let got = receiver.join().unwrap();
    stop_tx.send(()).unwrap();
    sender.join().unwrap();
    let forwarded = gw.join().unwrap();
    let (payload, from) = got.expect("nothing arrived on the second arm");
    assert_eq!(payload, b"across-arms");
    assert_eq!(from, format!("10.77.1.1:{LISTEN_PORT}"));
    assert!(forwarded >= 1);
}

/// What the gateway side of the placement test saw of each frame it sent.
struct Placement {
    start: usize,
    len: usize,
    /// The packet as queued.
    bytes: Vec<u8>,
    /// The frame's bytes once it came back from the completion ring, if it was found.
    after: Option<Vec<u8>>,
}

const CANARY: u8 = 0x5a;

/// Frames queued with their packet before `TX_OFFSET` (a sealed datagram that grew in front of
/// a return packet) and after it (headers stripped) are sent from where the packet starts:
/// the peer receives exactly each datagram, and the frame, once back from the completion
/// ring, still has every byte outside the packet as it was (nothing was moved to
/// `TX_OFFSET`). Fails with a layer that moves packets to a fixed offset before queuing.
#[test]
fn afxdp_tx_sends_from_the_packet_start_without_moving_it() {
    require_root!();
    let lab = Lab::new(1);
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = spawn_in(lab.peer_ns(0), move || {
        let s = UdpSocket::bind("10.77.0.2:40000").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while got.len() < 2 {
            match s.recv_from(&mut buf) {
                Ok((n, from)) => got.push((buf[..n].to_vec(), from.to_string())),
                Err(_) => break,
            }
        }
        got
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    let ifname = lab.gw_if(0);
    let sent = spawn_in(lab.gw_ns(), move || {
        let program = attach_program(&ifname, Mode::Copy, &wg_config()).unwrap();
        let mut group = XskGroup::new(0, &[&program], Mode::Copy, &small_xsk()).unwrap();
        let free_before = group.free_frames();
        let mut sent = Vec::new();
        for (start, payload) in [
            (RX_OFFSET - 64, &b"grew-in-front"[..]),
            (RX_OFFSET + 100, &b"stripped"[..]),
        ] {
            let mut f = group.alloc().expect("a free frame");
            group.buf_mut(&mut f).fill(CANARY);
            let len = write_udp(
                group.buf_mut(&mut f),
                start,
                (gw_mac(0), peer_mac(0)),
                (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2)),
                (LISTEN_PORT, 40000),
                payload,
            );
            f.set_packet(start, len).unwrap();
            let bytes = group.packet(&f).to_vec();
            group.tx(0, f).expect("queued");
            sent.push(Placement {
                start,
                len,
                bytes,
                after: None,
            });
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while group.free_frames() < free_before && Instant::now() < deadline {
            group.service().unwrap();
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(group.free_frames(), free_before, "both frames completed");
        let stats = group.stats(0).unwrap();
        assert_eq!(stats.tx_invalid_descs, 0, "{stats:?}");
        // Every free frame, to find the two that were sent (canary before their packet).
        let mut frames = Vec::new();
        while let Some(f) = group.alloc() {
            frames.push(f);
        }
        for p in &mut sent {
            p.after = frames.iter().find_map(|f| {
                let b = group.buf(f);
                let ours = b[..14].iter().all(|&x| x == CANARY)
                    && b[p.start..p.start + p.len] == p.bytes[..];
                ours.then(|| b.to_vec())
            });
        }
        for f in frames {
            group.release(f);
        }
        sent
    })
    .join()
    .unwrap();
    let got = receiver.join().unwrap();

    let payloads: Vec<&[u8]> = got.iter().map(|(p, _)| &p[..]).collect();
    assert_eq!(
        payloads,
        [&b"grew-in-front"[..], &b"stripped"[..]],
        "the peer receives exactly each datagram"
    );
    for (_, from) in &got {
        assert_eq!(from, &format!("10.77.0.1:{LISTEN_PORT}"));
    }
    for p in &sent {
        let after = p
            .after
            .as_ref()
            .unwrap_or_else(|| panic!("frame with its packet at {} not found", p.start));
        let outside = after[..p.start]
            .iter()
            .chain(&after[p.start + p.len..])
            .filter(|&&b| b != CANARY)
            .count();
        assert_eq!(
            outside, 0,
            "packet at {} ({} bytes): bytes outside it were changed (moved to TX_OFFSET?)",
            p.start, p.len
        );
    }
}

#[test]
fn afxdp_second_instance_on_the_same_interface_is_refused_naming_the_pid() {
    require_root!();
    let lab = Lab::new(1);
    let ifname = lab.gw_if(0);
    let (err, first_still_attached) = spawn_in(lab.gw_ns(), move || {
        let first = attach_program(&ifname, Mode::Copy, &wg_config()).unwrap();
        let second = XdpProgram::attach(&ifname, AttachMode::Driver, &wg_config());
        let err = match second {
            Err(e) => e,
            Ok(_) => panic!("second instance was allowed"),
        };
        let id = first.program_id();
        (err, id != 0)
    })
    .join()
    .unwrap();
    match &err {
        XdpError::Lock(LockError::Held { pid, .. }) => assert_eq!(*pid, Some(std::process::id())),
        other => panic!("expected a lock refusal, got {other}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(first_still_attached);
    let link = lab.gw_link_details(0);
    assert!(!link.contains("prog/xdp"), "left attached: {link}");
}

/// Child side of the stale-program test: attaches, reports, and waits to be killed. Does
/// nothing unless started by `afxdp_stale_program_of_a_killed_instance_is_replaced`.
#[test]
#[ignore = "helper process for the stale-program test"]
fn afxdp_stale_child_process() {
    let Ok(spec) = std::env::var("DP_AFXDP_STALE_CHILD") else {
        return;
    };
    let (ns, ifname) = spec.split_once(':').unwrap();
    enter_netns(ns);
    let program = attach_program(ifname, Mode::Copy, &wg_config()).unwrap();
    println!("ATTACHED {}", program.program_id());
    thread::sleep(Duration::from_secs(120));
    drop(program);
}

#[test]
fn afxdp_stale_program_of_a_killed_instance_is_replaced() {
    require_root!();
    let lab = Lab::new(1);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "afxdp_stale_child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "DP_AFXDP_STALE_CHILD",
            format!("{}:{}", lab.gw_ns(), lab.gw_if(0)),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stale_id = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest prints "test <name> ... " on the same line before the child's output.
        if let Some((_, id)) = line.split_once("ATTACHED ") {
            stale_id = Some(id.trim().parse::<u32>().unwrap());
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL: no chance to detach
    child.wait().unwrap();
    let stale_id = stale_id.expect("child did not attach");
    let link = lab.gw_link_details(0);
    assert!(
        link.contains(&format!("prog/xdp id {stale_id}")),
        "stale program should still be attached after SIGKILL: {link}"
    );

    let ifname = lab.gw_if(0);
    let (replaced, new_id) = spawn_in(lab.gw_ns(), move || {
        let p = attach_program(&ifname, Mode::Copy, &wg_config()).expect("restart after kill");
        (p.replaced_stale_program(), p.program_id())
    })
    .join()
    .unwrap();
    assert_eq!(replaced, Some(stale_id));
    assert_ne!(new_id, stale_id);
    let link = lab.gw_link_details(0);
    assert!(!link.contains("prog/xdp"), "left attached: {link}");
}

#[test]
fn afxdp_foreign_program_is_left_alone_and_refused_with_removal_advice() {
    require_root!();
    let dir = std::env::temp_dir().join(format!("dp-foreign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("foreign.bpf.c");
    let obj = dir.join("foreign.bpf.o");
    std::fs::write(
        &src,
        "__attribute__((section(\"xdp\"), used)) int someone_elses(void *ctx) { return 2; }\n\
         char LICENSE[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    run(&[
        "clang",
        "-target",
        "bpf",
        "-O2",
        "-c",
        src.to_str().unwrap(),
        "-o",
        obj.to_str().unwrap(),
    ]);
    let lab = Lab::new(1);
    run(&[
        "ip",
        "-n",
        &lab.gw_ns(),
        "link",
        "set",
        "dev",
        &lab.gw_if(0),
        "xdpgeneric",
        "obj",
        obj.to_str().unwrap(),
        "sec",
        "xdp",
    ]);
    let ifname = lab.gw_if(0);
    let err = spawn_in(lab.gw_ns(), move || {
        attach_program(&ifname, Mode::Skb, &wg_config())
            .err()
            .map(|e| e.to_string())
    })
    .join()
    .unwrap()
    .expect("attaching over a foreign program must fail");
    assert!(err.contains("someone_elses"), "{err}");
    assert!(
        err.contains(&format!("ip link set dev {} xdpgeneric off", lab.gw_if(0))),
        "{err}"
    );
    let link = lab.gw_link_details(0);
    assert!(
        link.contains("prog/xdp"),
        "foreign program was removed: {link}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends raw Ethernet frames out of `ifname` (in the calling thread's namespace).
fn send_raw_frames(ifname: &str, frames: &[Vec<u8>]) {
    let c = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: `c` is a valid C string for the duration of the call.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(ifindex, 0, "no interface {ifname}");
    // SAFETY: plain socket creation; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    for frame in frames {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: buffer and address pointers are valid for the lengths given.
        let rc = unsafe {
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            rc,
            frame.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd) };
}

fn frame_with(
    build: impl FnOnce(etherparse::PacketBuilderStep<etherparse::IpHeaders>) -> Vec<u8>,
) -> Vec<u8> {
    build(
        etherparse::PacketBuilder::ethernet2(peer_mac(0), gw_mac(0)).ipv4(
            [10, 77, 0, 2],
            [10, 77, 0, 1],
            64,
        ),
    )
}

fn udp_frame(sport: u16, dport: u16) -> Vec<u8> {
    frame_with(|b| {
        let b = b.udp(sport, dport);
        let mut v = Vec::new();
        b.write(&mut v, b"nat").unwrap();
        v
    })
}

/// An ICMP error from 10.77.0.2 about a UDP datagram 10.77.0.1:`embedded_sport` -> 10.77.0.2:53.
fn icmp_error_frame(embedded_sport: u16) -> Vec<u8> {
    icmp_error_frame_of(
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ),
        embedded_sport,
    )
}

/// An ICMP error of type `kind` from 10.77.0.2 about a UDP datagram
/// 10.77.0.1:`embedded_sport` -> 10.77.0.2:53.
fn icmp_error_frame_of(kind: etherparse::Icmpv4Type, embedded_sport: u16) -> Vec<u8> {
    let mut embedded = Vec::new();
    etherparse::PacketBuilder::ipv4([10, 77, 0, 1], [10, 77, 0, 2], 64)
        .udp(embedded_sport, 53)
        .write(&mut embedded, b"q")
        .unwrap();
    frame_with(|b| {
        let b = b.icmpv4(kind);
        let mut v = Vec::new();
        b.write(&mut v, &embedded).unwrap();
        v
    })
}

/// Return traffic is taken only for ports a NAT mapping holds (bits the workers' NAT
/// observer sets); the rest of the range, like everything outside it, is the host's.
#[test]
fn afxdp_nat_return_traffic_is_redirected_by_port_echo_id_and_embedded_port() {
    require_root!();
    let lab = Lab::new(1);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let ifname = lab.gw_if(0);
    let gw = spawn_in(lab.gw_ns(), move || {
        let config = RedirectConfig {
            listen_port: Some(LISTEN_PORT),
            nat_v4: Some(Ipv4Addr::new(10, 77, 0, 1)),
            nat_ports: Some(40000..=40999),
            ..RedirectConfig::default()
        };
        let program = attach_program(&ifname, Mode::Copy, &config).unwrap();
        let live = LivePortsWriter::new(vec![Arc::new(program.live_ports().unwrap())]);
        for (protocol, port) in [
            (Protocol::Udp, 40500),
            (Protocol::Tcp, 40001),
            (Protocol::Icmp, 40002),
            (Protocol::Udp, 40003),
            // Mapped, then released: its traffic is the host's again.
            (Protocol::Udp, 40700),
        ] {
            live.mapped(protocol, port);
        }
        live.unmapped(Protocol::Udp, 40700);
        let mut group = XskGroup::new(0, &[&program], Mode::Copy, &small_xsk()).unwrap();
        ready_tx.send(()).unwrap();
        let mut batch = Vec::with_capacity(64);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while stop_rx.try_recv().is_err() && Instant::now() < deadline {
            group.rx(0, &mut batch, 64);
            for f in batch.drain(..) {
                seen.push(group.packet(&f).to_vec());
                group.release(f);
            }
            group.service().unwrap();
            group.wait_readable(20).unwrap();
        }
        (seen, program.counters().unwrap())
    });
    ready_rx.recv_timeout(Duration::from_secs(20)).unwrap();

    let ours = vec![
        udp_frame(53, 40500),
        frame_with(|b| {
            let b = b.tcp(80, 40001, 1, 1024);
            let mut v = Vec::new();
            b.write(&mut v, &[]).unwrap();
            v
        }),
        frame_with(|b| {
            let b = b.icmpv4_echo_reply(40002, 1);
            let mut v = Vec::new();
            b.write(&mut v, b"ping").unwrap();
            v
        }),
        icmp_error_frame(40003),
        frame_with(|b| {
            let b = b.icmpv4(etherparse::Icmpv4Type::TimestampReply(
                etherparse::icmpv4::TimestampMessage {
                    id: 40002,
                    seq: 1,
                    originate_timestamp: 1,
                    receive_timestamp: 2,
                    transmit_timestamp: 3,
                },
            ));
            let mut v = Vec::new();
            b.write(&mut v, &[]).unwrap();
            v
        }),
        icmp_error_frame_of(
            etherparse::Icmpv4Type::ParameterProblem(
                etherparse::icmpv4::ParameterProblemHeader::PointerIndicatesError(0),
            ),
            40003,
        ),
    ];
    let not_ours = vec![
        udp_frame(53, 41000),
        // In the range but held by no mapping (the host's own): passed.
        udp_frame(53, 40600),
        udp_frame(53, 40700),
        frame_with(|b| {
            let b = b.tcp(80, 40500, 1, 1024); // UDP 40500 is mapped, TCP 40500 is not
            let mut v = Vec::new();
            b.write(&mut v, &[]).unwrap();
            v
        }),
        icmp_error_frame(40004),
        frame_with(|b| {
            let b = b.icmpv4_echo_reply(5, 1);
            let mut v = Vec::new();
            b.write(&mut v, b"ping").unwrap();
            v
        }),
        icmp_error_frame(5),
    ];
    let peer_if = lab.peer_if(0);
    let (o, n) = (ours.clone(), not_ours.clone());
    spawn_in(lab.peer_ns(0), move || {
        send_raw_frames(&peer_if, &o);
        send_raw_frames(&peer_if, &n);
    })
    .join()
    .unwrap();
    thread::sleep(Duration::from_millis(500));
    stop_tx.send(()).unwrap();
    let (seen, counters) = gw.join().unwrap();

    assert_eq!(seen, ours, "exactly the NAT return frames reach the socket");
    assert_eq!(
        counters.get(XdpCounter::RedirectNatReturn),
        6,
        "{counters:?}"
    );
    assert_eq!(counters.get(XdpCounter::RedirectWireguard), 0);
    assert!(counters.get(XdpCounter::PassNotOurs) >= 3, "{counters:?}");
    assert_eq!(
        counters.get(XdpCounter::PassNatUnmapped),
        4,
        "40600, 40700 after release, TCP 40500, the error quoting 40004: {counters:?}"
    );
}
