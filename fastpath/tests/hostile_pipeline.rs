//! Replay and forgery against the per-frame pipeline, sans-IO: captured transport
//! packets replayed, reordered within and beyond the 8192-bit window, with flipped bits, with
//! unknown receiver indices, and with a peer's index from another address. None may be
//! delivered twice, none may move the peer's endpoint (the pipeline reports a source to the slow
//! path only after a successful open: `ToSlowPath::Authenticated`), and every refusal is counted
//! by its drop reason.

mod hostile_support;

use std::collections::HashSet;
use std::net::{SocketAddr, SocketAddrV4};

use fastpath::counters::DropReason;
use fastpath::pipeline::Verdict;
use fastpath::queue::ToSlowPath;
use hostile_support::*;
use wgproto::constants::REPLAY_WINDOW_USABLE;
use wgproto::time::Timestamp;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000)
}

/// The sequence number a test packet carries in its UDP payload, read from a forwarded frame.
fn seq_of(tx: &[u8]) -> u32 {
    let p = &tx[tx.len() - 4..];
    u32::from_be_bytes([p[0], p[1], p[2], p[3]])
}

/// `n` captured packets from the client, sequence number = transport counter.
fn capture(gw: &Gateway, n: u32) -> Vec<Frame> {
    (0..n)
        .map(|seq| gw.seal_from_client(at(0), &client_udp(5000, &seq.to_be_bytes()), CLIENT_EP))
        .collect()
}

/// Delivers `frame` (a copy: the pipeline rewrites in place) and returns the sequence number
/// of what was forwarded to the server, if anything.
fn deliver(gw: &mut Gateway, frame: &Frame, ms: u64) -> Option<u32> {
    let mut f = frame.clone();
    let v = gw.process(at(ms), &mut f.buf, f.len);
    tx_bytes(v, &f).map(|tx| {
        assert_eq!(&tx[30..34], &SERVER.octets(), "forwarded to the server");
        assert_eq!(
            &tx[26..30],
            &GW_ADDR.octets(),
            "source NATed to the gateway"
        );
        seq_of(tx)
    })
}

#[test]
fn replayed_and_reordered_packets_are_delivered_at_most_once() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let n: u32 = 10_000;
    let frames = capture(&gw, n);
    let mut delivered = HashSet::new();
    let mut duplicate = 0;
    let mut note = |got: Option<u32>, delivered: &mut HashSet<u32>| {
        if let Some(s) = got {
            if !delivered.insert(s) {
                duplicate += 1;
            }
        }
    };

    // Newest first, then every older one in descending order: the ones within the usable
    // window behind the newest are late but new, the rest are too old (RFC 6479).
    let newest = n - 1;
    note(
        deliver(&mut gw, &frames[newest as usize], 0),
        &mut delivered,
    );
    for c in (0..newest).rev() {
        note(deliver(&mut gw, &frames[c as usize], 1), &mut delivered);
    }
    let oldest_in_window = u64::from(newest) - REPLAY_WINDOW_USABLE;
    let expected: HashSet<u32> = (oldest_in_window as u32..=newest).collect();
    assert_eq!(
        delivered, expected,
        "exactly the counters inside the window"
    );
    let too_old = oldest_in_window;
    assert_eq!(gw.decrypt_failed(), too_old);
    assert_eq!(gw.dropped(DropReason::DecryptTooOld), too_old);

    // Every capture again, in order then in reverse, then shuffled in blocks: all replays.
    let before = gw.decrypt_failed();
    for f in frames.iter().chain(frames.iter().rev()) {
        note(deliver(&mut gw, f, 2), &mut delivered);
    }
    for block in frames.chunks(97) {
        for f in block
            .iter()
            .step_by(3)
            .chain(block.iter().skip(1).step_by(3))
        {
            note(deliver(&mut gw, f, 3), &mut delivered);
        }
    }
    assert_eq!(duplicate, 0, "a packet was delivered twice");
    assert_eq!(delivered.len(), expected.len());
    let replays = 2 * u64::from(n)
        + frames
            .chunks(97)
            .map(|b| (b.len().div_ceil(3) + (b.len() - 1).div_ceil(3)) as u64)
            .sum::<u64>();
    assert_eq!(gw.decrypt_failed() - before, replays);
    assert_eq!(gw.opened(), expected.len() as u64);

    // Only the first packet on the keypair (key confirmation) was reported, from the client.
    let auth = authenticated(&gw.drain_slow_path());
    assert_eq!(auth, vec![(GW_INDEX, SocketAddr::V4(CLIENT_EP))]);

    // Beyond the window: a jump far ahead, then the old counters are refused.
    let later: Vec<Frame> = (n..n + 3 * REPLAY_WINDOW_USABLE as u32)
        .map(|seq| gw.seal_from_client(at(4), &client_udp(5000, &seq.to_be_bytes()), CLIENT_EP))
        .collect();
    let last = later.last().unwrap();
    assert_eq!(
        deliver(&mut gw, last, 5),
        Some(n + 3 * REPLAY_WINDOW_USABLE as u32 - 1)
    );
    let stale_before = gw.decrypt_failed();
    let too_old_before = gw.dropped(DropReason::DecryptTooOld);
    for f in &later[..REPLAY_WINDOW_USABLE as usize] {
        assert_eq!(deliver(&mut gw, f, 6), None, "beyond the window");
    }
    assert_eq!(gw.decrypt_failed() - stale_before, REPLAY_WINDOW_USABLE);
    assert_eq!(
        gw.dropped(DropReason::DecryptTooOld) - too_old_before,
        REPLAY_WINDOW_USABLE
    );
}

#[test]
fn flipped_bits_are_refused_and_do_not_burn_the_counter() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let frames = capture(&gw, 2);
    let genuine = &frames[0];
    let msg = Frame::UDP_PAYLOAD..genuine.len;
    let mut refused = 0u64;
    for byte in msg.clone() {
        for bit in 0..8 {
            let mut f = genuine.clone();
            f.packet_mut()[byte] ^= 1 << bit;
            let v = gw.process(at(0), &mut f.buf, f.len);
            assert!(
                matches!(v, Verdict::Drop(_)),
                "byte {byte} bit {bit}: {v:?}"
            );
            refused += 1;
        }
    }
    let counted = gw.decrypt_failed()
        + gw.dropped(DropReason::UnknownReceiver)
        + gw.dropped(DropReason::Malformed);
    assert_eq!(counted, refused, "every refusal counted: {:?}", gw.drops);
    // Flipping any of the 4 receiver-index bytes misses the index table; the rest fail the AEAD
    // or the type check.
    assert_eq!(gw.dropped(DropReason::UnknownReceiver), 4 * 8);
    assert_eq!(gw.opened(), 0);
    assert!(authenticated(&gw.drain_slow_path()).is_empty());
    // The replay window is marked only after the tag verified: the genuine packet still passes.
    assert_eq!(deliver(&mut gw, genuine, 1), Some(0));
    assert_eq!(deliver(&mut gw, &frames[1], 1), Some(1));
}

#[test]
fn unknown_receiver_indices_are_counted_and_never_reach_the_slow_path() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let genuine = &capture(&gw, 1)[0];
    let mut x = 0x1234_5678u32;
    let mut tried = 0;
    for _ in 0..5000 {
        // xorshift32: any index but the gateway's.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if x == GW_INDEX {
            continue;
        }
        let mut f = genuine.clone();
        f.packet_mut()[Frame::UDP_PAYLOAD + 4..Frame::UDP_PAYLOAD + 8]
            .copy_from_slice(&x.to_le_bytes());
        assert_eq!(
            gw.process(at(0), &mut f.buf, f.len),
            Verdict::Drop(DropReason::UnknownReceiver)
        );
        tried += 1;
    }
    assert_eq!(gw.dropped(DropReason::UnknownReceiver), tried);
    assert!(gw.drain_slow_path().is_empty());
    assert_eq!(deliver(&mut gw, genuine, 0), Some(0));
}

/// The same WireGuard message with the outer source rewritten (IPv4 checksum fixed).
fn from_other_address(frame: &Frame, src: SocketAddrV4) -> Frame {
    let mut f = frame.clone();
    let p = f.packet_mut();
    p[26..30].copy_from_slice(&src.ip().octets());
    p[34..36].copy_from_slice(&src.port().to_be_bytes());
    p[40..42].fill(0); // UDP checksum 0: none (RFC 768)
    fix_ipv4_checksum(&mut p[14..34]);
    f
}

#[test]
fn a_peers_index_from_another_address_moves_nothing() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let frames = capture(&gw, 3);
    assert_eq!(deliver(&mut gw, &frames[0], 0), Some(0));
    let first = authenticated(&gw.drain_slow_path());
    assert_eq!(first, vec![(GW_INDEX, SocketAddr::V4(CLIENT_EP))]);

    // 1. A captured, already delivered packet replayed from the attacker's address.
    let replay = from_other_address(&frames[0], ATTACKER_EP);
    assert_eq!(deliver(&mut gw, &replay, 1), None);
    // 2. The peer's receiver index with a fresh counter but a forged body, from the attacker.
    let mut forged = from_other_address(&frames[1], ATTACKER_EP);
    let tag = forged.len - 1;
    forged.packet_mut()[tag] ^= 0x80;
    assert_eq!(deliver(&mut gw, &forged, 1), None);
    // 3. Every counter of the window claimed from the attacker with garbage bodies.
    // (Counter 2 is the one this body was sealed with: that would be a genuine packet.)
    for c in 100..2100u64 {
        let mut f = from_other_address(&frames[2], ATTACKER_EP);
        let p = f.packet_mut();
        p[Frame::UDP_PAYLOAD + 8..Frame::UDP_PAYLOAD + 16].copy_from_slice(&c.to_le_bytes());
        assert_eq!(deliver(&mut gw, &f, 2), None);
    }
    assert_eq!(gw.decrypt_failed(), 2 + 2000);
    // The replay is a duplicate; the forged body and the garbage ones fail the tag.
    assert_eq!(gw.dropped(DropReason::DecryptReplayed), 1);
    assert_eq!(gw.dropped(DropReason::DecryptAuthFailed), 1 + 2000);
    let msgs = gw.drain_slow_path();
    assert!(
        authenticated(&msgs).is_empty(),
        "a forged or replayed packet reached the slow path as authenticated"
    );
    assert!(msgs.iter().all(|m| !matches!(m, ToSlowPath::Handshake(_))));
    // The endpoint the gateway sends to is still the client's, and genuine traffic still flows.
    assert_eq!(
        gw.tables.peers[&PEER].send_to(),
        Some(SocketAddr::V4(CLIENT_EP))
    );
    assert_eq!(deliver(&mut gw, &frames[1], 3), Some(1));
    assert_eq!(deliver(&mut gw, &frames[2], 3), Some(2));
    assert!(authenticated(&gw.drain_slow_path()).is_empty());
    // A genuine, never delivered packet from a new address is the roaming case (whitepaper
    // §2): reported once so the slow path can move the endpoint. Its replay is not.
    let roam = gw.seal_from_client(at(4), &client_udp(5000, &3u32.to_be_bytes()), ATTACKER_EP);
    assert_eq!(deliver(&mut gw, &roam, 4), Some(3));
    assert_eq!(
        authenticated(&gw.drain_slow_path()),
        vec![(GW_INDEX, SocketAddr::V4(ATTACKER_EP))]
    );
    assert_eq!(deliver(&mut gw, &roam, 5), None);
    assert!(gw.drain_slow_path().is_empty());
}

#[test]
fn garbage_frames_are_counted_by_reason_without_panicking() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let genuine = capture(&gw, 1).remove(0);
    let mut x = 0x9e37_79b9u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut total = 0u64;
    for round in 0..20_000 {
        // Truncations and random overwrites of a genuine frame, and pure noise.
        let mut f = genuine.clone();
        match round % 3 {
            // Strictly shorter than the genuine frame.
            0 => f.len = (next() as usize) % genuine.len,
            // One to four bytes of the WireGuard message changed (never to their old value).
            1 => {
                let msg = genuine.len - Frame::UDP_PAYLOAD;
                for _ in 0..1 + next() % 4 {
                    let i = Frame::UDP_PAYLOAD + (next() as usize) % msg;
                    f.packet_mut()[i] ^= (next() as u8) | 1;
                }
            }
            _ => {
                for b in f.packet_mut() {
                    *b = next() as u8;
                }
            }
        }
        if let Verdict::Drop(_) = gw.process(at(0), &mut f.buf, f.len) {
            total += 1;
        }
    }
    let counted: u64 = gw.drops.values().sum();
    assert_eq!(counted, total);
    assert_eq!(gw.pipeline.counters().total_dropped(), total);
    // Nothing forged was opened; the genuine packet still is.
    assert_eq!(gw.opened(), 0, "drops: {:?}", gw.drops);
    assert_eq!(deliver(&mut gw, &genuine, 1), Some(0));
}

/// A handshake message of type `kind` and `len` bytes from `from`, to the listen port.
fn handshake_frame(kind: u8, len: usize, from: SocketAddrV4) -> Frame {
    let mut msg = vec![0xa5u8; len];
    msg[..4].copy_from_slice(&[kind, 0, 0, 0]);
    udp_frame(from, SocketAddrV4::new(GW_ADDR, LISTEN_PORT), &msg)
}

/// Fails before the size check: every type 1-3 datagram of at most 148 bytes was queued.
#[test]
fn handshake_messages_of_the_wrong_size_never_reach_the_slow_path() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let wrong = [
        (1, 147),
        (1, 92),
        (1, 64),
        (1, 4),
        (2, 148),
        (2, 91),
        (2, 93),
        (3, 148),
        (3, 63),
        (3, 65),
        (1, 149),
        (1, 1400),
    ];
    for (kind, len) in wrong {
        let mut f = handshake_frame(kind, len, ATTACKER_EP);
        let v = gw.process(at(1), &mut f.buf, f.len);
        assert_eq!(
            v,
            Verdict::Drop(DropReason::HandshakeBadSize),
            "type {kind}, {len} bytes"
        );
    }
    assert!(gw.drain_slow_path().is_empty());
    for (kind, len) in [(1, 148), (2, 92), (3, 64)] {
        let mut f = handshake_frame(kind, len, ATTACKER_EP);
        assert_eq!(gw.process(at(1), &mut f.buf, f.len), Verdict::Consumed);
    }
    let lens: Vec<usize> = gw
        .drain_slow_path()
        .iter()
        .map(|m| match m {
            ToSlowPath::Handshake(d) => d.bytes().len(),
            _ => panic!("only handshakes were sent"),
        })
        .collect();
    assert_eq!(lens, [148, 92, 64]);
    assert_eq!(gw.dropped(DropReason::HandshakeBadSize), wrong.len() as u64);
}

/// Fails on the single shared queue: the flood filled it and the key confirmation of the first
/// transport packet was lost (and, reported once, never sent again).
#[test]
fn a_handshake_flood_does_not_crowd_out_authenticated_events() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let slots = GatewayOptions::default().slow_queue;
    for _ in 0..slots * 4 {
        let mut f = handshake_frame(1, 148, ATTACKER_EP);
        gw.process(at(1), &mut f.buf, f.len);
    }
    assert_eq!(gw.dropped(DropReason::HandshakeQueueFull), 3 * slots as u64);
    // The client's first transport packet: its key confirmation must reach the slow path.
    let first = gw.seal_from_client(at(1), &client_udp(5000, &0u32.to_be_bytes()), CLIENT_EP);
    assert_eq!(deliver(&mut gw, &first, 2), Some(0));
    let msgs = gw.drain_slow_path();
    assert_eq!(
        authenticated(&msgs),
        vec![(GW_INDEX, SocketAddr::V4(CLIENT_EP))]
    );
    assert_eq!(gw.dropped(DropReason::SlowPathFull), 0);
    let c = gw.pipeline.counters();
    assert_eq!(c.events_lost.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// Fails on the old pipeline, which reported only the very first packet on a keypair: with that
/// report lost on a full lane, the second packet said nothing and the slow path never learned
/// of the key confirmation.
#[test]
fn a_lost_key_confirmation_is_reported_again_until_the_slow_path_notes_it() {
    let mut gw = Gateway::new(GatewayOptions::default());
    let slots = GatewayOptions::default().slow_queue;
    // The event lane full of packets for the host (LAN traffic to the gateway's own address).
    for i in 0..slots {
        let ip = ipv4_udp(SERVER, GW_ADDR, 40000 + i as u16, 22, b"host", 64);
        let mut f = lan_frame(&ip);
        assert_eq!(gw.process(at(1), &mut f.buf, f.len), Verdict::Consumed);
    }
    let frames = capture(&gw, 5);
    let counters = gw.pipeline.counters().clone();
    let lost = || {
        counters
            .events_lost
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // The first packet is forwarded, its report lost (and counted).
    assert_eq!(deliver(&mut gw, &frames[0], 1), Some(0));
    assert_eq!(lost(), 1);
    assert!(authenticated(&gw.drain_slow_path()).is_empty());
    // The next packet reports it again.
    let expected = vec![(GW_INDEX, SocketAddr::V4(CLIENT_EP))];
    assert_eq!(deliver(&mut gw, &frames[1], 2), Some(1));
    assert_eq!(authenticated(&gw.drain_slow_path()), expected);
    // Not every packet while the slow path gets to it: once per REPORT_RETRY.
    assert_eq!(deliver(&mut gw, &frames[2], 3), Some(2));
    assert!(gw.drain_slow_path().is_empty());
    let retry = fastpath::pipeline::REPORT_RETRY.as_millis() as u64;
    assert_eq!(deliver(&mut gw, &frames[3], 2 + retry), Some(3));
    assert_eq!(authenticated(&gw.drain_slow_path()), expected);
    // Once the slow path noted it (Device::note_data_received), no more reports.
    gw.tables.receivers[&GW_INDEX].note_receipt();
    assert_eq!(deliver(&mut gw, &frames[4], 10 * retry), Some(4));
    assert!(gw.drain_slow_path().is_empty());
    assert_eq!(lost(), 1);
}

/// An initiation from `from` with random-looking contents and the macs `macs` writes (a valid
/// mac1 for the gateway; mac2 once `macs` holds a cookie).
fn initiation_frame(
    macs: &mut wgproto::cookie::CookieState,
    seed: u8,
    from: SocketAddrV4,
) -> Frame {
    let mut msg = [seed; 148];
    msg[..4].copy_from_slice(&[1, 0, 0, 0]);
    macs.add_macs(&mut msg, at(1)).unwrap();
    udp_frame(from, SocketAddrV4::new(GW_ADDR, LISTEN_PORT), &msg)
}

/// Fails before mac1/mac2 were checked in the worker: forged mac1s took slots of the handshake
/// lane, junk with a valid mac1 filled it (a genuine initiation was dropped as
/// `handshake_queue_full` and never got a cookie), and a retry with mac2 competed with the junk
/// for the same slots.
#[test]
fn handshakes_are_screened_by_their_macs_and_answered_with_cookies_under_load() {
    use fastpath::queue::Lane;
    use rand_core::OsRng;
    use std::sync::atomic::Ordering::Relaxed;
    use wgproto::constants::RATELIMIT_BURST;
    use wgproto::cookie::{CookieChecker, CookieState};
    use wgproto::messages::{classify, Message};

    let mut gw = Gateway::new(GatewayOptions::default());
    let slots = GatewayOptions::default().slow_queue;
    let gw_public = wgproto::keys::PrivateKey::generate(&mut OsRng).public_key();
    let mut checker = CookieChecker::new(&gw_public);
    checker.rotate_if_stale(at(0), &mut OsRng);
    gw.tables.handshake_macs = Some(std::sync::Arc::new(checker));

    // A forged mac1 never reaches the slow path.
    let mut forged = initiation_frame(&mut CookieState::new(&gw_public), 1, ATTACKER_EP);
    let mac1_at = forged.len - 32;
    forged.buf[RX_OFFSET + mac1_at] ^= 1;
    assert_eq!(
        gw.process(at(1), &mut forged.buf, forged.len),
        Verdict::Drop(DropReason::HandshakeBadMac1)
    );
    // Junk with a valid mac1 (anyone who knows the public key): queued until the lane is an
    // eighth full, then answered by the worker with cookie replies, as many as the source's
    // burst allows, the rest dropped; the lane never fills.
    let mut attacker = CookieState::new(&gw_public);
    let mut verdicts = Vec::new();
    for i in 0..slots * 4 {
        let mut f = initiation_frame(&mut attacker, i as u8, ATTACKER_EP);
        verdicts.push(gw.process(at(1), &mut f.buf, f.len));
    }
    let queued = verdicts.iter().filter(|v| **v == Verdict::Consumed).count();
    assert_eq!(queued, slots / 8);
    let burst = RATELIMIT_BURST as usize;
    assert!(verdicts[queued..queued + burst].iter().all(|v| matches!(
        v,
        Verdict::Tx {
            ifindex: IFINDEX,
            len: 106,
            ..
        }
    )));
    assert!(verdicts[queued + burst..]
        .iter()
        .all(|v| *v == Verdict::Drop(DropReason::HandshakeCookieRateLimited)));
    assert_eq!(gw.dropped(DropReason::HandshakeQueueFull), 0);

    // A genuine client under that load: a cookie reply to its address and port at once.
    let mut client = CookieState::new(&gw_public);
    let mut f = initiation_frame(&mut client, 0xc1, CLIENT_EP);
    let Verdict::Tx { start, len, .. } = gw.process(at(1), &mut f.buf, f.len) else {
        panic!("no cookie reply to the genuine initiation");
    };
    let h = etherparse::PacketHeaders::from_ethernet_slice(&f.buf[start..start + len]).unwrap();
    let Some(etherparse::NetHeaders::Ipv4(ip, _)) = &h.net else {
        panic!("not IPv4");
    };
    assert_eq!(
        (ip.source, ip.destination),
        (GW_ADDR.octets(), CLIENT_EP.ip().octets())
    );
    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
    let Some(etherparse::TransportHeader::Udp(udp)) = &h.transport else {
        panic!("not UDP");
    };
    assert_eq!(
        (udp.source_port, udp.destination_port),
        (LISTEN_PORT, CLIENT_EP.port())
    );
    assert_eq!(
        &f.buf[start..start + 6],
        &[2, 0, 0, 0, 0, 7],
        "to the client's next hop"
    );
    let Ok(Message::CookieReply(reply)) = classify(h.payload.slice()) else {
        panic!("not a cookie reply");
    };
    client.consume_reply(&reply, at(1)).unwrap();
    // Its retry carries mac2 and takes the mac2 lane, which the junk did not touch.
    let mut retry = initiation_frame(&mut client, 0xc2, CLIENT_EP);
    assert_eq!(
        gw.process(at(2), &mut retry.buf, retry.len),
        Verdict::Consumed
    );
    let c = gw.pipeline.counters();
    assert_eq!(c.handshakes_mac2.load(Relaxed), 1);
    assert_eq!(c.cookie_replies.load(Relaxed), (burst + 1) as u64);
    let lanes: Vec<Lane> = gw.drain_slow_path().iter().map(|m| m.lane()).collect();
    assert_eq!(lanes.iter().filter(|l| **l == Lane::Mac2).count(), 1);
    let first_mac2 = lanes.iter().position(|l| *l == Lane::Mac2);
    assert!(
        first_mac2 <= Some(1),
        "served in turn, not after the junk: {lanes:?}"
    );
    // The same mac2 from another port is not valid there: a cookie reply again (the lane
    // drained, but under load holds for UNDER_LOAD_HOLD) ...
    let other_port = SocketAddrV4::new(*CLIENT_EP.ip(), CLIENT_EP.port() + 1);
    let mut moved = initiation_frame(&mut client, 0xc3, other_port);
    assert!(matches!(
        gw.process(at(2), &mut moved.buf, moved.len),
        Verdict::Tx { .. }
    ));
    // ... and once that is over, the handshake lane, not the mac2 one.
    let later = at(2) + fastpath::queue::UNDER_LOAD_HOLD;
    let mut moved = initiation_frame(&mut client, 0xc4, other_port);
    assert_eq!(
        gw.process(later, &mut moved.buf, moved.len),
        Verdict::Consumed
    );
    assert!(matches!(
        gw.drain_slow_path()[..],
        [ToSlowPath::Handshake(_)]
    ));
}
