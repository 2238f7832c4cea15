//! The XDP program's `live_ports` bitmap, mapped into the gateway's memory, and the NAT
//! observer that keeps it: one bit per (protocol, external port or ICMP id) a mapping holds.
//!
//! The program redirects traffic to a NAT port only while its bit is set; the rest of the NAT
//! range is the host's (its pings with an id in the range, a service listening on such a
//! port), which the kernel then receives as if the gateway were not there. The workers set
//! and clear bits on the packet path, so the map is shared memory (`BPF_F_MMAPABLE`), not a
//! system call per flow: one atomic OR or AND per mapping created or removed.
//!
//! Unsafe code: the `mmap`/`munmap` of the map and the view of it as atomics.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use libbpf_rs::{MapCore, MapHandle};
use nat::{PortObserver, Protocol};

/// Words in the bitmap (`LIVE_PORT_WORDS` in redirect.bpf.c): 65 536 bits per protocol, for
/// the IPv4 NAT's three, then the IPv6 NAT's three.
pub const WORDS: usize = 2 * Protocol::ALL.len() * 65536 / 64;

/// The word and the bit of `(protocol, port)` of the IPv4 NAT; the layout redirect.bpf.c reads.
pub fn position(protocol: Protocol, port: u16) -> (usize, u32) {
    position_in(0, protocol, port)
}

/// The same for the IPv6 NAT, whose ports are held independently of the IPv4 NAT's.
pub fn position6(protocol: Protocol, port: u16) -> (usize, u32) {
    position_in(Protocol::ALL.len(), protocol, port)
}

fn position_in(base: usize, protocol: Protocol, port: u16) -> (usize, u32) {
    let index = (base + protocol as usize) * 65536 + usize::from(port);
    (index / 64, (index % 64) as u32)
}

/// One program's `live_ports` map, mapped read-write. Unmapped on drop.
#[derive(Debug)]
pub struct LivePorts {
    ptr: *mut AtomicU64,
    len: usize,
    /// Keeps the map's file descriptor (and so the map) open as long as the mapping.
    _map: MapHandle,
}

// SAFETY: the mapping is plain shared memory accessed only through `AtomicU64`s, which are
// Sync; the pointer is never handed out beyond `words()`'s borrow.
unsafe impl Send for LivePorts {}
// SAFETY: as above.
unsafe impl Sync for LivePorts {}

impl LivePorts {
    /// Maps `map` (an mmapable BPF array of [`WORDS`] u64 values).
    pub fn map(map: MapHandle) -> io::Result<LivePorts> {
        if map.max_entries() as usize != WORDS || map.value_size() != 8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "live_ports: {} entries of {} bytes, Rust expects {WORDS} of 8",
                    map.max_entries(),
                    map.value_size()
                ),
            ));
        }
        let len = WORDS * std::mem::size_of::<u64>();
        // SAFETY: a fresh shared mapping of `len` bytes of the map's fd (an array map created
        // with BPF_F_MMAPABLE, whose size was checked above; the kernel refuses a length beyond
        // the map); the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(LivePorts {
            ptr: ptr.cast(),
            len,
            _map: map,
        })
    }

    /// The bitmap as atomics.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` is a live, page-aligned mapping of `len` bytes = WORDS u64s, valid
        // until drop (which needs `&mut self`); the kernel and other threads access it
        // concurrently, which atomics allow. AtomicU64 has the layout of u64.
        unsafe { std::slice::from_raw_parts(self.ptr, WORDS) }
    }
}

impl Drop for LivePorts {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region `map` created; no borrow of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// The NAT observer of one worker: sets and clears its ports' bits in every program's map
/// (two-armed, both interfaces have one).
#[derive(Debug, Clone)]
pub struct LivePortsWriter {
    maps: Vec<Arc<LivePorts>>,
    /// Writes the IPv6 NAT's bits.
    ipv6: bool,
}

impl LivePortsWriter {
    pub fn new(maps: Vec<Arc<LivePorts>>) -> Self {
        LivePortsWriter { maps, ipv6: false }
    }

    /// The observer of the IPv6 NAT, over the same maps.
    pub fn ipv6(&self) -> Self {
        LivePortsWriter {
            maps: self.maps.clone(),
            ipv6: true,
        }
    }

    fn position(&self, protocol: Protocol, port: u16) -> (usize, u32) {
        if self.ipv6 {
            position6(protocol, port)
        } else {
            position(protocol, port)
        }
    }
}

impl PortObserver for LivePortsWriter {
    fn mapped(&self, protocol: Protocol, port: u16) {
        let (word, bit) = self.position(protocol, port);
        for m in &self.maps {
            // Release: the bit is seen set only after what the worker wrote before it.
            m.words()[word].fetch_or(1 << bit, Ordering::Release);
        }
    }

    fn unmapped(&self, protocol: Protocol, port: u16) {
        let (word, bit) = self.position(protocol, port);
        for m in &self.maps {
            m.words()[word].fetch_and(!(1 << bit), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_match_the_programs_layout() {
        assert_eq!(position(Protocol::Tcp, 0), (0, 0));
        assert_eq!(position(Protocol::Tcp, 65), (1, 1));
        assert_eq!(
            position(Protocol::Udp, 61000),
            (1024 + 61000 / 64, 61000 % 64)
        );
        assert_eq!(position(Protocol::Icmp, 65535), (WORDS / 2 - 1, 63));
        // The IPv6 NAT's bits follow (live_proto6 in redirect.bpf.c: 3, 4, 5).
        assert_eq!(position6(Protocol::Tcp, 0), (3 * 1024, 0));
        assert_eq!(
            position6(Protocol::Udp, 61000),
            (4 * 1024 + 61000 / 64, 61000 % 64)
        );
        assert_eq!(position6(Protocol::Icmp, 65535), (WORDS - 1, 63));
    }
}
