//! The UAPI under hostile and heavy input:
//! - the `uapi_set` fuzz target's body over its committed seed corpus (`slowpath/fuzz/corpus`);
//! - 10 000 peers with 100 000 allowed-IPs entries as one `set=1` request: parsed and applied
//!   with `Device::set_peer` (sans-IO), and, as root, sent over the real UAPI socket of a
//!   running slow path and read back with `get=1`; each read back exactly. Times and the
//!   AllowedIPs lookup cost are printed (measurements, not assertions).

mod hostile_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fastpath::queue::{slow_path_queue, Clock};
use fastpath::tables::shared_tables;
use slowpath::engine::{SlowPath, SlowPathConfig};
use slowpath::uapi::{parse_set_request, PrivateKey};
use wgproto::config::{InterfaceConfig, IpPrefix, PeerConfig};
use wgproto::device::Device;
use wgproto::keys::PublicKey;
use wgproto::time::Timestamp;

const PEERS: u32 = 10_000;
const PER_PEER: u32 = 10;

#[test]
fn uapi_set_seeds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/uapi_set");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        eprintln!("{}", p.display());
        hostile_support::uapi_set(&std::fs::read(&p).unwrap());
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}

fn peer_key(i: u32) -> PublicKey {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&i.to_be_bytes());
    b[31] = 0x40;
    PublicKey::from_bytes(b)
}

/// Peer `i`'s prefixes: ten /32s in 10.0.0.0/8 and, for every tenth peer, one IPv6 /64 in
/// place of the last /32 (so both families are in the table).
fn prefixes(i: u32) -> Vec<IpPrefix> {
    (0..PER_PEER)
        .map(|k| {
            let n = i * PER_PEER + k;
            if k == PER_PEER - 1 && i % 10 == 0 {
                format!("fd00:{:x}:{:x}::/64", i >> 16, i & 0xffff)
                    .parse()
                    .unwrap()
            } else {
                IpPrefix::host(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n)))
            }
        })
        .collect()
}

/// The expected device: public key -> sorted prefixes (as text, the UAPI's form).
fn expected() -> BTreeMap<String, BTreeSet<String>> {
    (0..PEERS)
        .map(|i| {
            (
                peer_key(i).to_hex(),
                prefixes(i).iter().map(|p| p.to_string()).collect(),
            )
        })
        .collect()
}

fn big_set_request() -> String {
    let mut s = String::with_capacity(4 << 20);
    s.push_str("replace_peers=true\n");
    for i in 0..PEERS {
        let _ = writeln!(s, "public_key={}", peer_key(i).to_hex());
        let _ = writeln!(
            s,
            "endpoint=192.0.2.{}:{}",
            i % 250 + 1,
            10_000 + i % 50_000
        );
        s.push_str("replace_allowed_ips=true\n");
        for p in prefixes(i) {
            let _ = writeln!(s, "allowed_ip={p}");
        }
    }
    s
}

/// Times `lookups` AllowedIPs lookups spread over every peer's addresses.
fn time_lookups(lookup: impl Fn(IpAddr) -> bool) -> Duration {
    let n = 1_000_000u32;
    let t = Instant::now();
    let mut hits = 0u32;
    for k in 0..n {
        let a = 0x0a00_0000 | (k.wrapping_mul(2_654_435_761) % (PEERS * PER_PEER));
        hits += u32::from(lookup(IpAddr::V4(Ipv4Addr::from(a))));
    }
    let d = t.elapsed();
    assert!(hits > n / 2, "lookups should mostly hit: {hits}");
    d / n
}

#[test]
fn ten_thousand_peers_through_parse_and_set_peer() {
    let body = big_set_request();
    let t = Instant::now();
    let req = parse_set_request(&body).expect("the big request parses");
    let parse = t.elapsed();
    assert_eq!(req.peers.len(), PEERS as usize);

    let mut dev = Device::new(&InterfaceConfig::new(PrivateKey::from_bytes([1; 32])));
    let t = Instant::now();
    for u in &req.peers {
        let mut cfg = PeerConfig::new(u.public_key);
        cfg.endpoint = u.endpoint;
        cfg.allowed_ips = u
            .allowed_ips
            .iter()
            .map(|n| IpPrefix::new_masked(n.addr(), n.prefix_len()))
            .collect();
        dev.set_peer(Timestamp::ZERO, cfg).unwrap();
    }
    let apply = t.elapsed();
    let got: BTreeMap<String, BTreeSet<String>> = dev
        .peers()
        .map(|p| {
            (
                p.public_key().to_hex(),
                p.allowed_ips().iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(got, expected());
    assert_eq!(dev.allowed_ips().len(), (PEERS * PER_PEER) as usize);
    let per_lookup = time_lookups(|a| dev.allowed_ips().lookup(a).is_some());
    eprintln!(
        "sans-IO: {} bytes parsed in {parse:?}, {PEERS} peers / {} prefixes applied in \
         {apply:?}; AllowedIPs lookup {per_lookup:?} each (debug build unless --release)",
        body.len(),
        PEERS * PER_PEER
    );
}

/// One UAPI exchange: writes `request`, reads until the empty line.
fn uapi(path: &std::path::Path, request: &str) -> String {
    let mut s = UnixStream::connect(path).expect("connect to the UAPI socket");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut out = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line == "\n" {
            break;
        }
        out.push_str(&line);
    }
    out
}

#[test]
fn ten_thousand_peers_through_the_uapi_socket() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIP ten_thousand_peers_through_the_uapi_socket: not root (/var/run/wireguard)");
        return;
    }
    let name = format!("hst{}", std::process::id());
    let mut iface = InterfaceConfig::new(PrivateKey::from_bytes([3; 32]));
    iface.listen_port = 0; // any free port for the slow path's sending socket
    let tables = shared_tables();
    let (_tx, rx) = slow_path_queue(64);
    let sp = SlowPath::start(
        SlowPathConfig {
            interface: iface,
            peers: Vec::new(),
            tun: None,
            uapi_name: Some(name.clone()),
            outer_datagrams: None,
        },
        tables.clone(),
        rx,
        Clock::default(),
    )
    .expect("slow path starts");
    let path = PathBuf::from(slowpath::uapi::SOCKET_DIR).join(format!("{name}.sock"));

    let body = big_set_request();
    let t = Instant::now();
    let answer = uapi(&path, &format!("set=1\n{body}\n"));
    let set = t.elapsed();
    assert_eq!(answer, "errno=0\n");

    let t = Instant::now();
    let get = uapi(&path, "get=1\n\n");
    let read = t.elapsed();
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = None;
    for line in get.lines() {
        let (k, v) = line.split_once('=').unwrap();
        match k {
            "public_key" => {
                got.insert(v.to_string(), BTreeSet::new());
                current = Some(v.to_string());
            }
            "allowed_ip" => {
                let c = current.as_ref().expect("allowed_ip inside a peer");
                assert!(
                    got.get_mut(c).unwrap().insert(v.to_string()),
                    "duplicate {v}"
                );
            }
            _ => {}
        }
    }
    assert_eq!(got, expected(), "get=1 does not read back what set=1 wrote");
    // The tables published to the workers carry every prefix too.
    let published = tables.load();
    assert_eq!(published.allowed_ips.len(), (PEERS * PER_PEER) as usize);
    assert_eq!(published.peers.len(), PEERS as usize);
    let per_lookup = time_lookups(|a| published.allowed_ips.lookup(a).is_some());
    eprintln!(
        "UAPI: set=1 of {} bytes ({PEERS} peers, {} prefixes) answered in {set:?}; get=1 \
         ({} bytes) in {read:?}; published AllowedIPs lookup {per_lookup:?} each",
        body.len(),
        PEERS * PER_PEER,
        get.len()
    );
    drop(published);
    sp.stop();
    assert!(!path.exists(), "the UAPI socket outlived the slow path");
}
