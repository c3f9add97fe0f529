//! The durable event queue.
//!
//! Layout in `<state_dir>/events/`: `queue.log` holds one JSON event per
//! line, appended and fsync'd before `push` returns; `cursor` holds the
//! byte offset of the first event the broker has not acknowledged. The
//! sender publishes from the cursor with a small window of QoS 1 messages
//! and moves the cursor (fsync'd) as PUBACKs arrive, in order. When
//! everything is acknowledged the log is truncated. A crash can at worst
//! publish an acknowledged event once more (at-least-once); it never loses
//! one. When the unacknowledged bytes would pass the cap, `push` refuses
//! (the GoIP receiver then answers 503 so the GoIP keeps the message).

use crate::mqtt::{AckWaiter, Publisher};
use serde_json::Value;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Largest single event accepted.
pub const MAX_EVENT: usize = 64 * 1024;
/// QoS 1 events in flight at once.
const WINDOW: usize = 16;
/// Re-send from the cursor when the oldest in-flight event waited this
/// long for its PUBACK while connected.
const RESEND_AFTER: Duration = Duration::from_secs(60);

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
    log: File,
    /// Offset of the first unacknowledged event.
    head: u64,
    /// End of the log.
    tail: u64,
    /// Events pushed since start (for tests and `agent get`).
    pushed: u64,
    acked: u64,
}

pub struct EventQueue {
    dir: PathBuf,
    cap: u64,
    inner: Mutex<Inner>,
    wake: Condvar,
    connected: AtomicBool,
}

fn io(e: std::io::Error) -> QueueError {
    QueueError::Io(e.to_string())
}

impl EventQueue {
    pub fn open(dir: &Path, cap: u64) -> std::io::Result<EventQueue> {
        std::fs::create_dir_all(dir)?;
        let log_path = dir.join("queue.log");
        let mut log = OpenOptions::new().create(true).read(true).append(true).open(&log_path)?;
        let mut tail = log.seek(SeekFrom::End(0))?;
        // A torn last line (power cut mid-append) is cut off.
        if tail > 0 {
            let data = std::fs::read(&log_path)?;
            let good = data.iter().rposition(|&b| b == b'\n').map(|p| p as u64 + 1).unwrap_or(0);
            if good < tail {
                log.set_len(good)?;
                tail = good;
            }
        }
        let head = std::fs::read_to_string(dir.join("cursor")).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0).min(tail);
        crate::config::sync_dir(dir)?;
        Ok(EventQueue {
            dir: dir.to_path_buf(),
            cap,
            inner: Mutex::new(Inner { log, head, tail, pushed: 0, acked: 0 }),
            wake: Condvar::new(),
            connected: AtomicBool::new(false),
        })
    }

    /// Append events durably, all or none. Returns once they are on disk.
    pub fn push_all(&self, events: &[Value]) -> Result<(), QueueError> {
        let mut buf = Vec::new();
        for e in events {
            let s = e.to_string();
            if s.len() > MAX_EVENT {
                return Err(QueueError::TooLarge(s.len()));
            }
            buf.extend_from_slice(s.as_bytes());
            buf.push(b'\n');
        }
        let mut g = self.inner.lock().map_err(|_| QueueError::Io("poisoned".into()))?;
        let used = g.tail - g.head;
        if used + buf.len() as u64 > self.cap {
            return Err(QueueError::Full { used, cap: self.cap });
        }
        g.log.write_all(&buf).map_err(io)?;
        g.log.sync_data().map_err(io)?;
        g.tail += buf.len() as u64;
        g.pushed += events.len() as u64;
        drop(g);
        self.wake.notify_all();
        Ok(())
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

    /// The session tells the sender whether the broker is there.
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// Read the event starting at `off`; returns it and the next offset.
    fn read_at(&self, off: u64) -> std::io::Result<Option<(Vec<u8>, u64)>> {
        let mut f = File::open(self.dir.join("queue.log"))?;
        f.seek(SeekFrom::Start(off))?;
        let mut line = Vec::new();
        let n = BufReader::new(f.take_limit()).read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(None);
        }
        line.pop();
        Ok(Some((line, off + n as u64)))
    }

    fn advance(&self, to: u64) -> std::io::Result<()> {
        let mut g = self.inner.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        g.head = to;
        g.acked += 1;
        if g.head >= g.tail {
            // Everything is acknowledged: start the log afresh.
            g.log.set_len(0)?;
            g.log.sync_data()?;
            g.head = 0;
            g.tail = 0;
        }
        let head = g.head;
        drop(g);
        crate::config::write_atomic(&self.dir.join("cursor"), head.to_string().as_bytes())
    }

    /// The sender loop: publish in order, advance on PUBACK. Runs until
    /// `stop` is set.
    pub fn run_sender(&self, publisher: &Publisher, stop: &AtomicBool) {
        let topic = publisher.topics.event.clone();
        // (start offset, next offset, waiter, sent at)
        let mut window: VecDeque<(u64, u64, AckWaiter, Instant)> = VecDeque::new();
        let mut next: Option<u64> = None;
        while !stop.load(Ordering::SeqCst) {
            // Retire acknowledged events from the front, in order.
            while let Some((_, end, w, _)) = window.front() {
                if !w.is_acked() {
                    break;
                }
                let end = *end;
                window.pop_front();
                if let Err(e) = self.advance(end) {
                    log::error!("event queue cursor: {e}");
                }
                if window.is_empty() {
                    next = None; // offsets may have been reset by a truncate
                }
            }
            let connected = self.connected.load(Ordering::SeqCst);
            if let Some((_, _, w, sent)) = window.front() {
                // Lost: the broker came back without our session.
                if connected && (sent.elapsed() > RESEND_AFTER || w.is_lost()) {
                    log::warn!("event queue: no PUBACK for {} s; sending again from the cursor", RESEND_AFTER.as_secs());
                    window.clear();
                    next = None;
                }
            }
            let (head, tail) = match self.inner.lock() {
                Ok(g) => (g.head, g.tail),
                Err(_) => return,
            };
            let pos = next.unwrap_or(head);
            if connected && window.len() < WINDOW && pos < tail {
                match self.read_at(pos) {
                    Ok(Some((payload, end))) => match publisher.publish(&topic, true, false, payload) {
                        Ok(Some(w)) => {
                            window.push_back((pos, end, w, Instant::now()));
                            next = Some(end);
                            continue;
                        }
                        Ok(None) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    },
                    Ok(None) => {}
                    Err(e) => {
                        log::error!("event queue read: {e}");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
            // Wait for a push, a connect, or an ack to check.
            if let Ok(g) = self.inner.lock() {
                // Idle (nothing in flight, nothing new under the lock a push takes,
                // or offline): sleep long, a push or a connect wakes us.
                let idle = window.is_empty() && (next.unwrap_or(g.head) >= g.tail || !self.connected.load(Ordering::SeqCst));
                let _ = self.wake.wait_timeout(g, Duration::from_millis(if idle { 5_000 } else { 20 }));
            }
        }
    }
}

/// Reads at most one event (plus its newline) from a file.
trait TakeLimit {
    fn take_limit(self) -> std::io::Take<File>;
}

impl TakeLimit for File {
    fn take_limit(self) -> std::io::Take<File> {
        std::io::Read::take(self, MAX_EVENT as u64 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            assert_eq!(q.read_at(0).unwrap().unwrap().0, b"{\"n\":1}".to_vec());
            q.advance(8).unwrap();
        }
        let q = EventQueue::open(&d, 200).unwrap();
        let (first, end) = q.read_at(q.inner.lock().unwrap().head).unwrap().unwrap();
        assert_eq!(first, b"{\"n\":2}".to_vec(), "cursor survives reopen");
        let (second, _) = q.read_at(end).unwrap().unwrap();
        assert_eq!(second, b"{\"n\":3}".to_vec());
        let _ = std::fs::remove_dir_all(&d);
    }
}
