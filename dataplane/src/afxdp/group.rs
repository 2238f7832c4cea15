//! One worker's AF_XDP I/O: a UMEM shared by one socket per interface on the worker's queue,
//! the frame pool, and batched ring operations.
//!
//! Why one shared UMEM per worker: in the two-armed layout a frame received on the WAN socket
//! is transmitted on the LAN socket (and back). With both sockets on the same UMEM
//! (`XDP_SHARED_UMEM`, which the kernel allows across devices and queues since 5.10, each
//! socket with its own fill and completion rings) that is a descriptor handoff, not a copy, in
//! copy mode as in zero-copy mode.
//!
//! Frame ownership is tracked by moving [`Frame`] handles: a frame is either in the free list,
//! on a fill/rx/tx/completion ring (the kernel's), or in the worker's hands as a `Frame`. Only
//! the holder of a `Frame` can reach its bytes. Nothing here allocates after construction.

use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use tracing::{info, warn};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::frame::{Frame, FRAME_SIZE, RX_OFFSET};
use super::mode::{BoundMode, Mode};
use crate::xdp::{AttachMode, XdpError, XdpProgram};
use fastpath::counters::XskStats;
use fastpath::frame::place_for_tx;

/// Sizes of one worker's rings and pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XskConfig {
    /// Entries in each rx, tx, fill and completion ring (power of two).
    pub ring_size: u32,
    /// UMEM frames per socket (the pool is shared by the group's sockets).
    pub frames_per_socket: u32,
    /// Most descriptors moved per ring operation.
    pub batch_size: usize,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            ring_size: 2048,
            frames_per_socket: 4096,
            batch_size: 64,
        }
    }
}

/// Why the group could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    #[error("invalid AF_XDP sizes: {0}")]
    Config(String),
    #[error("creating the UMEM ({frames} frames of {FRAME_SIZE} bytes) failed: {detail}")]
    Umem { frames: u32, detail: String },
    #[error("binding an AF_XDP socket to {ifname} queue {queue} in {mode} mode failed: {detail}{}", bind_hint(*.mode))]
    Bind {
        ifname: String,
        queue: u32,
        mode: BoundMode,
        detail: String,
    },
    #[error(
        "mode {mode} cannot run on {ifname}: its XDP program is attached in {attach} mode \
         (zerocopy and copy need driver mode, skb needs generic mode)"
    )]
    ModeMismatch {
        ifname: String,
        mode: Mode,
        attach: AttachMode,
    },
    #[error("interface {0} is listed twice for the same queue")]
    DuplicateInterface(String),
    #[error(transparent)]
    Xdp(#[from] XdpError),
}

/// Which interface and queue a socket of the group serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    pub ifname: String,
    pub ifindex: u32,
    pub queue_id: u32,
    pub mode: BoundMode,
}

/// Why a frame handed to [`XskGroup::tx`] was not queued (the frame went back to the pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("packet of {len} bytes is larger than a frame can send")]
    TooBig { len: usize },
    #[error("transmit queue full")]
    Full,
}

struct XskSocket {
    info: SocketInfo,
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    comp: CompQueue,
    /// Queued by `tx`, not yet on the tx ring.
    pending: Vec<FrameDesc>,
    /// On the tx ring or completion ring, not yet reclaimed.
    in_flight: usize,
}

/// Kicks one flush may make in copy mode: the kernel copies at most 32 descriptors per
/// `sendto` there (`TX_BATCH_SIZE` in net/xdp/xsk.c), so a full ring of the default 2048 takes
/// 64; a bound keeps one flush from spinning if the kernel stops consuming (link down).
const MAX_COPY_KICKS: u32 = 128;

impl XskSocket {
    /// Whether the kernel has taken every descriptor on the tx ring.
    fn tx_ring_drained(&mut self, ring_size: u32) -> bool {
        self.tx.nb_free(ring_size) == ring_size
    }

    /// Wakes the kernel to transmit what the tx ring holds, if it asked to be woken. In copy
    /// and skb mode the transmission happens inside the `sendto`, 32 descriptors at a time: one
    /// kick per flush left the rest of a burst on the ring until the next flush, and a worker
    /// with nothing received sleeps up to IDLE_POLL_MS before that; meanwhile those frames
    /// are neither sent nor back in the pool, and the fill ring runs dry. So kick until the
    /// ring is drained. In zero-copy mode the driver transmits on its own after one kick.
    fn kick(&mut self, ring_size: u32) -> io::Result<()> {
        let mut kicks = 0;
        while self.tx.needs_wakeup() {
            self.tx.wakeup()?;
            kicks += 1;
            if self.info.mode == BoundMode::ZeroCopy
                || kicks == MAX_COPY_KICKS
                || self.tx_ring_drained(ring_size)
            {
                break;
            }
        }
        Ok(())
    }
}

static NEXT_GROUP_ID: AtomicU32 = AtomicU32::new(1);

/// A worker's sockets (one per interface, all on the same queue id) over one shared UMEM.
pub struct XskGroup {
    id: u32,
    umem: Umem,
    /// Start of the UMEM mapping (kept alive by `umem`).
    base: NonNull<u8>,
    umem_len: usize,
    sockets: Vec<XskSocket>,
    free: Vec<FrameDesc>,
    scratch: Vec<FrameDesc>,
    pollfds: Vec<libc::pollfd>,
    batch: usize,
    /// Entries of every tx ring (`AfXdpConfig::ring_size`).
    ring_size: u32,
    /// Frames `alloc` may always take: the fill rings never get the last ones.
    reserve: usize,
}

// SAFETY: `base` points into the UMEM mapping owned by `umem` (which is Send); the group is
// the only user of the frames it owns, and moving it to another thread moves that exclusive
// access with it. It is deliberately not Sync.
unsafe impl Send for XskGroup {}

impl std::fmt::Debug for XskGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskGroup")
            .field("id", &self.id)
            .field(
                "sockets",
                &self.sockets.iter().map(|s| &s.info).collect::<Vec<_>>(),
            )
            .field("free_frames", &self.free.len())
            .finish()
    }
}

fn bind_candidates(mode: Mode, attach: AttachMode) -> Option<&'static [BoundMode]> {
    match (mode, attach) {
        (Mode::ZeroCopy, AttachMode::Driver) => Some(&[BoundMode::ZeroCopy]),
        (Mode::Copy, AttachMode::Driver) => Some(&[BoundMode::Copy]),
        (Mode::Auto, AttachMode::Driver) => Some(&[BoundMode::ZeroCopy, BoundMode::Copy]),
        (Mode::Skb | Mode::Auto, AttachMode::Generic) => Some(&[BoundMode::Skb]),
        _ => None,
    }
}

fn bind_flags(mode: BoundMode) -> BindFlags {
    // NEED_WAKEUP always: copy-mode TX only happens on sendto(), and the kernel only tells us
    // when that is needed if we asked for the flag (Documentation/networking/af_xdp.rst).
    match mode {
        BoundMode::ZeroCopy => BindFlags::XDP_ZEROCOPY | BindFlags::XDP_USE_NEED_WAKEUP,
        BoundMode::Copy | BoundMode::Skb => BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP,
    }
}

/// What the operator can do when a bind in `mode` fails for good.
fn bind_hint(mode: BoundMode) -> &'static str {
    match mode {
        BoundMode::ZeroCopy => {
            "; the driver may have no AF_XDP zero-copy support (veth, virtio_net and many others do not): set [dataplane] mode = \"auto\" (zero-copy when the driver can, else copy) or \"copy\""
        }
        BoundMode::Copy => "; set [dataplane] mode = \"auto\" or \"skb\" (generic XDP, works on any interface)",
        BoundMode::Skb => "",
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl XskGroup {
    /// Creates the shared UMEM and binds one socket per interface on `queue_id`, registering
    /// each in its interface's XSKMAP. `mode` is the configured mode; with [`Mode::Auto`] each
    /// socket tries zero-copy, then copy (logged).
    pub fn new(
        queue_id: u32,
        interfaces: &[&XdpProgram],
        mode: Mode,
        config: &XskConfig,
    ) -> Result<XskGroup, AfXdpError> {
        let ring = QueueSize::new(config.ring_size)
            .map_err(|e| AfXdpError::Config(format!("ring_size: {e}")))?;
        if interfaces.is_empty() {
            return Err(AfXdpError::Config("no interface".into()));
        }
        if config.batch_size == 0 || config.batch_size > config.ring_size as usize {
            return Err(AfXdpError::Config(format!(
                "batch_size {} must be between 1 and ring_size {}",
                config.batch_size, config.ring_size
            )));
        }
        let frames = config
            .frames_per_socket
            .checked_mul(interfaces.len() as u32)
            .filter(|&n| n >= 2 * config.ring_size)
            .ok_or_else(|| {
                AfXdpError::Config(format!(
                    "frames_per_socket {} x {} sockets must be at least twice ring_size {}",
                    config.frames_per_socket,
                    interfaces.len(),
                    config.ring_size
                ))
            })?;
        for (i, a) in interfaces.iter().enumerate() {
            if interfaces[..i].iter().any(|b| b.ifindex() == a.ifindex()) {
                return Err(AfXdpError::DuplicateInterface(a.ifname().to_string()));
            }
        }

        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE as u32).expect("FRAME_SIZE is valid"))
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .frame_headroom(0)
            .build()
            .map_err(|e| AfXdpError::Config(e.to_string()))?;
        let frame_count = std::num::NonZeroU32::new(frames).expect("checked above");
        let (umem, descs) =
            Umem::new(umem_config, frame_count, false).map_err(|e| AfXdpError::Umem {
                frames,
                detail: error_chain(&e),
            })?;
        let umem_len = frames as usize * FRAME_SIZE;
        let base = umem_base(&umem, &descs, umem_len).ok_or_else(|| AfXdpError::Umem {
            frames,
            detail: "unexpected UMEM frame layout".into(),
        })?;

        let id = NEXT_GROUP_ID.fetch_add(1, Ordering::Relaxed);
        let mut sockets = Vec::with_capacity(interfaces.len());
        for program in interfaces {
            let candidates =
                bind_candidates(mode, program.mode()).ok_or_else(|| AfXdpError::ModeMismatch {
                    ifname: program.ifname().to_string(),
                    mode,
                    attach: program.mode(),
                })?;
            sockets.push(bind_socket(
                &umem, program, queue_id, ring, candidates, config,
            )?);
        }

        let batch = config.batch_size;
        let pollfds = sockets
            .iter()
            .map(|s| libc::pollfd {
                fd: s.rx.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut group = XskGroup {
            id,
            umem,
            base,
            umem_len,
            sockets,
            free: descs,
            scratch: vec![FrameDesc::default(); batch.max(config.ring_size as usize)],
            pollfds,
            batch,
            ring_size: config.ring_size,
            reserve: 2 * batch,
        };
        for s in 0..group.sockets.len() {
            group
                .refill(s)
                .map_err(|e| AfXdpError::Config(format!("initial fill ring refill: {e}")))?;
        }
        Ok(group)
    }

    /// Number of sockets (interfaces) in the group; socket indices are `0..len`, in the order
    /// the interfaces were given.
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// Interface, queue and mode of socket `sock`.
    pub fn socket_info(&self, sock: usize) -> &SocketInfo {
        &self.sockets[sock].info
    }

    /// Frames in the free list (not on a ring and not held by the worker).
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Takes up to `max` received frames from socket `sock`'s rx ring (at most the batch size),
    /// appending them to `out`. Returns how many. `out` should have capacity for them so that
    /// nothing allocates.
    pub fn rx(&mut self, sock: usize, out: &mut Vec<Frame>, max: usize) -> usize {
        let n = max.min(self.batch);
        let s = &mut self.sockets[sock];
        // SAFETY: the descriptors are out-parameters that consume() fills with frames the
        // kernel hands back to us; from here on they are ours until given back to a ring.
        let got = unsafe { s.rx.consume(&mut self.scratch[..n]) };
        for d in &self.scratch[..got] {
            let base = d.addr() & !(FRAME_SIZE - 1);
            let start = d.addr() - base;
            let len = d.lengths().data().min(FRAME_SIZE - start);
            out.push(Frame::new(*d, self.id, start, len));
        }
        got
    }

    /// The whole frame, headroom included; the packet is `[f.start()..f.start() + f.len()]`.
    pub fn buf<'a>(&'a self, f: &'a Frame) -> &'a [u8] {
        let off = self.checked_offset(f);
        // SAFETY: `off..off + FRAME_SIZE` is one frame inside the UMEM mapping (checked), which
        // `self.umem` keeps mapped. The frame is not on any ring: the caller holds its `Frame`,
        // and `Frame` is not Clone, so no `&mut` to these bytes exists while `&Frame` is held.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(off), FRAME_SIZE) }
    }

    /// The whole frame, writable, for stripping or prepending headers in place.
    pub fn buf_mut<'a>(&'a self, f: &'a mut Frame) -> &'a mut [u8] {
        let off = self.checked_offset(f);
        // SAFETY: as in `buf`; `&mut Frame` is the only handle to this frame, so this is the
        // only reference to its bytes for the returned lifetime. The kernel does not touch a
        // frame that is on none of its rings.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(off), FRAME_SIZE) }
    }

    /// The packet bytes.
    pub fn packet<'a>(&'a self, f: &'a Frame) -> &'a [u8] {
        let (s, l) = (f.start(), f.len());
        &self.buf(f)[s..s + l]
    }

    /// The packet bytes, writable.
    pub fn packet_mut<'a>(&'a self, f: &'a mut Frame) -> &'a mut [u8] {
        let (s, l) = (f.start(), f.len());
        &mut self.buf_mut(f)[s..s + l]
    }

    /// A free frame (empty packet at [`RX_OFFSET`]) for building a packet from scratch or
    /// copying one in, e.g. from the slow path. `None` when the pool is empty.
    pub fn alloc(&mut self) -> Option<Frame> {
        let d = self.free.pop()?;
        let start = d.addr() & (FRAME_SIZE - 1);
        Some(Frame::new(d, self.id, start.min(RX_OFFSET), 0))
    }

    /// Gives a frame back to the pool (a dropped packet).
    pub fn release(&mut self, f: Frame) {
        self.checked_offset(&f);
        self.free.push(f.desc);
    }

    /// Queues `f` for transmission on socket `sock` (sent by the next [`flush`](Self::flush)
    /// or [`service`](Self::service)). On error the frame is back in the pool.
    pub fn tx(&mut self, sock: usize, mut f: Frame) -> Result<(), TxError> {
        let base = self.checked_offset(&f);
        let tx_off = f.desc.addr() - base;
        let (start, len) = (f.start(), f.len());
        if len > FRAME_SIZE - tx_off {
            self.free.push(f.desc);
            return Err(TxError::TooBig { len });
        }
        if self.sockets[sock].pending.len() == self.sockets[sock].pending.capacity() {
            // Make room by pushing what is queued onto the ring.
            let _ = self.flush(sock);
            if self.sockets[sock].pending.len() == self.sockets[sock].pending.capacity() {
                self.free.push(f.desc);
                return Err(TxError::Full);
            }
        }
        // The forward direction decrypted its packet to `tx_off` already (nothing to move);
        // the reverse direction's sealed datagram grew in front of it and is moved.
        place_for_tx(self.buf_mut(&mut f), start, len, tx_off);
        // SAFETY: the descriptor is a frame of this UMEM that we own (not on any ring); the
        // cursor only records the packet length in the descriptor.
        unsafe { self.umem.data_mut(&mut f.desc) }
            .cursor()
            .set_pos(len);
        self.sockets[sock].pending.push(f.desc);
        Ok(())
    }

    /// Puts queued frames of socket `sock` on its tx ring and kicks the kernel if it asked for
    /// it. Returns how many went on the ring (the rest stay queued).
    pub fn flush(&mut self, sock: usize) -> io::Result<usize> {
        let ring_size = self.ring_size;
        let s = &mut self.sockets[sock];
        let produced = if s.pending.is_empty() {
            0
        } else {
            let room = s.tx.nb_free(s.pending.len() as u32) as usize;
            let n = room.min(s.pending.len());
            // SAFETY: every pending descriptor is a frame of this group's UMEM that we own and
            // whose length was set by `tx`; from here the kernel owns it until it comes back on
            // the completion ring.
            let produced = unsafe { s.tx.produce(&s.pending[..n]) };
            s.pending.drain(..produced);
            s.in_flight += produced;
            produced
        };
        if produced == 0 && (s.info.mode == BoundMode::ZeroCopy || s.tx_ring_drained(ring_size)) {
            return Ok(0);
        }
        s.kick(ring_size)?;
        Ok(produced)
    }

    /// Takes completed transmissions of socket `sock` back into the pool. Returns how many.
    pub fn reclaim(&mut self, sock: usize) -> usize {
        let s = &mut self.sockets[sock];
        let n = self.scratch.len().min(s.in_flight.max(self.batch));
        // SAFETY: out-parameters filled with addresses of frames whose transmission finished;
        // the kernel no longer uses them.
        let got = unsafe { s.comp.consume(&mut self.scratch[..n]) };
        s.in_flight = s.in_flight.saturating_sub(got);
        self.free.extend_from_slice(&self.scratch[..got]);
        got
    }

    /// Tops up socket `sock`'s fill ring from the pool (keeping a small reserve for
    /// [`alloc`](Self::alloc)), waking the driver if it asked to be.
    pub fn refill(&mut self, sock: usize) -> io::Result<usize> {
        let available = self.free.len().saturating_sub(self.reserve);
        let s = &mut self.sockets[sock];
        let room = s.fill.nb_free(available as u32) as usize;
        let n = room.min(available);
        if n == 0 {
            return Ok(0);
        }
        let from = self.free.len() - n;
        // SAFETY: these descriptors are free frames of this UMEM; handing them to the fill ring
        // gives them to the kernel until they come back on the rx ring.
        let produced = unsafe { s.fill.produce(&self.free[from..]) };
        // The ring reserves all-or-nothing; drop exactly what went on it.
        self.free.drain(from..from + produced);
        if produced > 0 && s.fill.needs_wakeup() {
            s.fill.wakeup(s.rx.fd_mut(), 0)?;
        }
        Ok(produced)
    }

    /// Per-iteration housekeeping for every socket: reclaim completions, flush queued
    /// transmissions, refill fill rings.
    pub fn service(&mut self) -> io::Result<()> {
        for s in 0..self.sockets.len() {
            self.reclaim(s);
            self.flush(s)?;
            self.refill(s)?;
        }
        Ok(())
    }

    /// Adds `fd` to the set [`wait_readable`](Self::wait_readable) sleeps on, so that another
    /// thread can wake the worker (the handoff doorbell). `fd` must stay open while the group
    /// lives.
    pub fn watch_fd(&mut self, fd: std::os::fd::RawFd) {
        self.pollfds.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
    }

    /// Sleeps until some socket has received frames or `timeout_ms` passes (-1: forever).
    /// Returns whether something is readable.
    pub fn wait_readable(&mut self, timeout_ms: i32) -> io::Result<bool> {
        for p in &mut self.pollfds {
            p.revents = 0;
        }
        // SAFETY: `pollfds` is a valid array of `len` pollfd structs that lives across the call.
        let rc = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(rc > 0)
    }

    /// The kernel's counters for socket `sock`.
    pub fn stats(&self, sock: usize) -> io::Result<XskStats> {
        let k = self.sockets[sock].rx.fd().xdp_statistics()?;
        Ok(XskStats {
            rx_dropped: k.rx_dropped(),
            rx_invalid_descs: k.rx_invalid_descs(),
            tx_invalid_descs: k.tx_invalid_descs(),
            rx_ring_full: k.rx_ring_full(),
            rx_fill_ring_empty_descs: k.rx_fill_ring_empty_descs(),
            tx_ring_empty_descs: k.tx_ring_empty_descs(),
        })
    }

    /// Offset of `f`'s frame in the UMEM, after checking it is one of ours. A frame of another
    /// group is a programming error: its offset would name one of our frames.
    fn checked_offset(&self, f: &Frame) -> usize {
        assert_eq!(f.group, self.id, "frame from another XskGroup");
        let off = f.umem_offset();
        assert!(off + FRAME_SIZE <= self.umem_len, "frame outside the UMEM");
        off
    }
}

/// The address of the UMEM mapping, recovered from the first frame's data pointer, and
/// checked against the last frame's (xsk-rs does not expose the mapping itself).
fn umem_base(umem: &Umem, descs: &[FrameDesc], umem_len: usize) -> Option<NonNull<u8>> {
    let (first, last) = (descs.first()?, descs.last()?);
    if last.addr() + FRAME_SIZE - RX_OFFSET > umem_len || first.addr() != RX_OFFSET {
        return None;
    }
    // SAFETY: both descriptors are frames of `umem` that no ring holds yet; `data` only forms
    // an empty slice at the frame's data address, which we read the pointer of.
    let (p_first, p_last) = unsafe {
        (
            umem.data(first).contents().as_ptr(),
            umem.data(last).contents().as_ptr(),
        )
    };
    let base = p_first.wrapping_sub(first.addr());
    if base.wrapping_add(last.addr()) != p_last {
        return None;
    }
    NonNull::new(base as *mut u8)
}

fn bind_socket(
    umem: &Umem,
    program: &XdpProgram,
    queue_id: u32,
    ring: QueueSize,
    candidates: &[BoundMode],
    config: &XskConfig,
) -> Result<XskSocket, AfXdpError> {
    let ifname = program.ifname();
    let iface: Interface = ifname
        .parse()
        .map_err(|_| AfXdpError::Config(format!("interface name {ifname:?}")))?;
    let mut last_err = None;
    for (i, &mode) in candidates.iter().enumerate() {
        let socket_config = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind_flags(mode))
            .build();
        // SAFETY: INHIBIT_PROG_LOAD is set (xsk-rs's condition for sharing a UMEM), so libxdp
        // never loads or detaches a program; ours is managed by `XdpProgram`.
        let created = unsafe { Socket::new(socket_config, umem, &iface, queue_id) };
        match created {
            Ok((tx, rx, Some((fill, comp)))) => {
                program.register_socket(queue_id, rx.fd().as_raw_fd())?;
                info!(ifname, queue_id, mode = mode.name(), "AF_XDP socket bound");
                return Ok(XskSocket {
                    info: SocketInfo {
                        ifname: ifname.to_string(),
                        ifindex: program.ifindex(),
                        queue_id,
                        mode,
                    },
                    tx,
                    rx,
                    fill,
                    comp,
                    pending: Vec::with_capacity(config.ring_size as usize),
                    in_flight: 0,
                });
            }
            Ok((_, _, None)) => {
                return Err(AfXdpError::DuplicateInterface(ifname.to_string()));
            }
            Err(e) => {
                let detail = error_chain(&e);
                if i + 1 < candidates.len() {
                    if mode == BoundMode::ZeroCopy {
                        // Expected on veth, virtio_net and most drivers: auto mode's plan B.
                        info!(ifname, queue_id, reason = %detail, "zero-copy unavailable on this driver, using copy mode (auto)");
                    } else {
                        warn!(ifname, queue_id, mode = mode.name(), error = %detail, "AF_XDP bind failed, trying the next mode");
                    }
                }
                last_err = Some(AfXdpError::Bind {
                    ifname: ifname.to_string(),
                    queue: queue_id,
                    mode,
                    detail,
                });
            }
        }
    }
    Err(last_err.expect("at least one candidate mode"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_attach_and_bind_choices() {
        assert_eq!(
            bind_candidates(Mode::Auto, AttachMode::Driver),
            Some(&[BoundMode::ZeroCopy, BoundMode::Copy][..])
        );
        assert_eq!(
            bind_candidates(Mode::Auto, AttachMode::Generic),
            Some(&[BoundMode::Skb][..])
        );
        assert_eq!(bind_candidates(Mode::ZeroCopy, AttachMode::Generic), None);
        assert_eq!(bind_candidates(Mode::Skb, AttachMode::Driver), None);
        assert!(bind_flags(BoundMode::ZeroCopy).contains(BindFlags::XDP_ZEROCOPY));
        assert!(bind_flags(BoundMode::Skb).contains(BindFlags::XDP_COPY));
        assert!(bind_flags(BoundMode::Copy).contains(BindFlags::XDP_USE_NEED_WAKEUP));
    }

    #[test]
    fn a_failed_zero_copy_bind_suggests_auto_or_copy() {
        let e = AfXdpError::Bind {
            ifname: "veth0".into(),
            queue: 0,
            mode: BoundMode::ZeroCopy,
            detail: "Operation not supported (os error 95)".into(),
        }
        .to_string();
        assert!(
            e.contains("mode = \"auto\"") && e.contains("\"copy\""),
            "{e}"
        );
    }
}
