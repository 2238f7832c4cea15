//! The body of the `fastpath/fuzz` pipeline target. They live here so that the same code runs under
//! libFuzzer (`cargo +nightly fuzz run <target>`) and, over the committed seed corpus, as a
//! plain test (`hostile_fuzz_corpus.rs`) on a stable toolchain.

use fastpath::pipeline::Verdict;
use wgproto::time::Timestamp;

use super::*;

/// Checks a verdict's frame range: a transmitted or parked packet lies inside the frame.
fn check_verdict(v: Verdict) {
    match v {
        Verdict::Tx { start, len, .. } => {
            assert!(start + len <= FRAME_SIZE, "tx outside the frame: {v:?}");
            assert!(len >= 14 + 20, "tx shorter than Ethernet + IPv4: {v:?}");
        }
        Verdict::Park { start, len, .. } => {
            assert!(start + len <= FRAME_SIZE, "parked outside the frame: {v:?}")
        }
        Verdict::Handoff { start, len, .. } => {
            assert!(
                start + len <= FRAME_SIZE,
                "handoff outside the frame: {v:?}"
            )
        }
        Verdict::FragmentOuter6 { start, len, .. } => {
            assert!(
                start + len <= FRAME_SIZE,
                "outer datagram to fragment outside the frame: {v:?}"
            )
        }
        Verdict::Fragment { start, len, .. } => {
            assert!(
                start + len <= FRAME_SIZE,
                "fragmented packet outside the frame: {v:?}"
            )
        }
        Verdict::Consumed | Verdict::Drop(_) => {}
    }
}

/// Makes `ip` a self-consistent IPv4 header (total length, checksum) when it looks like one,
/// so that mutations get past the first gates.
fn tidy_ipv4(ip: &mut [u8]) {
    if ip.len() >= 20 && ip[0] >> 4 == 4 {
        let total = u16::try_from(ip.len()).unwrap_or(u16::MAX);
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        fix_ipv4_checksum(ip);
    }
}

/// The pipeline target. The input is a sequence of records `[header][len bytes]`: header bits
/// 0-1 choose what the record is, bits 2-7 times 8 its length:
/// - 0: a raw frame as received (Ethernet first);
/// - 1: an inner packet sealed by the genuine client (the fuzzer reaches the inner parser,
///   the source check, NAT, routing and ICMP errors); bit 1 of the first byte picks the
///   client's or another outer source address, bit 0 of the second byte (an ECN bit of an
///   IPv4 inner packet) an IPv6 underlay from the client's IPv6 endpoint;
/// - 2: a genuine sealed packet XORed with the record (flipped bits, changed indices and
///   counters);
/// - 3: a packet from the LAN to the gateway's address (NAT return traffic).
///
/// Time advances with every record so NAT entries expire. Invariants: no panic, verdict
/// ranges inside the frame, never more packets opened than the client sealed (no forgery, no
/// replay), and a changed WireGuard message is never opened.
pub fn pipeline(data: &[u8]) {
    let mut gw = Gateway::new(GatewayOptions {
        nat_capacity: 16,
        nat_ports: (61000, 61031),
        slow_queue: 8,
        udp_timeout: std::time::Duration::from_secs(5),
        ..GatewayOptions::default()
    });
    let mut sealed = 0u64;
    let mut ms = 0u64;
    let mut rest = data;
    while let Some((&hdr, tail)) = rest.split_first() {
        let len = (usize::from(hdr >> 2) * 8).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        ms += u64::from(hdr) * 50;
        let now = Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000);
        let opened_before = gw.opened();
        let mut changed = false;
        let mut frame = match hdr & 3 {
            0 => Frame::raw(chunk),
            1 => {
                let mut inner = chunk.to_vec();
                tidy_ipv4(&mut inner);
                let from = if chunk.first().is_some_and(|b| b & 2 != 0) {
                    ATTACKER_EP
                } else {
                    CLIENT_EP
                };
                sealed += 1;
                if chunk.get(1).is_some_and(|b| b & 1 != 0) {
                    gw.seal_from_client6(now, &inner, CLIENT_EP6)
                } else {
                    gw.seal_from_client(now, &inner, from)
                }
            }
            2 => {
                let mut f = gw.seal_from_client(now, &client_udp(5000, b"fuzz"), CLIENT_EP);
                sealed += 1;
                let msg = &mut f.packet_mut()[Frame::UDP_PAYLOAD..];
                for (m, d) in msg.iter_mut().zip(chunk) {
                    *m ^= d;
                    changed |= *d != 0;
                }
                f
            }
            _ => {
                let mut ip = chunk.to_vec();
                if ip.len() >= 20 {
                    ip[0] = 0x45;
                    ip[12..16].copy_from_slice(&SERVER.octets());
                    ip[16..20].copy_from_slice(&GW_ADDR.octets());
                }
                tidy_ipv4(&mut ip);
                let mut p = Vec::with_capacity(14 + ip.len());
                p.extend_from_slice(&GW_MAC);
                p.extend_from_slice(&LAN_MAC);
                p.extend_from_slice(&0x0800u16.to_be_bytes());
                p.extend_from_slice(&ip);
                Frame::raw(&p)
            }
        };
        let v = gw.process(now, &mut frame.buf, frame.len);
        check_verdict(v);
        if let Verdict::Park { resume, start, len } = v {
            let batch = fastpath::pipeline::Batch {
                tables: &gw.tables,
                routes: &gw.routes,
                now,
            };
            check_verdict(
                gw.pipeline
                    .resume(&batch, &mut frame.buf, resume, start, len),
            );
        }
        if changed {
            assert_eq!(gw.opened(), opened_before, "a changed message was opened");
        }
        assert!(gw.opened() <= sealed, "more packets opened than sealed");
        gw.pipeline.expire(now, 8);
        if ms % 3 == 0 {
            gw.drain_slow_path();
        }
    }
}
