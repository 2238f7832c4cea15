//! A UMEM frame as the worker holds it: an owned handle (not `Clone`) plus where the packet
//! currently starts in the frame and how long it is.
//!
//! Frame layout (one `FRAME_SIZE` chunk of the UMEM):
//!
//! ```text
//! 0                RX_OFFSET                                   FRAME_SIZE
//! |--- headroom ---|--- packet as received ---|--- tailroom ---|
//! ```
//!
//! The kernel writes received packets at `RX_OFFSET` (its `XDP_PACKET_HEADROOM`), so the 256
//! bytes before it are free for prepending an outer Ethernet + IPv6 + UDP + WireGuard header
//! (14 + 40 + 8 + 16 = 78 bytes, 82 with a VLAN tag) and the tailroom holds the 16-byte
//! Poly1305 tag and padding. The worker moves the packet's start and length with
//! [`Frame::set_packet`] while it strips or prepends headers.

use xsk_rs::FrameDesc;

/// Bytes per UMEM frame (a power of two, as aligned UMEM chunks must be).
pub const FRAME_SIZE: usize = 4096;

/// Where received packets start in their frame: the kernel's `XDP_PACKET_HEADROOM`.
pub const RX_OFFSET: usize = 256;

/// Where transmitted packets must start in their frame. xsk-rs 0.11 fixes a descriptor's
/// address (`FrameDesc::addr` cannot be set), so a packet whose start moved is copied back
/// here before it is queued: one `memmove` of the packet, inside the same frame.
pub const TX_OFFSET: usize = RX_OFFSET;

/// Largest packet that can be transmitted.
pub const MAX_TX_LEN: usize = FRAME_SIZE - TX_OFFSET;

/// A packet placement that does not fit in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("packet at offset {start} with length {len} does not fit a {FRAME_SIZE}-byte frame")]
pub struct OutOfFrame {
    pub start: usize,
    pub len: usize,
}

/// One UMEM frame owned by the worker. Give it back with `XskGroup::release` or send it with
/// `XskGroup::tx`; a dropped `Frame` is lost to the pool until the group is rebuilt.
#[derive(Debug)]
#[must_use = "a Frame must go back to its XskGroup (release or tx), or the pool shrinks"]
pub struct Frame {
    pub(crate) desc: FrameDesc,
    pub(crate) group: u32,
    start: u16,
    len: u16,
}

impl Frame {
    pub(crate) fn new(desc: FrameDesc, group: u32, start: usize, len: usize) -> Frame {
        debug_assert!(start + len <= FRAME_SIZE);
        Frame {
            desc,
            group,
            start: start as u16,
            len: len as u16,
        }
    }

    /// Offset of the packet's first byte in the frame (bytes of headroom before it).
    pub fn start(&self) -> usize {
        self.start as usize
    }

    /// Packet length.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the packet is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Says where the packet now is in the frame, after headers were stripped (start moves
    /// forward) or prepended in the headroom (start moves back), or the tail changed.
    pub fn set_packet(&mut self, start: usize, len: usize) -> Result<(), OutOfFrame> {
        match start.checked_add(len) {
            Some(end) if end <= FRAME_SIZE => {
                self.start = start as u16;
                self.len = len as u16;
                Ok(())
            }
            _ => Err(OutOfFrame { start, len }),
        }
    }

    /// Offset of this frame's first byte in the UMEM.
    pub(crate) fn umem_offset(&self) -> usize {
        self.desc.addr() & !(FRAME_SIZE - 1)
    }
}
