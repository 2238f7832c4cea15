//! The slow path's kernel UDP socket on the listen port, for both address families at once:
//! one IPv6 socket with `IPV6_V6ONLY` off takes IPv4 as IPv4-mapped addresses (RFC 4291
//! §2.5.5.2, `::ffff:a.b.c.d`), as kernel WireGuard and wireguard-go listen on both. It sends
//! the handshakes and what the kernel routes into wg0, and receives what the XDP program left
//! to the kernel (reassembled fragments, IPv6 with extension headers). Where IPv6 is absent
//! (`ipv6.disable=1`) it is an IPv4 socket as before.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};

use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn6,
};

/// Binds `port` on every address of both families (IPv4 only where the host has no IPv6).
pub fn bind_listen_port(port: u16) -> io::Result<UdpSocket> {
    match bind_dual_stack(port) {
        Ok(s) => Ok(s),
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            UdpSocket::bind(("0.0.0.0", port))
        }
        Err(e) => Err(e),
    }
}

fn bind_dual_stack(port: u16) -> io::Result<UdpSocket> {
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // Explicitly off: the default is the host's `net.ipv6.bindv6only`.
    setsockopt(&fd, sockopt::Ipv6V6Only, &false)?;
    let any = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &any)?;
    Ok(UdpSocket::from(fd))
}

/// A peer's address as the rest of the gateway knows it: IPv4 senders arrive on the
/// dual-stack socket as IPv4-mapped IPv6, which the fast path would route as IPv6.
pub fn unmapped(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Where to send to `dst` from `socket`: IPv4 destinations as IPv4-mapped IPv6 on the
/// dual-stack socket (Linux takes a plain IPv4 address there too, but the mapped form is what
/// RFC 3493 §3.7 specifies).
pub fn destination(socket: &UdpSocket, dst: SocketAddr) -> SocketAddr {
    match (socket.local_addr(), dst) {
        (Ok(SocketAddr::V6(_)), SocketAddr::V4(v4)) => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        _ => dst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_socket_serves_both_families() {
        // Port 0: any free port; loopback of both families must exist for the check.
        let s = bind_listen_port(0).unwrap();
        let port = s.local_addr().unwrap().port();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 16];
        let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        v4.send_to(b"four", ("127.0.0.1", port)).unwrap();
        let (n, from) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"four");
        assert_eq!(unmapped(from), v4.local_addr().unwrap());
        // A reply to the unmapped address reaches the IPv4 sender.
        s.send_to(b"back", destination(&s, unmapped(from))).unwrap();
        v4.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let n = v4.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"back");
        if let Ok(v6) = UdpSocket::bind("[::1]:0") {
            v6.send_to(b"six", ("::1", port)).unwrap();
            let (n, from) = s.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"six");
            assert_eq!(unmapped(from), v6.local_addr().unwrap());
        }
    }

    #[test]
    fn mapped_addresses_are_unmapped_and_others_kept() {
        let m: SocketAddr = "[::ffff:198.18.0.2]:5".parse().unwrap();
        assert_eq!(unmapped(m), "198.18.0.2:5".parse::<SocketAddr>().unwrap());
        let v6: SocketAddr = "[2001:db8::2]:5".parse().unwrap();
        assert_eq!(unmapped(v6), v6);
    }
}
