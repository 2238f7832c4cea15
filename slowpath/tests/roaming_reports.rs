//! Roaming reports reach the slow path in any order (one event lane per worker): a stale one,
//! about a packet older than the one that moved the peer's learned endpoint, must not move the
//! device (`wg show`, the published tables) back. The slow path roams its device to the
//! learned endpoint (`fastpath/src/roaming.rs`), which only the newest packet moves. Before
//! it did, the device took the source of whichever report came last: here the old address.
//!
//! A real slow path (no wg0, no UAPI socket) and a client `Device` for the handshake; the
//! worker is played by hand: it moves the learned endpoint and queues its reports.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fastpath::queue::{slow_path_queue, Clock, HandshakeDatagram, ToSlowPath};
use fastpath::roaming::Recency;
use fastpath::tables::shared_tables;
use rand_core::OsRng;
use slowpath::engine::{SlowPath, SlowPathConfig};
use wgproto::config::{InterfaceConfig, IpPrefix, PeerConfig};
use wgproto::device::{Device, Output};
use wgproto::keys::PrivateKey;
use wgproto::time::Timestamp;

/// Polls `cond` every 10 ms for up to 5 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_stale_roaming_report_does_not_undo_a_newer_roam() {
    let old: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let new: SocketAddr = "[::1]:40002".parse().unwrap();
    let gw_key = PrivateKey::from_bytes([4; 32]);
    let client_key = PrivateKey::from_bytes([5; 32]);
    let mut iface = InterfaceConfig::new(gw_key.clone());
    iface.listen_port = 0;
    let mut peer = PeerConfig::new(client_key.public_key());
    peer.allowed_ips = vec![IpPrefix::new_masked("10.13.13.2".parse().unwrap(), 32)];
    let (tx, rx) = slow_path_queue(64);
    let tables = shared_tables();
    let sp = SlowPath::start(
        SlowPathConfig {
            interface: iface,
            peers: vec![peer],
            tun: None,
            uapi_name: None,
            outer_datagrams: None,
        },
        tables.clone(),
        rx,
        Clock::accelerated(1),
    )
    .expect("slow path starts");

    // The client's handshake from its old address.
    let mut client = Device::new(&InterfaceConfig::new(client_key));
    let mut to_gw = PeerConfig::new(gw_key.public_key());
    to_gw.endpoint = Some("127.0.0.1:51820".parse().unwrap());
    let gw_id = client.set_peer(Timestamp::ZERO, to_gw).unwrap();
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    client.request_handshake(Timestamp::ZERO, wall, gw_id, &mut OsRng);
    let mut initiation = None;
    while let Some(out) = client.poll(Timestamp::ZERO, wall, &mut OsRng) {
        if let Output::SendHandshake { bytes, .. } = out {
            initiation = Some(bytes);
        }
    }
    let initiation = initiation.expect("the client initiates");
    let d = HandshakeDatagram::new(old, &initiation).unwrap();
    tx.try_send(ToSlowPath::Handshake(d)).unwrap();
    wait_for("the responder's keypair", || {
        !tables.load().receivers.is_empty()
    });
    let (index, keypair) = {
        let t = tables.load();
        let (i, k) = t.receivers.iter().next().unwrap();
        (*i, k.clone())
    };
    let peer = keypair.peer();
    let learned = tables.load().peers[&peer].learned.clone();
    assert_eq!(learned.get(), Some(old), "the handshake's source");

    // Worker B opens counter 7 from the new address and moves the learned endpoint; worker A
    // opened counter 6 from the old one a moment earlier (nothing to move then), and its
    // report reaches the slow path after B's.
    assert!(learned.offer(Recency::of(&keypair, 7), new));
    let report = |src| ToSlowPath::Authenticated {
        peer,
        index,
        src,
        keepalive: false,
        rekey: false,
    };
    tx.try_send(report(new)).unwrap();
    tx.try_send(report(old)).unwrap();
    // The first report confirms the keypair (published as the sending one); the second is
    // handled right after it, well within the pause.
    wait_for("the key confirmation", || {
        tables.load().peers[&peer].sending.is_some()
    });
    std::thread::sleep(Duration::from_millis(300));
    let endpoint = sp.snapshot().peers[0].endpoint;
    assert_eq!(endpoint, Some(new), "a stale report undid the roam");
    assert_eq!(tables.load().peers[&peer].endpoint, Some(new));
    assert_eq!(learned.get(), Some(new));
    sp.stop();
}
