//! The command journal: exactly-once effects under at-least-once delivery.
//!
//! Every state change of a command is appended to `journal.log` in the
//! state dir as one JSON line and fsync'd (file, and directory on create)
//! **before** the side effect it guards. On open the log is replayed; the
//! last `cap` commands are kept, within a byte budget: the file never
//! passes `max_bytes`, the live entries stay under half of it, and the
//! file is compacted (rewritten with just the live entries) when the next
//! record would not fit. A failed append is rolled back to the last whole
//! record; a torn last record after a power cut is cut off on replay.
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
//!
//! Records are typed ([`Record`], serde) and carry their format version
//! (`"v"`, [`FORMAT`]); answers are dma-wire [`Answer`]s, so the id stored
//! is the command's JSON text and a re-published answer echoes it exactly.

use dma_wire::answer::{self as wa, Answer};
use dma_wire::names::Name;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "ok")]
    Succeeded,
    #[serde(rename = "failed")]
    Failed,
    #[serde(rename = "interrupted")]
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub hash: String,
    pub command: String,
    pub state: State,
    /// The final answer (for `reboot`, stored while still running).
    pub answer: Option<Answer>,
    /// Boot id when the entry was last written.
    pub boot: String,
    /// The broker acknowledged the answer.
    pub acked: bool,
    /// Handler data that must survive a retry (e.g. the SMS task id).
    pub data: Value,
    pub time: u64,
}

/// The journal line's format version (`"v"`). The rule that keeps upgrade
/// and rollback safe: a later format only adds keys, never renames or
/// re-means one, so an older agent reads a newer journal by the keys it
/// knows and a newer agent reads lines without `v` (version 0) unchanged.
///
/// - 0 (no `v`) and 1: the keys below, the answer a JSON value.
/// - 2: the same keys; the answer is written from the typed answer, so
///   its `id` is the command's id text as received (an id beyond 64 bits
///   was a float in 1). An agent of format 1 reads it unchanged.
pub const FORMAT: u64 = 2;

/// One journal line as written.
#[derive(Serialize)]
struct Record<'a> {
    v: u64,
    /// The id's journal key.
    k: &'a str,
    /// What the command asks, hashed.
    h: &'a str,
    /// The command's name.
    c: &'a str,
    s: State,
    a: Option<&'a Answer>,
    /// Boot id.
    b: &'a str,
    ack: bool,
    /// Handler data.
    x: &'a Value,
    t: u64,
}

/// One journal line as read: any format version (see [`FORMAT`]); keys a
/// newer agent added are ignored.
#[derive(Deserialize)]
struct Read<'a> {
    #[serde(default)]
    v: u64,
    k: String,
    h: String,
    #[serde(default)]
    c: String,
    s: State,
    /// Read apart: an answer this version cannot read loses the answer,
    /// not the entry.
    #[serde(default, borrow)]
    a: Option<&'a RawValue>,
    #[serde(default)]
    b: String,
    #[serde(default)]
    ack: bool,
    #[serde(default)]
    x: Value,
    #[serde(default)]
    t: u64,
}

impl Entry {
    fn to_line(&self) -> String {
        let r = Record {
            v: FORMAT,
            k: &self.key,
            h: &self.hash,
            c: &self.command,
            s: self.state,
            a: self.answer.as_ref(),
            b: &self.boot,
            ack: self.acked,
            x: &self.data,
            t: self.time,
        };
        // A struct of strings, numbers and JSON values always serialises.
        serde_json::to_string(&r).unwrap_or_default()
    }
    /// Reads every format version: lines without `v` (before versions
    /// existed) and lines of a newer agent (after an upgrade rolled back)
    /// alike, by the keys this version needs (see [`FORMAT`]).
    fn from_line(line: &str) -> Option<Entry> {
        let r: Read = serde_json::from_str(line).ok()?;
        let answer = r.a.filter(|a| a.get() != "null").and_then(|a| match Answer::parse(a.get().as_bytes()) {
            Ok(a) => Some(a),
            Err(e) => {
                log::warn!("journal: the stored answer of {} (format {}) is unreadable ({e}); dropped", r.k, r.v);
                None
            }
        });
        Some(Entry { key: r.k, hash: r.h, command: r.c, state: r.s, answer, boot: r.b, acked: r.ack, data: r.x, time: r.t })
    }
}

pub struct Journal {
    path: PathBuf,
    dir: PathBuf,
    /// Bytes of the file known to hold whole records. The file is opened
    /// for each append and closed after it (no descriptor open for writing
    /// between commands, so the state dir can be remounted read-only, e.g.
    /// by sysupgrade); each open first cuts the file back to this length.
    good_len: u64,
    cap: usize,
    /// Most bytes the file may hold.
    max_bytes: u64,
    boot: String,
    entries: HashMap<String, Entry>,
    /// Size of each entry's last record (its line, newline included).
    sizes: HashMap<String, u64>,
    order: VecDeque<String>,
}

/// Read the current boot id (a new one after every reboot).
pub fn read_boot_id(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Smallest byte budget accepted (the config enforces its own minimum).
const MIN_BYTES: u64 = 16 * 1024;

/// An io error that says it is the journal's and keeps the cause's kind
/// ("journal /etc/dma-agent/journal.log: No space left on device").
fn tag(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("journal {}: {e}", path.display()))
}

impl Journal {
    /// Open (or create) the journal in `dir`, replay it and settle the
    /// commands an earlier process left running. `cap` bounds the entries
    /// kept, `max_bytes` the file: it never grows past that, live entries
    /// are kept under half of it, and compaction writes at most that half
    /// to a temp file (the reserve it needs beside the file).
    ///
    /// Never fails for want of space or a writable dir: the journal then
    /// starts with what it could read and refuses appends (with the
    /// cause) until the disk can be written again.
    pub fn open(dir: &Path, cap: usize, max_bytes: u64, boot: &str) -> std::io::Result<Journal> {
        let path = dir.join("journal.log");
        let mut entries: HashMap<String, Entry> = HashMap::new();
        let mut sizes: HashMap<String, u64> = HashMap::new();
        let mut order: VecDeque<String> = VecDeque::new();
        let mut bad = 0usize;
        let mut good_len = 0u64;
        match File::open(&path) {
            Ok(f) => {
                let mut r = BufReader::new(f);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    let n = match r.read_until(b'\n', &mut line) {
                        Ok(n) => n,
                        Err(e) => {
                            log::error!("{}", tag(&path, e));
                            break;
                        }
                    };
                    if n == 0 || line.last() != Some(&b'\n') {
                        // End, or a torn last record (power cut mid-append): cut off.
                        if n > 0 {
                            bad += 1;
                        }
                        break;
                    }
                    good_len += n as u64;
                    let text = String::from_utf8_lossy(&line);
                    if text.trim().is_empty() {
                        continue;
                    }
                    let Some(e) = Entry::from_line(text.trim_end()) else { bad += 1; continue };
                    if !entries.contains_key(&e.key) {
                        order.push_back(e.key.clone());
                    }
                    sizes.insert(e.key.clone(), n as u64);
                    entries.insert(e.key.clone(), e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::error!("{}; starting with an empty journal", tag(&path, e)),
        }
        if bad > 0 {
            log::warn!("journal: skipped {bad} unreadable record(s)");
        }
        let mut j = Journal {
            path,
            dir: dir.to_path_buf(),
            good_len,
            cap: cap.max(1),
            max_bytes: max_bytes.max(MIN_BYTES),
            boot: boot.to_string(),
            entries,
            sizes,
            order,
        };
        j.evict(None);
        j.settle_stale();
        if let Err(e) = j.compact() {
            log::error!("{e}; commands are refused until it can be written");
        }
        Ok(j)
    }

    fn settle_stale(&mut self) {
        let boot = self.boot.clone();
        for e in self.entries.values_mut() {
            if e.state != State::Running {
                continue;
            }
            if e.command == Name::Reboot.as_str() {
                if !boot.is_empty() && e.boot != boot && e.answer.is_some() {
                    log::info!("journal: reboot {} completed (boot id changed)", e.key);
                    e.state = State::Succeeded;
                } else {
                    log::warn!("journal: reboot {} did not happen; a redelivery retries it", e.key);
                    e.state = State::Failed;
                }
            } else if e.command == Name::Upgrade.as_str() && e.answer.is_some() {
                // The install restarts the agent after the answer went out.
                e.state = State::Succeeded;
            } else {
                log::warn!("journal: {} ({}) was interrupted by an agent restart", e.key, e.command);
                e.state = State::Interrupted;
            }
            e.boot = boot.clone();
        }
    }

    /// Live entries are kept under half the byte budget, so a compaction
    /// always leaves room for appends.
    fn live_limit(&self) -> u64 {
        self.max_bytes / 2
    }

    /// Largest single record: an answer bigger than this is kept cut.
    fn record_limit(&self) -> usize {
        (self.max_bytes / 4) as usize
    }

    fn live_bytes(&self) -> u64 {
        self.sizes.values().sum()
    }

    /// Forget the oldest finished entries beyond the entry cap and the live
    /// byte budget. `keep` (the entry just written) is never forgotten.
    fn evict(&mut self, keep: Option<&str>) {
        while self.order.len() > self.cap || self.live_bytes() > self.live_limit() {
            let pos = self.order.iter().position(|k| {
                Some(k.as_str()) != keep && self.entries.get(k).map(|e| e.state != State::Running).unwrap_or(true)
            });
            match pos.and_then(|p| self.order.remove(p)) {
                Some(k) => {
                    self.entries.remove(&k);
                    self.sizes.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Rewrite the file with just the live entries: a temp file of at most
    /// half the budget, fsync, rename. On failure the old file stays as it
    /// was and the temp file is removed.
    fn compact(&mut self) -> std::io::Result<()> {
        let mut text = String::new();
        for k in &self.order {
            if let Some(e) = self.entries.get(k) {
                text.push_str(&e.to_line());
                text.push('\n');
            }
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| tag(&self.path, e))?;
        crate::durable::write_atomic(&self.path, text.as_bytes()).map_err(|e| tag(&self.path, e))?;
        self.good_len = text.len() as u64;
        Ok(())
    }

    /// Open the file for one append, first cutting it back to its last
    /// whole record (a failed or torn append leaves nothing behind).
    fn writer(&mut self) -> std::io::Result<File> {
        let existed = self.path.exists();
        let mut f = OpenOptions::new().create(true).append(true).open(&self.path).map_err(|e| tag(&self.path, e))?;
        let len = f.metadata().map_err(|e| tag(&self.path, e))?.len();
        if len < self.good_len {
            // Shortened or removed behind our back: rewrite it from memory
            // (extending it would put zeros before the next record).
            drop(f);
            self.compact()?;
            f = OpenOptions::new().append(true).open(&self.path).map_err(|e| tag(&self.path, e))?;
        } else if len > self.good_len {
            f.set_len(self.good_len).map_err(|e| tag(&self.path, e))?;
        }
        if !existed {
            crate::durable::sync_dir(&self.dir).map_err(|e| tag(&self.path, e))?;
        }
        Ok(f)
    }

    /// Cut an entry whose record would pass the record limit: the stored
    /// answer loses its bulky parts (`d.result`, `d.stderr`) and says so
    /// (`d.journalCut`). The answer already published went out whole.
    fn fit(&self, e: &mut Entry) -> String {
        let max = self.record_limit();
        let line = e.to_line();
        if line.len() <= max {
            return line;
        }
        if let Some(a) = e.answer.as_mut() {
            for k in [wa::RESULT, "stderr"] {
                if a.d.contains_key(k) {
                    a.d.insert(k.into(), json!(""));
                }
            }
            a.d.insert("journalCut".into(), json!(true));
        }
        let line = e.to_line();
        if line.len() <= max {
            return line;
        }
        if let Some(mut a) = e.answer.take() {
            let msg: String = a.msg().chars().take(256).collect();
            let mut d = serde_json::Map::new();
            for k in [wa::EXESTATUS, wa::STATUS] {
                d.insert(k.into(), a.d.get(k).cloned().unwrap_or(Value::Null));
            }
            d.insert(wa::MSG.into(), json!(msg));
            d.insert("journalCut".into(), json!(true));
            a.d = d;
            if a.to_bytes().len() > max / 2 {
                let mut d = serde_json::Map::new();
                d.insert("journalCut".into(), json!(true));
                a = Answer { id: a.id, sn: None, from: None, command: None, method: None, status: a.status, time: None, d };
            }
            e.answer = Some(a);
        }
        let line = e.to_line();
        if line.len() <= max {
            return line;
        }
        e.data = Value::Null;
        e.to_line()
    }

    /// Append one record durably. A failed write is rolled back (the file
    /// cut to its last whole record) so the next record does not land
    /// after garbage; the entry in memory is only changed by the caller
    /// once this succeeded.
    fn append(&mut self, e: &mut Entry) -> std::io::Result<u64> {
        let mut line = self.fit(e);
        line.push('\n');
        let len = line.len() as u64;
        if self.good_len + len > self.max_bytes {
            self.compact()?;
            if self.good_len + len > self.max_bytes {
                return Err(std::io::Error::other(format!("journal {}: full ({} of {} bytes)", self.path.display(), self.good_len, self.max_bytes)));
            }
        }
        let good = self.good_len;
        let mut f = self.writer()?;
        let written = f.write_all(line.as_bytes()).and_then(|_| f.sync_data());
        if let Err(err) = written {
            // Roll back; if even that fails, the open before the next
            // append cuts the file back.
            let _ = f.set_len(good);
            return Err(tag(&self.path, err));
        }
        self.good_len += len;
        Ok(len)
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of the journal file, and its budget.
    pub fn bytes(&self) -> (u64, u64) {
        (self.good_len, self.max_bytes)
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
        let mut e = e;
        let size = self.append(&mut e)?;
        if !self.entries.contains_key(key) {
            self.order.push_back(key.to_string());
        }
        self.entries.insert(key.to_string(), e);
        self.sizes.insert(key.to_string(), size);
        self.evict(Some(key));
        Ok(())
    }

    fn update(&mut self, key: &str, f: impl FnOnce(&mut Entry)) -> std::io::Result<()> {
        let Some(mut e) = self.entries.get(key).cloned() else {
            return Err(std::io::Error::other(format!("journal has no entry {key}")));
        };
        f(&mut e);
        e.boot = self.boot.clone();
        e.time = crate::util::unix_now();
        let size = self.append(&mut e)?;
        self.entries.insert(key.to_string(), e);
        self.sizes.insert(key.to_string(), size);
        self.evict(Some(key));
        Ok(())
    }

    /// Store the answer of a command that is still running (reboot: the
    /// answer goes out before the effect).
    pub fn store_answer(&mut self, key: &str, answer: &Answer) -> std::io::Result<()> {
        let a = answer.clone();
        self.update(key, |e| e.answer = Some(a))
    }

    /// Handler data that must survive a retry of the same id.
    pub fn set_data(&mut self, key: &str, data: Value) -> std::io::Result<()> {
        self.update(key, |e| e.data = data)
    }

    pub fn finish(&mut self, key: &str, state: State, answer: &Answer) -> std::io::Result<()> {
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
    pub fn unacked(&self) -> Vec<(String, Answer)> {
        self.order
            .iter()
            .filter_map(|k| self.entries.get(k))
            .filter(|e| e.state != State::Running && !e.acked)
            .filter_map(|e| e.answer.clone().map(|a| (e.key.clone(), a)))
            .collect()
    }

    /// The first answer the broker has not acknowledged and `skip` does
    /// not name (the outbox's: those on their way already), in journal
    /// order: of a finished command, or stored before its effect by a
    /// command still running (answer first: reboot, upgrade).
    pub fn next_unacked_answer(&self, skip: &dyn Fn(&str) -> bool) -> Option<(String, Answer)> {
        self.order
            .iter()
            .filter_map(|k| self.entries.get(k))
            .filter(|e| !e.acked && !skip(&e.key))
            .find_map(|e| e.answer.clone().map(|a| (e.key.clone(), a)))
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
    #[test]
    fn lines_of_every_format_version_are_read() {
        use super::{Entry, State, FORMAT};
        let v0 = r#"{"k":"n:1","h":"abc","c":"sh","s":"ok","a":{"id":1},"b":"boot","ack":true,"x":null,"t":5}"#;
        let e = Entry::from_line(v0).expect("a line from before format versions");
        assert_eq!((e.key.as_str(), e.state, e.acked), ("n:1", State::Succeeded, true));
        let newer = r#"{"v":7,"k":"n:2","h":"def","c":"reboot","s":"running","b":"boot","new_key":[1,2],"t":6}"#;
        let e = Entry::from_line(newer).expect("a line of a newer agent, after a rollback");
        assert_eq!((e.key.as_str(), e.state), ("n:2", State::Running));
        let line = e.to_line();
        assert!(line.starts_with(&format!("{{\"v\":{FORMAT},")) || line.contains(&format!("\"v\":{FORMAT}")), "{line}");
        // Format 2 keeps the answer's id as received, beyond 64 bits too.
        let v2 = r#"{"v":2,"k":"n:1000000000000000000000000000000","h":"x","c":"sh","s":"ok","a":{"id":1000000000000000000000000000000,"status":"ok","d":{}},"b":"","ack":false,"x":null,"t":1}"#;
        let e = Entry::from_line(v2).expect("format 2");
        assert_eq!(e.answer.as_ref().map(|a| a.id.text()), Some("1000000000000000000000000000000"));
        assert_eq!(e.to_line(), v2, "written back byte for byte");
        // An answer this version cannot read loses the answer, not the entry.
        let odd = r#"{"v":1,"k":"n:3","h":"x","s":"ok","a":{"id":3,"status":"perhaps"}}"#;
        assert!(Entry::from_line(odd).is_some_and(|e| e.answer.is_none() && e.state == State::Succeeded));
    }

    use super::*;

    /// An answer from its JSON (tests write them short).
    fn ans(v: Value) -> Answer {
        Answer::parse(v.to_string().as_bytes()).unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dma-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn survives_restart_and_settles_running_entries() {
        let d = tmp("restart");
        {
            let mut j = Journal::open(&d, 16, 1 << 20, "boot-A").unwrap();
            j.begin("n:1", "h1", "sh").unwrap();
            j.finish("n:1", State::Succeeded, &ans(json!({"id": 1}))).unwrap();
            j.begin("n:2", "h2", "sh").unwrap();
            j.begin("n:3", "h3", "reboot").unwrap();
            j.store_answer("n:3", &ans(json!({"id": 3}))).unwrap();
            j.begin("n:4", "h4", "reboot").unwrap();
            j.store_answer("n:4", &ans(json!({"id": 4}))).unwrap();
        }
        {
            // Same boot: the agent restarted, the router did not.
            let j = Journal::open(&d, 16, 1 << 20, "boot-A").unwrap();
            assert_eq!(j.get("n:1").unwrap().state, State::Succeeded);
            assert_eq!(j.get("n:1").unwrap().answer, Some(ans(json!({"id": 1}))));
            assert_eq!(j.get("n:2").unwrap().state, State::Interrupted);
            assert_eq!(j.get("n:3").unwrap().state, State::Failed);
        }
        let d2 = tmp("reboot");
        {
            let mut j = Journal::open(&d2, 16, 1 << 20, "boot-A").unwrap();
            j.begin("n:9", "h", "reboot").unwrap();
            j.store_answer("n:9", &ans(json!({"id": 9}))).unwrap();
        }
        let j = Journal::open(&d2, 16, 1 << 20, "boot-B").unwrap();
        assert_eq!(j.get("n:9").unwrap().state, State::Succeeded, "new boot id: the reboot happened");
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&d2);
    }

    #[test]
    fn bounded_and_tolerates_a_torn_line() {
        let d = tmp("bounded");
        {
            let mut j = Journal::open(&d, 16, 1 << 20, "b").unwrap();
            for i in 0..100 {
                let k = format!("n:{i}");
                j.begin(&k, "h", "sh").unwrap();
                j.finish(&k, State::Succeeded, &ans(json!({"id": i}))).unwrap();
            }
            assert_eq!(j.len(), 16);
            assert!(j.get("n:99").is_some() && j.get("n:83").is_none());
        }
        let mut f = OpenOptions::new().append(true).open(d.join("journal.log")).unwrap();
        f.write_all(b"{\"k\":\"n:100\",\"h\":").unwrap();
        let j = Journal::open(&d, 16, 1 << 20, "b").unwrap();
        assert_eq!(j.len(), 16);
        assert!(std::fs::read_to_string(d.join("journal.log")).unwrap().lines().count() <= 16);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A torn record left by a write that failed (or a power cut) and
    /// could not be cut at once: the next append first cuts the file back
    /// to the last whole record, so nothing lands after garbage.
    #[test]
    fn append_after_a_torn_record_rolls_back_first() {
        let d = tmp("rollback");
        let mut j = Journal::open(&d, 16, 1 << 20, "b").unwrap();
        j.begin("n:1", "h", "sh").unwrap();
        // As after a write that failed and could not be rolled back at once:
        let mut f = OpenOptions::new().append(true).open(d.join("journal.log")).unwrap();
        f.write_all(b"{\"k\":\"n:2\",\"h\":\"h\",\"c\":\"sh\",\"s\":\"run").unwrap();
        j.finish("n:1", State::Succeeded, &ans(json!({"id": 1}))).unwrap();
        j.begin("n:3", "h", "sh").unwrap();
        let text = std::fs::read_to_string(d.join("journal.log")).unwrap();
        assert!(text.lines().all(|l| Entry::from_line(l).is_some()), "only whole records:\n{text}");
        // Removed behind the journal's back: rewritten from memory, no zeros.
        std::fs::remove_file(d.join("journal.log")).unwrap();
        j.finish("n:3", State::Failed, &ans(json!({"id": 3}))).unwrap();
        let text = std::fs::read_to_string(d.join("journal.log")).unwrap();
        assert!(!text.contains('\0') && text.lines().all(|l| Entry::from_line(l).is_some()), "{text:?}");
        j.begin("n:3", "h", "sh").unwrap();
        drop(j);
        let j = Journal::open(&d, 16, 1 << 20, "b").unwrap();
        assert_eq!(j.get("n:1").unwrap().state, State::Succeeded);
        assert_eq!(j.get("n:3").unwrap().state, State::Interrupted);
        assert!(j.get("n:2").is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn bounded_in_bytes_with_big_answers_cut() {
        let d = tmp("bytes");
        let max = 32 * 1024u64;
        let big = "x".repeat(20_000);
        {
            let mut j = Journal::open(&d, 4096, max, "b").unwrap();
            for i in 0..300 {
                let k = format!("n:{i}");
                j.begin(&k, "h", "sh").unwrap();
                let a = json!({"id": i, "status": "ok", "d": {"exestatus": "ok", "status": "ok", "msg": "", "result": big, "stderr": "e"}});
                j.finish(&k, State::Succeeded, &ans(a)).unwrap();
                let len = std::fs::metadata(d.join("journal.log")).unwrap().len();
                assert!(len <= max, "file {len} > {max} after {i}");
                assert!(j.live_bytes() <= max / 2);
            }
            let last = j.get("n:299").unwrap().answer.clone().unwrap();
            assert_eq!(last.d["journalCut"], true, "a record above a quarter of the budget is cut");
            assert_eq!(last.d["result"], "");
            assert_eq!(last.id.text(), "299");
        }
        // Small answers are kept whole and many fit.
        let j = Journal::open(&d, 4096, max, "b").unwrap();
        assert!(j.get("n:299").is_some() && j.get("n:0").is_none());
        assert!(std::fs::metadata(d.join("journal.log")).unwrap().len() <= max / 2);
        let _ = std::fs::remove_dir_all(&d);
    }
}
