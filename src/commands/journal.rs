//! The command journal: exactly-once effects under at-least-once delivery.
//!
//! Every state change of a command is appended to `journal.log` in the
//! state dir as one JSON line and fsync'd (file, and directory on create)
//! **before** the side effect it guards. On open the log is replayed; the
//! last `cap` commands are kept and the file is compacted when it grows
//! past four times that.
//!
//! States: `running` → `ok` | `failed` | `interrupted`.
//! - running in this process: a redelivery is not started again.
//! - running in an earlier process: the agent died mid-command. If the
//!   command was `reboot` and the boot id changed, the reboot happened:
//!   `ok` (its answer was stored before rebooting). A reboot under the same
//!   boot id did not happen: `failed` (may be retried). Anything else is
//!   `interrupted`: its effect is unknown, so it is not run again; the
//!   redelivery gets an `err` answer saying so.
//! - `ok`/`interrupted`: the stored answer is published again.
//! - `failed`: a redelivery runs it again (a retry).

use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Succeeded => "ok",
            State::Failed => "failed",
            State::Interrupted => "interrupted",
        }
    }
    fn parse(s: &str) -> Option<State> {
        Some(match s {
            "running" => State::Running,
            "ok" => State::Succeeded,
            "failed" => State::Failed,
            "interrupted" => State::Interrupted,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub hash: String,
    pub command: String,
    pub state: State,
    /// The final answer (for `reboot`, stored while still running).
    pub answer: Option<Value>,
    /// Boot id when the entry was last written.
    pub boot: String,
    /// The broker acknowledged the answer.
    pub acked: bool,
    /// Handler data that must survive a retry (e.g. the SMS task id).
    pub data: Value,
    pub time: u64,
}

impl Entry {
    fn to_line(&self) -> String {
        json!({"k": self.key, "h": self.hash, "c": self.command, "s": self.state.as_str(), "a": self.answer,
               "b": self.boot, "ack": self.acked, "x": self.data, "t": self.time})
        .to_string()
    }
    fn from_line(line: &str) -> Option<Entry> {
        let v: Value = serde_json::from_str(line).ok()?;
        Some(Entry {
            key: v.get("k")?.as_str()?.to_string(),
            hash: v.get("h")?.as_str()?.to_string(),
            command: v.get("c").and_then(|c| c.as_str()).unwrap_or("").to_string(),
            state: State::parse(v.get("s")?.as_str()?)?,
            answer: v.get("a").cloned().filter(|a| !a.is_null()),
            boot: v.get("b").and_then(|c| c.as_str()).unwrap_or("").to_string(),
            acked: v.get("ack").and_then(|c| c.as_bool()).unwrap_or(false),
            data: v.get("x").cloned().unwrap_or(Value::Null),
            time: v.get("t").and_then(|c| c.as_u64()).unwrap_or(0),
        })
    }
}

pub struct Journal {
    path: PathBuf,
    file: File,
    cap: usize,
    boot: String,
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
    lines: usize,
}

/// Read the current boot id (a new one after every reboot).
pub fn read_boot_id(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

impl Journal {
    /// Open (or create) the journal in `dir`, replay it and settle the
    /// commands an earlier process left running.
    pub fn open(dir: &Path, cap: usize, boot: &str) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("journal.log");
        let existed = path.exists();
        let mut entries: HashMap<String, Entry> = HashMap::new();
        let mut order: VecDeque<String> = VecDeque::new();
        let mut bad = 0usize;
        if existed {
            let f = File::open(&path)?;
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { bad += 1; continue };
                if line.trim().is_empty() {
                    continue;
                }
                // A torn last line after a power cut is expected: skip it.
                let Some(e) = Entry::from_line(&line) else { bad += 1; continue };
                if !entries.contains_key(&e.key) {
                    order.push_back(e.key.clone());
                }
                entries.insert(e.key.clone(), e);
            }
        }
        if bad > 0 {
            log::warn!("journal: skipped {bad} unreadable line(s)");
        }
        while order.len() > cap {
            if let Some(k) = order.pop_front() {
                entries.remove(&k);
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if !existed {
            crate::config::sync_dir(dir)?;
        }
        let mut j = Journal { path, file, cap, boot: boot.to_string(), entries, order, lines: 0 };
        j.settle_stale();
        j.compact()?;
        Ok(j)
    }

    fn settle_stale(&mut self) {
        let boot = self.boot.clone();
        for e in self.entries.values_mut() {
            if e.state != State::Running {
                continue;
            }
            if e.command == "reboot" {
                if !boot.is_empty() && e.boot != boot && e.answer.is_some() {
                    log::info!("journal: reboot {} completed (boot id changed)", e.key);
                    e.state = State::Succeeded;
                } else {
                    log::warn!("journal: reboot {} did not happen; a redelivery retries it", e.key);
                    e.state = State::Failed;
                }
            } else if e.command == "upgrade" && e.answer.is_some() {
                // The install restarts the agent after the answer went out.
                e.state = State::Succeeded;
            } else {
                log::warn!("journal: {} ({}) was interrupted by an agent restart", e.key, e.command);
                e.state = State::Interrupted;
            }
            e.boot = boot.clone();
        }
    }

    /// Rewrite the file with just the live entries (atomic replace).
    fn compact(&mut self) -> std::io::Result<()> {
        let mut text = String::new();
        for k in &self.order {
            if let Some(e) = self.entries.get(k) {
                text.push_str(&e.to_line());
                text.push('\n');
            }
        }
        crate::config::write_atomic(&self.path, text.as_bytes())?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = self.order.len();
        Ok(())
    }

    fn append(&mut self, e: &Entry) -> std::io::Result<()> {
        let mut line = e.to_line();
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()?;
        self.lines += 1;
        if self.lines > self.cap * 4 {
            self.compact()?;
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn boot_id(&self) -> &str {
        &self.boot
    }

    /// Record that a command starts (durably, before any side effect).
    pub fn begin(&mut self, key: &str, hash: &str, command: &str) -> std::io::Result<()> {
        let data = self.entries.get(key).map(|e| e.data.clone()).unwrap_or(Value::Null);
        let e = Entry {
            key: key.to_string(),
            hash: hash.to_string(),
            command: command.to_string(),
            state: State::Running,
            answer: None,
            boot: self.boot.clone(),
            acked: false,
            data,
            time: crate::util::unix_now(),
        };
        self.append(&e)?;
        if !self.entries.contains_key(key) {
            self.order.push_back(key.to_string());
        }
        self.entries.insert(key.to_string(), e);
        while self.order.len() > self.cap {
            // Evict the oldest entry that is not running.
            let pos = self.order.iter().position(|k| self.entries.get(k).map(|e| e.state != State::Running).unwrap_or(true));
            match pos.and_then(|p| self.order.remove(p)) {
                Some(k) => {
                    self.entries.remove(&k);
                }
                None => break,
            }
        }
        Ok(())
    }

    fn update(&mut self, key: &str, f: impl FnOnce(&mut Entry)) -> std::io::Result<()> {
        let Some(mut e) = self.entries.get(key).cloned() else {
            return Err(std::io::Error::other(format!("journal has no entry {key}")));
        };
        f(&mut e);
        e.boot = self.boot.clone();
        e.time = crate::util::unix_now();
        self.append(&e)?;
        self.entries.insert(key.to_string(), e);
        Ok(())
    }

    /// Store the answer of a command that is still running (reboot: the
    /// answer goes out before the effect).
    pub fn store_answer(&mut self, key: &str, answer: &Value) -> std::io::Result<()> {
        let a = answer.clone();
        self.update(key, |e| e.answer = Some(a))
    }

    /// Handler data that must survive a retry of the same id.
    pub fn set_data(&mut self, key: &str, data: Value) -> std::io::Result<()> {
        self.update(key, |e| e.data = data)
    }

    pub fn finish(&mut self, key: &str, state: State, answer: &Value) -> std::io::Result<()> {
        let a = answer.clone();
        self.update(key, |e| {
            e.state = state;
            e.answer = Some(a);
            e.acked = false;
        })
    }

    /// The broker acknowledged the answer of `key`.
    pub fn mark_acked(&mut self, key: &str) -> std::io::Result<()> {
        if self.entries.get(key).map(|e| e.acked).unwrap_or(true) {
            return Ok(());
        }
        self.update(key, |e| e.acked = true)
    }

    /// Answers of finished commands the broker has not acknowledged yet
    /// (published again after a reconnect or restart).
    pub fn unacked(&self) -> Vec<(String, Value)> {
        self.order
            .iter()
            .filter_map(|k| self.entries.get(k))
            .filter(|e| e.state != State::Running && !e.acked)
            .filter_map(|e| e.answer.clone().map(|a| (e.key.clone(), a)))
            .collect()
    }

    pub fn counts(&self) -> Value {
        let mut m = serde_json::Map::new();
        for e in self.entries.values() {
            let c = m.entry(e.state.as_str()).or_insert(json!(0));
            *c = json!(c.as_u64().unwrap_or(0) + 1);
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dma-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn survives_restart_and_settles_running_entries() {
        let d = tmp("restart");
        {
            let mut j = Journal::open(&d, 16, "boot-A").unwrap();
            j.begin("n:1", "h1", "sh").unwrap();
            j.finish("n:1", State::Succeeded, &json!({"id": 1})).unwrap();
            j.begin("n:2", "h2", "sh").unwrap();
            j.begin("n:3", "h3", "reboot").unwrap();
            j.store_answer("n:3", &json!({"id": 3})).unwrap();
            j.begin("n:4", "h4", "reboot").unwrap();
            j.store_answer("n:4", &json!({"id": 4})).unwrap();
        }
        {
            // Same boot: the agent restarted, the router did not.
            let j = Journal::open(&d, 16, "boot-A").unwrap();
            assert_eq!(j.get("n:1").unwrap().state, State::Succeeded);
            assert_eq!(j.get("n:1").unwrap().answer, Some(json!({"id": 1})));
            assert_eq!(j.get("n:2").unwrap().state, State::Interrupted);
            assert_eq!(j.get("n:3").unwrap().state, State::Failed);
        }
        let d2 = tmp("reboot");
        {
            let mut j = Journal::open(&d2, 16, "boot-A").unwrap();
            j.begin("n:9", "h", "reboot").unwrap();
            j.store_answer("n:9", &json!({"id": 9})).unwrap();
        }
        let j = Journal::open(&d2, 16, "boot-B").unwrap();
        assert_eq!(j.get("n:9").unwrap().state, State::Succeeded, "new boot id: the reboot happened");
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&d2);
    }

    #[test]
    fn bounded_and_tolerates_a_torn_line() {
        let d = tmp("bounded");
        {
            let mut j = Journal::open(&d, 16, "b").unwrap();
            for i in 0..100 {
                let k = format!("n:{i}");
                j.begin(&k, "h", "sh").unwrap();
                j.finish(&k, State::Succeeded, &json!(i)).unwrap();
            }
            assert_eq!(j.len(), 16);
            assert!(j.get("n:99").is_some() && j.get("n:83").is_none());
        }
        let mut f = OpenOptions::new().append(true).open(d.join("journal.log")).unwrap();
        f.write_all(b"{\"k\":\"n:100\",\"h\":").unwrap();
        let j = Journal::open(&d, 16, "b").unwrap();
        assert_eq!(j.len(), 16);
        assert!(std::fs::read_to_string(d.join("journal.log")).unwrap().lines().count() <= 16);
        let _ = std::fs::remove_dir_all(&d);
    }
}
