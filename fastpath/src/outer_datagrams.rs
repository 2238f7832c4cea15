//! WireGuard datagrams that reached the slow path's UDP socket instead of an AF_XDP socket,
//! on their way back to a worker.
//!
//! The XDP program gives IPv4 fragments to the kernel, which reassembles them. A client on a
//! path with a smaller MTU than its tunnel needs (its kernel or a router fragments the
//! 1472-byte UDP of a full tunnel packet) therefore sends datagrams that arrive whole only on
//! the kernel's side: in the socket the slow path binds to the listen port. Kernel WireGuard
//! accepts them; so must the gateway. The slow path reads that socket and queues each datagram
//! here; worker 0 wraps it in the headers it arrived with and runs it through the pipeline like
//! any received frame (decrypt, source check, NAT, forward).
//!
//! The channel is bounded, and a datagram larger than a UMEM frame can hold is refused by the
//! sender: memory stays bounded whatever a sender does.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;

use wire::{ethernet, ipv4, ipv6, udp};

use crate::frame::{FRAME_SIZE, RX_OFFSET};

/// The largest datagram payload that fits a received frame with its Ethernet, IP (IPv6, the
/// longer) and UDP headers (the pipeline also needs tailroom only for replies, which are built
/// elsewhere).
pub const MAX_OUTER_DATAGRAM: usize =
    FRAME_SIZE - RX_OFFSET - ethernet::HEADER_LEN - ipv6::HEADER_LEN - udp::HEADER_LEN;

/// One datagram as the socket returned it.
#[derive(Debug)]
pub struct OuterDatagram {
    /// IPv4 or IPv6 (never IPv4-mapped IPv6: the socket's reader unmaps them).
    pub src: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Why a datagram was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum OuterRefused {
    /// Larger than [`MAX_OUTER_DATAGRAM`].
    TooBig,
    /// The worker has not taken the earlier ones yet.
    Full,
}

/// The slow path's end.
#[derive(Clone, Debug)]
pub struct OuterSender {
    tx: SyncSender<OuterDatagram>,
    /// Wakes worker 0 from its `poll` (it watches the other end), so that a datagram does not
    /// wait for the idle timeout and the queue does not fill meanwhile.
    wake: Arc<UnixDatagram>,
}

impl OuterSender {
    /// Queues the datagram without blocking.
    pub fn send(&self, src: SocketAddr, payload: &[u8]) -> Result<(), OuterRefused> {
        if payload.len() > MAX_OUTER_DATAGRAM {
            return Err(OuterRefused::TooBig);
        }
        let d = OuterDatagram {
            src,
            bytes: payload.to_vec(),
        };
        match self.tx.try_send(d) {
            Ok(()) => {
                // Non-blocking: a full wake socket means worker 0 has wakeups pending anyway.
                let _ = self.wake.send(&[1]);
                Ok(())
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                Err(OuterRefused::Full)
            }
        }
    }
}

/// Worker 0's end.
#[derive(Debug)]
pub struct OuterReceiver {
    rx: Receiver<OuterDatagram>,
    wake: UnixDatagram,
}

impl OuterReceiver {
    /// The next datagram waiting, if any.
    pub fn try_recv(&self) -> Option<OuterDatagram> {
        match self.rx.try_recv() {
            Ok(d) => Some(d),
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
        }
    }

    /// The descriptor that becomes readable when a datagram is queued: add it to the set the
    /// worker sleeps on.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Empties the wake descriptor (before sleeping, after draining the queue).
    pub fn clear_wakeups(&self) {
        let mut b = [0u8; 64];
        while matches!(self.wake.recv(&mut b), Ok(n) if n > 0) {}
    }
}

/// A channel of `capacity` datagrams.
pub fn outer_datagrams(capacity: usize) -> io::Result<(OuterSender, OuterReceiver)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
    let (wake_rx, wake_tx) = UnixDatagram::pair()?;
    wake_rx.set_nonblocking(true)?;
    wake_tx.set_nonblocking(true)?;
    Ok((
        OuterSender {
            tx,
            wake: Arc::new(wake_tx),
        },
        OuterReceiver { rx, wake: wake_rx },
    ))
}

/// Writes `d` into `buf` as the frame it arrived in (Ethernet, IPv4 or IPv6 by its source, UDP
/// to `listen_port`, payload) starting at `start`; returns the frame's length. The addresses
/// the pipeline reads of a WireGuard datagram are its source's; the destination is left
/// unspecified and the MACs zero.
pub fn write_frame(
    buf: &mut [u8],
    start: usize,
    d: &OuterDatagram,
    listen_port: u16,
) -> Option<usize> {
    let ip = start + ethernet::HEADER_LEN;
    let (ip_len, ethertype) = match d.src {
        SocketAddr::V4(_) => (ipv4::HEADER_LEN, ethernet::ETHERTYPE_IPV4),
        SocketAddr::V6(_) => (ipv6::HEADER_LEN, ethernet::ETHERTYPE_IPV6),
    };
    let payload = ip + ip_len + udp::HEADER_LEN;
    let end = payload.checked_add(d.bytes.len())?;
    let frame = buf.get_mut(start..end)?;
    ethernet::write_header(frame, [0; 6], [0; 6], ethertype).ok()?;
    buf[payload..end].copy_from_slice(&d.bytes);
    let ports = (d.src.port(), listen_port);
    match d.src {
        SocketAddr::V4(src) => crate::headers::write_ipv4_udp(
            &mut buf[ip..end],
            (*src.ip(), Ipv4Addr::UNSPECIFIED),
            ports,
            0,
            d.bytes.len(),
        )?,
        SocketAddr::V6(src) => crate::outer::write_ipv6_udp(
            &mut buf[ip..end],
            (*src.ip(), Ipv6Addr::UNSPECIFIED),
            ports,
            d.bytes.len(),
        )?,
    }
    Some(end - start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn bounded_and_refuses_what_no_frame_holds() {
        let (tx, rx) = outer_datagrams(2).unwrap();
        let src: SocketAddr = "198.18.0.2:40000".parse().unwrap();
        assert_eq!(
            tx.send(src, &vec![0; MAX_OUTER_DATAGRAM + 1]),
            Err(OuterRefused::TooBig)
        );
        tx.send(src, b"a").unwrap();
        tx.send(src, b"b").unwrap();
        assert_eq!(tx.send(src, b"c"), Err(OuterRefused::Full));
        assert_eq!(rx.try_recv().unwrap().bytes, b"a");
        // Two wakeups were sent; clearing leaves nothing readable.
        rx.clear_wakeups();
        let mut b = [0u8; 1];
        assert!(rx.wake.recv(&mut b).is_err(), "wakeups left after clearing");
    }

    #[test]
    fn the_written_frame_parses_back_to_the_datagram() {
        let src: SocketAddr = "198.18.0.2:40000".parse().unwrap();
        let d = OuterDatagram {
            src,
            bytes: (0..1480u32).map(|i| i as u8).collect(),
        };
        let mut buf = vec![0u8; FRAME_SIZE];
        let len = write_frame(&mut buf, RX_OFFSET, &d, 51820).unwrap();
        let frame = &buf[RX_OFFSET..RX_OFFSET + len];
        let eth = ethernet::Frame::new_checked(frame).unwrap();
        assert_eq!(eth.ethertype(), ethernet::ETHERTYPE_IPV4);
        let ip = ipv4::Packet::new_checked(&frame[ethernet::HEADER_LEN..]).unwrap();
        assert_eq!(IpAddr::V4(ip.src_addr()), src.ip());
        assert!(!ip.is_fragment());
        let u = udp::Packet::new_checked(&frame[ethernet::HEADER_LEN + ip.header_len()..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (40000, 51820));
        assert_eq!(&frame[len - d.bytes.len()..], &d.bytes[..]);
        // Too large for the frame: refused, not a panic.
        let big = OuterDatagram {
            src,
            bytes: vec![0; FRAME_SIZE],
        };
        assert_eq!(write_frame(&mut buf, RX_OFFSET, &big, 51820), None);
    }

    #[test]
    fn an_ipv6_datagram_is_written_as_an_ipv6_frame() {
        let src: SocketAddr = "[2001:db8::2]:40000".parse().unwrap();
        let d = OuterDatagram {
            src,
            bytes: vec![7; MAX_OUTER_DATAGRAM],
        };
        let mut buf = vec![0u8; FRAME_SIZE];
        let len = write_frame(&mut buf, RX_OFFSET, &d, 51820).unwrap();
        assert_eq!(
            RX_OFFSET + len,
            FRAME_SIZE,
            "the largest one fills the frame"
        );
        let frame = &buf[RX_OFFSET..RX_OFFSET + len];
        assert_eq!(
            ethernet::Frame::new_checked(frame).unwrap().ethertype(),
            ethernet::ETHERTYPE_IPV6
        );
        let u = crate::outer::parse_udp6(&frame[ethernet::HEADER_LEN..], 51820)
            .unwrap()
            .unwrap();
        assert_eq!(SocketAddr::V6(u.src), src);
        assert_eq!(u.payload.len(), d.bytes.len());
    }
}
