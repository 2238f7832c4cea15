//! AF_XDP sockets and their UMEM: the worker's only way to receive and send frames.
//!
//! - [`mode`]: the configured mode (`zerocopy`, `copy`, `skb`, `auto`) and attaching the XDP
//!   program accordingly;
//! - [`group`]: one worker's sockets (one per interface on its queue) over one shared UMEM,
//!   with batched rx / tx / fill / completion ring operations and the frame pool;
//! - [`frame`]: the owned frame handle and the frame layout (headroom for in-place
//!   encapsulation);
//! - `socket` and `ring`: the kernel interface itself (socket, UMEM registration, the four
//!   mapped rings), owned so that each transmitted descriptor names where its packet starts.
//!
//! All `unsafe` of the AF_XDP edge lives here (and in `crate::xdp`); the worker only sees safe
//! methods and `&mut [u8]` views of the frames it owns.
//!
//! Typical worker loop:
//!
//! ```no_run
//! # use dataplane::afxdp::*;
//! # fn f(group: &mut XskGroup) -> std::io::Result<()> {
//! let mut batch = Vec::with_capacity(64);
//! loop {
//!     for sock in 0..group.socket_count() {
//!         group.rx(sock, &mut batch, 64);
//!         for frame in batch.drain(..) {
//!             // parse / rewrite in place via group.buf_mut(&mut frame) + frame.set_packet(..)
//!             let _ = group.tx(sock, frame); // or group.release(frame) to drop it
//!         }
//!     }
//!     group.service()?; // reclaim completions, flush tx (with wakeup), refill fill rings
//!     group.wait_readable(10)?;
//! }
//! # }
//! ```

pub mod frame;
pub mod group;
pub mod mode;
pub mod queues;
mod ring;
mod socket;

pub use frame::{Frame, OutOfFrame, FRAME_SIZE, MAX_TX_LEN, RX_OFFSET, TX_OFFSET};
pub use group::{AfXdpError, SocketInfo, TxError, XskConfig, XskGroup};
pub use mode::{attach_program, BoundMode, Mode, ModeParseError};
