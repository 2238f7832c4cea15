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
//! Transmission starts at [`TX_OFFSET`]. A packet elsewhere in its frame is moved there
//! ([`place_for_tx`]); the forward direction avoids that by decrypting straight to where its
//! inner packet is sent from ([`forward_plaintext_offset`]). The reverse direction cannot: its
//! sealed datagram grows in front of the return packet, so it starts before `TX_OFFSET` and is
//! moved.

/// Bytes per UMEM frame (a power of two, as aligned UMEM chunks must be).
pub const FRAME_SIZE: usize = 4096;

/// Where received packets start in their frame: the kernel's `XDP_PACKET_HEADROOM`.
pub const RX_OFFSET: usize = 256;

/// Where transmitted packets must start in their frame. xsk-rs 0.11 fixes a descriptor's
/// address (`FrameDesc::addr` cannot be set), so a packet whose start moved is copied back
/// here before it is queued: one `memmove` of the packet, inside the same frame.
pub const TX_OFFSET: usize = RX_OFFSET;

/// Where a decrypted inner packet goes so that it is transmitted without a move: right after
/// the `l2_header_len`-byte link-layer header that starts at [`TX_OFFSET`] (the pipeline
/// writes an untagged Ethernet header, `wire::ethernet::HEADER_LEN`; a tagged layout passes
/// its own length).
pub const fn forward_plaintext_offset(l2_header_len: usize) -> usize {
    TX_OFFSET + l2_header_len
}

/// Moves the `len`-byte packet at `frame[start..]` to `frame[tx_offset..]`, where the frame is
/// transmitted from; nothing when it is there already. What the AF_XDP edge does to every
/// packet it queues (and the bench, to time it). The caller checked that both fit the frame.
#[inline]
pub fn place_for_tx(frame: &mut [u8], start: usize, len: usize, tx_offset: usize) {
    if start != tx_offset {
        frame.copy_within(start..start + len, tx_offset);
    }
}

/// Largest packet that can be transmitted.
pub const MAX_TX_LEN: usize = FRAME_SIZE - TX_OFFSET;
