//! One agent per state dir. Two agents on the same journal would both run
//! a redelivered command and tear each other's files, so the second one
//! refuses to start.
//!
//! The lock is `flock(2)` on the state dir itself, not on a file in it: a
//! directory can be opened and locked even when the file system is full or
//! read-only (the agent must still start then), and the kernel drops the
//! lock when the process dies, `kill -9` included — no stale lock to clean
//! up. The holder's pid goes to `agent.pid` (best effort) so the refusal
//! can name it. The descriptor is close-on-exec: children of `sh` never
//! hold the lock, and a self-restart (exec) takes it afresh.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Held for the life of the process; dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    _dir: File,
    pub path: PathBuf,
}

const PID_FILE: &str = "agent.pid";

/// Take the lock on `dir`. `Ok(None)` when the dir does not exist and cannot
/// be created (nothing on disk to protect; the agent runs without state).
pub fn acquire(dir: &Path) -> Result<Option<StateLock>, String> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        if !dir.is_dir() {
            log::warn!("state dir {}: {e}; running without a lock and without durable state", dir.display());
            return Ok(None);
        }
    }
    let f = File::open(dir).map_err(|e| format!("state dir {}: {e}", dir.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let pid = std::fs::read_to_string(dir.join(PID_FILE)).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
            return Err(format!(
                "another dma-agent (pid {}) is already running with state dir {}; not starting a second one",
                pid.as_deref().unwrap_or("unknown"),
                dir.display()
            ));
        }
        return Err(format!("cannot lock state dir {}: {err}", dir.display()));
    }
    let pid = std::process::id().to_string();
    if let Err(e) = crate::durable::write_atomic(&dir.join(PID_FILE), pid.as_bytes()) {
        log::warn!("state dir {}: cannot record the pid: {e}", dir.display());
    }
    Ok(Some(StateLock { _dir: f, path: dir.to_path_buf() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_the_same_dir_is_refused_and_names_the_pid() {
        let d = std::env::temp_dir().join(format!("dma-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let first = acquire(&d).unwrap().expect("locked");
        // flock locks belong to the open file description: a second open
        // in the same process conflicts like another process would.
        let e = acquire(&d).unwrap_err();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains(&d.display().to_string()), "{e}");
        drop(first);
        assert!(acquire(&d).unwrap().is_some(), "released on drop");
        let _ = std::fs::remove_dir_all(&d);
    }
}
