//! A bounded, persisted set of keys of what was already turned into an
//! event (SMS rows, task reports), so the same row arriving twice — pushed
//! and then read again from the inbox, or a batch the GoIP sends again after
//! a 400 — is published once.
//!
//! On disk: `seen.log`, one key per line, appended after the events it
//! covers are in the event queue (fsync'd there: that is what makes an SMS
//! acknowledged to the GoIP safe on flash). The append itself is fsync'd at
//! most every [`SYNC_EVERY`] (group commit): a power cut can lose the keys
//! of that last interval, and a row of it read again from the inbox is then
//! published twice — the same at-least-once a crash between the two writes
//! always allowed, never a lost SMS. One fsync per push instead of two
//! (issue 24: the receiver's rate). The file is rewritten with the newest
//! `cap` keys when it holds more than twice that.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An append is fsync'd when the last fsync is older than this; else the
/// next such append or the sms-sync thread's next round (at most 5 s
/// when idle or a GoIP is unreachable) does it.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

pub struct Seen {
    path: PathBuf,
    cap: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
    file: File,
    lines: usize,
    /// When the file was last fsync'd; `dirty`: appended since.
    synced: Instant,
    dirty: bool,
}

/// The key of a row: a short hash of what identifies it. Two identical
/// SMS from the same sender to the same port within the same second share
/// a key (the GoIP gives them no other identity in pushes).
pub fn key(ns: &str, parts: &[&str]) -> String {
    let mut s = String::from(ns);
    for p in parts {
        s.push('\u{1f}');
        s.push_str(p);
    }
    let h = crate::util::sha256_hex(s.as_bytes());
    format!("{ns}:{}", &h[..24])
}

impl Drop for Seen {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

impl Seen {
    pub fn open(dir: &Path, cap: usize) -> std::io::Result<Seen> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("seen.log");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut s = Seen {
            file: OpenOptions::new().create(true).append(true).open(&path)?,
            path,
            cap: cap.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
            lines: 0,
            synced: Instant::now(),
            dirty: false,
        };
        for k in text.lines().map(str::trim).filter(|k| !k.is_empty()) {
            s.lines += 1;
            s.remember(k.to_string());
        }
        Ok(s)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn remember(&mut self, k: String) {
        if self.set.insert(k.clone()) {
            self.order.push_back(k);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// Record keys durably.
    pub fn add_all(&mut self, keys: &[String]) -> std::io::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut buf = String::new();
        for k in keys {
            buf.push_str(k);
            buf.push('\n');
        }
        self.file.write_all(buf.as_bytes())?;
        self.dirty = true;
        if self.synced.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        self.lines += keys.len();
        for k in keys {
            self.remember(k.clone());
        }
        if self.lines > self.cap * 2 {
            self.compact()?;
        }
        Ok(())
    }

    /// fsync what was appended since the last one (nothing if nothing was).
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        self.synced = Instant::now();
        Ok(())
    }

    fn compact(&mut self) -> std::io::Result<()> {
        let mut buf = String::new();
        for k in &self.order {
            buf.push_str(k);
            buf.push('\n');
        }
        crate::durable::write_atomic(&self.path, buf.as_bytes())?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = self.order.len();
        (self.synced, self.dirty) = (Instant::now(), false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_persisted() {
        let d = std::env::temp_dir().join(format!("dma-seen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        {
            let mut s = Seen::open(&d, 3).unwrap();
            let keys: Vec<String> = (0..5).map(|i| key("sms", &[&i.to_string()])).collect();
            s.add_all(&keys[..2]).unwrap();
            s.add_all(&keys[2..]).unwrap();
            assert_eq!(s.len(), 3);
            assert!(!s.contains(&keys[1]) && s.contains(&keys[4]));
        }
        let s = Seen::open(&d, 3).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.contains(&key("sms", &["2"])));
        assert!(!s.contains(&key("sms", &["0"])));
        assert_ne!(key("a", &["b", "c"]), key("a", &["bc"]));
        let _ = std::fs::remove_dir_all(&d);
    }
}
