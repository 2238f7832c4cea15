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
use std::sync::atomic::{AtomicU32, Ordering};

use tracing::{info, warn};

use super::frame::{Frame, FRAME_SIZE, RX_OFFSET};
use super::mode::{BoundMode, Mode};
use super::socket::{Bind, RawXsk, UmemArea};
use crate::xdp::{AttachMode, XdpError, XdpProgram};
use fastpath::counters::XskStats;
use fastpath::frame::sendable_in_place;

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
    /// Empty, or not inside one frame (the kernel refuses a descriptor that crosses a chunk).
    #[error("packet of {len} bytes cannot be sent from one frame")]
    TooBig { len: usize },
    #[error("transmit queue full")]
    Full,
}

struct XskSocket {
    info: SocketInfo,
    raw: RawXsk,
    /// Queued by `tx`, not yet on the tx ring: each descriptor's address is where its packet
    /// starts in the UMEM, so nothing is moved to send it.
    pending: Vec<libc::xdp_desc>,
    /// On the tx ring or completion ring, not yet reclaimed.
    in_flight: usize,
}

/// Kicks one flush may make in copy mode: the kernel copies at most 32 descriptors per
/// `sendto` there (`TX_BATCH_SIZE` in net/xdp/xsk.c), so a full ring of the default 2048 takes
/// 64; a bound keeps one flush from spinning if the kernel stops consuming (link down).
const MAX_COPY_KICKS: u32 = 128;

impl XskSocket {
    /// Whether the kernel has taken every descriptor on the tx ring.
    fn tx_ring_drained(&mut self) -> bool {
        self.raw.tx.drained()
    }

    /// Wakes the kernel to transmit what the tx ring holds, if it asked to be woken. In copy
    /// and skb mode the transmission happens inside the `sendto`, 32 descriptors at a time: one
    /// kick per flush left the rest of a burst on the ring until the next flush, and a worker
    /// with nothing received sleeps up to IDLE_POLL_MS before that; meanwhile those frames
    /// are neither sent nor back in the pool, and the fill ring runs dry. So kick until the
    /// ring is drained. In zero-copy mode the driver transmits on its own after one kick.
    fn kick(&mut self) -> io::Result<()> {
        let mut kicks = 0;
        while self.raw.tx.needs_wakeup() {
            self.raw.kick_tx()?;
            kicks += 1;
            if self.info.mode == BoundMode::ZeroCopy
                || kicks == MAX_COPY_KICKS
                || self.tx_ring_drained()
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
    /// Declared before `umem`: the sockets (which pin the UMEM for the kernel) close first.
    sockets: Vec<XskSocket>,
    umem: UmemArea,
    /// Offsets of free frames (multiples of `FRAME_SIZE`).
    free: Vec<u64>,
    /// Out-parameters of rx ring reads.
    rx_scratch: Vec<libc::xdp_desc>,
    /// Out-parameters of completion ring reads.
    comp_scratch: Vec<u64>,
    pollfds: Vec<libc::pollfd>,
    batch: usize,
    /// Frames `alloc` may always take: the fill rings never get the last ones.
    reserve: usize,
}

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

fn bind_flags(mode: BoundMode) -> u16 {
    // NEED_WAKEUP always: copy-mode TX only happens on sendto(), and the kernel only tells us
    // when that is needed if we asked for the flag (Documentation/networking/af_xdp.rst).
    match mode {
        BoundMode::ZeroCopy => libc::XDP_ZEROCOPY | libc::XDP_USE_NEED_WAKEUP,
        BoundMode::Copy | BoundMode::Skb => libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP,
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
        let ring = config.ring_size;
        if !ring.is_power_of_two() {
            return Err(AfXdpError::Config(format!(
                "ring_size: {ring} is not a power of two"
            )));
        }
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

        let umem = UmemArea::new(frames).map_err(|e| AfXdpError::Umem {
            frames,
            detail: e.to_string(),
        })?;
        // Frame `i` is at `i * FRAME_SIZE`; popped from the end, so frame 0 goes out first.
        let free: Vec<u64> = (0..frames as u64)
            .rev()
            .map(|i| i * FRAME_SIZE as u64)
            .collect();

        let id = NEXT_GROUP_ID.fetch_add(1, Ordering::Relaxed);
        let mut sockets = Vec::with_capacity(interfaces.len());
        for program in interfaces {
            let candidates =
                bind_candidates(mode, program.mode()).ok_or_else(|| AfXdpError::ModeMismatch {
                    ifname: program.ifname().to_string(),
                    mode,
                    attach: program.mode(),
                })?;
            let owner = sockets.first().map(|s: &XskSocket| s.raw.fd());
            sockets.push(bind_socket(
                &umem, program, queue_id, candidates, owner, config,
            )?);
        }

        let batch = config.batch_size;
        let pollfds = sockets
            .iter()
            .map(|s| libc::pollfd {
                fd: s.raw.fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let scratch = batch.max(config.ring_size as usize);
        let mut group = XskGroup {
            id,
            sockets,
            umem,
            free,
            rx_scratch: vec![
                libc::xdp_desc {
                    addr: 0,
                    len: 0,
                    options: 0
                };
                scratch
            ],
            comp_scratch: vec![0; scratch],
            pollfds,
            batch,
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
        // The frames these descriptors name are ours from here until given back to a ring.
        let got = s.raw.rx.consume(&mut self.rx_scratch[..n]);
        for d in &self.rx_scratch[..got] {
            let base = d.addr & !(FRAME_SIZE as u64 - 1);
            let start = (d.addr - base) as usize;
            let len = (d.len as usize).min(FRAME_SIZE - start);
            out.push(Frame::new(base, self.id, start, len));
        }
        got
    }

    /// The whole frame, headroom included; the packet is `[f.start()..f.start() + f.len()]`.
    pub fn buf<'a>(&'a self, f: &'a Frame) -> &'a [u8] {
        let off = self.checked_offset(f);
        // SAFETY: `off..off + FRAME_SIZE` is one frame inside the UMEM mapping (checked), which
        // `self.umem` keeps mapped. The frame is not on any ring: the caller holds its `Frame`,
        // and `Frame` is not Clone, so no `&mut` to these bytes exists while `&Frame` is held.
        unsafe { std::slice::from_raw_parts(self.umem.base().as_ptr().add(off), FRAME_SIZE) }
    }

    /// The whole frame, writable, for stripping or prepending headers in place.
    pub fn buf_mut<'a>(&'a self, f: &'a mut Frame) -> &'a mut [u8] {
        let off = self.checked_offset(f);
        // SAFETY: as in `buf`; `&mut Frame` is the only handle to this frame, so this is the
        // only reference to its bytes for the returned lifetime. The kernel does not touch a
        // frame that is on none of its rings.
        unsafe { std::slice::from_raw_parts_mut(self.umem.base().as_ptr().add(off), FRAME_SIZE) }
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
        let base = self.free.pop()?;
        Some(Frame::new(base, self.id, RX_OFFSET, 0))
    }

    /// Gives a frame back to the pool (a dropped packet).
    pub fn release(&mut self, f: Frame) {
        self.checked_offset(&f);
        self.free.push(f.base);
    }

    /// Queues `f` for transmission on socket `sock` (sent by the next [`flush`](Self::flush)
    /// or [`service`](Self::service)) from where its packet starts: the descriptor names the
    /// packet's own address, so a packet that grew in front (the reverse direction's sealed
    /// datagram) or was stripped is sent where it is, without a move. On error the frame is
    /// back in the pool.
    pub fn tx(&mut self, sock: usize, f: Frame) -> Result<(), TxError> {
        let base = self.checked_offset(&f) as u64;
        let (start, len) = (f.start(), f.len());
        // `set_packet` keeps start + len inside the frame, which is what the kernel checks of
        // an aligned-UMEM descriptor (it must not cross its chunk); an empty one it refuses
        // without giving the frame back, so it is never queued.
        if !sendable_in_place(start, len) {
            self.free.push(f.base);
            return Err(TxError::TooBig { len });
        }
        if self.sockets[sock].pending.len() == self.sockets[sock].pending.capacity() {
            // Make room by pushing what is queued onto the ring.
            let _ = self.flush(sock);
            if self.sockets[sock].pending.len() == self.sockets[sock].pending.capacity() {
                self.free.push(f.base);
                return Err(TxError::Full);
            }
        }
        self.sockets[sock].pending.push(libc::xdp_desc {
            addr: base + start as u64,
            len: len as u32,
            options: 0,
        });
        Ok(())
    }

    /// Puts queued frames of socket `sock` on its tx ring and kicks the kernel if it asked for
    /// it. Returns how many went on the ring (the rest stay queued).
    pub fn flush(&mut self, sock: usize) -> io::Result<usize> {
        let s = &mut self.sockets[sock];
        let produced = if s.pending.is_empty() {
            0
        } else {
            // Every pending descriptor names a frame of this group's UMEM that we own, with
            // the packet inside it (checked by `tx`); from here the kernel owns it until it
            // comes back on the completion ring.
            let produced = s.raw.tx.produce(&s.pending);
            s.pending.drain(..produced);
            s.in_flight += produced;
            produced
        };
        if produced == 0 && (s.info.mode == BoundMode::ZeroCopy || s.tx_ring_drained()) {
            return Ok(0);
        }
        s.kick()?;
        Ok(produced)
    }

    /// Takes completed transmissions of socket `sock` back into the pool. Returns how many.
    pub fn reclaim(&mut self, sock: usize) -> usize {
        let s = &mut self.sockets[sock];
        let n = self.comp_scratch.len().min(s.in_flight.max(self.batch));
        // Addresses of frames whose transmission finished: the kernel no longer uses them.
        // It returns the descriptor's address (the packet's start); the frame is its chunk.
        let got = s.raw.comp.consume(&mut self.comp_scratch[..n]);
        s.in_flight = s.in_flight.saturating_sub(got);
        let mask = !(FRAME_SIZE as u64 - 1);
        self.free
            .extend(self.comp_scratch[..got].iter().map(|&a| a & mask));
        got
    }

    /// Tops up socket `sock`'s fill ring from the pool (keeping a small reserve for
    /// [`alloc`](Self::alloc)), waking the driver if it asked to be.
    pub fn refill(&mut self, sock: usize) -> io::Result<usize> {
        let available = self.free.len().saturating_sub(self.reserve);
        let s = &mut self.sockets[sock];
        let room = s.raw.fill.free(available as u32) as usize;
        let n = room.min(available);
        if n == 0 {
            return Ok(0);
        }
        let from = self.free.len() - n;
        // These are free frames of this UMEM; the fill ring gives them to the kernel until
        // they come back on the rx ring.
        let produced = s.raw.fill.produce(&self.free[from..]);
        self.free.drain(from..from + produced);
        if produced > 0 && s.raw.fill.needs_wakeup() {
            s.raw.kick_fill()?;
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
        let k = self.sockets[sock].raw.statistics()?;
        Ok(XskStats {
            rx_dropped: k.rx_dropped,
            rx_invalid_descs: k.rx_invalid_descs,
            tx_invalid_descs: k.tx_invalid_descs,
            rx_ring_full: k.rx_ring_full,
            rx_fill_ring_empty_descs: k.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: k.tx_ring_empty_descs,
        })
    }

    /// Offset of `f`'s frame in the UMEM, after checking it is one of ours. A frame of another
    /// group is a programming error: its offset would name one of our frames.
    fn checked_offset(&self, f: &Frame) -> usize {
        assert_eq!(f.group, self.id, "frame from another XskGroup");
        let off = f.umem_offset();
        assert!(
            off + FRAME_SIZE <= self.umem.len(),
            "frame outside the UMEM"
        );
        off
    }
}

/// The mode a socket that shares the group's UMEM runs in: the kernel gives it the first
/// socket's (zero-copy or copy); copy on a generic-mode program is skb mode.
fn shared_mode(zero_copy: bool, attach: AttachMode) -> BoundMode {
    match (zero_copy, attach) {
        (true, _) => BoundMode::ZeroCopy,
        (false, AttachMode::Generic) => BoundMode::Skb,
        (false, _) => BoundMode::Copy,
    }
}

/// Binds a socket of the group to `program`'s interface: the first (`owner` is `None`)
/// registers the UMEM and tries each candidate mode in turn; the others share the first's
/// UMEM and mode, which must be one of their candidates.
fn bind_socket(
    umem: &UmemArea,
    program: &XdpProgram,
    queue_id: u32,
    candidates: &[BoundMode],
    owner: Option<std::os::fd::RawFd>,
    config: &XskConfig,
) -> Result<XskSocket, AfXdpError> {
    let ifname = program.ifname();
    let ifindex = program.ifindex();
    let bind_error = |mode: BoundMode, detail: String| AfXdpError::Bind {
        ifname: ifname.to_string(),
        queue: queue_id,
        mode,
        detail,
    };
    let (raw, mode) = match owner {
        Some(owner) => {
            let raw = RawXsk::bind(
                umem,
                ifindex,
                queue_id,
                config.ring_size,
                Bind::Shared { owner },
            )
            .map_err(|e| bind_error(candidates[0], format!("sharing the group's UMEM: {e}")))?;
            let zc = raw
                .zero_copy()
                .map_err(|e| bind_error(candidates[0], format!("XDP_OPTIONS: {e}")))?;
            let mode = shared_mode(zc, program.mode());
            if !candidates.contains(&mode) {
                return Err(bind_error(
                    candidates[0],
                    format!("the group's first socket runs in {mode} mode, which this interface's configuration excludes"),
                ));
            }
            (raw, mode)
        }
        None => {
            let mut bound = None;
            let mut last_err = None;
            for (i, &mode) in candidates.iter().enumerate() {
                let how = Bind::Owner {
                    flags: bind_flags(mode),
                };
                match RawXsk::bind(umem, ifindex, queue_id, config.ring_size, how) {
                    Ok(raw) => {
                        bound = Some((raw, mode));
                        break;
                    }
                    Err(e) => {
                        let detail = e.to_string();
                        if i + 1 < candidates.len() {
                            if mode == BoundMode::ZeroCopy {
                                // Expected on veth, virtio_net and most drivers: auto mode's plan B.
                                info!(ifname, queue_id, reason = %detail, "zero-copy unavailable on this driver, using copy mode (auto)");
                            } else {
                                warn!(ifname, queue_id, mode = mode.name(), error = %detail, "AF_XDP bind failed, trying the next mode");
                            }
                        }
                        last_err = Some(bind_error(mode, detail));
                    }
                }
            }
            match bound {
                Some(b) => b,
                None => return Err(last_err.expect("at least one candidate mode")),
            }
        }
    };
    program.register_socket(queue_id, raw.fd())?;
    info!(ifname, queue_id, mode = mode.name(), "AF_XDP socket bound");
    Ok(XskSocket {
        info: SocketInfo {
            ifname: ifname.to_string(),
            ifindex,
            queue_id,
            mode,
        },
        raw,
        pending: Vec::with_capacity(config.ring_size as usize),
        in_flight: 0,
    })
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
        assert_ne!(bind_flags(BoundMode::ZeroCopy) & libc::XDP_ZEROCOPY, 0);
        assert_ne!(bind_flags(BoundMode::Skb) & libc::XDP_COPY, 0);
        assert_ne!(bind_flags(BoundMode::Copy) & libc::XDP_USE_NEED_WAKEUP, 0);
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
