//! Two workers' pipelines, sans-IO: what one worker receives but the other's NAT owns is
//! handed over (`Verdict::Handoff`) and finished by the owner (`Pipeline::resume`), in both
//! directions, with the NAT state only ever touched by its owner. The worker loop's part (the
//! lanes between threads) is `dataplane::worker::handoff`; the root test
//! `gateway_multiqueue.rs` runs the whole thing on a two-queue veth.

mod hostile_support;

use fastpath::pipeline::{Batch, Resume, Verdict};
use hostile_support::*;
use nat::Partition;
use wgproto::time::Timestamp;

const NOW: Timestamp = Timestamp::from_nanos(1_000_000_000);

fn opts(worker: u16) -> GatewayOptions {
    GatewayOptions {
        nat_workers: 2,
        nat_worker: worker,
        ..GatewayOptions::default()
    }
}

/// Resumes a handed-over packet on `owner` the way the worker loop does: the bytes at the
/// same offset of a fresh frame.
fn resume_on(
    owner: &mut Gateway,
    from: &Frame,
    resume: Resume,
    start: usize,
    len: usize,
) -> (Verdict, Frame) {
    let mut frame = Frame::raw(&[]);
    frame.buf[start..start + len].copy_from_slice(&from.buf[start..start + len]);
    let batch = Batch {
        tables: &owner.tables,
        routes: &owner.routes,
        now: NOW,
    };
    let v = owner
        .pipeline
        .resume(&batch, &mut frame.buf, resume, start, len);
    (v, frame)
}

/// The parts of a `Verdict::Handoff`, or a panic saying what was `expected`.
fn handoff(v: Verdict, expected: &str) -> (u16, Resume, usize, usize) {
    match v {
        Verdict::Handoff {
            owner,
            resume,
            start,
            len,
        } => (owner, resume, start, len),
        other => panic!("{expected}, got {other:?}"),
    }
}

#[test]
fn outbound_and_return_traffic_cross_to_the_owner_and_back_out() {
    let partition = Partition::new(&opts(0).nat_config());
    let owner_idx = partition.owner_of_inside(CLIENT_INNER);
    let other_idx = 1 - owner_idx;
    let mut owner = Gateway::new(opts(owner_idx));
    let mut other = Gateway::new(opts(other_idx));

    // Outbound: the client's packet lands on the worker that does not own it.
    let mut f = other.seal_from_client(NOW, &client_udp(5555, b"request"), CLIENT_EP);
    let v = other.process(NOW, &mut f.buf, f.len);
    let (to, resume, start, len) = handoff(v, "the non-owner must hand the packet over");
    assert_eq!((to, resume), (owner_idx, Resume::NatOutbound));
    assert_eq!(
        other.pipeline.nat().unwrap().len(),
        0,
        "the non-owner maps nothing"
    );
    // What is handed over is the decrypted inner packet, TTL already decremented once.
    let inner = &f.buf[start..start + len];
    assert_eq!(&inner[12..16], &CLIENT_INNER.octets());
    assert_eq!(inner[8], 63);

    let (v, out) = resume_on(&mut owner, &f, resume, start, len);
    let tx = tx_bytes(v, &out).unwrap_or_else(|| panic!("the owner forwards it, got {v:?}"));
    assert_eq!(
        &tx[26..30],
        &GW_ADDR.octets(),
        "source NATed to the gateway"
    );
    assert_eq!(
        tx[14 + 8],
        63,
        "TTL decremented exactly once across the handoff"
    );
    let ext = u16::from_be_bytes([tx[34], tx[35]]);
    assert!(
        partition.slice(owner_idx).contains(&ext),
        "port {ext} from the owner's slice {:?}",
        partition.slice(owner_idx)
    );
    assert_eq!(owner.pipeline.nat().unwrap().len(), 1);

    // Return traffic to that port arrives at the other worker's queue.
    let mut f = lan_frame(&ipv4_udp(SERVER, GW_ADDR, 8080, ext, b"response", 64));
    let v = other.process(NOW, &mut f.buf, f.len);
    let (to, resume, start, len) =
        handoff(v, "return traffic for the owner's port must be handed over");
    assert_eq!((to, resume), (owner_idx, Resume::NatInbound));
    let (v, out) = resume_on(&mut owner, &f, resume, start, len);
    let Verdict::Tx { start, len, .. } = v else {
        panic!("the owner seals the reply to the peer, got {v:?}");
    };
    let mut msg = out.buf[start + 42..start + len].to_vec();
    let opened = owner
        .client
        .open_in_place(NOW, &mut msg)
        .expect("the client opens the reply");
    let inner = &msg[opened.plaintext];
    assert_eq!(
        &inner[16..20],
        &CLIENT_INNER.octets(),
        "un-NATed to the client"
    );
    assert_eq!(u16::from_be_bytes([inner[22], inner[23]]), 5555);
    assert_eq!(&inner[28..36], b"response");
}
