//! The kernel side of AF_XDP, over libc: the UMEM area, socket creation, ring set-up and
//! mapping, bind (own UMEM or `XDP_SHARED_UMEM`), wake-ups and `XDP_STATISTICS`.
//!
//! Owned rather than taken from a crate because the descriptor address must be ours to set
//! per transmitted packet, the sockets of a group share one UMEM across interfaces, and the
//! sockets go into our own XDP program's XSKMAP (README, "Dependencies and why").

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use super::frame::FRAME_SIZE;
use super::ring::{Ring, Side};

/// The memory the frames live in: an anonymous mapping, registered with the first socket.
pub(crate) struct UmemArea {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value; moving it moves the only handle. Access to its
// bytes is arbitrated by frame ownership in `XskGroup`.
unsafe impl Send for UmemArea {}

impl UmemArea {
    pub(crate) fn new(frames: u32) -> io::Result<UmemArea> {
        let len = frames as usize * FRAME_SIZE;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(UmemArea { base, len })
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; the group drops its sockets (which pin the pages
        // for the kernel) before the area, and hands out no reference that outlives it.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// One bound AF_XDP socket and its four rings.
pub(crate) struct RawXsk {
    pub(crate) rx: Ring<libc::xdp_desc>,
    pub(crate) tx: Ring<libc::xdp_desc>,
    pub(crate) fill: Ring<u64>,
    pub(crate) comp: Ring<u64>,
    /// Declared last: closed after the rings are unmapped.
    fd: OwnedFd,
}

/// How a socket is bound: with its own UMEM registration (the group's first socket) and the
/// mode's flags, or sharing the first socket's UMEM (the kernel then takes the mode and
/// need-wakeup from that socket and refuses flags of its own).
pub(crate) enum Bind {
    Owner { flags: u16 },
    Shared { owner: RawFd },
}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads socket option `opt` into `val`; returns the length the kernel wrote (older kernels
/// write shorter versions of some structs; the rest stays as the caller initialised it).
fn getsockopt<T>(fd: RawFd, opt: libc::c_int, val: &mut T) -> io::Result<usize> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a live, writable `T` of `len` bytes.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_XDP, opt, (val as *mut T).cast(), &mut len) };
    if rc == 0 {
        Ok(len as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Error numbers a wake-up may return that only mean "try again later" (the kernel is busy
/// or the link is down): not failures of the worker.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN | libc::EINTR)
    )
}

impl RawXsk {
    /// Creates a socket, sets up and maps its rings (`ring_size` entries each), and binds it
    /// to `ifindex` queue `queue_id`.
    pub(crate) fn bind(
        area: &UmemArea,
        ifindex: u32,
        queue_id: u32,
        ring_size: u32,
        how: Bind,
    ) -> io::Result<RawXsk> {
        // SAFETY: plain socket(2) call; the result is checked before it is owned.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();

        let flags = match how {
            Bind::Owner { flags } => {
                // SAFETY: an all-zero xdp_umem_reg is valid (no flags, no metadata).
                let mut reg: libc::xdp_umem_reg = unsafe { std::mem::zeroed() };
                reg.addr = area.base().as_ptr() as u64;
                reg.len = area.len() as u64;
                reg.chunk_size = FRAME_SIZE as u32;
                reg.headroom = 0;
                setsockopt(s, libc::XDP_UMEM_REG, &reg)?;
                flags
            }
            Bind::Shared { .. } => libc::XDP_SHARED_UMEM,
        };
        // Every socket gets its own fill and completion ring (a shared UMEM across queues or
        // devices needs them, since 5.10), so each socket's rings stay single-producer.
        setsockopt(s, libc::XDP_UMEM_FILL_RING, &ring_size)?;
        setsockopt(s, libc::XDP_UMEM_COMPLETION_RING, &ring_size)?;
        setsockopt(s, libc::XDP_RX_RING, &ring_size)?;
        setsockopt(s, libc::XDP_TX_RING, &ring_size)?;

        // SAFETY: all-zero offsets are a valid value to be overwritten.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let got = getsockopt(s, libc::XDP_MMAP_OFFSETS, &mut off)?;
        if got != std::mem::size_of::<libc::xdp_mmap_offsets>() {
            // Kernels before 5.4 have no flags word (no need-wakeup); we need it.
            return Err(io::Error::other(
                "kernel lacks AF_XDP ring flags (need 5.4+)",
            ));
        }
        let rx = Ring::map(
            s,
            libc::XDP_PGOFF_RX_RING as u64,
            &off.rx,
            ring_size,
            Side::Consumer,
        )?;
        let tx = Ring::map(
            s,
            libc::XDP_PGOFF_TX_RING as u64,
            &off.tx,
            ring_size,
            Side::Producer,
        )?;
        let fill = Ring::map(
            s,
            libc::XDP_UMEM_PGOFF_FILL_RING,
            &off.fr,
            ring_size,
            Side::Producer,
        )?;
        let comp = Ring::map(
            s,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            &off.cr,
            ring_size,
            Side::Consumer,
        )?;

        // SAFETY: an all-zero sockaddr_xdp is valid; the fields are set below.
        let mut sa: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
        sa.sxdp_family = libc::AF_XDP as u16;
        sa.sxdp_flags = flags;
        sa.sxdp_ifindex = ifindex;
        sa.sxdp_queue_id = queue_id;
        if let Bind::Shared { owner } = how {
            sa.sxdp_shared_umem_fd = owner as u32;
        }
        // SAFETY: `sa` is a valid sockaddr_xdp of the length passed.
        let rc = unsafe {
            libc::bind(
                s,
                (&sa as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawXsk {
            rx,
            tx,
            fill,
            comp,
            fd,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether the kernel runs this socket in zero-copy mode (`XDP_OPTIONS`).
    pub(crate) fn zero_copy(&self) -> io::Result<bool> {
        // SAFETY: all-zero options are a valid value to be overwritten.
        let mut o: libc::xdp_options = unsafe { std::mem::zeroed() };
        getsockopt(self.fd(), libc::XDP_OPTIONS, &mut o)?;
        Ok(o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
    }

    /// Asks the kernel to transmit what the tx ring holds (`sendto` with no data).
    pub(crate) fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: a zero-length, non-blocking sendto with no buffer and no address.
        let rc = unsafe {
            libc::sendto(
                self.fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        match rc {
            0.. => Ok(()),
            _ => match io::Error::last_os_error() {
                e if transient(&e) => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Asks the driver to take the fill ring's new frames (`recvfrom` with no buffer).
    pub(crate) fn kick_fill(&self) -> io::Result<()> {
        // SAFETY: a zero-length, non-blocking recvfrom with no buffer and no address.
        let rc = unsafe {
            libc::recvfrom(
                self.fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        match rc {
            0.. => Ok(()),
            _ => match io::Error::last_os_error() {
                e if transient(&e) => Ok(()),
                e => Err(e),
            },
        }
    }

    /// The kernel's counters for this socket (`XDP_STATISTICS`; fields a kernel does not
    /// report read 0).
    pub(crate) fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        // SAFETY: all-zero statistics are a valid value to be overwritten.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        getsockopt(self.fd(), libc::XDP_STATISTICS, &mut st)?;
        Ok(st)
    }
}
