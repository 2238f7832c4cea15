//! `wg0` as the kernel sees it, in a network namespace this test creates: `ip a` and
//! `ip route` look like kernel WireGuard, a ping routed into the device is read from the TUN
//! fd, a packet written into the fd reaches the kernel (which answers it), route changes at
//! runtime, and the device disappears when dropped.
//!
//! Needs root; skips otherwise. The namespace is deleted even if the test fails.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use nix::sched::{setns, CloneFlags};
use slowpath::tun::{RouteChange, Tun, TunConfig, TunError};

/// A named network namespace (`ip netns add`), deleted on drop.
struct Netns(String);

impl Netns {
    fn create(name: String) -> Netns {
        // A leftover from a killed earlier run with the same pid is removed first.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run_ok("ip", &["netns", "add", &name]);
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    eprintln!(
        "$ {program} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn checksum(data: &[u8]) -> u16 {
    // RFC 1071 one's-complement sum.
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 ICMP echo request `src -> dst` with identifier `id`.
fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Vec<u8> {
    let payload = b"slowpath tun test";
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64; // TTL
    p[9] = 1; // ICMP
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let ip_sum = checksum(&p[..20]);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    p[20] = 8; // echo request
    p[24..26].copy_from_slice(&id.to_be_bytes());
    p[26..28].copy_from_slice(&1u16.to_be_bytes());
    p[28..].copy_from_slice(payload);
    let icmp_sum = checksum(&p[20..]);
    p[22..24].copy_from_slice(&icmp_sum.to_be_bytes());
    p
}

/// (src, dst, icmp type, icmp id) of an IPv4 ICMP packet, None for anything else.
fn icmp_summary(p: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u8, u16)> {
    if p.len() < 28 || p[0] >> 4 != 4 || p[9] != 1 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let icmp = p.get(ihl..)?;
    if icmp.len() < 8 {
        return None;
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    Some((src, dst, icmp[0], u16::from_be_bytes([icmp[4], icmp[5]])))
}

/// Reads packets from the (non-blocking) TUN until one matches, for up to 3 s.
fn read_until(tun: &Tun, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = vec![0u8; 2048];
    while Instant::now() < deadline {
        match tun.recv(&mut buf) {
            Ok(n) if want(&buf[..n]) => return Some(buf[..n].to_vec()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("tun read failed: {e}"),
        }
    }
    None
}

#[test]
fn wg0_in_a_fresh_namespace() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIP wg0_in_a_fresh_namespace: not root (needs netns and /dev/net/tun)");
        return;
    }
    // The TUN device and the netlink socket are created in the namespace of the thread that
    // opens them, so the body runs in a thread that joined the test's namespace.
    in_fresh_namespace("tunt", body);
}

/// Runs `f` in a thread that joined a fresh namespace named after `tag`; the namespace is
/// deleted even when `f` panics.
fn in_fresh_namespace(tag: &str, f: impl FnOnce(&str) + Send + 'static) {
    let ns = Netns::create(format!("{tag}{}", std::process::id()));
    let ns_name = ns.0.clone();
    let body = std::thread::spawn(move || {
        let ns_file = File::open(format!("/var/run/netns/{ns_name}")).expect("open netns");
        setns(&ns_file, CloneFlags::CLONE_NEWNET).expect("setns");
        f(&ns_name);
    });
    let result = body.join();
    drop(ns);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A `wg0` the gateway did not create (a persistent TUN, as `ip tuntap add` or a previous
/// tool leaves it) is refused by name, and left as it was: without EXCL, TUNSETIFF attached to
/// it silently and the gateway's addresses stayed on it after exit (issue 16 item 7; fails
/// before the fix, which took it over).
#[test]
fn a_wg0_someone_else_made_is_refused_and_left_untouched() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIP a_wg0_someone_else_made_is_refused: not root (needs netns and TUN)");
        return;
    }
    in_fresh_namespace("tunx", |ns| {
        run_ok(
            "ip",
            &["-n", ns, "tuntap", "add", "dev", "wg0", "mode", "tun"],
        );
        let v4: IpNet = "10.13.13.1/24".parse().unwrap();
        let taken = Tun::create(&TunConfig::new("wg0", vec![v4])).map(|_| ());
        let Err(err) = taken else {
            panic!("the persistent wg0 was taken over");
        };
        assert!(
            matches!(err, TunError::Exists(ref n) if n == "wg0"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("ip link del wg0"), "{message}");
        let addr = run_ok("ip", &["-n", ns, "-4", "addr", "show", "dev", "wg0"]);
        assert!(!addr.contains("10.13.13.1"), "address added to it:\n{addr}");
    });
}

fn body(ns: &str) {
    let v4: IpNet = "10.13.13.1/24".parse().unwrap();
    let v6: IpNet = "fd13::1/64".parse().unwrap();
    let tun = Tun::create(&TunConfig::new("wg0", vec![v4, v6])).expect("create wg0");
    assert_eq!(tun.name(), "wg0");
    assert_eq!(tun.mtu(), 1420);

    // A second device with the same name in the same namespace is refused with a clear error.
    let again = Tun::create(&TunConfig::new("wg0", vec![])).map(|_| ());
    assert!(matches!(again, Err(TunError::Exists(_))), "{again:?}");

    // Peer routes: one outside the subnet (installed), one inside it (covered, nothing to do).
    let far: IpNet = "10.99.0.0/16".parse().unwrap();
    assert_eq!(tun.add_route(far).unwrap(), RouteChange::Done);
    assert_eq!(
        tun.add_route("10.13.13.2/32".parse().unwrap()).unwrap(),
        RouteChange::CoveredBySubnet
    );
    let far6: IpNet = "fd99::/48".parse().unwrap();
    assert_eq!(tun.add_route(far6).unwrap(), RouteChange::Done);
    assert_eq!(
        tun.add_route("fd13::2/128".parse().unwrap()).unwrap(),
        RouteChange::CoveredBySubnet
    );
    let duplicate = tun.add_route(far);
    assert!(
        matches!(duplicate, Err(TunError::Netlink { .. })),
        "{duplicate:?}"
    );

    let addr = run_ok("ip", &["-n", ns, "addr", "show", "dev", "wg0"]);
    assert!(addr.contains(" mtu 1420 "), "{addr}");
    // The flags kernel WireGuard devices show.
    assert!(addr.contains("<POINTOPOINT,NOARP,UP,LOWER_UP>"), "{addr}");
    assert!(addr.contains("inet6 fd13::1/64 scope global"), "{addr}");
    // No IPv6 link-local address (kernel WireGuard sets addrgenmode none).
    assert!(!addr.contains("inet6 fe80:"), "{addr}");
    assert!(addr.contains("link/none"), "{addr}");
    assert!(
        addr.contains("inet 10.13.13.1/24 scope global wg0"),
        "{addr}"
    );

    let routes = run_ok("ip", &["-n", ns, "-4", "route"]);
    let routes: Vec<&str> = routes.lines().map(str::trim).collect();
    assert!(
        routes.contains(&"10.13.13.0/24 dev wg0 proto kernel scope link src 10.13.13.1"),
        "{routes:?}"
    );
    assert!(
        routes.contains(&"10.99.0.0/16 dev wg0 scope link"),
        "{routes:?}"
    );
    assert_eq!(routes.len(), 2, "no other routes expected: {routes:?}");

    let routes6 = run_ok("ip", &["-n", ns, "-6", "route"]);
    let routes6: Vec<&str> = routes6.lines().map(str::trim).collect();
    assert!(
        routes6
            .iter()
            .any(|r| r.starts_with("fd13::/64 dev wg0 proto kernel metric 256")),
        "{routes6:?}"
    );
    assert!(
        routes6.iter().any(|r| r.starts_with("fd99::/48 dev wg0 ")),
        "{routes6:?}"
    );

    // The kernel -> wg0 direction: a ping to an address routed into wg0 is read from the fd.
    let mut ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "10.99.1.1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ping");
    let seen = read_until(
        &tun,
        |p| matches!(icmp_summary(p), Some((_, dst, 8, _)) if dst == Ipv4Addr::new(10, 99, 1, 1)),
    );
    let _ = ping.wait();
    let seen = seen.expect("the ping's echo request never came out of wg0");
    let (src, _, _, _) = icmp_summary(&seen).unwrap();
    assert_eq!(
        src,
        Ipv4Addr::new(10, 13, 13, 1),
        "kernel picks wg0's address as source"
    );

    // The wg0 -> kernel direction: an echo request written into the fd for wg0's own address
    // is answered by the kernel, and the reply is routed back into wg0.
    let peer = Ipv4Addr::new(10, 13, 13, 2);
    let own = Ipv4Addr::new(10, 13, 13, 1);
    let request = echo_request(peer, own, 0x5a5a);
    assert_eq!(tun.send(&request).unwrap(), request.len());
    let reply = read_until(&tun, |p| icmp_summary(p) == Some((own, peer, 0, 0x5a5a)));
    assert!(reply.is_some(), "no echo reply from the kernel");

    // Routes change at runtime.
    assert_eq!(tun.remove_route(far).unwrap(), RouteChange::Done);
    assert_eq!(tun.remove_route(far).unwrap(), RouteChange::Absent);
    assert_eq!(tun.remove_route(far6).unwrap(), RouteChange::Done);
    let routes = run_ok("ip", &["-n", ns, "route", "show", "table", "all"]);
    assert!(!routes.contains("10.99.0.0/16"), "{routes}");
    assert!(!routes.contains("fd99::"), "{routes}");

    // Dropping the device removes it.
    drop(tun);
    let gone = run("ip", &["-n", ns, "link", "show", "wg0"]);
    assert!(
        !gone.status.success(),
        "wg0 must disappear when Tun is dropped"
    );
}
