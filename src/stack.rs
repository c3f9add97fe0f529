//! Thread stacks: give back what a sleeping thread no longer uses.
//!
//! A thread's deepest call (a TLS handshake, an HTTP exchange, parsing a
//! device's JSON answer) touches 20–40 KiB of its stack, and those pages
//! stay resident for the life of the thread although the thread spends
//! nearly all of it asleep a few KiB deep. Before it sleeps, a poller calls
//! [`release_unused`]: the pages below its current frame go back to the
//! kernel (`MADV_DONTNEED`; the next deep call gets fresh zero pages, a few
//! page faults per poll). Nothing below the stack pointer is live, so this
//! is safe at any moment; routers have no swap, so without it those pages
//! would be held for good.

const KIB: usize = 1024;

/// Every thread the agent starts and the size of its stack, in one table:
/// the memory budget reads here (each is a mapping of this size; only the
/// pages a thread touches count). A name ending in `-` is a prefix
/// (`dev-gw1`, `sms-rx-w0`). `bench/rss.py` reads this table from this file.
pub const STACKS: &[(&str, usize)] = &[
    ("mqtt", 512 * KIB),     // TLS handshakes, tokio's event loop
    ("dispatch", 512 * KIB), // the command engine's journal and scheduling
    ("sms-sync", 512 * KIB), // GoIP inbox reads: HTTP + JSON of a whole page
    ("reports", 256 * KIB),
    ("outbox", 256 * KIB), // every publish that must be acknowledged: event queue reads, journal marks
    ("dev-", 256 * KIB), // one per LAN device: HTTP(S) and its JSON
    ("cmd", 256 * KIB),  // one per running command
    ("trial", 128 * KIB), // a broker move on trial: journal and UCI rewrite, only while one runs
    ("sms-rx-", 128 * KIB), // the push receiver's I/O loop and workers
    ("join-", 64 * KIB),    // waits out a stopped device's last HTTP call
];

/// The stack size of the thread called `name`, from [`STACKS`].
pub fn size_for(name: &str) -> Option<usize> {
    STACKS.iter().find(|(k, _)| *k == name || (k.ends_with('-') && name.starts_with(k))).map(|&(_, size)| size)
}

/// Start a thread called `name` with its stack size from [`STACKS`]. A
/// name missing from the table is a bug: debug builds (the tests') stop
/// on it; a release build gives that thread 128 KiB.
pub fn spawn<F, T>(name: String, f: F) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let size = size_for(&name);
    debug_assert!(size.is_some(), "thread {name} has no stack size in stack::STACKS");
    std::thread::Builder::new().name(name).stack_size(size.unwrap_or(128 * KIB)).spawn(f)
}

/// Release the pages of the calling thread's stack below its current frame.
/// On the main thread the stack is the process's `[stack]` mapping (it
/// grows on demand up to the rlimit; start-up's config parsing and TLS
/// set-up leave ~20 KiB of it resident). Does nothing when the stack cannot
/// be found.
#[inline(never)]
pub fn release_unused() {
    // The heap's free segments too (rate-limited there).
    crate::heap::trim();
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    let Some((low, high)) = own_stack() else { return };
    if !(low < here && here <= high) {
        return;
    }
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => 4096,
    };
    // One page of margin under this frame for the call to madvise itself.
    let end = here.saturating_sub(page) & !(page - 1);
    let start = low.saturating_add(page - 1) & !(page - 1);
    if end > start {
        // SAFETY: [start, end) lies inside this thread's own stack mapping,
        // below the current frame: no live data is there, and
        // MADV_DONTNEED on private anonymous memory reads back as zeros.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// The calling thread's stack as (lowest, highest) address, not for the
/// main thread.
fn own_stack() -> Option<(usize, usize)> {
    // SAFETY: getpid/gettid have no preconditions.
    if unsafe { libc::getpid() == libc::gettid() } {
        return main_stack();
    }
    // SAFETY: attr is initialised by pthread_getattr_np before use and
    // destroyed after; addr/size are plain out-parameters.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let rc = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 || addr.is_null() || size == 0 {
            return None;
        }
        let low = addr as usize;
        Some((low, low.checked_add(size)?))
    }
}

/// The main thread's stack: the `[stack]` line of /proc/self/maps (read
/// with a bound: the agent has a few dozen mappings).
fn main_stack() -> Option<(usize, usize)> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open("/proc/self/maps").ok()?.take(256 * 1024).read_to_string(&mut text).ok()?;
    stack_line(&text)
}

/// `start-end ... [stack]` of maps text, as (start, end).
fn stack_line(maps: &str) -> Option<(usize, usize)> {
    crate::util::maps_range(maps.lines().find(|l| l.trim_end().ends_with("[stack]"))?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_main_stack_is_the_stack_line_of_maps() {
        let maps = "00400000-00590000 r-xp 00000000 fe:01 12 /usr/bin/dma-agent\n\
                    7ffd1000-7ffd3000 rw-p 00000000 00:00 0                          [stack]\n\
                    7ffd5000-7ffd7000 r--p 00000000 00:00 0                          [vvar]\n";
        assert_eq!(super::stack_line(maps), Some((0x7ffd1000, 0x7ffd3000)));
        assert_eq!(super::stack_line("00400000-00590000 r-xp 0 fe:01 12 /bin/x\n"), None);
        assert_eq!(super::stack_line("zz-7ffd3000 rw-p 0 00:00 0 [stack]\n"), None);
        // This process's own main stack is found (the test threads are not it).
        let (low, high) = super::main_stack().expect("a [stack] mapping");
        assert!(high - low >= 4096);
    }

    use super::*;

    /// Resident KiB of [low, high), from /proc/self/pagemap's present bits
    /// (readable without privileges).
    fn resident_kib(low: usize, high: usize) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open("/proc/self/pagemap").expect("pagemap");
        let mut n = 0;
        for page in (low / 4096)..(high / 4096) {
            let mut e = [0u8; 8];
            f.seek(SeekFrom::Start(page as u64 * 8)).expect("seek");
            f.read_exact(&mut e).expect("read");
            n += u64::from_le_bytes(e) >> 63;
        }
        n * 4
    }

    #[inline(never)]
    fn deep(n: usize) -> u8 {
        let buf = std::hint::black_box([n as u8; 1024]);
        if n == 0 {
            buf[0]
        } else {
            deep(n - 1).wrapping_add(buf[1])
        }
    }

    #[test]
    fn a_deep_call_stays_resident_until_released_and_the_thread_goes_on() {
        let t = std::thread::Builder::new().stack_size(512 * 1024).spawn(|| {
            let (low, high) = own_stack().expect("a spawned thread knows its stack");
            assert!(high - low >= 512 * 1024, "{low:x}-{high:x}");
            std::hint::black_box(deep(200)); // ~200 KiB deep
            let before = resident_kib(low, high);
            release_unused();
            let after = resident_kib(low, high);
            // Deep again after the release: fresh zero pages, correct result.
            let again = deep(200);
            (before, after, again)
        });
        let (before, after, again) = t.expect("spawn").join().expect("thread");
        assert_eq!(again, deep_expected());
        // qemu-user (how the foreign targets' tests run here) does not
        // emulate /proc/self/pagemap; the figures are checked natively.
        if cfg!(target_arch = "x86_64") {
            assert!(before >= 200, "the deep call was resident: {before} KiB");
            assert!(after + 150 <= before, "released: {before} -> {after} KiB");
        }
    }

    fn deep_expected() -> u8 {
        (0..=200usize).map(|n| if n == 0 { 0u8 } else { n as u8 }).fold(0u8, |a, b| a.wrapping_add(b))
    }

    #[test]
    fn every_thread_name_has_its_stack_size() {
        assert_eq!(size_for("mqtt"), Some(512 * KIB));
        assert_eq!(size_for("dev-gw1"), Some(256 * KIB));
        assert_eq!(size_for("sms-rx-w0"), Some(128 * KIB));
        assert_eq!(size_for("dev"), None, "a prefix entry matches only with its dash");
        assert_eq!(size_for("mqtt2"), None);
        let t = spawn("outbox".into(), || own_stack().map(|(low, high)| high - low)).expect("spawn");
        assert!(t.join().expect("thread").is_some_and(|size| size >= 256 * KIB));
    }

    #[test]
    fn a_spawned_thread_finds_its_own_stack() {
        // Test functions run on spawned threads: they find their stack.
        let (low, high) = own_stack().expect("a spawned thread knows its stack");
        let marker = 0u8;
        let here = &marker as *const u8 as usize;
        assert!(low < here && here <= high, "{low:x} < {here:x} <= {high:x}");
    }
}
