//! A counting global allocator: mimalloc with counters of live heap bytes and their peak, so
//! that `ensi keygen --report-memory` and `ensi encrypt --report-memory` report the heap a
//! command needed independently of the operating system (resident memory also counts
//! the binary, the stacks and pages the allocator keeps). The `ensi` binary installs it and
//! turns counting on ([`enable`]) only for the client's commands: the counters are shared
//! atomics, and on the server's many-threaded, allocation-heavy paths (big-integer CRT) their
//! contention cost measurable time. Off, an allocation pays one relaxed load.
//!
//! Why mimalloc and not the system allocator: the server allocates and frees polynomials of
//! 0.5 to 15 MB at a high rate from many threads. glibc's allocator serves blocks that large
//! with fresh `mmap`s (or trims its per-thread heaps) and gives them back at once, so every
//! allocation is paid again in page faults and kernel page zeroing: a quarter of the
//! coefficient kernel's packing time was `clear_page` in the kernel. mimalloc reuses freed
//! blocks per thread; by default it still returns idle pages to the kernel after 10 ms, which
//! the server's commands turn off ([`keep_freed_pages`]).

use mimalloc::MiMalloc as System;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// mimalloc, counting (see the module documentation).
#[derive(Debug)]
pub struct Counting;

// Signed: blocks allocated before counting was enabled are freed uncounted, which may take the
// live count a little below zero.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static ENABLED: AtomicBool = AtomicBool::new(false);

// SAFETY: every call is forwarded unchanged to mimalloc; the counters are atomics
// and never affect what is returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout, which satisfies `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout, from this allocator.
        unsafe { System.dealloc(ptr, layout) };
        uncount(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's arguments, which satisfy `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            uncount(layout.size());
            count(new_size);
        }
        p
    }
}

fn count(size: usize) {
    if ENABLED.load(Ordering::Relaxed) {
        let size = size as isize;
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

fn uncount(size: usize) {
    if ENABLED.load(Ordering::Relaxed) {
        LIVE.fetch_sub(size as isize, Ordering::Relaxed);
    }
}

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in its `mimalloc.h`, v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed pages committed for reuse instead of returning them to the operating system
/// 10 ms after they fall free (mimalloc's default). The server allocates and frees the same
/// few hundred megabytes of polynomials over and over; returned pages come back as page faults
/// and kernel zeroing. Measured on a bootstrap at N = 2^16 (2 threads, interleaved runs):
/// 8.9-9.2 s against 10.0-10.4 s, for a peak resident memory of 13.8 GB against 13.1 GB.
pub fn keep_freed_pages() {
    // SAFETY: `mi_option_set` takes any option index and value; an unknown index is ignored,
    // and -1 is the documented "never purge" value of this option.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// Starts counting (from here on; call it first thing in `main`).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The peak of live heap bytes since counting started; `None`
/// when the counting allocator is not the global allocator or counting is off.
pub fn peak() -> Option<usize> {
    ENABLED
        .load(Ordering::Relaxed)
        .then(|| PEAK.load(Ordering::Relaxed).max(0) as usize)
}

/// `bytes` in MiB, for messages.
pub fn mib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}
