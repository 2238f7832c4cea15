//! The kernel's `wg0`: a TUN device (`IFF_TUN | IFF_NO_PI`, bare IP packets, no L2 header,
//! as the kernel WireGuard device the article captured) configured so that `ip a` and
//! `ip route` look as they did with kernel WireGuard: the configured addresses (kernel connected
//! route `10.13.13.0/24 dev wg0 proto kernel scope link src 10.13.13.1`), MTU 1420, link up, and
//! a route per peer allowed-IP prefix that the connected subnets do not already cover.
//!
//! The slow path writes decrypted packets for the gateway host into it ([`Tun::send`]) and
//! reads what the kernel routes into it ([`Tun::recv`], non-blocking; poll [`Tun::as_fd`]).
//!
//! The device is not persistent: it exists as long as this value holds its file descriptor, so
//! dropping [`Tun`] (or the process dying) removes it together with its addresses and routes.
//!
//! Unsafe code lives only in [`attach`] (the `TUNSETIFF` ioctl).

mod rtnetlink;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use ipnet::IpNet;

use rtnetlink::Rtnetlink;

/// The MTU of kernel WireGuard devices (1500 minus the worst-case IPv6 + UDP + WireGuard
/// overhead of 80 bytes), used by wg-quick unless told otherwise.
pub const DEFAULT_MTU: u32 = 1420;

/// `IFNAMSIZ - 1`: the longest interface name the kernel accepts.
pub const MAX_NAME_LEN: usize = 15;

/// How to set up the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name, e.g. `wg0`.
    pub name: String,
    /// The gateway's addresses on the tunnel with their prefix lengths, e.g. `10.13.13.1/24`.
    pub addresses: Vec<IpNet>,
    /// Link MTU; [`DEFAULT_MTU`] unless configured.
    pub mtu: u32,
}

impl TunConfig {
    /// `name` with `addresses` and the default MTU.
    pub fn new(name: impl Into<String>, addresses: Vec<IpNet>) -> Self {
        TunConfig {
            name: name.into(),
            addresses,
            mtu: DEFAULT_MTU,
        }
    }
}

/// What [`Tun::add_route`] or [`Tun::remove_route`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteChange {
    /// The route was added or deleted.
    Done,
    /// Nothing to do: the prefix lies inside one of the device's own subnets, which the
    /// kernel's connected route already sends into the device (wg-quick skips these too).
    CoveredBySubnet,
    /// Removal only: no such route existed.
    Absent,
}

/// Why creating or configuring the device failed, with what the operator can check.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// The interface name is empty, too long or contains a NUL.
    #[error("invalid interface name {0:?}: 1-15 bytes, no NUL")]
    InvalidName(String),
    /// The MTU is outside what an IP tunnel device can carry.
    #[error("invalid MTU {0}: must be between 576 and 65535")]
    InvalidMtu(u32),
    /// `/dev/net/tun` could not be opened (module `tun` not loaded, or not root).
    #[error("cannot open /dev/net/tun (is the tun module loaded and are we root?): {0}")]
    Open(#[source] io::Error),
    /// An interface with the name exists already: a persistent TUN, kernel WireGuard, a
    /// wireguard-go device or another gateway's. Taking it over would leave it with our
    /// addresses after exit, so it is refused.
    #[error(
        "an interface named {0} already exists (a persistent TUN, kernel WireGuard, \
         wireguard-go or another gateway): the gateway creates its own and does not take \
         over one it did not create; stop what owns it, remove it with `ip link del {0}`, \
         or give this gateway another device name ([interface] name, e.g. \"wg1\")"
    )]
    Exists(String),
    /// `TUNSETIFF` failed (no CAP_NET_ADMIN, or the kernel refused).
    #[error("cannot create TUN device {name}: {source}")]
    Create {
        /// Requested name.
        name: String,
        /// The ioctl's error.
        #[source]
        source: io::Error,
    },
    /// The device has an IPv6 address to carry but IPv6 is off on it, and turning it on failed.
    /// Linux creates devices with `net.ipv6.conf.default.disable_ipv6`, which Docker sets to 1
    /// in containers without IPv6; the address would be refused with EACCES.
    #[error(
        "[interface] address has an IPv6 prefix, but IPv6 is disabled on {name} \
         (net.ipv6.conf.default.disable_ipv6 = 1 in this network namespace, as Docker sets it \
         for containers without IPv6) and enabling it there failed ({source}); run \
         `sysctl -w net.ipv6.conf.default.disable_ipv6=0` first (Docker: \
         --sysctl net.ipv6.conf.all.disable_ipv6=0), or remove the IPv6 prefix"
    )]
    Ipv6Disabled {
        /// The device.
        name: String,
        /// Why `/proc/sys/net/ipv6/conf/NAME/disable_ipv6` could not be read or set to 0.
        #[source]
        source: io::Error,
    },
    /// An rtnetlink request failed.
    #[error("cannot {what} on {name}: {source}")]
    Netlink {
        /// The device.
        name: String,
        /// What was being done, e.g. "add address 10.13.13.1/24".
        what: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
}

/// The `wg0` device: an open TUN file descriptor plus the netlink socket that configures it.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
    index: u32,
    mtu: u32,
    addresses: Vec<IpNet>,
    rtnetlink: Mutex<Rtnetlink>,
}

impl Tun {
    /// Creates the device in the calling thread's network namespace, sets its MTU, adds the
    /// addresses and brings it up. Peer routes are added afterwards with [`Tun::add_route`].
    pub fn create(config: &TunConfig) -> Result<Tun, TunError> {
        if config.name.is_empty() || config.name.len() > MAX_NAME_LEN || config.name.contains('\0')
        {
            return Err(TunError::InvalidName(config.name.clone()));
        }
        // RFC 791 hosts must accept 576-byte datagrams; 65535 is the IPv4 total-length limit.
        if !(576..=65535).contains(&config.mtu) {
            return Err(TunError::InvalidMtu(config.mtu));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(TunError::Open)?;
        let name = attach(&file, &config.name).map_err(|source| {
            if source.raw_os_error() == Some(libc::EBUSY) {
                TunError::Exists(config.name.clone())
            } else {
                TunError::Create {
                    name: config.name.clone(),
                    source,
                }
            }
        })?;
        let netlink_error = |what: String| {
            let name = name.clone();
            move |source| TunError::Netlink { name, what, source }
        };
        let index = nix::net::if_::if_nametoindex(name.as_str())
            .map_err(io::Error::from)
            .map_err(netlink_error("look up the interface index".into()))?;
        let mut rtnetlink =
            Rtnetlink::open().map_err(netlink_error("open a netlink socket".into()))?;
        if config.addresses.iter().any(|a| a.addr().is_ipv6()) {
            enable_ipv6(&name).map_err(|source| TunError::Ipv6Disabled {
                name: name.clone(),
                source,
            })?;
        }
        for address in &config.addresses {
            rtnetlink
                .add_address(index, *address)
                .map_err(netlink_error(format!("add address {address}")))?;
        }
        // Cosmetic (no fe80:: address on wg0, as with kernel WireGuard): a kernel or namespace
        // without IPv6 refuses it, which must not stop the device from working.
        if let Err(e) = rtnetlink.disable_ipv6_link_local(index) {
            tracing::debug!(error = %e, "cannot disable IPv6 link-local address on {name}");
        }
        rtnetlink
            .set_link_up(index, config.mtu)
            .map_err(netlink_error(format!("set mtu {} and link up", config.mtu)))?;
        Ok(Tun {
            file,
            name,
            index,
            mtu: config.mtu,
            addresses: config.addresses.clone(),
            rtnetlink: Mutex::new(rtnetlink),
        })
    }

    /// The interface name the kernel assigned.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The configured MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The addresses the device was created with.
    pub fn addresses(&self) -> &[IpNet] {
        &self.addresses
    }

    /// Reads one IP packet the kernel sent into the device. Returns `WouldBlock` when there is
    /// none; `buf` should hold at least [`Tun::mtu`] bytes or the packet is truncated.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Hands one IP packet (IPv4 or IPv6, no header before it) to the kernel as if it had
    /// arrived on the device. Returns `WouldBlock` if the kernel's queue is full.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
    }

    /// Routes `prefix` into the device (`ip route add PREFIX dev wg0`), for a peer's allowed
    /// IP. A prefix inside one of the device's subnets needs no route. `EEXIST` (as
    /// [`TunError::Netlink`]) if the prefix is already routed, here or elsewhere.
    pub fn add_route(&self, prefix: IpNet) -> Result<RouteChange, TunError> {
        if self.covered_by_subnet(prefix) {
            return Ok(RouteChange::CoveredBySubnet);
        }
        self.rtnetlink
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .add_route(self.index, prefix)
            .map(|()| RouteChange::Done)
            .map_err(|source| TunError::Netlink {
                name: self.name.clone(),
                what: format!("add route {}", prefix.trunc()),
                source,
            })
    }

    /// Removes the route [`Tun::add_route`] added for `prefix`.
    pub fn remove_route(&self, prefix: IpNet) -> Result<RouteChange, TunError> {
        if self.covered_by_subnet(prefix) {
            return Ok(RouteChange::CoveredBySubnet);
        }
        match self
            .rtnetlink
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .del_route(self.index, prefix)
        {
            Ok(()) => Ok(RouteChange::Done),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(RouteChange::Absent),
            Err(source) => Err(TunError::Netlink {
                name: self.name.clone(),
                what: format!("delete route {}", prefix.trunc()),
                source,
            }),
        }
    }

    fn covered_by_subnet(&self, prefix: IpNet) -> bool {
        self.addresses.iter().any(|a| a.trunc().contains(&prefix))
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Turns IPv6 on for the device `name` (just created by us, so nobody else's setting) when the
/// namespace's default left it off: the operator asked for an IPv6 address on it. Done before
/// the addresses are added and the link is up, so the link-local suppression still applies.
fn enable_ipv6(name: &str) -> io::Result<()> {
    // The path is the thread's network namespace's, like the device.
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    if std::fs::read_to_string(&path)?.trim() == "0" {
        return Ok(());
    }
    std::fs::write(&path, "0")?;
    tracing::info!(
        "IPv6 is off for new interfaces in this network namespace \
         (net.ipv6.conf.default.disable_ipv6 = 1); turned on for {name}, which has an IPv6 address"
    );
    Ok(())
}

/// Attaches `file` (an open `/dev/net/tun`) to a new TUN interface named `name` and returns the
/// name the kernel gave it.
fn attach(file: &File, name: &str) -> io::Result<String> {
    // SAFETY: ifreq is a plain C struct (a name array and a union of integers/arrays) for
    // which all-zero bytes are a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    // The caller checked name.len() <= 15, so the copy leaves the terminating NUL in place.
    for (dst, src) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // IFF_NO_PI: no 4-byte packet-information header, so reads and writes are bare IP packets.
    // IFF_TUN_EXCL: fail with EBUSY when the name exists, instead of attaching to a persistent
    // TUN someone else made (and leaving our addresses on it at exit).
    request.ifr_ifru.ifru_flags =
        (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as libc::c_short;
    // SAFETY: the fd is an open /dev/net/tun descriptor owned by `file` for the whole call, and
    // TUNSETIFF reads and writes exactly one `struct ifreq`, which `request` is.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let assigned: Vec<u8> = request
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8(assigned).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tun_can_be_shared_with_the_slow_path_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Tun>();
    }

    #[test]
    fn bad_configs_are_refused_before_touching_the_kernel() {
        let addr: IpNet = "10.13.13.1/24".parse().unwrap();
        for name in ["", "sixteen-chars-xx", "a\0b"] {
            let err = Tun::create(&TunConfig::new(name, vec![addr])).unwrap_err();
            assert!(matches!(err, TunError::InvalidName(_)), "{err}");
        }
        let mut config = TunConfig::new("wgx", vec![addr]);
        config.mtu = 100;
        assert!(matches!(
            Tun::create(&config).unwrap_err(),
            TunError::InvalidMtu(100)
        ));
        assert_eq!(TunConfig::new("wg0", vec![]).mtu, 1420);
    }
}
