//! A UMEM frame as the worker holds it: an owned handle (not `Clone`) plus where the packet
//! currently starts in the frame and how long it is.
//!
//! The frame layout is `fastpath::frame`'s. The worker moves the packet's start and length with
//! [`Frame::set_packet`] while it strips or prepends headers.

pub use fastpath::frame::{FRAME_SIZE, MAX_TX_LEN, RX_OFFSET, TX_OFFSET};

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
    /// Offset of the frame's first byte in the UMEM (a multiple of `FRAME_SIZE`).
    pub(crate) base: u64,
    pub(crate) group: u32,
    start: u16,
    len: u16,
}

impl Frame {
    pub(crate) fn new(base: u64, group: u32, start: usize, len: usize) -> Frame {
        debug_assert!(start + len <= FRAME_SIZE);
        Frame {
            base,
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
        self.base as usize
    }
}
