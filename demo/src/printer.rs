//! The platform's view: everything the agent publishes, printed as it
//! arrives, and remembered so the demo can wait for what matters.

use dma_ctl::args::BrokerOpts;
use dma_ctl::connect::Conn;
use dma_ctl::render;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Events kept for the tour to look at (bounded).
const MAX_EVENTS: usize = 256;

/// What the platform has seen so far.
#[derive(Debug, Default)]
pub struct Seen {
    /// The device's retained state (`None`: nothing yet).
    pub online: Option<bool>,
    /// LAN device kind → online, from the latest `periph`.
    pub periph: BTreeMap<String, bool>,
    /// Topics seen at least once (`sys`, `procs`, …).
    pub topics: BTreeSet<String>,
    pub events: Vec<Value>,
}

pub struct View {
    seen: Mutex<Seen>,
    cv: Condvar,
    stop: AtomicBool,
}

impl View {
    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait until `pred` holds (true) or `timeout` passes (false).
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if pred(&g) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self.cv.wait_timeout(g, left.min(Duration::from_millis(200))).map(|r| r.0).unwrap_or_else(|p| p.into_inner().0);
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.lock())
    }

    fn note(&self, prefix: &str, topic: &str, v: &Value) {
        let mut s = self.lock();
        let rest = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).unwrap_or(topic);
        let kind = rest.split('/').next().unwrap_or(rest).to_string();
        match kind.as_str() {
            "state" => s.online = v.get("online").and_then(Value::as_bool),
            "periph" => {
                let k = v.get("kind").and_then(Value::as_str).unwrap_or("?").to_string();
                s.periph.insert(k, v.get("online") == Some(&Value::Bool(true)));
            }
            "event" if s.events.len() < MAX_EVENTS => s.events.push(v.clone()),
            _ => {}
        }
        s.topics.insert(kind);
        drop(s);
        self.cv.notify_all();
    }
}

/// Print one block to stdout at once (lines of the tour and of the
/// platform view do not interleave).
pub fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Connect as the platform and print what the agent publishes (answers
/// are printed by the tour, next to their command).
pub fn start(port: u16, prefix: &str) -> Result<(Arc<View>, JoinHandle<()>), String> {
    let opts = BrokerOpts::local(Some(port));
    let mut conn = Conn::open(&opts).map_err(|f| f.msg)?;
    conn.subscribe(&[format!("{prefix}/#")]).map_err(|f| f.msg)?;
    let view = Arc::new(View { seen: Mutex::default(), cv: Condvar::new(), stop: AtomicBool::new(false) });
    let (v, prefix) = (view.clone(), prefix.to_string());
    let handle = std::thread::Builder::new()
        .name("demo-platform".into())
        .spawn(move || {
            while !v.stop.load(Ordering::SeqCst) {
                let m = match conn.next(Some(Instant::now() + Duration::from_millis(200))) {
                    Ok(Some(m)) => m,
                    Ok(None) => continue,
                    Err(f) => {
                        say(&format!("  [platform] {}", f.msg));
                        std::thread::sleep(Duration::from_millis(500));
                        continue;
                    }
                };
                if m.topic.starts_with(&format!("{prefix}/cmd/")) || dma_agent::mqtt::topics::kind_of(&prefix, &m.topic) == Some("resp/cmd") {
                    continue;
                }
                let v2 = serde_json::from_slice::<Value>(&m.payload).unwrap_or(Value::Null);
                say(&format!("  [platform] {}", render::message(&prefix, &m.topic, &m.payload)));
                v.note(&prefix, &m.topic, &v2);
            }
            conn.close();
        })
        .map_err(|e| format!("platform thread: {e}"))?;
    Ok((view, handle))
}

/// Stop the platform view.
pub fn stop(view: &View, handle: JoinHandle<()>) {
    view.stop.store(true, Ordering::SeqCst);
    let _ = handle.join();
}
