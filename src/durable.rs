//! Durability on flash: a file replaced so that after a power cut it holds
//! the old or the new content, a directory synced so a rename or create in
//! it survives, and the lock that serialises read-modify-write of the
//! configuration file. Used by the configuration, the journal, the event
//! queue, the SMS state, the replay guard, the IAD call-record cursor and
//! the upgrade transaction; it depends on nothing of the agent.

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Serialises every read-modify-write of the configuration file (an `agent
/// set`, a broker move, a stored device password): two writers must not
/// both start from the same old text. Made once by the runtime and handed
/// to every writer (`Ctx::config_write`, the device threads), not a
/// process-wide static.
#[derive(Default)]
pub struct WriteLock(Mutex<()>);

impl WriteLock {
    /// Hold this while reading, editing and replacing the file.
    pub fn hold(&self) -> MutexGuard<'_, ()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Write a file so that after a crash it holds either the old or the new
/// content: temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp"));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        // Keep the permissions of the file we replace (config holds secrets).
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = f.set_permissions(meta.permissions());
        }
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // A half-written temp file on a full disk would keep the space taken.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// fsync a directory so a rename or create in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

