//! The durable event queue.
//!
//! Layout in `<state_dir>/events/`: `queue.log` holds one JSON event per
//! line, appended and fsync'd before `push` returns; `cursor` holds the
//! position of the first event the broker has not acknowledged. The
//! outbox (`crate::outbox`) publishes from the cursor with a small window
//! of QoS 1 messages and moves the cursor as PUBACKs arrive, in order. The
//! queue itself knows nothing of the network: it rings a bell when an
//! event was pushed.
//!
//! The cursor on flash is a group commit: written (temp file, fsync,
//! rename) at most every [`CURSOR_EVERY`], by the PUBACK that finds it
//! older, by the outbox when that much time passed without one
//! ([`EventQueue::cursor_due`], [`EventQueue::flush_cursor`]), at a clean
//! stop and on drop. A power cut can leave it up to that interval behind:
//! the events of that interval are published once more (at-least-once,
//! which `eid` lets the platform see), never one lost. Issue 24: one SMS
//! per push cost a push fsync plus a cursor write and a compaction (four
//! more fsyncs) per event; now the push's fsync alone.
//!
//! Positions are logical: they never go back. The log starts with a
//! header line `#base N` naming the logical position of its first event,
//! so a compaction (rewriting the log with only the unacknowledged events,
//! through a temp file and a rename) never has to change the cursor: the
//! cursor is valid in the old file and in the new one, and a crash at any
//! point loses nothing. A crash can at worst publish an acknowledged event
//! once more (at-least-once; `eid` lets the platform drop it).
//!
//! On flash: unacknowledged events are capped at `cap` bytes (`push`
//! refuses beyond: the GoIP receiver then answers 503 so the GoIP keeps the
//! message); acknowledged ones are dropped by a compaction once they pass
//! [`compact_after`] bytes, or when everything is acknowledged at the
//! cursor's next write (so an idle queue is compacted within
//! [`CURSOR_EVERY`], not once per event of a slow stream). The
//! compaction's temp file holds only unacknowledged events, so the reserve
//! it needs is at most `cap`. A failed append is cut back to the last whole
//! event; a full or read-only disk makes `push` refuse with the cause and
//! is retried on the next push.

use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The cursor on flash lags the acknowledgements by at most this (see the
/// module doc).
pub const CURSOR_EVERY: Duration = Duration::from_secs(1);

/// Largest single event accepted.
pub const MAX_EVENT: usize = 64 * 1024;
/// Longest header line read.
const HEADER_MAX: usize = 64;

/// Acknowledged bytes left in the log before it is compacted.
pub fn compact_after(cap: u64) -> u64 {
    (cap / 4).clamp(4096, 64 * 1024)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// Not enough room: the caller must refuse what it was given.
    Full { used: u64, cap: u64 },
    TooLarge(usize),
    Io(String),
}

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueError::Full { used, cap } => write!(f, "event queue full ({used} of {cap} bytes)"),
            QueueError::TooLarge(n) => write!(f, "event of {n} bytes is larger than {MAX_EVENT}"),
            QueueError::Io(e) => write!(f, "event queue: {e}"),
        }
    }
}

struct Inner {
    /// The log was read from disk (if not, nothing else here is known).
    loaded: bool,
    /// Logical position of the first event in the file, and the length of
    /// the header line before it.
    base: u64,
    hdr_len: u64,
    /// Logical position of the first unacknowledged event.
    head: u64,
    /// Logical end of the whole events.
    tail: u64,
    /// Events pushed since start (for tests and `agent get`).
    pushed: u64,
    acked: u64,
    /// The cursor is ahead of the one on flash since then.
    dirty_since: Option<Instant>,
    /// When the cursor was last written.
    saved_at: Option<Instant>,
}

impl Inner {
    fn phys(&self, logical: u64) -> u64 {
        self.hdr_len + logical.saturating_sub(self.base)
    }
}

pub struct EventQueue {
    dir: PathBuf,
    cap: u64,
    inner: Mutex<Inner>,
    /// Rung after each push (the outbox's nudge).
    bell: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Numbers the events it appends (taken under `inner`'s lock, so they
    /// grow in queue order).
    eid: Mutex<super::eid::EidAlloc>,
}

fn io(e: std::io::Error) -> QueueError {
    QueueError::Io(e.to_string())
}

fn header(base: u64) -> String {
    format!("#base {base}\n")
}

/// Position just after the last newline of `f` (whole events end there).
fn last_newline_end(f: &mut File, len: u64, from: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 8192];
    while end > from {
        let start = end.saturating_sub(buf.len() as u64).max(from);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        let chunk = buf.get_mut(..n).ok_or_else(|| std::io::Error::other("chunk"))?;
        f.read_exact(chunk)?;
        if let Some(p) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + p as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

impl EventQueue {
    /// Open the queue in `dir`. Never fails for want of space or a
    /// writable dir: what can be read is sent; pushes are refused (with
    /// the cause) until the disk can be written again.
    pub fn open(dir: &Path, cap: u64) -> std::io::Result<EventQueue> {
        Self::open_numbered(dir, cap, None)
    }

    /// [`EventQueue::open`], numbering events from the `eid` file at
    /// `eid_file` (docs/PROTOCOL.md: `eid` only grows, across restarts).
    pub fn open_numbered(dir: &Path, cap: u64, eid_file: Option<PathBuf>) -> std::io::Result<EventQueue> {
        let q = EventQueue {
            dir: dir.to_path_buf(),
            cap,
            inner: Mutex::new(Inner { loaded: false, base: 0, hdr_len: 0, head: 0, tail: 0, pushed: 0, acked: 0, dirty_since: None, saved_at: None }),
            bell: OnceLock::new(),
            eid: Mutex::new(super::eid::EidAlloc::open(eid_file)),
        };
        if let Ok(mut g) = q.inner.lock() {
            if let Err(e) = q.load(&mut g) {
                log::error!("event queue {}: {e}; events are refused until it can be read", dir.display());
            }
            if let Err(e) = q.writer(&mut g) {
                log::error!("event queue {}: {e}; events are refused until it can be written", dir.display());
            }
            // (the handle is closed at once: none stays open for writing)
        }
        Ok(q)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("queue.log")
    }

    /// Read header, whole-event end and cursor from disk.
    fn load(&self, g: &mut Inner) -> std::io::Result<()> {
        let path = self.log_path();
        let (base, hdr_len, good) = match File::open(&path) {
            Ok(mut f) => {
                let len = f.metadata()?.len();
                let mut first = Vec::new();
                BufReader::new(Read::take(&mut f, HEADER_MAX as u64)).read_until(b'\n', &mut first)?;
                let parsed = std::str::from_utf8(&first)
                    .ok()
                    .filter(|t| t.ends_with('\n'))
                    .and_then(|t| t.trim_end().strip_prefix("#base "))
                    .and_then(|n| n.parse::<u64>().ok());
                let (base, hdr_len) = match parsed {
                    Some(b) => (b, first.len() as u64),
                    None => (0, 0), // a log from before headers: positions are offsets
                };
                (base, hdr_len, last_newline_end(&mut f, len, hdr_len)?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0, 0),
            Err(e) => return Err(e),
        };
        let tail = base + (good - hdr_len);
        let cursor = std::fs::read_to_string(self.dir.join("cursor")).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(base);
        g.base = base;
        g.hdr_len = hdr_len;
        g.tail = tail;
        // Before the base: those events were acknowledged and compacted away.
        g.head = cursor.clamp(base, tail);
        g.loaded = true;
        Ok(())
    }

    /// Open the log for one append (no descriptor stays open for writing,
    /// so the state dir can be remounted read-only). The file is first cut
    /// back to its last whole event: a torn or failed append leaves nothing.
    fn writer(&self, g: &mut Inner) -> std::io::Result<File> {
        if !g.loaded {
            self.load(g)?;
        }
        std::fs::create_dir_all(&self.dir)?;
        let path = self.log_path();
        let fresh = !path.exists();
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        if fresh {
            // A new log starts with its header (an empty file would be read as base 0).
            let h = header(g.tail);
            f.write_all(h.as_bytes())?;
            f.sync_data()?;
            crate::durable::sync_dir(&self.dir)?;
            g.base = g.tail;
            g.hdr_len = h.len() as u64;
            g.head = g.head.max(g.base);
        } else {
            if f.metadata()?.len() < g.phys(g.tail) {
                // Shortened behind our back: what is on disk is the truth
                // (extending it would put zeros before the next event).
                log::error!("event queue {}: the log is shorter than written; continuing from what is there", path.display());
                self.load(g)?;
            }
            let end = g.phys(g.tail);
            if f.metadata()?.len() != end {
                f.set_len(end)?;
                f.sync_data()?;
            }
        }
        Ok(f)
    }

    /// Append events durably, all or none. Returns once they are on disk.
    pub fn push_all(&self, events: &[Value]) -> Result<(), QueueError> {
        let mut g = self.inner.lock().map_err(|_| QueueError::Io("poisoned".into()))?;
        let mut buf = Vec::new();
        {
            let mut eid = self.eid.lock().map_err(|_| QueueError::Io("poisoned".into()))?;
            for e in events {
                let mut e = e.clone();
                if let Value::Object(m) = &mut e {
                    m.insert("eid".into(), Value::from(eid.next()));
                }
                let s = e.to_string();
                if s.len() > MAX_EVENT {
                    return Err(QueueError::TooLarge(s.len()));
                }
                buf.extend_from_slice(s.as_bytes());
                buf.push(b'\n');
            }
        }
        let used = g.tail - g.head;
        if used + buf.len() as u64 > self.cap {
            return Err(QueueError::Full { used, cap: self.cap });
        }
        let end = g.phys(g.tail);
        let mut f = self.writer(&mut g).map_err(io)?;
        if let Err(e) = f.write_all(&buf).and_then(|_| f.sync_data()) {
            // Roll back to the last whole event; if that fails too, the
            // next push cuts the file first.
            let _ = f.set_len(end);
            return Err(io(e));
        }
        g.tail += buf.len() as u64;
        g.pushed += events.len() as u64;
        drop(g);
        if let Some(bell) = self.bell.get() {
            bell();
        }
        Ok(())
    }

    /// Who to tell when events were pushed (set once).
    pub fn set_bell(&self, bell: Box<dyn Fn() + Send + Sync>) {
        let _ = self.bell.set(bell);
    }

    pub fn push(&self, event: &Value) -> Result<(), QueueError> {
        self.push_all(std::slice::from_ref(event))
    }

    /// Would `bytes` more fit?
    pub fn has_room(&self, bytes: u64) -> bool {
        self.inner.lock().map(|g| g.tail - g.head + bytes <= self.cap).unwrap_or(false)
    }

    /// Unacknowledged bytes.
    pub fn used(&self) -> u64 {
        self.inner.lock().map(|g| g.tail - g.head).unwrap_or(0)
    }

    pub fn stats(&self) -> Value {
        self.inner
            .lock()
            .map(|g| serde_json::json!({"pendingBytes": g.tail - g.head, "capBytes": self.cap, "pushed": g.pushed, "acked": g.acked}))
            .unwrap_or(Value::Null)
    }

    /// The event at logical position `from` (None: the cursor) as
    /// (position, bytes, next position); None when there is none yet.
    pub fn next_after(&self, from: Option<u64>) -> std::io::Result<Option<(u64, Vec<u8>, u64)>> {
        let at = match from {
            Some(p) => p,
            None => self.inner.lock().map_err(|_| std::io::Error::other("poisoned"))?.head,
        };
        Ok(self.read_at(at)?.map(|(ev, end)| (at, ev, end)))
    }

    /// The broker acknowledged every event before logical position `end`.
    pub fn ack_through(&self, end: u64) -> std::io::Result<()> {
        self.advance(end)
    }

    /// Read the event starting at logical position `off`; returns it and
    /// the next position. Under the lock: a compaction cannot swap the
    /// file in between.
    fn read_at(&self, off: u64) -> std::io::Result<Option<(Vec<u8>, u64)>> {
        let g = self.inner.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        if off < g.base || off >= g.tail {
            return Ok(None);
        }
        let mut f = File::open(self.log_path())?;
        f.seek(SeekFrom::Start(g.phys(off)))?;
        let mut line = Vec::new();
        let n = BufReader::new(Read::take(f, MAX_EVENT as u64 + 1)).read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(None);
        }
        line.pop();
        Ok(Some((line, off + n as u64)))
    }

    /// The broker acknowledged everything before `to`. The cursor goes to
    /// flash when its last write is [`CURSOR_EVERY`] old (else later: see
    /// the module doc); the log is compacted after it, so a crash in
    /// between only re-sends.
    fn advance(&self, to: u64) -> std::io::Result<()> {
        let mut g = self.inner.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let before = g.head;
        g.head = to.min(g.tail).max(g.head);
        g.acked += 1;
        if g.head != before && g.dirty_since.is_none() {
            g.dirty_since = Some(Instant::now());
        }
        if g.head - g.base >= compact_after(self.cap) || g.saved_at.is_none_or(|t| t.elapsed() >= CURSOR_EVERY) {
            self.save_cursor(&mut g)?;
        }
        Ok(())
    }

    /// Put the cursor on flash if it moved since it was last put there:
    /// by a compaction when everything is acknowledged or enough is (the
    /// new log starts at the cursor, and an older `cursor` file is read as
    /// that start), else by writing the file.
    fn save_cursor(&self, g: &mut Inner) -> std::io::Result<()> {
        if g.dirty_since.is_none() {
            return Ok(());
        }
        let acked_in_file = g.head - g.base;
        if acked_in_file > 0 && (g.head == g.tail || acked_in_file >= compact_after(self.cap)) {
            self.compact(g)?;
        } else {
            crate::durable::write_atomic(&self.dir.join("cursor"), g.head.to_string().as_bytes())?;
        }
        g.dirty_since = None;
        g.saved_at = Some(Instant::now());
        Ok(())
    }

    /// When the cursor must next be written (None: it is on flash).
    pub fn cursor_due(&self) -> Option<Instant> {
        let g = self.inner.lock().ok()?;
        let since = g.dirty_since?;
        Some(g.saved_at.map_or(since, |t| t.max(since)) + CURSOR_EVERY)
    }

    /// Write the cursor now if it moved (the outbox's, when
    /// [`EventQueue::cursor_due`] passed, and at a clean stop).
    pub fn flush_cursor(&self) -> std::io::Result<()> {
        let mut g = self.inner.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        self.save_cursor(&mut g)
    }

    /// Rewrite the log with only the unacknowledged events (temp file,
    /// fsync, rename, fsync of the dir). The cursor stays as it is: logical
    /// positions are the same in both files.
    fn compact(&self, g: &mut Inner) -> std::io::Result<()> {
        let path = self.log_path();
        let tmp = self.dir.join(".queue.log.tmp");
        let h = header(g.head);
        let (from, len) = (g.phys(g.head), g.tail - g.head);
        let written = (|| {
            let mut out = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            out.write_all(h.as_bytes())?;
            let mut src = File::open(&path)?;
            src.seek(SeekFrom::Start(from))?;
            let copied = std::io::copy(&mut Read::take(src, len), &mut out)?;
            if copied != len {
                return Err(std::io::Error::other("log shorter than expected"));
            }
            out.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        g.base = g.head;
        g.hdr_len = h.len() as u64;
        crate::durable::sync_dir(&self.dir)
    }
}

impl Drop for EventQueue {
    fn drop(&mut self) {
        if let Err(e) = self.flush_cursor() {
            log::error!("event queue {}: cursor: {e}", self.dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One event per push, each acknowledged before the next (a GoIP
    /// pushing one SMS at a time): the cursor is not written per event,
    /// the file is not rewritten per event, and what a power cut leaves
    /// is at most the last interval to send again, never an event lost.
    #[test]
    fn a_slow_stream_writes_the_cursor_at_most_once_an_interval() {
        let d = std::env::temp_dir().join(format!("dma-evq-slow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        use std::os::unix::fs::MetadataExt;
        let q = EventQueue::open(&d, 64 * 1024).unwrap();
        q.push(&json!({"n": 0})).unwrap();
        ack_one(&q);
        let cursor = || std::fs::read(d.join("cursor")).ok();
        let inode = || std::fs::metadata(d.join("queue.log")).unwrap().ino();
        let (first, log) = (cursor(), inode());
        for i in 1..50 {
            q.push(&json!({"n": i})).unwrap();
            ack_one(&q);
        }
        assert_eq!(cursor(), first, "the cursor was written again within the interval");
        assert_eq!(inode(), log, "the log was compacted within the interval");
        assert!(q.cursor_due().is_some());
        // A power cut now (no drop): reopened from what is on flash.
        let d2 = d.with_extension("cut");
        let _ = std::fs::remove_dir_all(&d2);
        std::fs::create_dir_all(&d2).unwrap();
        std::fs::write(d2.join("queue.log"), std::fs::read(d.join("queue.log")).unwrap()).unwrap();
        if let Some(c) = cursor() {
            std::fs::write(d2.join("cursor"), c).unwrap();
        }
        let cut = EventQueue::open(&d2, 64 * 1024).unwrap();
        let again: Vec<i64> = std::iter::from_fn(|| (cut.used() > 0).then(|| serde_json::from_slice::<Value>(&ack_one(&cut)).unwrap()["n"].as_i64().unwrap())).collect();
        assert_eq!(again, (1..50).collect::<Vec<_>>(), "the interval is sent again, in order");
        // The outbox's timed write, and the idle queue compacted with it.
        std::thread::sleep(CURSOR_EVERY);
        q.flush_cursor().unwrap();
        assert!(q.cursor_due().is_none());
        assert_eq!(std::fs::read_to_string(d.join("queue.log")).unwrap().lines().count(), 1, "only the header left");
        drop(q);
        let q = EventQueue::open(&d, 64 * 1024).unwrap();
        assert_eq!(q.used(), 0);
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&d2);
    }

    #[test]
    fn bounded_durable_and_ordered_on_disk() {
        let d = std::env::temp_dir().join(format!("dma-evq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        {
            let q = EventQueue::open(&d, 200).unwrap();
            q.push(&json!({"n": 1})).unwrap();
            q.push_all(&[json!({"n": 2}), json!({"n": 3})]).unwrap();
            let big: Vec<Value> = (0..40).map(|i| json!({"n": i})).collect();
            assert!(matches!(q.push_all(&big), Err(QueueError::Full { .. })), "all or nothing");
            // The queue numbers what it appends, in order.
            assert_eq!(q.read_at(0).unwrap().unwrap().0, b"{\"eid\":1,\"n\":1}".to_vec());
            q.advance(16).unwrap();
        }
        let q = EventQueue::open(&d, 200).unwrap();
        let h = head(&q);
        let (first, end) = q.read_at(h).unwrap().unwrap();
        assert_eq!(first, b"{\"eid\":2,\"n\":2}".to_vec(), "cursor survives reopen");
        let (second, _) = q.read_at(end).unwrap().unwrap();
        assert_eq!(second, b"{\"eid\":3,\"n\":3}".to_vec());
        let _ = std::fs::remove_dir_all(&d);
    }

    fn head(q: &EventQueue) -> u64 {
        q.inner.lock().unwrap().head
    }

    /// Acknowledge the first pending event, as the sender does on PUBACK.
    fn ack_one(q: &EventQueue) -> Vec<u8> {
        let (ev, end) = q.read_at(head(q)).unwrap().expect("an event");
        q.advance(end).unwrap();
        ev
    }

    #[test]
    fn a_steady_stream_keeps_the_file_bounded_and_positions_valid() {
        let d = std::env::temp_dir().join(format!("dma-evq-steady-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let cap = 16 * 1024;
        let q = EventQueue::open(&d, cap).unwrap();
        // Never empty: one event always pending, 2,000 pushed and acked.
        q.push(&json!({"n": 0})).unwrap();
        for i in 1..2000 {
            q.push(&json!({"n": i, "pad": "p".repeat(40)})).unwrap();
            let ev: Value = serde_json::from_slice(&ack_one(&q)).unwrap();
            assert_eq!(ev["n"], i - 1, "in order");
            let len = std::fs::metadata(d.join("queue.log")).map(|m| m.len()).unwrap_or(0);
            assert!(len <= cap + compact_after(cap) + 200, "file {len} bytes");
        }
        // The cursor stays valid across compactions and a reopen.
        drop(q);
        let q = EventQueue::open(&d, cap).unwrap();
        let ev: Value = serde_json::from_slice(&ack_one(&q)).unwrap();
        assert_eq!(ev["n"], 1999);
        assert_eq!(q.used(), 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Every order of crash around a compaction: the cursor names a logical
    /// position, valid in the file before and after the rename.
    #[test]
    fn a_crash_around_compaction_loses_nothing() {
        let d = std::env::temp_dir().join(format!("dma-evq-crash-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let q = EventQueue::open(&d, 64 * 1024).unwrap();
        for i in 0..10 {
            q.push(&json!({"n": i})).unwrap();
        }
        ack_one(&q);
        ack_one(&q);
        let before = std::fs::read(d.join("queue.log")).unwrap();
        // Compaction happened (renamed in) but the process died at once.
        let mut g = q.inner.lock().unwrap();
        q.compact(&mut g).unwrap();
        drop(g);
        drop(q);
        let q = EventQueue::open(&d, 64 * 1024).unwrap();
        let ev: Value = serde_json::from_slice(&ack_one(&q)).unwrap();
        assert_eq!(ev["n"], 2, "after the rename");
        drop(q);
        // The old file with the same cursor (a crash before the rename).
        std::fs::write(d.join("queue.log"), &before).unwrap();
        let q = EventQueue::open(&d, 64 * 1024).unwrap();
        let ev: Value = serde_json::from_slice(&ack_one(&q)).unwrap();
        assert_eq!(ev["n"], 3, "before the rename: same position, next event");
        // A torn last event is cut, and the next push lands cleanly after the last whole one.
        drop(q);
        let mut f = OpenOptions::new().append(true).open(d.join("queue.log")).unwrap();
        f.write_all(b"{\"n\":99,\"to").unwrap();
        drop(f);
        let q = EventQueue::open(&d, 64 * 1024).unwrap();
        q.push(&json!({"n": 10})).unwrap();
        let mut seen = Vec::new();
        while q.used() > 0 {
            let ev: Value = serde_json::from_slice(&ack_one(&q)).unwrap();
            seen.push(ev["n"].as_i64().unwrap());
        }
        assert_eq!(seen, vec![4, 5, 6, 7, 8, 9, 10]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
