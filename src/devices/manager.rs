//! Runs each configured LAN device on its own thread: polls it on its
//! interval, publishes `periph` on change and on the periph interval,
//! marks it offline after N consecutive failures (then retries with
//! backoff), and carries out `<kind> get|set` commands in between polls.
//! A dead device only ever blocks its own thread.

use super::{DeviceConfig, DeviceError, DeviceKind, LanDevice};
use crate::mqtt::Publisher;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The configuration file's path and its writers' lock.
type ConfigFile = (String, Arc<crate::durable::WriteLock>);

/// Commands waiting for one device.
const DEVICE_QUEUE: usize = 4;
/// Longest wait between polls of a device that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Commands whose caller stopped waiting after they started, kept (per
/// device) so a retry of the same id gets their result instead of
/// sending the request again.
const ABANDONED: usize = 8;

/// Started commands nobody waits for any more, by journal key (oldest first).
type Abandoned = Mutex<VecDeque<(String, Arc<Ticket>)>>;

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;

/// One `<kind> get|set` handed to a device's thread. The thread may start
/// it only while the caller still waits: `claim` (thread) and `cancel`
/// (caller) race on one atomic, so exactly one of them wins — a command
/// the engine gave up on is never sent later.
struct Ticket {
    state: AtomicU8,
    result: Mutex<Option<Result<Value, DeviceError>>>,
    done: Condvar,
}

impl Ticket {
    fn new() -> Ticket {
        Ticket { state: AtomicU8::new(QUEUED), result: Mutex::new(None), done: Condvar::new() }
    }
    fn claim(&self) -> bool {
        self.state.compare_exchange(QUEUED, STARTED, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }
    fn cancel(&self) -> bool {
        self.state.compare_exchange(QUEUED, CANCELLED, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }
    fn started(&self) -> bool {
        self.state.load(Ordering::SeqCst) == STARTED
    }
    fn complete(&self, r: Result<Value, DeviceError>) {
        if let Ok(mut g) = self.result.lock() {
            *g = Some(r);
        }
        self.done.notify_all();
    }
    /// Wait until `until` for the thread to start it (`started`) or to
    /// finish it; returns the result when finished.
    fn wait(&self, until: Instant, for_start_only: bool) -> Option<Result<Value, DeviceError>> {
        let Ok(mut g) = self.result.lock() else { return None };
        loop {
            if g.is_some() {
                return g.take();
            }
            if for_start_only && self.started() {
                return None;
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            // Short steps: the start is not signalled through the condvar.
            let step = (until - now).min(Duration::from_millis(if for_start_only { 20 } else { 200 }));
            g = match self.done.wait_timeout(g, step) {
                Ok((g, _)) => g,
                Err(_) => return None,
            };
        }
    }
}

enum DevMsg {
    Command { method: String, body: Value, ticket: Arc<Ticket> },
    Republish,
    Push(Value),
    /// One port's entry pushed by the device: replaces that port in `msg.ports`.
    PushPort(Value),
    Stop,
}

/// What is known of one device.
#[derive(Debug, Clone, Default)]
pub struct DeviceView {
    pub online: bool,
    pub msg: Option<Value>,
    pub firmware: Option<String>,
    pub serial: Option<String>,
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_seen: Option<u64>,
    pub published: u64,
}

struct Slot {
    cfg: DeviceConfig,
    tx: SyncSender<DevMsg>,
    /// Started commands the caller stopped waiting for, by journal key.
    abandoned: Arc<Abandoned>,
    view: Arc<Mutex<DeviceView>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Settings the manager takes from the agent section.
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    pub sn: String,
    pub gw_id: String,
    pub failures: u32,
    pub periph_interval: Duration,
}

/// Where device events go: the durable event queue, and the directory of
/// the cursors that make each device record an event once.
#[derive(Clone)]
pub struct EventSink {
    pub queue: Arc<crate::events::EventQueue>,
    pub dir: std::path::PathBuf,
}

#[derive(Clone)]
pub struct DeviceManager {
    slots: Arc<Mutex<Vec<Slot>>>,
    publisher: Publisher,
    settings: Arc<Mutex<ManagerSettings>>,
    sink: Arc<Mutex<Option<EventSink>>>,
    /// The configuration file, where a rotated device password is stored,
    /// and the lock its writers share.
    config_path: Arc<Mutex<Option<ConfigFile>>>,
}

impl DeviceManager {
    pub fn new(publisher: Publisher, settings: ManagerSettings) -> DeviceManager {
        DeviceManager {
            slots: Arc::new(Mutex::new(Vec::new())),
            publisher,
            settings: Arc::new(Mutex::new(settings)),
            sink: Arc::default(),
            config_path: Arc::default(),
        }
    }

    /// Store passwords that devices accepted from a command (credential
    /// rotation) in this UCI file. Without it a rotated password lives only
    /// in memory, and the command's answer says so.
    pub fn set_config_path(&self, path: &str, lock: Arc<crate::durable::WriteLock>) {
        if let Ok(mut g) = self.config_path.lock() {
            *g = Some((path.to_string(), lock));
        }
    }

    /// Publish device events (IAD call records) through this queue, with
    /// their cursors under `dir`. Without it they stay only in `periph`.
    pub fn set_event_sink(&self, queue: Arc<crate::events::EventQueue>, dir: std::path::PathBuf) {
        if let Ok(mut g) = self.sink.lock() {
            *g = Some(EventSink { queue, dir });
        }
    }

    /// Start (or restart) the devices: unchanged devices keep running,
    /// removed or changed ones are stopped, new ones started.
    pub fn apply(&self, devices: &[DeviceConfig], settings: ManagerSettings) {
        if let Ok(mut s) = self.settings.lock() {
            *s = settings;
        }
        let Ok(mut slots) = self.slots.lock() else { return };
        let mut keep = Vec::new();
        for mut slot in slots.drain(..) {
            if devices.iter().any(|d| *d == slot.cfg && d.enabled) {
                keep.push(slot);
            } else {
                stop_slot(&mut slot);
            }
        }
        for d in devices.iter().filter(|d| d.enabled) {
            if keep.iter().any(|s| s.cfg == *d) {
                continue;
            }
            match self.spawn(d.clone()) {
                Ok(slot) => keep.push(slot),
                Err(e) => log::error!("device {}: cannot start its thread: {e}", d.name),
            }
        }
        *slots = keep;
    }

    fn spawn(&self, cfg: DeviceConfig) -> std::io::Result<Slot> {
        let (tx, rx) = sync_channel(DEVICE_QUEUE);
        let view = Arc::new(Mutex::new(DeviceView::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            cfg: cfg.clone(),
            view: view.clone(),
            stop: stop.clone(),
            publisher: self.publisher.clone(),
            settings: self.settings.clone(),
            sink: self.sink.clone(),
            config_path: self.config_path.clone(),
            cdr: None,
            last_published: None,
            last_publish_at: None,
        };
        let thread = crate::stack::spawn(format!("dev-{}", cfg.name), move || worker.run(rx))?;
        Ok(Slot { cfg, tx, abandoned: Arc::default(), view, stop, thread: Some(thread) })
    }

    pub fn stop_all(&self) {
        if let Ok(mut slots) = self.slots.lock() {
            for mut s in slots.drain(..) {
                stop_slot(&mut s);
            }
        }
    }

    /// Carry out `<kind> get|set` on the device named in the body
    /// (`"device": name`), or the first device of that kind. `key` is the
    /// command's journal key.
    ///
    /// The command waits its turn on the device's thread (behind a poll or
    /// other commands) for at most the device's `command_timeout`; not
    /// started by then, it is cancelled and never sent. Once started it
    /// runs to its end (each HTTP call bounded by the device's `timeout`),
    /// and the caller waits up to `command_timeout` more for the result.
    /// A caller that gives up on a started command leaves its ticket here:
    /// a retry of the same id waits for that result rather than sending
    /// the request a second time.
    pub fn command(&self, kind: DeviceKind, name: Option<&str>, method: &str, body: Value, key: &str) -> Result<Value, DeviceError> {
        let (tx, wait, abandoned) = {
            let slots = self.slots.lock().map_err(|_| DeviceError::Transport("device manager unavailable".into()))?;
            let slot = slots
                .iter()
                .find(|s| s.cfg.kind == kind && name.map(|n| n == s.cfg.name).unwrap_or(true))
                .ok_or_else(|| match name {
                    Some(n) => DeviceError::BadRequest(format!("no enabled {kind} device named '{n}'")),
                    None => DeviceError::BadRequest(format!("no {kind} device is configured")),
                })?;
            (slot.tx.clone(), command_timeout(&slot.cfg), slot.abandoned.clone())
        };
        // Once started, a long IAD action (network test, firmware upgrade) gets its own bound.
        let run = match kind {
            DeviceKind::Iad => super::iad::run_time(&body).map_or(wait, |d| d.max(wait)),
            _ => wait,
        };
        let secs = wait.as_secs();
        let run_secs = run.as_secs();
        // A retry of a command that started earlier: its result, not a second request.
        let earlier = abandoned.lock().ok().and_then(|mut a| {
            let pos = a.iter().position(|(k, _)| k == key)?;
            a.remove(pos).map(|(_, t)| t)
        });
        if let Some(t) = earlier {
            log::info!("{kind} command {key}: waiting for the earlier attempt's result instead of sending it again");
            return match t.wait(Instant::now() + run, false) {
                Some(r) => r,
                None => {
                    remember(&abandoned, key, t);
                    Err(DeviceError::Timeout(format!(
                        "{kind} device: the earlier attempt of this command is still running after another {run_secs} s; not sent again"
                    )))
                }
            };
        }
        let ticket = Arc::new(Ticket::new());
        tx.try_send(DevMsg::Command { method: method.to_string(), body, ticket: ticket.clone() })
            .map_err(|_| DeviceError::Transport(format!("{kind} device busy: too many commands waiting")))?;
        if let Some(r) = ticket.wait(Instant::now() + wait, true) {
            return r;
        }
        if ticket.cancel() {
            return Err(DeviceError::Timeout(format!(
                "{kind} device busy: the command did not start within {secs} s; cancelled, it will not be sent"
            )));
        }
        // Started: it runs to its end; wait for it, bounded.
        match ticket.wait(Instant::now() + run, false) {
            Some(r) => r,
            None => {
                remember(&abandoned, key, ticket);
                Err(DeviceError::Timeout(format!(
                    "{kind} device did not answer within {run_secs} s of starting; the outcome is unknown. A retry of this id waits for it, it is not sent again"
                )))
            }
        }
    }

    /// Publish every device's current status now.
    pub fn republish_all(&self) {
        if let Ok(slots) = self.slots.lock() {
            for s in slots.iter() {
                let _ = s.tx.try_send(DevMsg::Republish);
            }
        }
    }

    /// A status pushed by the device itself (GoIP dev-status/port-status):
    /// merged into the device's `msg` and published at once.
    pub fn push_status(&self, kind: DeviceKind, name: Option<&str>, fields: Value) {
        if let Ok(slots) = self.slots.lock() {
            if let Some(s) = slots.iter().find(|s| s.cfg.kind == kind && name.map(|n| n == s.cfg.name).unwrap_or(true)) {
                let _ = s.tx.try_send(DevMsg::Push(fields));
            }
        }
    }

    /// One port's state pushed by the device itself (GoIP `port-status`):
    /// replaces that port's entry in `msg.ports`, published at once.
    pub fn push_port(&self, kind: DeviceKind, name: Option<&str>, entry: Value) {
        if let Ok(slots) = self.slots.lock() {
            if let Some(s) = slots.iter().find(|s| s.cfg.kind == kind && name.map(|n| n == s.cfg.name).unwrap_or(true)) {
                let _ = s.tx.try_send(DevMsg::PushPort(entry));
            }
        }
    }

    /// (kind:name, firmware) of each device whose firmware is known.
    pub fn firmware(&self) -> Vec<(String, String)> {
        let Ok(slots) = self.slots.lock() else { return Vec::new() };
        slots
            .iter()
            .filter_map(|s| {
                let fw = s.view.lock().ok()?.firmware.clone()?;
                Some((format!("{}:{}", s.cfg.kind, s.cfg.name), fw))
            })
            .collect()
    }

    /// State of every device, for `agent get`.
    pub fn overview(&self) -> Value {
        let Ok(slots) = self.slots.lock() else { return Value::Null };
        Value::Array(
            slots
                .iter()
                .map(|s| {
                    let v = s.view.lock().map(|v| v.clone()).unwrap_or_default();
                    json!({"name": s.cfg.name, "kind": s.cfg.kind.as_str(), "online": v.online, "failures": v.failures,
                           "lastError": v.last_error, "lastSeen": v.last_seen, "firmware": v.firmware, "published": v.published})
                })
                .collect(),
        )
    }

    pub fn view(&self, name: &str) -> Option<DeviceView> {
        let slots = self.slots.lock().ok()?;
        let s = slots.iter().find(|s| s.cfg.name == name)?;
        let v = s.view.lock().ok()?.clone();
        Some(v)
    }
}

/// How long a LAN command may wait for its turn (and then for its result):
/// the device's `command_timeout`, by default long enough to queue behind a
/// poll that itself times out.
fn command_timeout(cfg: &DeviceConfig) -> Duration {
    cfg.opt("command_timeout")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(cfg.timeout * 6 + Duration::from_secs(5))
}

fn remember(abandoned: &Abandoned, key: &str, t: Arc<Ticket>) {
    if let Ok(mut a) = abandoned.lock() {
        a.push_back((key.to_string(), t));
        while a.len() > ABANDONED {
            a.pop_front();
        }
    }
}

fn stop_slot(s: &mut Slot) {
    s.stop.store(true, Ordering::SeqCst);
    let _ = s.tx.try_send(DevMsg::Stop);
    if let Some(t) = s.thread.take() {
        // A device thread may sit in an HTTP call; it ends within its timeout.
        let _ = crate::stack::spawn(format!("join-{}", s.cfg.name), move || {
            let _ = t.join();
        });
    }
}

/// Keys whose values change on every poll: left out when deciding whether
/// a status changed (they are still published).
fn is_volatile(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["uptime", "time", "load", "cpu", "mem", "bytes", "packets", "rx", "tx", "seq", "voltage", "temp", "flow"]
        .iter()
        .any(|v| k.contains(v))
}

/// A 64-bit digest of a status without its volatile keys: what "changed"
/// compares. Kept instead of a copy of the whole tree per device (and
/// computed without building one); a collision would only delay a change
/// to the next `periph_interval`.
fn fingerprint(v: &Value) -> u64 {
    fn feed(v: &Value, h: &mut std::collections::hash_map::DefaultHasher) {
        use std::hash::Hash;
        match v {
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Number(n) => (2u8, n).hash(h),
            Value::String(s) => (3u8, s).hash(h),
            Value::Array(a) => {
                (4u8, a.len()).hash(h);
                a.iter().for_each(|x| feed(x, h));
            }
            Value::Object(m) => {
                5u8.hash(h);
                for (k, x) in m.iter().filter(|(k, _)| !is_volatile(k)) {
                    k.hash(h);
                    feed(x, h);
                }
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    feed(v, &mut h);
    std::hash::Hasher::finish(&h)
}

struct Worker {
    cfg: DeviceConfig,
    view: Arc<Mutex<DeviceView>>,
    stop: Arc<AtomicBool>,
    publisher: Publisher,
    settings: Arc<Mutex<ManagerSettings>>,
    sink: Arc<Mutex<Option<EventSink>>>,
    config_path: Arc<Mutex<Option<ConfigFile>>>,
    cdr: Option<super::iad::cdr::CdrCursor>,
    last_published: Option<(bool, u64)>,
    last_publish_at: Option<Instant>,
}

impl Worker {
    fn settings(&self) -> ManagerSettings {
        self.settings.lock().map(|s| s.clone()).unwrap_or(ManagerSettings {
            sn: self.publisher.sn.clone(),
            gw_id: self.publisher.sn.clone(),
            failures: 3,
            periph_interval: Duration::from_secs(300),
        })
    }

    fn node_id(&self, serial: Option<&str>) -> String {
        match self.cfg.opt("node_id") {
            Some("serial") => serial.map(|s| s.to_string()).unwrap_or_else(|| self.cfg.name.clone()),
            Some(literal) => literal.to_string(),
            None => self.cfg.name.clone(),
        }
    }

    fn publish(&mut self, force: bool) {
        // Copy out only what the message needs (not the whole view).
        let (online, serial, msg) = match self.view.lock() {
            Ok(v) if v.online => (true, v.serial.clone(), v.msg.clone().unwrap_or_else(|| json!({}))),
            Ok(v) => (false, v.serial.clone(), json!({"error": v.last_error, "failures": v.failures, "lastSeen": v.last_seen})),
            Err(_) => return,
        };
        let st = self.settings();
        let fp = (online, fingerprint(&msg));
        let due = self.last_publish_at.map(|t| t.elapsed() >= st.periph_interval).unwrap_or(true);
        if !force && !due && self.last_published.as_ref() == Some(&fp) {
            return;
        }
        let payload = json!({
            "sn": st.sn, "time": crate::util::unix_now(), "gwId": st.gw_id,
            "nId": self.node_id(serial.as_deref()), "kind": self.cfg.kind.as_str(),
            "online": online, "msg": msg,
        });
        if self.publisher.publish_json(&self.publisher.topics.periph, true, false, &payload).is_ok() {
            self.last_published = Some(fp);
            self.last_publish_at = Some(Instant::now());
            if let Ok(mut g) = self.view.lock() {
                g.published += 1;
            }
        }
    }

    fn poll(&mut self, client: &mut Option<Box<dyn LanDevice>>) -> Duration {
        let threshold = self.settings().failures;
        let result = match client.as_mut() {
            Some(c) => c.poll(),
            None => match super::build(&self.cfg) {
                Ok(c) => {
                    *client = Some(c);
                    return Duration::ZERO;
                }
                Err(e) => Err(DeviceError::BadRequest(format!("configuration: {e}"))),
            },
        };
        if let (Ok(st), DeviceKind::Iad) = (&result, self.cfg.kind) {
            if let Some(rows) = st.msg.get("cdr").and_then(Value::as_array) {
                self.emit_cdr(rows);
            }
        }
        let mut became_offline = false;
        let mut changed_online = false;
        let failures;
        {
            let Ok(mut v) = self.view.lock() else { return self.cfg.poll_interval };
            match result {
                Ok(st) => {
                    changed_online = !v.online;
                    v.online = true;
                    v.failures = 0;
                    v.last_error = None;
                    v.last_seen = Some(crate::util::unix_now());
                    v.firmware = st.firmware.clone().or(v.firmware.take());
                    v.serial = st.serial.clone().or(v.serial.take());
                    v.msg = Some(st.msg);
                }
                Err(e) => {
                    v.failures = v.failures.saturating_add(1);
                    let reason = e.to_string();
                    if v.failures == 1 || v.last_error.as_deref() != Some(reason.as_str()) {
                        log::warn!("device {} ({}): {reason}", self.cfg.name, self.cfg.kind);
                    }
                    v.last_error = Some(reason);
                    // Publish once: on the transition, or at the threshold
                    // for a device that was never reached.
                    if v.failures >= threshold && (v.online || v.failures == threshold) {
                        became_offline = true;
                        v.online = false;
                    }
                }
            }
            failures = v.failures;
        }
        if changed_online {
            log::info!("device {} ({}) is online", self.cfg.name, self.cfg.kind);
        }
        if became_offline {
            log::warn!("device {} ({}) is offline after {failures} failures", self.cfg.name, self.cfg.kind);
            self.publish(true);
        } else if failures == 0 {
            self.publish(changed_online);
        }
        if failures >= threshold {
            // Back off: double the interval per failure past the threshold.
            let k = (failures - threshold).min(8);
            (self.cfg.poll_interval * (1u32 << k)).min(MAX_BACKOFF.max(self.cfg.poll_interval))
        } else {
            self.cfg.poll_interval
        }
    }

    /// A password the device accepted: the agent uses it from now on
    /// (this thread's configuration, so a rebuilt client has it too) and
    /// stores it in the configuration file; the answer says whether it is
    /// stored (`credential.stored`), an error answer says it in its text.
    fn store_password(&mut self, pw: String, r: Result<Value, DeviceError>) -> Result<Value, DeviceError> {
        crate::logging::add_secrets(vec![pw.clone()]);
        self.cfg.password = pw.clone();
        let path = self.config_path.lock().ok().and_then(|g| g.clone());
        let stored = match &path {
            Some((p, lock)) => crate::config::device_store::update_device_section(
                p,
                lock,
                &self.cfg.name,
                &[("password".into(), Some(crate::config::uci::UciValue::Single(pw)))],
                |_| {},
            )
            .map(|_| ())
            .map_err(|e| e.to_string()),
            None => Err("the agent runs without a configuration file".into()),
        };
        match &stored {
            Ok(()) => log::info!("device {}: new password stored in the configuration", self.cfg.name),
            Err(e) => log::error!("device {}: new password NOT stored ({e}); it is lost on restart", self.cfg.name),
        }
        match r {
            Ok(Value::Object(mut m)) => {
                let cred = m.entry("credential").or_insert_with(|| json!({}));
                if let Value::Object(c) = cred {
                    c.insert("stored".into(), Value::Bool(stored.is_ok()));
                    if let Err(e) = &stored {
                        c.insert("error".into(), Value::String(format!("the new password is not stored: {e}; it is lost on restart")));
                    }
                }
                Ok(Value::Object(m))
            }
            Ok(other) => Ok(other),
            Err(e) => Err(e.with_note(match &stored {
                Ok(()) => "the agent stored the new password",
                Err(_) => "the agent could not store the new password (lost on restart)",
            })),
        }
    }

    /// IAD call records not published yet → `cdr` events, in order, each once.
    fn emit_cdr(&mut self, rows: &[Value]) {
        let Some(sink) = self.sink.lock().ok().and_then(|g| g.clone()) else { return };
        let name = self.cfg.name.clone();
        let cursor = self.cdr.get_or_insert_with(|| super::iad::cdr::CdrCursor::open(&sink.dir, &name));
        let new = cursor.new_rows(rows);
        if new.is_empty() {
            return;
        }
        let sn = self.publisher.sn.clone();
        let mut published = Vec::new();
        for (k, row) in &new {
            match sink.queue.push(&super::iad::cdr::cdr_event(&sn, &name, row)) {
                Ok(()) => published.push((k.clone(), *row)),
                Err(e) => {
                    // Full queue: the rest waits for the next poll.
                    log::warn!("device {name}: call records wait: {e}");
                    break;
                }
            }
        }
        if let Err(e) = cursor.mark(&published) {
            log::error!("device {name}: call record cursor: {e} (records may be published again)");
        }
    }

    fn run(mut self, rx: Receiver<DevMsg>) {
        let mut client: Option<Box<dyn LanDevice>> = None;
        let mut next_poll = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let wait = next_poll.saturating_duration_since(Instant::now());
            crate::stack::release_unused();
            match rx.recv_timeout(wait) {
                Ok(DevMsg::Command { method, body, ticket }) => {
                    if !ticket.claim() {
                        log::info!("device {}: a {method} command was cancelled before its turn; not sent", self.cfg.name);
                        continue;
                    }
                    if client.is_none() {
                        client = super::build(&self.cfg).ok();
                    }
                    let mut r = match client.as_mut() {
                        Some(c) => c.command(&method, &body),
                        None => Err(DeviceError::BadRequest("the device client could not be built from its configuration".into())),
                    };
                    if let Some(pw) = client.as_mut().and_then(|c| c.take_new_password()) {
                        r = self.store_password(pw, r);
                    }
                    ticket.complete(r);
                }
                Ok(DevMsg::Republish) => self.publish(true),
                Ok(DevMsg::PushPort(entry)) => {
                    if let Ok(mut v) = self.view.lock() {
                        let mut msg = v.msg.take().unwrap_or_else(|| json!({}));
                        super::goip::status::merge_port(&mut msg, entry);
                        v.msg = Some(msg);
                        v.online = true;
                        v.failures = 0;
                        v.last_seen = Some(crate::util::unix_now());
                    }
                    self.publish(false);
                }
                Ok(DevMsg::Push(fields)) => {
                    if let Ok(mut v) = self.view.lock() {
                        let mut msg = v.msg.take().unwrap_or_else(|| json!({}));
                        if let (Value::Object(m), Value::Object(f)) = (&mut msg, fields) {
                            for (k, val) in f {
                                m.insert(k, val);
                            }
                        }
                        v.msg = Some(msg);
                        v.online = true;
                        v.failures = 0;
                        v.last_seen = Some(crate::util::unix_now());
                    }
                    self.publish(false);
                }
                Ok(DevMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    let next = self.poll(&mut client);
                    next_poll = Instant::now() + next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fingerprint;
    use serde_json::json;

    #[test]
    fn fingerprint_ignores_counters_only() {
        let a = json!({"model": "x", "uptime": 1, "ports": [{"state": "up", "rxBytes": 5}]});
        let counters = json!({"model": "x", "uptime": 2, "ports": [{"state": "up", "rxBytes": 9}]});
        let changed = json!({"model": "x", "uptime": 1, "ports": [{"state": "down", "rxBytes": 5}]});
        assert_eq!(fingerprint(&a), fingerprint(&counters));
        assert_ne!(fingerprint(&a), fingerprint(&changed));
        assert_ne!(fingerprint(&json!([1, [2]])), fingerprint(&json!([[1], 2])));
        assert_ne!(fingerprint(&json!("1")), fingerprint(&json!(1)));
    }
}
