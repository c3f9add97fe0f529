//! The agent's heap: dlmalloc behind one lock, over plain mmap/munmap.
//!
//! dlmalloc instead of musl's mallocng: the heap is many short-lived
//! allocations from a dozen threads (a JSON tree per device poll, TLS
//! records, MQTT packets); mallocng kept ~790 KiB resident for ~400 KiB of
//! live data, dlmalloc's coalescing best fit ~300 KiB less (README "Size
//! and memory").
//!
//! dlmalloc's own Linux backend resizes and trims with mremap(2). dlmalloc
//! merges address-adjacent mmaps into one segment, so such a call can span
//! several kernel mappings: Linux refuses it and dlmalloc falls back to
//! munmap, but qemu-user (which runs the foreign targets' tests) carries it
//! out and corrupts the process. [`Sys`] never uses mremap: a resize is
//! left to dlmalloc (allocate, copy, free), a trim unmaps the tail.
//!
//! Free memory goes back to the kernel: dlmalloc returns a segment only
//! when all of it is free, but it merges a new mapping with an
//! address-adjacent segment, and mmap places each new mapping right below
//! the previous one, so the heap was one segment that never emptied and
//! what a burst freed stayed resident (README "Size and memory"). [`Sys`]
//! puts an inaccessible guard page below each mapping (no RSS, one VMA), so
//! no two mappings touch and each stays its own segment; [`trim`], called by
//! sleeping threads at most every few seconds, unmaps the segments that
//! became empty and the free top of the current one.

use dlmalloc::{Allocator, Dlmalloc};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The guard below each mapping: one page of the running kernel (4 KiB on
/// our targets, but some MIPS kernels use 16 KiB: mprotect works on whole
/// pages, so a smaller guard would protect the start of the usable part).
fn guard() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf has no preconditions.
            let p = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
                p if p >= 4096 => p as usize,
                _ => 4096,
            };
            PAGE.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

/// dlmalloc's source of memory: anonymous private mappings.
pub struct Sys;

// SAFETY: regions come from mmap and go back with munmap, whole or by
// their tail, exactly as the trait describes; no state is kept.
unsafe impl Allocator for Sys {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let g = guard();
        let Some(total) = size.checked_add(g) else { return (std::ptr::null_mut(), 0, 0) };
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), total, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if p == libc::MAP_FAILED {
            return (std::ptr::null_mut(), 0, 0);
        }
        // The guard page: its own VMA, never touched, so the next mapping
        // (placed below this one) is not adjacent to what dlmalloc sees.
        // SAFETY: the first page of the mapping just made; nothing uses it.
        if unsafe { libc::mprotect(p, g, libc::PROT_NONE) } != 0 {
            // SAFETY: unmapping the mapping just made, whole.
            unsafe { libc::munmap(p, total) };
            return (std::ptr::null_mut(), 0, 0);
        }
        (p.cast::<u8>().wrapping_add(g), size, 0)
    }

    fn remap(&self, _ptr: *mut u8, _oldsize: usize, _newsize: usize, _can_move: bool) -> *mut u8 {
        std::ptr::null_mut() // never mremap: see the module comment
    }

    fn free_part(&self, ptr: *mut u8, oldsize: usize, newsize: usize) -> bool {
        match oldsize.checked_sub(newsize) {
            // SAFETY: dlmalloc gives back the tail of a region it got from alloc.
            Some(tail) if tail > 0 => unsafe { libc::munmap(ptr.wrapping_add(newsize).cast(), tail) == 0 },
            _ => false,
        }
    }

    fn free(&self, ptr: *mut u8, size: usize) -> bool {
        // SAFETY: dlmalloc gives back a whole region it got from alloc,
        // which sits right above its guard page: both go.
        let g = guard();
        unsafe { libc::munmap(ptr.wrapping_sub(g).cast(), size + g) == 0 }
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        true
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        4096
    }
}

/// dlmalloc's state: raw pointers into its own segments, used only under the lock.
struct Pool(Dlmalloc<Sys>);

// SAFETY: the pool is only ever used through HEAP's mutex, one thread at a time.
unsafe impl Send for Pool {}

static HEAP: Mutex<Pool> = Mutex::new(Pool(Dlmalloc::new_with_allocator(Sys)));

fn with<T>(f: impl FnOnce(&mut Dlmalloc<Sys>) -> T) -> T {
    // A panic while the lock is held aborts the process (panic = abort), so
    // a poisoned lock cannot hide a half-updated pool.
    let mut g = match HEAP.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    f(&mut g.0)
}

/// Seconds between two trims.
const TRIM_EVERY: u64 = 5;
/// Free bytes kept at the top of the current segment for the next burst.
const TRIM_PAD: usize = 16 * 1024;
/// Monotonic seconds of the last trim (usize: 32-bit MIPS has no 64-bit atomics).
static LAST_TRIM: AtomicUsize = AtomicUsize::new(0);

/// Give free memory back to the kernel: the segments that are wholly free
/// and the free top of the current one beyond [`TRIM_PAD`]. Cheap (a walk
/// of the segment list under the heap lock) and done at most every
/// [`TRIM_EVERY`] s however often it is called; threads call it before
/// they sleep (`stack::release_unused`).
pub fn trim() {
    let now = usize::try_from(monotonic_secs()).unwrap_or(usize::MAX);
    let last = LAST_TRIM.load(Ordering::Relaxed);
    if now.saturating_sub(last) < TRIM_EVERY as usize
        || LAST_TRIM.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        return;
    }
    // SAFETY: trim only releases memory dlmalloc knows to be free.
    with(|h| unsafe { h.trim(TRIM_PAD) });
}

fn monotonic_secs() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0)
}

/// The global allocator of the `dma-agent` binary (`src/main.rs`).
pub struct Heap;

// SAFETY: every call goes, under the lock, to dlmalloc with the layout the
// caller gave, as GlobalAlloc's contract asks.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        with(|h| h.malloc(layout.size(), layout.align()))
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        with(|h| h.calloc(layout.size(), layout.align()))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        with(|h| h.free(ptr, layout.size(), layout.align()))
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        with(|h| h.realloc(ptr, layout.size(), layout.align(), new_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grow and shrink buffers through large sizes on a private pool over
    /// [`Sys`] (what reading a 1 MB MQTT packet does), with every byte
    /// checked: no remap, and nothing lost when merged mappings are trimmed.
    #[test]
    fn growing_and_trimming_large_buffers_keeps_their_contents() {
        let mut h = Dlmalloc::new_with_allocator(Sys);
        // SAFETY: every pointer is used within its size and freed once with its layout.
        unsafe {
            let keep = h.malloc(64, 8);
            assert!(!keep.is_null());
            std::ptr::write_bytes(keep, 0xAB, 64);
            let mut size = 8 * 1024;
            let mut p = h.malloc(size, 8);
            std::ptr::write_bytes(p, 7, size);
            while size < 4 * 1024 * 1024 {
                let new = size * 2;
                p = h.realloc(p, size, 8, new);
                assert!(!p.is_null(), "realloc to {new}");
                assert!(std::slice::from_raw_parts(p, size).iter().all(|b| *b == 7), "contents kept at {new}");
                std::ptr::write_bytes(p, 7, new);
                size = new;
            }
            h.free(p, size, 8);
            h.trim(0);
            assert!(std::slice::from_raw_parts(keep, 64).iter().all(|b| *b == 0xAB), "a live block survives the trim");
            h.free(keep, 64, 8);
        }
    }

    /// [`Sys`] counting the bytes it has mapped.
    struct Counted(std::sync::atomic::AtomicUsize);

    // SAFETY: every call goes to Sys unchanged; only a counter is kept.
    unsafe impl Allocator for Counted {
        fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
            let r = Sys.alloc(size);
            self.0.fetch_add(r.1, Ordering::SeqCst);
            r
        }
        fn remap(&self, p: *mut u8, o: usize, n: usize, m: bool) -> *mut u8 {
            Sys.remap(p, o, n, m)
        }
        fn free_part(&self, p: *mut u8, o: usize, n: usize) -> bool {
            let ok = Sys.free_part(p, o, n);
            if ok {
                self.0.fetch_sub(o - n, Ordering::SeqCst);
            }
            ok
        }
        fn free(&self, p: *mut u8, size: usize) -> bool {
            let ok = Sys.free(p, size);
            if ok {
                self.0.fetch_sub(size, Ordering::SeqCst);
            }
            ok
        }
        fn can_release_part(&self, f: u32) -> bool {
            Sys.can_release_part(f)
        }
        fn allocates_zeros(&self) -> bool {
            Sys.allocates_zeros()
        }
        fn page_size(&self) -> usize {
            Sys.page_size()
        }
    }

    /// Mappings never touch, so the segments whose blocks are all freed
    /// are unmapped by a trim while a live block keeps its own, intact.
    /// (Without the guard page, the mappings merge into one segment that
    /// the live block pins: nothing would be unmapped.)
    #[test]
    fn an_emptied_segment_goes_back_to_the_kernel() {
        let mut h = Dlmalloc::new_with_allocator(Counted(std::sync::atomic::AtomicUsize::new(0)));
        let mapped = |h: &Dlmalloc<Counted>| h.allocator().0.load(Ordering::SeqCst);
        // SAFETY: every pointer is used within its size and freed once with its layout.
        unsafe {
            let keep = h.malloc(1000, 8);
            std::ptr::write_bytes(keep, 0x5A, 1000);
            let big: Vec<*mut u8> = (0..4).map(|_| h.malloc(200 * 1024, 8)).collect();
            for p in &big {
                assert!(!p.is_null());
                std::ptr::write_bytes(*p, 1, 200 * 1024);
            }
            // The live block sits in the first segment, at the top of the address range.
            let before = mapped(&h);
            for p in big {
                h.free(p, 200 * 1024, 8);
            }
            h.trim(TRIM_PAD);
            let after = mapped(&h);
            assert!(before - after >= 3 * 200 * 1024, "freed segments unmapped: {before} -> {after} B");
            assert!(std::slice::from_raw_parts(keep, 1000).iter().all(|b| *b == 0x5A), "the live block survives");
            h.free(keep, 1000, 8);
        }
    }

    #[test]
    fn the_global_heap_allocates_reallocates_and_frees() {
        let layout = Layout::from_size_align(4096, 64).expect("layout");
        // SAFETY: allocated and freed with the same layout; read within it.
        unsafe {
            let p = Heap.alloc_zeroed(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % 64, 0, "alignment kept");
            assert!(std::slice::from_raw_parts(p, 4096).iter().all(|b| *b == 0));
            let q = Heap.realloc(p, layout, 1 << 20);
            assert!(!q.is_null());
            Heap.dealloc(q, Layout::from_size_align(1 << 20, 64).expect("layout"));
        }
    }
}
