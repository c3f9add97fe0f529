//! `eid`: the per-device event number. It only grows, across restarts, so
//! the platform can drop an event delivered twice (delivery is at least
//! once). Persisted cheaply: the file `eid` in the state dir holds the
//! first number not yet reserved; numbers are reserved in blocks, so a
//! crash skips the rest of a block but never hands out a number twice.

use std::path::PathBuf;

/// Numbers reserved per write of the file.
const BLOCK: u64 = 1024;

/// The allocator. The event queue owns the one the agent uses and stamps
/// each event as it is appended, so numbers also grow in queue order.
pub struct EidAlloc {
    path: Option<PathBuf>,
    next: u64,
    limit: u64,
    warned: bool,
}

impl EidAlloc {
    /// Continue from what the file at `path` says; `None` (unit tests,
    /// tools): numbers start at 1 and are not persisted.
    pub fn open(path: Option<PathBuf>) -> EidAlloc {
        let from = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1)
            .max(1);
        EidAlloc { path, next: from, limit: from, warned: false }
    }

    /// The next event number.
    pub fn next(&mut self) -> u64 {
        if self.next >= self.limit {
            let limit = self.next.saturating_add(BLOCK);
            if let Some(p) = &self.path {
                if let Err(e) = crate::durable::write_atomic(p, limit.to_string().as_bytes()) {
                    // The state dir is unwritable: so is the event queue, which
                    // then refuses the event this number was for.
                    if !self.warned {
                        log::error!("eid: cannot reserve numbers in {}: {e}", p.display());
                        self.warned = true;
                    }
                } else {
                    self.warned = false;
                }
            }
            self.limit = limit;
        }
        let n = self.next;
        self.next = self.next.saturating_add(1);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_across_restarts_and_skips_at_most_a_block() {
        let d = std::env::temp_dir().join(format!("dma-eid-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let f = Some(d.join("eid"));
        let mut e = EidAlloc::open(f.clone());
        let a: Vec<u64> = (0..5).map(|_| e.next()).collect();
        assert_eq!(a, vec![1, 2, 3, 4, 5]);
        // A crash here: the next process starts after the reserved block.
        let mut e = EidAlloc::open(f.clone());
        let b = e.next();
        assert!(b > BLOCK && b > a[4], "{b}");
        for _ in 0..BLOCK {
            e.next();
        }
        let mut e = EidAlloc::open(f);
        assert!(e.next() > b + BLOCK);
        assert_eq!(EidAlloc::open(None).next(), 1, "not persisted: from 1");
        let _ = std::fs::remove_dir_all(&d);
    }
}
