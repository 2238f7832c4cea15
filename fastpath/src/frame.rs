//! The layout of one UMEM frame, the contract between the AF_XDP edge that owns the frames and
//! the pipeline that rewrites packets inside them.
//!
//! ```text
//! 0                RX_OFFSET                                   FRAME_SIZE
//! |--- headroom ---|--- packet as received ---|--- tailroom ---|
//! ```
//!
//! The kernel writes received packets at `RX_OFFSET` (its `XDP_PACKET_HEADROOM`), so the 256
//! bytes before it are free for prepending an outer Ethernet + IPv6 + UDP + WireGuard header
//! (14 + 40 + 8 + 16 = 78 bytes, 82 with a VLAN tag) and the tailroom holds the 16-byte
//! Poly1305 tag and padding.
//!
//! Transmission starts wherever the packet starts: the AF_XDP edge (`dataplane::afxdp`) queues
//! a descriptor whose address is the packet's own, so a packet anywhere in its frame is sent
//! without being moved. The kernel only requires it to lie inside one frame (aligned UMEM:
//! address plus length within the chunk), which `start + len <= FRAME_SIZE` is. The reverse
//! direction's sealed datagram, which grows in front of the return packet, is sent from
//! before [`TX_OFFSET`]; the forward direction still decrypts to
//! [`forward_plaintext_offset`], harmless now (the Ethernet header then lands at `TX_OFFSET`).

/// Bytes per UMEM frame (a power of two, as aligned UMEM chunks must be).
pub const FRAME_SIZE: usize = 4096;

/// Where received packets start in their frame: the kernel's `XDP_PACKET_HEADROOM`.
pub const RX_OFFSET: usize = 256;

/// Where a packet built from scratch in a free frame starts (the edge hands out free frames
/// with an empty packet here), and where the forward direction puts its Ethernet header. No
/// longer a constraint of the edge, which transmits from any start.
pub const TX_OFFSET: usize = RX_OFFSET;

/// Where a decrypted inner packet goes so that it is transmitted without a move: right after
/// the `l2_header_len`-byte link-layer header that starts at [`TX_OFFSET`] (the pipeline
/// writes an untagged Ethernet header, `wire::ethernet::HEADER_LEN`; a tagged layout passes
/// its own length).
pub const fn forward_plaintext_offset(l2_header_len: usize) -> usize {
    TX_OFFSET + l2_header_len
}

/// Whether the edge can transmit the `len`-byte packet at `start` of its frame as it is: not
/// empty (the kernel drops an empty descriptor without completing it) and inside the frame.
/// What the AF_XDP edge checks of every packet it queues (and the bench, to time it).
#[inline]
pub const fn sendable_in_place(start: usize, len: usize) -> bool {
    len > 0 && start <= FRAME_SIZE && len <= FRAME_SIZE - start
}

/// Largest packet of a frame built from scratch at [`TX_OFFSET`] (the slow path's handoff
/// copies packets into such frames).
pub const MAX_TX_LEN: usize = FRAME_SIZE - TX_OFFSET;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_sendable_where_it_is_when_inside_its_frame_and_not_empty() {
        assert!(sendable_in_place(RX_OFFSET - 78, 1500));
        assert!(sendable_in_place(0, FRAME_SIZE));
        assert!(sendable_in_place(FRAME_SIZE - 1, 1));
        assert!(!sendable_in_place(TX_OFFSET, 0), "empty");
        assert!(
            !sendable_in_place(100, FRAME_SIZE - 99),
            "crosses the frame's end"
        );
        assert!(!sendable_in_place(FRAME_SIZE + 1, 1));
        assert!(!sendable_in_place(usize::MAX, 2), "no overflow");
    }
}
