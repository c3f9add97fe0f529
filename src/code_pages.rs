//! Code pages: give back the pages of the agent's own binary that steady
//! running does not touch.
//!
//! The kernel maps a binary's code in windows around each page fault
//! (fault-around, 64 KiB), so start-up, config parsing, the TLS handshake
//! and each rarely used command leave nearly the whole text and read-only
//! data resident for good: on x86_64 that was 1.9 MiB of a 2.5 MiB RSS,
//! while the loop that runs every few seconds needs far less. Once the
//! agent has settled, and then every hour, [`Releaser::tick`] asks the
//! kernel to reclaim those pages (`MADV_PAGEOUT`, Linux 5.4+; older kernels
//! refuse it and nothing changes). They are clean copies of the file:
//! nothing is lost, and code that runs again faults back in from the page
//! cache or the flash (a few page faults, once). Only mappings of the
//! executable that are not writable are touched: never data, heap or stacks.

use std::time::{Duration, Instant};

/// When the first release happens after start (the session is up and the
/// first reports and polls have run), and how often it repeats.
pub const FIRST_AFTER: Duration = Duration::from_secs(60);
pub const EVERY: Duration = Duration::from_secs(3600);

/// Decides when to release; the main loop calls [`Releaser::tick`] on each pass.
pub struct Releaser {
    next: Instant,
}

impl Releaser {
    pub fn new(now: Instant) -> Self {
        Releaser { next: now + FIRST_AFTER }
    }

    /// Release the code pages if it is time. Returns the bytes asked back
    /// (0 when it was not time or the kernel refused).
    pub fn tick(&mut self, now: Instant) -> usize {
        if now < self.next {
            return 0;
        }
        self.next = now + EVERY;
        release()
    }
}

/// Turn off fault-around on the executable's read-only and code mappings
/// (`MADV_RANDOM`), so a page fault maps the one 4 KiB page the code needs
/// instead of the 64 KiB window around it. Code that runs once (start-up,
/// a rare command) then leaves a few pages resident, not whole windows, and
/// what comes back after [`release`] is what the steady loop really runs.
/// The cost is more page faults, one per page: minor while the page cache
/// holds the page, a read of the file each after a [`release`] gave it back
/// (README, the fifth pass: idle wake-ups in the minute after it). The
/// mappings stay as they are. Returns the bytes advised.
pub fn no_fault_around() -> usize {
    let mut advised = 0usize;
    for m in own_code_mappings() {
        let Some(len) = m.end.checked_sub(m.start) else { continue };
        // SAFETY: [start, end) is a whole read-only mapping of this
        // process's own executable; MADV_RANDOM only changes how the kernel
        // fills it on a fault, never its contents.
        if unsafe { libc::madvise(m.start as *mut libc::c_void, len, libc::MADV_RANDOM) } == 0 {
            advised = advised.saturating_add(len);
        }
    }
    advised
}

/// Ask the kernel to reclaim the executable's read-only and code mappings.
/// Returns the bytes of the mappings it accepted.
///
/// `MADV_PAGEOUT` frees the pages where the kernel can (the page cache
/// drops them too); the pages it leaves (large folios it cannot split) are
/// then unmapped with `MADV_DONTNEED`, which keeps them in the page cache
/// (the first thing the kernel reclaims when memory is short) but out of the
/// agent's resident set. `MADV_DONTNEED` is used only on a mapping that
/// holds no private copy of a page (`Anonymous: 0 kB`): a static-pie
/// binary's relocated read-only data (RELRO) is such a copy, and dropping
/// it would read the unrelocated file back.
pub fn release() -> usize {
    let mut released = 0usize;
    for m in own_code_mappings() {
        let Some(len) = m.end.checked_sub(m.start) else { continue };
        let addr = m.start as *mut libc::c_void;
        // SAFETY: [start, end) is a whole mapping of this process's own
        // executable, not writable: MADV_PAGEOUT only reclaims clean page
        // copies, whose contents come back from the file.
        let paged = unsafe { libc::madvise(addr, len, libc::MADV_PAGEOUT) } == 0;
        // SAFETY: as above, and the mapping holds no private (anonymous)
        // page: every page reads back from the file as it was.
        let unmapped = m.anonymous_kib == 0 && unsafe { libc::madvise(addr, len, libc::MADV_DONTNEED) } == 0;
        if paged || unmapped {
            released = released.saturating_add(len);
        }
    }
    released
}

/// A mapping of the executable that is not writable.
#[derive(Debug, PartialEq)]
struct Mapping {
    start: usize,
    end: usize,
    anonymous_kib: u64,
}

/// Each mapping of the executable that is not writable, from
/// /proc/self/smaps (read with a bound: the agent has a few dozen mappings).
fn own_code_mappings() -> Vec<Mapping> {
    use std::io::Read;
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else { return Vec::new() };
    let Some(exe) = exe.to_str() else { return Vec::new() };
    let mut text = String::new();
    let Ok(f) = std::fs::File::open("/proc/self/smaps") else { return Vec::new() };
    if f.take(1024 * 1024).read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    parse_smaps(&text, exe)
}

/// The executable's read-only mappings in smaps text, with their
/// `Anonymous:` size. A mapping whose `Anonymous:` line is missing counts
/// as holding private pages (never unmapped).
fn parse_smaps(text: &str, exe: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    let mut current: Option<Mapping> = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Anonymous:") {
            if let Some(m) = current.as_mut() {
                m.anonymous_kib = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(u64::MAX);
            }
        } else if is_header(line) {
            out.extend(current.take());
            current = parse_line(line, exe).map(|(start, end)| Mapping { start, end, anonymous_kib: u64::MAX });
        }
    }
    out.extend(current);
    out
}

/// A mapping's first line starts with `hex-hex` (field lines start with a name and a colon).
fn is_header(line: &str) -> bool {
    line.split(' ').next().is_some_and(|r| r.contains('-') && r.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'))
}

/// One line of /proc/PID/maps: `start-end perms offset dev inode path`.
fn parse_line(line: &str, exe: &str) -> Option<(usize, usize)> {
    let mut f = line.splitn(6, ' ');
    let perms = f.nth(1)?;
    let path = f.nth(3)?.trim_start();
    if path != exe || perms.as_bytes().get(1) != Some(&b'-') {
        return None;
    }
    crate::util::maps_range(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_read_only_mappings_are_chosen() {
        let exe = "/usr/bin/dma-agent";
        assert_eq!(parse_line("00400000-00590000 r-xp 00056000 fe:01 1234                       /usr/bin/dma-agent", exe), Some((0x400000, 0x590000)));
        assert_eq!(parse_line("00590000-005e0000 r--p 00000000 fe:01 1234   /usr/bin/dma-agent", exe), Some((0x590000, 0x5e0000)));
        assert_eq!(parse_line("005e0000-005e2000 rw-p 00190000 fe:01 1234   /usr/bin/dma-agent", exe), None, "data stays");
        assert_eq!(parse_line("7f00-8f00 rw-p 00000000 00:00 0 ", exe), None, "anonymous stays");
        assert_eq!(parse_line("7f00-8f00 r-xp 00000000 fe:01 99 /lib/other.so", exe), None, "other files stay");
        assert_eq!(parse_line("zz-8f00 r-xp 00000000 fe:01 1234 /usr/bin/dma-agent", exe), None);
        assert_eq!(parse_line("9000-8f00 r-xp 00000000 fe:01 1234 /usr/bin/dma-agent", exe), None);
        assert_eq!(parse_line("garbage", exe), None);
    }

    #[test]
    fn smaps_gives_each_mapping_its_private_pages() {
        let exe = "/usr/bin/dma-agent";
        let text = "00400000-00590000 r-xp 00056000 fe:01 1234   /usr/bin/dma-agent\nRss:  1588 kB\nAnonymous:  0 kB\n\
                    00590000-005a0000 r--p 00190000 fe:01 1234   /usr/bin/dma-agent\nRss:  64 kB\nAnonymous:  12 kB\n\
                    005a0000-005b0000 rw-p 001a0000 fe:01 1234   /usr/bin/dma-agent\nAnonymous:  8 kB\n\
                    005b0000-005c0000 r--p 001b0000 fe:01 1234   /usr/bin/dma-agent\nRss:  64 kB\n";
        assert_eq!(
            parse_smaps(text, exe),
            [
                Mapping { start: 0x400000, end: 0x590000, anonymous_kib: 0 },
                Mapping { start: 0x590000, end: 0x5a0000, anonymous_kib: 12 },
                Mapping { start: 0x5b0000, end: 0x5c0000, anonymous_kib: u64::MAX },
            ]
        );
    }

    /// Resident KiB of this test binary's own read-only mappings.
    fn resident_code_kib() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_str().unwrap().to_string();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let (mut ours, mut kib) = (false, 0);
        for line in smaps.lines() {
            if is_header(line) {
                ours = parse_line(line, &exe).is_some();
            } else if ours && line.starts_with("Rss:") {
                kib += line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
            }
        }
        kib
    }

    #[test]
    fn release_gives_back_resident_code_pages() {
        let before = resident_code_kib();
        let asked = release();
        if asked == 0 {
            eprintln!("MADV_PAGEOUT refused (kernel older than 5.4?): nothing to check");
            return;
        }
        let after = resident_code_kib();
        assert!(before > 256, "the test binary has resident code: {before} KiB");
        // Other test threads may fault a little code back in meanwhile.
        assert!(after < before / 4 * 3, "resident code {before} KiB -> {after} KiB");
    }

    #[test]
    fn the_releaser_waits_then_repeats_hourly() {
        let t0 = Instant::now();
        let mut r = Releaser::new(t0);
        assert_eq!(r.tick(t0 + Duration::from_secs(59)), 0);
        assert!(r.next == t0 + FIRST_AFTER);
        r.tick(t0 + FIRST_AFTER);
        assert!(r.next == t0 + FIRST_AFTER + EVERY, "next release an hour later");
        assert_eq!(r.tick(t0 + FIRST_AFTER + Duration::from_secs(10)), 0);
    }
}
