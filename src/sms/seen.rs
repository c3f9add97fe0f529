//! A bounded, persisted set of keys of what was already turned into an
//! event (SMS rows, task reports), so the same row arriving twice — pushed
//! and then read again from the inbox, or a batch the GoIP sends again after
//! a 400 — is published once.
//!
//! On disk: `seen.log`, one key per line, appended and fsync'd after the
//! events it covers are in the event queue (a crash in between can only
//! publish a row twice, never lose it). The file is rewritten with the
//! newest `cap` keys when it holds more than twice that.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Seen {
    path: PathBuf,
    cap: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
    file: File,
    lines: usize,
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
        self.file.sync_data()?;
        self.lines += keys.len();
        for k in keys {
            self.remember(k.clone());
        }
        if self.lines > self.cap * 2 {
            self.compact()?;
        }
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
