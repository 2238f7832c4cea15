//! Generic receive offload off while the program runs in generic (skb) mode, restored after.
//!
//! In generic mode the program runs after the kernel's GRO, which merges a TCP stream's
//! segments into one frame of up to 64 KiB. A worker takes one MTU-sized frame per UMEM frame
//! and cannot re-segment, so merged NAT return traffic would be dropped (`drop_oversized`)
//! and TCP through the gateway would stall. The kernel already turns LRO and hardware GRO off
//! when an XDP program attaches; software GRO it leaves on, so this does the same for it, for
//! as long as the program is attached. Driver mode needs nothing: the program runs before GRO.
//!
//! Uses the ethtool ioctl's GRO get/set commands (include/uapi/linux/ethtool.h), the one
//! unsafe call of this module.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tracing::{info, warn};

/// `ETHTOOL_GGRO`: read the GRO flag into `ethtool_value.data`.
const ETHTOOL_GGRO: u32 = 0x2b;
/// `ETHTOOL_SGRO`: set the GRO flag from `ethtool_value.data`.
const ETHTOOL_SGRO: u32 = 0x2c;

/// `struct ethtool_value`: a command and its one value.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// GRO turned off on one interface; turned back on when dropped.
#[derive(Debug)]
pub struct GroOff {
    ifname: String,
}

impl GroOff {
    /// Turns GRO off on `ifname` if it is on. `None` when it was off already (nothing to
    /// restore).
    pub fn engage(ifname: &str) -> io::Result<Option<GroOff>> {
        if !gro(ifname, None)? {
            return Ok(None);
        }
        gro(ifname, Some(false))?;
        info!(
            ifname,
            "generic receive offload turned off while the gateway runs in generic (skb) mode: \
             GRO merges segments into frames a worker cannot take; restored on exit"
        );
        Ok(Some(GroOff {
            ifname: ifname.to_string(),
        }))
    }
}

impl Drop for GroOff {
    fn drop(&mut self) {
        match gro(&self.ifname, Some(true)) {
            Ok(_) => info!(ifname = %self.ifname, "generic receive offload restored"),
            Err(e) => warn!(
                ifname = %self.ifname,
                "could not turn generic receive offload back on ({e}); run `ethtool -K {} gro on`",
                self.ifname
            ),
        }
    }
}

/// Reads GRO of `ifname` (`set` = `None`) or sets it; returns the value read or set.
fn gro(ifname: &str, set: Option<bool>) -> io::Result<bool> {
    let mut value = EthtoolValue {
        cmd: if set.is_some() {
            ETHTOOL_SGRO
        } else {
            ETHTOOL_GGRO
        },
        data: u32::from(set.unwrap_or(false)),
    };
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: socket(2) with constant arguments; the returned descriptor is checked and then
    // owned by `sock`, which closes it.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is a plain C struct for which all-zero bytes are a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    // name.len() < IFNAMSIZ (checked above): the terminating NUL stays in place.
    for (dst, &src) in request.ifr_name.iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    request.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: SIOCETHTOOL reads `request` and, through ifru_data, reads and writes one
    // `struct ethtool_value`, which `value` is; both outlive the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut request) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.data != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_interface_is_an_error_not_a_panic() {
        assert!(gro("no-such-if0", None).is_err());
        assert!(gro("", None).is_err());
        assert!(gro("a-name-far-too-long-for-linux", None).is_err());
    }
}
