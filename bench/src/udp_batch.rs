//! The I/O edge of the load generator and the sink: UDP sockets opened inside a lab namespace,
//! and batched sends and receives (`sendmmsg(2)`, `recvmmsg(2)`), one system call per batch.
//!
//! A socket belongs to the network namespace it was created in, whatever thread uses it later,
//! so [`socket_in`] opens it on a short-lived thread that first joins the namespace
//! (`setns(2)` on `/run/netns/<name>`, which `ip netns add` creates) and hands it back. The
//! caller's threads never change namespace.
//!
//! This module owns all of the benchmark's unsafe code: the `mmsghdr`/`iovec` arrays passed to
//! the kernel.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sched::{setns, CloneFlags};
use nix::time::{clock_gettime, ClockId};

/// CLOCK_MONOTONIC in nanoseconds: the one clock every namespace shares.
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// A UDP socket bound to `bind` inside the network namespace `/run/netns/<ns>`, with large
/// buffers (forced as root: the defaults drop bursts before the benchmark sees them) and a
/// receive timeout so that loops can check their stop flag.
pub fn socket_in(ns: &str, bind: SocketAddrV4) -> Result<UdpSocket> {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| -> Result<UdpSocket> {
            let f = File::open(&path).with_context(|| format!("cannot open {path}"))?;
            setns(&f, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {path}"))?;
            let sock = UdpSocket::bind(bind).with_context(|| format!("bind {bind} in {ns}"))?;
            sock.set_read_timeout(Some(Duration::from_millis(50)))?;
            for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
                set_int_opt(&sock, opt, 8 << 20);
            }
            Ok(sock)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
    })
}

/// Best effort: without CAP_NET_ADMIN the kernel refuses and the default buffers stay.
fn set_int_opt(sock: &UdpSocket, opt: libc::c_int, value: libc::c_int) {
    // SAFETY: a valid socket fd, an `int` option value and its exact size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn sockaddr_of(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn addr_from(sa: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        u32::from_be(sa.sin_addr.s_addr).into(),
        u16::from_be(sa.sin_port),
    )
}

/// Sends `packets` as one `sendmmsg(2)` call, to `dst` (or the connected peer when `None`).
/// Returns how many the kernel took; a full socket buffer blocks, a refused datagram (ICMP
/// unreachable reported back, ENOBUFS) counts as not sent.
pub fn send_batch(sock: &UdpSocket, dst: Option<SocketAddrV4>, packets: &[&[u8]]) -> usize {
    const MAX: usize = 64;
    let n = packets.len().min(MAX);
    let mut name = dst.map(sockaddr_of);
    let mut iov: [MaybeUninit<libc::iovec>; MAX] = [const { MaybeUninit::uninit() }; MAX];
    // SAFETY: mmsghdr is plain old data; all-zero is a valid empty header.
    let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iov[i].write(libc::iovec {
            iov_base: packets[i].as_ptr() as *mut libc::c_void,
            iov_len: packets[i].len(),
        });
        let h = &mut msgs[i].msg_hdr;
        h.msg_iov = iov[i].as_mut_ptr();
        h.msg_iovlen = 1;
        if let Some(name) = name.as_mut() {
            h.msg_name = (name as *mut libc::sockaddr_in).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
    }
    // SAFETY: `msgs[..n]` point at `n` initialised iovecs over live packet slices and at `name`,
    // all of which outlive the call; the kernel only reads them.
    let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0) };
    r.max(0) as usize
}

/// Reusable receive buffers for [`recv_batch`]: `count` datagrams of up to `size` bytes.
pub struct RecvBatch {
    bufs: Vec<u8>,
    size: usize,
    lens: Vec<usize>,
    from: Vec<libc::sockaddr_in>,
}

impl RecvBatch {
    pub fn new(count: usize, size: usize) -> Self {
        RecvBatch {
            bufs: vec![0; count * size],
            size,
            lens: vec![0; count],
            from: vec![sockaddr_of(SocketAddrV4::new(0.into(), 0)); count],
        }
    }

    /// The `i`-th datagram of the last receive, mutable (it is decrypted in place).
    pub fn get_mut(&mut self, i: usize) -> &mut [u8] {
        let start = i * self.size;
        &mut self.bufs[start..start + self.lens[i]]
    }

    pub fn source(&self, i: usize) -> SocketAddr {
        SocketAddr::V4(addr_from(&self.from[i]))
    }
}

/// Receives up to a batch of datagrams with one `recvmmsg(2)` (blocking for the first up to the
/// socket's read timeout, then taking whatever else is queued). Returns how many arrived; a
/// timeout is `Ok(0)`.
pub fn recv_batch(sock: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    const MAX: usize = 64;
    let n = batch.lens.len().min(MAX);
    let mut iov: [MaybeUninit<libc::iovec>; MAX] = [const { MaybeUninit::uninit() }; MAX];
    // SAFETY: mmsghdr is plain old data; all-zero is a valid empty header.
    let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
    let base = batch.bufs.as_mut_ptr();
    for i in 0..n {
        iov[i].write(libc::iovec {
            // SAFETY: i * size + size <= bufs.len() by construction in `RecvBatch::new`.
            iov_base: unsafe { base.add(i * batch.size) }.cast(),
            iov_len: batch.size,
        });
        let h = &mut msgs[i].msg_hdr;
        h.msg_iov = iov[i].as_mut_ptr();
        h.msg_iovlen = 1;
        h.msg_name = (&mut batch.from[i] as *mut libc::sockaddr_in).cast();
        h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    }
    // SAFETY: every header points at a distinct `size`-byte region of `bufs` and a distinct
    // `sockaddr_in`, all owned by `batch` and alive for the call; MSG_WAITFORONE returns after
    // the first datagram once the queue is empty.
    let r = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(0)
            }
            _ => Err(e),
        };
    }
    let r = r as usize;
    for (len, msg) in batch.lens.iter_mut().zip(&msgs).take(r) {
        *len = (msg.msg_len as usize).min(batch.size);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn batches_go_out_and_come_back_over_loopback() {
        let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let b = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        b.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let SocketAddr::V4(to) = b.local_addr().unwrap() else {
            unreachable!()
        };
        let pkts: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + i as usize]).collect();
        let refs: Vec<&[u8]> = pkts.iter().map(Vec::as_slice).collect();
        assert_eq!(send_batch(&a, Some(to), &refs), 5);
        let mut batch = RecvBatch::new(8, 64);
        let mut got = Vec::new();
        while got.len() < 5 {
            let n = recv_batch(&b, &mut batch).unwrap();
            assert!(n > 0, "timed out after {} datagrams", got.len());
            for i in 0..n {
                assert_eq!(batch.source(i), a.local_addr().unwrap());
                got.push(batch.get_mut(i).to_vec());
            }
        }
        assert_eq!(got, pkts);
        assert!(monotonic_ns() > 0);
    }
}
