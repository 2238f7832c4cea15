//! The AF_XDP edge of the load rig: one socket, bound in copy mode to queue 0 of a lab veth (the
//! client's for the generator, the server's for the sink), over a UMEM of its own, with a small
//! XDP program of its own (`xsk_port/redirect.bpf.c`) that sends only the rig's datagrams to the
//! socket ([`Redirect`]); ARP, handshakes and the lab's own traffic stay with the kernel.
//!
//! The program is attached through a BPF link (closing it detaches exactly this program) and
//! never through the gateway's loader: the bench must not depend on the dataplane crate's
//! internals. The interface, socket and link belong to the namespace they were created in, so
//! [`XskPort::open`] builds them on a short-lived thread that joined it (as
//! [`crate::udp_batch::socket_in`] does for UDP sockets).
//!
//! Half of the UMEM's frames are for transmitting, half for the fill ring. Together with
//! `udp_batch` this module owns the benchmark's unsafe code: the ring operations and the frame
//! bytes behind them.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write as _};
use std::num::NonZeroU32;
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context, Result};
use libbpf_rs::{Link, MapCore, MapFlags, Object, ObjectBuilder, Xdp, XdpFlags};
use nix::sched::{setns, CloneFlags};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

/// The compiled program, built by build.rs.
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/generator_redirect.bpf.o"));
const PROGRAM_NAME: &str = "bench_gen_redirect";
const XSKS_MAP: &str = "xsks_map";
const PORT_MAP: &str = "port_map";

/// Bytes per UMEM frame: an Ethernet frame of a 1500-byte MTU fits.
pub const FRAME_SIZE: usize = 2048;
/// Entries per ring, and frames for each direction: enough to hold what arrives while the
/// generator and the sink take turns on one core (with 2048 the sink's rx ring overflowed at
/// 64 B `max` on 2 vCPUs).
const RING: u32 = 8192;
/// The veth has one queue; the lab's traffic all arrives on it.
const QUEUE: u32 = 0;
/// Most descriptors taken from a ring per call.
const BATCH: usize = 64;
/// A full transmit ring is retried this many times (reclaiming completions in between) before
/// a batch counts as refused.
const TX_RETRIES: usize = 10_000;

/// Which datagrams the XDP program hands to the socket: IPv4, unfragmented, no IP options, UDP
/// to the given port, and
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// a WireGuard transport message (the generator's replies; its handshakes stay with the
    /// kernel socket that made them);
    WireguardTransport(u16),
    /// any payload (the sink's probes).
    AnyUdp(u16),
}

/// Where and how the socket is bound, for the run's notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub ifname: String,
    pub ifindex: u32,
    /// The socket's bind mode (`copy`).
    pub bind_mode: &'static str,
    /// Where the XDP program runs (`driver` on veth, `generic` where the driver has no XDP).
    pub attach_mode: &'static str,
}

/// An AF_XDP socket with its UMEM and XDP program. Dropping it detaches the program.
pub struct XskPort {
    // Dropped first: frames go back to the kernel's stack before the socket closes.
    _link: Link,
    _object: Object,
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    comp: CompQueue,
    umem: Umem,
    /// Frames free for transmitting.
    tx_free: Vec<FrameDesc>,
    /// Frames free for the fill ring.
    rx_free: Vec<FrameDesc>,
    scratch: Vec<FrameDesc>,
    /// Frames on the tx or completion ring.
    in_flight: usize,
    info: PortInfo,
}

impl XskPort {
    /// Loads the program, attaches it to `ifname` in the network namespace `/run/netns/<netns>`,
    /// binds a copy-mode socket to its queue 0 and registers it; the datagrams `redirect` names
    /// go to the socket from then on.
    pub fn open(netns: &str, ifname: &str, redirect: Redirect) -> Result<XskPort> {
        let path = format!("/run/netns/{netns}");
        std::thread::scope(|s| {
            s.spawn(|| -> Result<XskPort> {
                let f = File::open(&path).with_context(|| format!("cannot open {path}"))?;
                setns(&f, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {path}"))?;
                Self::open_here(ifname, redirect)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
        })
    }

    fn open_here(ifname: &str, redirect: Redirect) -> Result<XskPort> {
        let (udp_port, any_payload) = match redirect {
            Redirect::WireguardTransport(p) => (p, 0u32),
            Redirect::AnyUdp(p) => (p, 1u32),
        };
        let ifindex = ifindex(ifname)?;
        let object = ObjectBuilder::default()
            .open_memory(OBJECT)
            .and_then(|o| o.load())
            .context("loading the load rig's XDP program (needs root and bpffs-free BPF)")?;
        let port_map = object
            .maps()
            .find(|m| m.name() == PORT_MAP)
            .context("no port map")?;
        for (key, value) in [(0u32, u32::from(udp_port)), (1, any_payload)] {
            port_map
                .update(&key.to_ne_bytes(), &value.to_ne_bytes(), MapFlags::ANY)
                .context("writing the port into the load rig's XDP program")?;
        }
        let program = object
            .progs_mut()
            .find(|p| p.name() == PROGRAM_NAME)
            .context("the XDP object has no load rig program")?;
        // A link, not a netlink attach: closing it detaches exactly this program, and it fails
        // rather than replace a program somebody else attached.
        let link = program
            .attach_xdp(ifindex as i32)
            .with_context(|| format!("attaching the load rig's XDP program to {ifname}"))?;
        let attach_mode = Xdp::new(program.as_fd())
            .query(ifindex as i32, XdpFlags::NONE)
            .map(|q| match u32::from(q.attach_mode) {
                libbpf_rs::libbpf_sys::XDP_ATTACHED_DRV => "driver",
                libbpf_rs::libbpf_sys::XDP_ATTACHED_SKB => "generic",
                libbpf_rs::libbpf_sys::XDP_ATTACHED_HW => "offload",
                _ => "unknown",
            })
            .unwrap_or("unknown");

        let ring = QueueSize::new(RING).context("ring size")?;
        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE as u32).context("frame size")?)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .frame_headroom(0)
            .build()
            .context("UMEM config")?;
        let frames = NonZeroU32::new(2 * RING).context("frame count")?;
        let (umem, mut descs) = Umem::new(umem_config, frames, false).context("creating a UMEM")?;
        let iface: Interface = ifname
            .parse()
            .map_err(|_| anyhow::anyhow!("interface name {ifname:?}"))?;
        let socket_config = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            // Copy mode transmits only in sendto(); NEED_WAKEUP tells when to call it.
            .bind_flags(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        // SAFETY: INHIBIT_PROG_LOAD is set, so libxdp neither loads nor detaches a program (ours
        // is the link above), and this UMEM is bound to nothing else.
        let (tx, rx, rings) = unsafe { xsk_rs::Socket::new(socket_config, &umem, &iface, QUEUE) }
            .with_context(|| {
            format!("binding an AF_XDP socket to {ifname} queue {QUEUE} (copy)")
        })?;
        let Some((fill, comp)) = rings else {
            bail!("{ifname} queue {QUEUE} is already bound with this UMEM");
        };
        let xsks = object
            .maps()
            .find(|m| m.name() == XSKS_MAP)
            .context("no xsks map")?;
        xsks.update(
            &QUEUE.to_ne_bytes(),
            &rx.fd().as_raw_fd().to_ne_bytes(),
            MapFlags::ANY,
        )
        .context("registering the AF_XDP socket with the XDP program")?;
        let rx_free = descs.split_off(RING as usize);
        let mut port = XskPort {
            _link: link,
            _object: object,
            tx,
            rx,
            fill,
            comp,
            umem,
            tx_free: descs,
            rx_free,
            scratch: vec![FrameDesc::default(); RING as usize],
            in_flight: 0,
            info: PortInfo {
                ifname: ifname.to_owned(),
                ifindex,
                bind_mode: "copy",
                attach_mode,
            },
        };
        port.refill().context("filling the fill ring")?;
        Ok(port)
    }

    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    /// Queues one frame per item of `frames` (each the concatenation of its two parts: headers,
    /// then the sealed message) and kicks the kernel to send them. Returns how many were
    /// queued: all of them unless the ring stayed full through every retry, or a frame was
    /// larger than [`FRAME_SIZE`] (it and the rest are not sent).
    pub fn transmit<'a>(
        &mut self,
        frames: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> io::Result<usize> {
        let mut queued = 0;
        let mut frames = frames.into_iter().peekable();
        let mut retries = 0;
        while frames.peek().is_some() {
            self.reclaim();
            let room = (self.tx.nb_free(BATCH as u32) as usize).min(self.tx_free.len());
            let mut n = 0;
            while n < room.min(BATCH) {
                let Some(&(head, body)) = frames.peek() else {
                    break;
                };
                if head.len() + body.len() > FRAME_SIZE {
                    break;
                }
                frames.next();
                let Some(mut desc) = self.tx_free.pop() else {
                    break;
                };
                {
                    // SAFETY: `desc` is a frame of this UMEM taken from `tx_free`: no ring holds
                    // it and nothing else refers to its bytes until it is produced below.
                    let mut data = unsafe { self.umem.data_mut(&mut desc) };
                    let mut c = data.cursor();
                    c.set_pos(0);
                    c.write_all(head)?;
                    c.write_all(body)?;
                }
                self.scratch[n] = desc;
                n += 1;
            }
            if n > 0 {
                // SAFETY: the `n` descriptors are frames of this UMEM we own (taken from
                // `tx_free` and written above, lengths set by the cursor); from here the kernel
                // owns them until they come back on the completion ring. `nb_free` reserved room
                // for all of them.
                let produced = unsafe { self.tx.produce(&self.scratch[..n]) };
                // Not produced (cannot happen after nb_free): back to the pool, counted unsent.
                self.tx_free.extend_from_slice(&self.scratch[produced..n]);
                self.in_flight += produced;
                queued += produced;
                retries = 0;
            } else if frames
                .peek()
                .is_some_and(|(h, b)| h.len() + b.len() > FRAME_SIZE)
            {
                break;
            } else {
                retries += 1;
                if retries > TX_RETRIES {
                    break;
                }
            }
            self.kick()?;
        }
        Ok(queued)
    }

    /// Asks the kernel to process the tx ring (copy mode sends only in `sendto`).
    fn kick(&mut self) -> io::Result<()> {
        if self.tx.needs_wakeup() {
            match self.tx.wakeup() {
                Ok(()) => {}
                // A full device queue or no skb: the frames stay on the ring for the next kick.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN)
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Takes finished transmissions back into the pool.
    fn reclaim(&mut self) {
        if self.in_flight == 0 {
            return;
        }
        let n = self.in_flight.min(self.scratch.len());
        // SAFETY: out-parameters filled with frames whose transmission finished; the kernel no
        // longer uses them.
        let got = unsafe { self.comp.consume(&mut self.scratch[..n]) };
        self.in_flight -= got;
        self.tx_free.extend_from_slice(&self.scratch[..got]);
    }

    /// Hands every spare receive frame to the fill ring.
    fn refill(&mut self) -> io::Result<()> {
        let n = self.fill.nb_free(self.rx_free.len() as u32) as usize;
        let n = n.min(self.rx_free.len());
        if n == 0 {
            return Ok(());
        }
        let from = self.rx_free.len() - n;
        // SAFETY: free receive frames of this UMEM; the kernel owns them until they come back
        // on the rx ring.
        let produced = unsafe { self.fill.produce(&self.rx_free[from..]) };
        self.rx_free.truncate(self.rx_free.len() - produced);
        if produced > 0 && self.fill.needs_wakeup() {
            self.fill.wakeup(self.rx.fd_mut(), 0)?;
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` for received frames, then passes each of up to a batch of them
    /// to `each` (writable: messages are opened in place) and gives the frames back to the fill
    /// ring. Returns how many were received.
    pub fn receive(
        &mut self,
        timeout_ms: i32,
        mut each: impl FnMut(&mut [u8]),
    ) -> io::Result<usize> {
        if self.rx.nb_avail(1) == 0 && !self.rx.poll(timeout_ms)? {
            return Ok(0);
        }
        // SAFETY: out-parameters that consume() fills with frames the kernel hands back to us;
        // from here they are ours until given back to the fill ring below.
        let got = unsafe { self.rx.consume(&mut self.scratch[..BATCH]) };
        for i in 0..got {
            let mut desc = self.scratch[i];
            {
                // SAFETY: a frame of this UMEM just taken off the rx ring: no ring holds it and
                // this is the only reference to its bytes until it goes back to the fill ring.
                let mut data = unsafe { self.umem.data_mut(&mut desc) };
                each(data.contents_mut());
            }
            self.rx_free.push(desc);
        }
        self.refill()?;
        Ok(got)
    }

    /// Frames the kernel dropped on the way to this socket: rx ring full, or no frame on the
    /// fill ring (the receiver fell behind).
    pub fn rx_drops(&self) -> u64 {
        self.rx
            .fd()
            .xdp_statistics()
            .map(|s| s.rx_dropped() + s.rx_ring_full() + s.rx_fill_ring_empty_descs())
            .unwrap_or(0)
    }

    /// The kernel's drop counters of the socket (rx ring full, fill ring empty, invalid tx
    /// descriptors), as one line for a note.
    pub fn kernel_drops(&self) -> String {
        match self.rx.fd().xdp_statistics() {
            Ok(s) => format!(
                "rx_dropped={} rx_ring_full={} rx_fill_ring_empty={} tx_invalid={} \
                 tx_ring_empty={}",
                s.rx_dropped(),
                s.rx_ring_full(),
                s.rx_fill_ring_empty_descs(),
                s.tx_invalid_descs(),
                s.tx_ring_empty_descs()
            ),
            Err(e) => format!("(no statistics: {e})"),
        }
    }
}

fn ifindex(ifname: &str) -> Result<u32> {
    let c = CString::new(ifname).context("interface name")?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!("no interface {ifname:?} in the load rig's namespace");
    }
    Ok(idx)
}
