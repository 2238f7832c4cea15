//! Root integration test of `dataplane::route` in a fresh pair of network namespaces joined by
//! a veth pair: the kernel's route decision (interface, next hop, source), neighbour resolution
//! through the kernel, and the next-hop cache following a route change.
//!
//! Layout (names unique per process, removed by a Drop guard even when the test fails):
//! ```text
//!   ns A: va 10.201.0.1/24, route 198.18.5.0/24 via 10.201.0.2
//!   ns B: vb 10.201.0.2/24
//! ```

use dataplane::route::{CacheOptions, NextHopCache, Rtnl};
use fastpath::route::{Resolution, RouteKind};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

struct Namespaces {
    names: Vec<String>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip_out(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}", args.join(" "));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `f` on a thread that has joined network namespace `name` (setns only affects the
/// calling thread, so the test process itself stays where it was).
fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let ns = File::open(&path).expect("open netns");
        // SAFETY: `ns` is an open namespace file descriptor for the duration of the call;
        // CLONE_NEWNET only moves this thread.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread panicked")
}

fn mac_of(ns: &str, dev: &str) -> String {
    let out = ip_out(&["-n", ns, "-o", "link", "show", dev]);
    let i = out.find("link/ether ").expect("link/ether") + "link/ether ".len();
    out[i..i + 17].to_string()
}

#[test]
fn route_lookup_and_neighbour_resolution_in_netns() {
    if !is_root() {
        eprintln!("SKIPPED route_lookup_and_neighbour_resolution_in_netns: needs root (network namespaces)");
        return;
    }
    let pid = std::process::id();
    let (a, b) = (format!("dprtA{pid}"), format!("dprtB{pid}"));
    let _guard = Namespaces {
        names: vec![a.clone(), b.clone()],
    };
    ip(&["netns", "add", &a]);
    ip(&["netns", "add", &b]);
    ip(&[
        "link", "add", "va", "netns", &a, "type", "veth", "peer", "name", "vb", "netns", &b,
    ]);
    ip(&["-n", &a, "addr", "add", "10.201.0.1/24", "dev", "va"]);
    ip(&["-n", &b, "addr", "add", "10.201.0.2/24", "dev", "vb"]);
    for (ns, dev) in [(&a, "va"), (&b, "vb"), (&a, "lo"), (&b, "lo")] {
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    ip(&[
        "-n",
        &a,
        "route",
        "add",
        "198.18.5.0/24",
        "via",
        "10.201.0.2",
    ]);
    let mac_a = mac_of(&a, "va");
    let mac_b = mac_of(&b, "vb");

    let a2 = a.clone();
    in_netns(&a, move || {
        let mut nl = Rtnl::open().unwrap();
        let va = nl.link_by_name("va").unwrap().expect("va exists");
        assert_eq!(va.mac.unwrap().to_string(), mac_a);
        assert_eq!(
            nl.primary_ipv4(va.index).unwrap(),
            Some("10.201.0.1".parse().unwrap())
        );

        // On-link destination: no gateway, the kernel's source address.
        let server: IpAddr = "10.201.0.2".parse().unwrap();
        let r = nl.route_get(server).unwrap();
        assert_eq!(
            (r.kind, r.oif, r.gateway),
            (RouteKind::Unicast, va.index, None)
        );
        assert_eq!(r.prefsrc, Some("10.201.0.1".parse().unwrap()));

        // Routed destination: next hop is the gateway.
        let far: IpAddr = "198.18.5.9".parse().unwrap();
        let r = nl.route_get(far).unwrap();
        assert_eq!(r.oif, va.index);
        assert_eq!(r.gateway, Some(server));
        assert_eq!(r.next_hop(), server);

        // Our own address is local; no route at all is the kernel's ENETUNREACH.
        let own = nl.route_get("10.201.0.1".parse().unwrap()).unwrap();
        assert_eq!(own.kind, RouteKind::Local);
        let err = nl.route_get("203.0.113.1".parse().unwrap()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH));

        // Fresh namespace: the neighbour is unknown until the kernel resolves it.
        assert!(nl
            .neighbour_get(va.index, server)
            .unwrap()
            .and_then(|n| n.usable_mac())
            .is_none());

        let cache = NextHopCache::start(CacheOptions::default()).unwrap();
        let reader = cache.reader();
        assert!(reader.snapshot().resolution(far).is_none());
        let res = reader.resolve_blocking(far, Duration::from_secs(5));
        let Some(Resolution::Ready(hop)) = res else {
            panic!("198.18.5.9 not resolved: {res:?}");
        };
        assert_eq!(hop.ifindex, va.index);
        assert_eq!(hop.gateway, Some(server));
        assert_eq!(hop.dst_mac.to_string(), mac_b);
        assert_eq!(hop.src_mac.to_string(), mac_a);
        // The kernel's table now has the neighbour too: it was resolved there, not guessed.
        let n = nl
            .neighbour_get(va.index, server)
            .unwrap()
            .expect("kernel entry");
        assert_eq!(n.usable_mac().unwrap().to_string(), mac_b);

        // The cache follows route changes: make 198.18.5.0/24 on-link, so the next hop becomes
        // the destination itself (which nobody answers for).
        let out = Command::new("ip")
            .args(["-n", &a2, "route", "replace", "198.18.5.0/24", "dev", "va"])
            .status()
            .unwrap();
        assert!(out.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let state = reader.snapshot().resolution(far).copied();
            if let Some(Resolution::Resolving { next_hop, ifindex }) = state {
                assert_eq!((next_hop, ifindex), (far, va.index));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "route change not followed: {state:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(cache);
    });
}
