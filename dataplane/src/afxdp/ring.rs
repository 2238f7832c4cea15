//! The four rings of an AF_XDP socket as the kernel shares them: a producer index, a consumer
//! index, a flags word and a power-of-two array of entries, mapped from the socket at the
//! offsets `XDP_MMAP_OFFSETS` reports (Documentation/networking/af_xdp.rst).
//!
//! We produce on the fill ring (frame addresses, `u64`) and the tx ring (`xdp_desc`), and
//! consume from the rx ring (`xdp_desc`) and the completion ring (`u64`). Each side keeps a
//! cached copy of the other side's index and reads the shared one only when the cache says the
//! ring is full (producer) or empty (consumer), as libxdp does.
//!
//! Ordering: the entries are read after an acquire load of the producer index and released
//! with a release store of the consumer index (the kernel does not overwrite an entry before
//! it sees it consumed); entries are written before a release store of the producer index
//! (the kernel does not read them before it sees it).

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// One mapped ring of entries `T` (`u64` or `libc::xdp_desc`).
pub(crate) struct Ring<T> {
    map: NonNull<libc::c_void>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<T>,
    size: u32,
    /// Producer side: our next index. Consumer side: the kernel's last producer index seen.
    cached_prod: u32,
    /// Producer side: the kernel's last consumer index seen, plus `size` (so that free
    /// entries are `cached_cons - cached_prod`). Consumer side: our next index.
    cached_cons: u32,
}

// SAFETY: the ring is a mapping owned by this value (unmapped on drop); moving it to another
// thread moves the only user-space handle to it. Not Sync: one thread uses a ring at a time.
unsafe impl<T: Send> Send for Ring<T> {}

/// Which side of the ring we are on: how the cached indices start.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Producer,
    Consumer,
}

impl<T: Copy> Ring<T> {
    /// Maps the ring of `size` entries at page offset `pgoff` of socket `fd`, whose layout the
    /// kernel gave in `off`.
    pub(crate) fn map(
        fd: RawFd,
        pgoff: u64,
        off: &libc::xdp_ring_offset,
        size: u32,
        side: Side,
    ) -> io::Result<Ring<T>> {
        debug_assert!(size.is_power_of_two());
        let map_len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel checks the offset
        // and length against the ring it allocated for this socket. Nothing aliases it yet.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(p).ok_or_else(|| io::Error::other("mmap returned null"))?;
        // SAFETY: `map` is the mapping just made, `map_len` long, laid out as `off` says.
        Ok(unsafe { Ring::over(map, map_len, off, size, side) })
    }

    /// The ring inside `map` (`map_len` bytes, unmapped when the ring drops).
    ///
    /// # Safety
    /// `map` must be a mapping of `map_len` bytes that nothing else unmaps, holding the
    /// indices and flags at `off`'s offsets (aligned u32s) and `size` entries at `off.desc`.
    unsafe fn over(
        map: NonNull<libc::c_void>,
        map_len: usize,
        off: &libc::xdp_ring_offset,
        size: u32,
        side: Side,
    ) -> Ring<T> {
        let p = map.as_ptr();
        let at = |o: u64| {
            // SAFETY: `o` is an offset the kernel reported inside this mapping.
            unsafe { NonNull::new_unchecked(p.cast::<u8>().add(o as usize)) }
        };
        let mut ring = Ring {
            map,
            map_len,
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            entries: at(off.desc).cast(),
            size,
            cached_prod: 0,
            cached_cons: 0,
        };
        ring.cached_prod = ring.producer().load(Ordering::Relaxed);
        ring.cached_cons = ring.consumer().load(Ordering::Relaxed);
        if side == Side::Producer {
            ring.cached_cons = ring.cached_cons.wrapping_add(size);
        }
        ring
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: an aligned u32 inside the mapping that lives as long as `self`; the kernel
        // and we only access it atomically.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & (size - 1)` is below `size`, the number of entries mapped.
        unsafe { self.entries.as_ptr().add((idx & (self.size - 1)) as usize) }
    }

    /// Whether the kernel asked to be woken (`XDP_RING_NEED_WAKEUP`; bound with
    /// `XDP_USE_NEED_WAKEUP`).
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Producer side: entries free for us, refreshing the kernel's consumer index only when
    /// fewer than `want` are known to be free.
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_cons = self
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Producer side: whether the kernel has taken every entry (the tx ring is drained).
    pub(crate) fn drained(&mut self) -> bool {
        self.free(self.size) == self.size
    }

    /// Producer side: writes as many of `items` as fit and publishes them. Returns how many.
    pub(crate) fn produce(&mut self, items: &[T]) -> usize {
        let n = (self.free(items.len() as u32) as usize).min(items.len());
        for (i, item) in items[..n].iter().enumerate() {
            // SAFETY: the slot is free (between our producer index and the kernel's consumer
            // index plus size), so the kernel does not read it until we publish.
            unsafe {
                self.slot(self.cached_prod.wrapping_add(i as u32))
                    .write(*item)
            };
        }
        if n > 0 {
            self.cached_prod = self.cached_prod.wrapping_add(n as u32);
            self.producer().store(self.cached_prod, Ordering::Release);
        }
        n
    }

    /// Consumer side: reads up to `out.len()` entries into `out` and hands their slots back
    /// to the kernel. Returns how many.
    pub(crate) fn consume(&mut self, out: &mut [T]) -> usize {
        let want = out.len() as u32;
        let mut ready = self.cached_prod.wrapping_sub(self.cached_cons);
        if ready < want {
            self.cached_prod = self.producer().load(Ordering::Acquire);
            ready = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        let n = ready.min(want) as usize;
        for (i, o) in out[..n].iter_mut().enumerate() {
            // SAFETY: the slot is between our consumer index and the kernel's producer index
            // (acquired above), so the kernel wrote it and does not touch it until released.
            *o = unsafe { self.slot(self.cached_cons.wrapping_add(i as u32)).read() };
        }
        if n > 0 {
            self.cached_cons = self.cached_cons.wrapping_add(n as u32);
            self.consumer().store(self.cached_cons, Ordering::Release);
        }
        n
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; no reference into it outlives
        // `self` (the accessors borrow `self`).
        unsafe { libc::munmap(self.map.as_ptr(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u32 = 8;

    /// An anonymous mapping laid out as a ring, indices starting at `start` (near the u32
    /// wrap), and the ring over it; the test plays the kernel through the raw pointers.
    fn fake(side: Side, start: u32) -> (Ring<u64>, *mut u32, *mut u32, *mut u64) {
        let off = libc::xdp_ring_offset {
            producer: 0,
            consumer: 64,
            flags: 128,
            desc: 192,
        };
        let len = 192 + SIZE as usize * 8;
        // SAFETY: a fresh private anonymous mapping, handed to the ring which unmaps it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let b = p.cast::<u8>();
        // SAFETY: offsets inside the mapping, aligned for their types.
        let (prod, cons, entries) = unsafe {
            (
                b.cast::<u32>(),
                b.add(64).cast::<u32>(),
                b.add(192).cast::<u64>(),
            )
        };
        // SAFETY: as above; nothing else uses the mapping yet.
        unsafe {
            prod.write(start);
            cons.write(start);
        }
        // SAFETY: the mapping is laid out as `off` says and only the ring unmaps it.
        let ring = unsafe { Ring::over(NonNull::new(p).unwrap(), len, &off, SIZE, side) };
        (ring, prod, cons, entries)
    }

    #[test]
    fn producer_fills_to_size_then_reuses_what_the_kernel_consumed_across_the_index_wrap() {
        let (mut ring, _prod, cons, entries) = fake(Side::Producer, u32::MAX - 3);
        assert!(ring.drained());
        let items: Vec<u64> = (0..20).collect();
        assert_eq!(
            ring.produce(&items),
            SIZE as usize,
            "no more than the ring holds"
        );
        assert_eq!(
            ring.produce(&items[8..]),
            0,
            "full until the kernel consumes"
        );
        assert!(!ring.drained());
        // The kernel consumes 5 entries, reading them in order.
        for i in 0..5u32 {
            let slot = (u32::MAX - 3).wrapping_add(i) & (SIZE - 1);
            // SAFETY: an entry of the mapping.
            assert_eq!(unsafe { entries.add(slot as usize).read() }, i as u64);
        }
        // SAFETY: the kernel's consumer index, in the mapping.
        unsafe { cons.write((u32::MAX - 3).wrapping_add(5)) };
        assert_eq!(ring.produce(&items[8..]), 5);
        let slot = (u32::MAX - 3).wrapping_add(8) & (SIZE - 1);
        // SAFETY: an entry of the mapping.
        assert_eq!(unsafe { entries.add(slot as usize).read() }, 8);
    }

    #[test]
    fn consumer_reads_what_the_kernel_produced_in_order_across_the_index_wrap() {
        let start = u32::MAX - 1;
        let (mut ring, prod, cons, entries) = fake(Side::Consumer, start);
        let mut out = [0u64; 8];
        assert_eq!(ring.consume(&mut out), 0, "empty");
        for i in 0..6u32 {
            let slot = start.wrapping_add(i) & (SIZE - 1);
            // SAFETY: an entry of the mapping, written before the producer index moves.
            unsafe { entries.add(slot as usize).write(100 + i as u64) };
        }
        // SAFETY: the kernel's producer index, in the mapping.
        unsafe { prod.write(start.wrapping_add(6)) };
        assert_eq!(ring.consume(&mut out[..4]), 4);
        assert_eq!(out[..4], [100, 101, 102, 103]);
        // SAFETY: our consumer index as the kernel sees it.
        assert_eq!(unsafe { cons.read() }, start.wrapping_add(4), "released");
        assert_eq!(ring.consume(&mut out), 2);
        assert_eq!(out[..2], [104, 105]);
        assert_eq!(ring.consume(&mut out), 0);
    }
}
