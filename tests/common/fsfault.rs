//! Real file-system faults for the agent's state dir: a size-limited tmpfs
//! that can be filled up, and remounted read-only and back. Needs root
//! (CI runs as root); `Tmpfs::mount` returns `None` with a message where
//! mounting is not permitted, and the test skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    pub path: PathBuf,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Tmpfs {
    /// A tmpfs of `size` (e.g. "2m") on a fresh dir under the temp dir.
    pub fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
        let path = super::temp_dir(tag);
        let p = path.to_string_lossy().into_owned();
        match run(&["mount", "-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs", &p]) {
            Ok(()) => Some(Tmpfs { path }),
            Err(e) => {
                eprintln!("SKIPPED: cannot mount a tmpfs for the state dir ({e}); this test needs root");
                let _ = std::fs::remove_dir_all(&path);
                None
            }
        }
    }

    /// Remount read-only. The kernel refuses (busy) while a file on it is
    /// open for writing; the agent holds none between writes, so a retry
    /// or two is enough.
    pub fn remount_ro(&self) {
        let p = self.path.to_string_lossy().into_owned();
        let mut last = String::new();
        for _ in 0..50 {
            match run(&["mount", "-o", "remount,ro", &p]) {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("remount read-only: {last}");
    }

    pub fn remount_rw(&self) {
        run(&["mount", "-o", "remount,rw", &self.path.to_string_lossy()]).expect("remount read-write");
    }

    /// Fill the file system up with a filler file (big writes, then single
    /// bytes, until ENOSPC). Returns its path; remove it to free the space.
    pub fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let big = vec![0u8; 64 * 1024];
        while f.write_all(&big).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
        let _ = f.sync_all();
        filler
    }

    pub fn dir(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let p = self.path.to_string_lossy().into_owned();
        // Lazy: an agent still starting up may hold it for a moment.
        let _ = run(&["umount", "-l", &p]);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
