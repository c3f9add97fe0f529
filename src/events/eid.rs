//! `eid`: the per-device event number. It only grows, across restarts, so
//! the platform can drop an event delivered twice (delivery is at least
//! once). Persisted cheaply: the file `eid` in the state dir holds the
//! first number not yet reserved; numbers are reserved in blocks, so a
//! crash skips the rest of a block but never hands out a number twice.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Numbers reserved per write of the file.
const BLOCK: u64 = 1024;

struct Alloc {
    path: Option<PathBuf>,
    next: u64,
    limit: u64,
    warned: bool,
}

static ALLOC: Mutex<Alloc> = Mutex::new(Alloc { path: None, next: 1, limit: 1, warned: false });

/// Continue from what `dir/eid` says (called once at start-up). Without
/// it (unit tests, tools) numbers start at 1 and are not persisted.
pub fn init(dir: &Path) {
    let path = dir.join("eid");
    let from = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(1).max(1);
    if let Ok(mut a) = ALLOC.lock() {
        *a = Alloc { path: Some(path), next: from, limit: from, warned: false };
    }
}

/// The next event number.
pub fn next() -> u64 {
    let Ok(mut a) = ALLOC.lock() else { return 0 };
    if a.next >= a.limit {
        let limit = a.next.saturating_add(BLOCK);
        if let Some(p) = a.path.clone() {
            if let Err(e) = crate::durable::write_atomic(&p, limit.to_string().as_bytes()) {
                // The state dir is unwritable: so is the event queue, which
                // then refuses the event this number was for.
                if !a.warned {
                    log::error!("eid: cannot reserve numbers in {}: {e}", p.display());
                    a.warned = true;
                }
            } else {
                a.warned = false;
            }
        }
        a.limit = limit;
    }
    let n = a.next;
    a.next += 1;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_across_restarts_and_skips_at_most_a_block() {
        let d = std::env::temp_dir().join(format!("dma-eid-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        init(&d);
        // (Other tests may take numbers meanwhile: only order is asserted.)
        let a: Vec<u64> = (0..5).map(|_| next()).collect();
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a[0] >= 1, "{a:?}");
        // A crash here: the next process starts after the reserved block.
        init(&d);
        let b = next();
        assert!(b > BLOCK && b > a[4], "{b}");
        for _ in 0..BLOCK {
            next();
        }
        init(&d);
        assert!(next() > b + BLOCK);
        let _ = std::fs::remove_dir_all(&d);
    }
}
