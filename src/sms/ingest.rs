//! Turning GoIP rows into events: deduplicated against the seen set,
//! appended durably to the event queue, all under one lock so pushes and
//! the inbox reconciliation never interleave out of order.
//!
//! Ordering rule: while a device is *behind* (at start-up, or after one of
//! its pushes was refused), its `recv-sms` pushes are refused (503) and the
//! inbox reconciliation is the only way in, reading in inbox order. It
//! clears the flag only when it has read to the end of the inbox and no
//! push was refused since that last read began — so an SMS is never
//! published after one that arrived later.

use super::seen::{self, Seen};
use super::tids::Tids;
use crate::agent::Ctx;
use crate::devices::goip::lenient::{self, RowError};
use crate::devices::goip::push::{rows_in_order, DevStatus, PortState, Sms, SmsRow, TaskReport};
use crate::devices::DeviceKind;
use crate::events::QueueError;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Why a push was not taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The inbox is being read first (keeps the order); the GoIP keeps the SMS.
    CatchingUp,
    Queue(QueueError),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::CatchingUp => write!(f, "catching up with the inbox; try again later"),
            Refused::Queue(e) => write!(f, "{e}"),
        }
    }
}

/// Where an SMS came from (kept in the event for diagnosis).
#[derive(Debug, Clone, Copy)]
pub enum Source {
    Push,
    Inbox,
}

struct Inner {
    seen: Seen,
    tids: Tids,
    behind: HashSet<String>,
    refusals: u64,
    /// Last state code per `device/port`, to send `port-status` events on change.
    ports: HashMap<String, Option<i64>>,
    /// Last `dev-status` seq per device (a lower one means the GoIP restarted).
    seqs: HashMap<String, i64>,
}

pub struct Ingest {
    ctx: Arc<Ctx>,
    inner: Mutex<Inner>,
    /// Wakes the sync thread: (devices to register again, woken).
    nudge: Mutex<(HashSet<String>, bool)>,
    cv: Condvar,
}

impl Ingest {
    pub fn new(ctx: Arc<Ctx>, seen: Seen, tids: Tids, devices: &[String]) -> Ingest {
        Ingest {
            ctx,
            inner: Mutex::new(Inner {
                seen,
                tids,
                behind: devices.iter().cloned().collect(),
                refusals: 0,
                ports: HashMap::new(),
                seqs: HashMap::new(),
            }),
            nudge: Mutex::new((HashSet::new(), false)),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wake the sync thread (to reconcile; with `register`, to point the
    /// device at the receiver again).
    pub fn wake(&self, register: Option<&str>) {
        let mut n = self.nudge.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = register {
            n.0.insert(d.to_string());
        }
        n.1 = true;
        self.cv.notify_all();
    }

    /// Wait up to `d` for a wake; returns the devices to register again.
    pub fn wait(&self, d: Duration) -> HashSet<String> {
        let n = self.nudge.lock().unwrap_or_else(|e| e.into_inner());
        let (mut n, _) = self.cv.wait_timeout_while(n, d, |n| !n.1).unwrap_or_else(|e| e.into_inner());
        n.1 = false;
        std::mem::take(&mut n.0)
    }

    /// fsync the seen set's last appends (its group commit, `seen.rs`).
    pub fn sync_seen(&self) {
        if let Err(e) = self.lock().seen.sync() {
            log::error!("sms: seen set: {e}");
        }
    }

    pub fn is_behind(&self, device: &str) -> bool {
        self.lock().behind.contains(device)
    }

    /// A push of `device` was refused (rate, size, queue): its SMS must come
    /// through the inbox now.
    pub fn refused(&self, device: &str) {
        let mut g = self.lock();
        g.behind.insert(device.to_string());
        g.refusals += 1;
        drop(g);
        self.wake(None);
    }

    pub fn refusals(&self) -> u64 {
        self.lock().refusals
    }

    /// The inbox was read to its end: take pushes again unless one was
    /// refused since `refusals_before` (then read once more).
    pub fn caught_up(&self, device: &str, refusals_before: u64) -> bool {
        let mut g = self.lock();
        if g.refusals != refusals_before {
            return false;
        }
        g.behind.remove(device);
        true
    }

    /// SMS pushed by the GoIP: the rows read and the unreadable ones
    /// (published raw), in their order.
    pub fn pushed_sms(&self, device: &str, rows: &[Sms], bad: &[RowError]) -> Result<usize, Refused> {
        let mut g = self.lock();
        if g.behind.contains(device) {
            g.refusals += 1;
            drop(g);
            self.wake(None);
            return Err(Refused::CatchingUp);
        }
        match self.queue_sms(&mut g, device, &rows_in_order(rows, bad), Source::Push) {
            Ok(n) => Ok(n),
            Err(e) => {
                g.behind.insert(device.to_string());
                g.refusals += 1;
                drop(g);
                self.wake(None);
                Err(Refused::Queue(e))
            }
        }
    }

    /// SMS read from the inbox (in inbox order), unreadable rows included.
    pub fn inbox_sms(&self, device: &str, rows: &[Sms], bad: &[RowError]) -> Result<usize, QueueError> {
        let mut g = self.lock();
        self.queue_sms(&mut g, device, &rows_in_order(rows, bad), Source::Inbox)
    }

    /// An inbox SMS the GoIP cannot deliver in a readable answer: published
    /// as unreadable (once), so reading can move past it.
    pub fn inbox_unreadable(&self, device: &str, ssrc: Option<&str>, id: u64, reason: &str) -> Result<usize, QueueError> {
        let sn = self.ctx.sn();
        let mut g = self.lock();
        let k = seen::key("unreadable", &[device, ssrc.unwrap_or(""), &id.to_string()]);
        if g.seen.contains(&k) {
            return Ok(0);
        }
        let f = json!({"device": device, "encoding": "raw", "raw": Value::Null, "inboxId": id, "reason": reason,
                       "source": source_name(Source::Inbox)});
        let ev = crate::events::envelope(&sn, "sms-received", super::fit::fit_fields(fields(f)));
        self.commit(&mut g, vec![k], &[ev])
    }

    fn queue_sms(&self, g: &mut Inner, device: &str, rows: &[SmsRow<'_>], src: Source) -> Result<usize, QueueError> {
        let sn = self.ctx.sn();
        let mut keys = Vec::new();
        let mut events = Vec::new();
        for row in rows {
            let (k, ev) = match row {
                SmsRow::Read(s) => {
                    let flag = if s.is_report { "1" } else { "0" };
                    let k = seen::key("sms", &[device, flag, &s.port, &s.time.to_string(), &s.from, &s.to, &s.text]);
                    let id = if s.is_report { g.tids.match_delivery(device, &s.port, &s.to, s.time) } else { None };
                    (k, sms_event(&sn, device, s, src, id))
                }
                SmsRow::Unreadable(b) => (seen::key("raw", &[device, &b.raw.to_string()]), raw_sms_event(&sn, device, b, src)),
            };
            if g.seen.contains(&k) || keys.contains(&k) {
                continue;
            }
            keys.push(k);
            events.push(ev);
        }
        self.commit(g, keys, &events)
    }

    /// Queue events, then record their keys as seen. When not all of them
    /// fit, the longest prefix that fits is queued (and marked seen) and
    /// `Full` is returned: the caller keeps its place (the GoIP resends the
    /// push, the inbox cursor stays), and the rows already queued are then
    /// skipped as seen. Without this a batch larger than the whole queue
    /// could never get in.
    fn commit(&self, g: &mut Inner, keys: Vec<String>, events: &[Value]) -> Result<usize, QueueError> {
        if events.is_empty() {
            return Ok(0);
        }
        match self.ctx.events.push_all(events) {
            Ok(()) => {
                self.mark_seen(g, &keys);
                Ok(events.len())
            }
            Err(first @ (QueueError::Full { .. } | QueueError::TooLarge(_))) => {
                let mut queued = 0;
                let mut full = first;
                for (k, e) in keys.iter().zip(events) {
                    match self.ctx.events.push(e) {
                        Ok(()) => {}
                        Err(QueueError::TooLarge(n)) => {
                            // Cannot happen after `fit`; if it does, the row
                            // must not block the others: say so and move on.
                            log::error!("sms: an event of {n} bytes dropped as too large: {}", e["type"]);
                        }
                        Err(e) => {
                            full = e;
                            break;
                        }
                    }
                    self.mark_seen(g, std::slice::from_ref(k));
                    queued += 1;
                }
                if queued == events.len() {
                    return Ok(queued);
                }
                if queued > 0 {
                    log::info!("sms: queue nearly full: {queued} of {} event(s) queued, the rest later", events.len());
                }
                Err(full)
            }
            Err(e) => Err(e),
        }
    }

    fn mark_seen(&self, g: &mut Inner, keys: &[String]) {
        if let Err(e) = g.seen.add_all(keys) {
            // The events are queued; at worst a row is published twice.
            log::error!("sms: seen set: {e}");
        }
    }

    /// `status-report` rows → `sms-report` events with the command id.
    pub fn reports(&self, device: &str, reports: &[TaskReport]) -> Result<usize, QueueError> {
        let sn = self.ctx.sn();
        let mut g = self.lock();
        let mut keys = Vec::new();
        let mut events = Vec::new();
        for r in reports {
            let body = serde_json::to_string(r).unwrap_or_default();
            let k = seen::key("rpt", &[device, &body]);
            if g.seen.contains(&k) || keys.contains(&k) {
                continue;
            }
            keys.push(k);
            let sent: Vec<(String, String, Option<i64>)> = r.sdr.iter().map(|d| (d.number.clone(), d.port.clone(), d.time)).collect();
            if let Err(e) = g.tids.note_sent(device, r.tid, &sent) {
                log::warn!("sms: task map: {e}");
            }
            let id = g.tids.command_id(device, r.tid).unwrap_or(Value::Null);
            events.push(report_event(&sn, device, id, r));
        }
        self.commit(&mut g, keys, &events)
    }

    /// Remember which command made task `tid` and to whom (before it is sent).
    pub fn remember_task(&self, device: &str, tid: i64, id: &Value, numbers: &[String]) -> std::io::Result<()> {
        self.lock().tids.add(device, tid, id, numbers)
    }

    /// A `port-status` push: the port's entry in `periph.msg.ports` replaced
    /// (published at once) and a `port-status` event with the same entry.
    pub fn port_status(&self, device: &str, p: &PortState) -> Result<usize, QueueError> {
        let sn = self.ctx.sn();
        let mut g = self.lock();
        let entry = crate::devices::goip::status::port_entry(p);
        self.ctx.devices.push_port(DeviceKind::Goip, Some(device), entry);
        remember_port(&mut g.ports, format!("{device}/{}", p.port), p.state);
        self.commit(&mut g, Vec::new(), &[port_event(&sn, device, p)])
    }

    /// A `dev-status` push: periph update; `port-status` events for ports
    /// whose state changed (a periodic push would flood events otherwise).
    /// A `seq` lower than the last one means the GoIP restarted: register again.
    pub fn dev_status(&self, device: &str, raw: &Value, st: &DevStatus) -> Result<usize, QueueError> {
        let sn = self.ctx.sn();
        let norm = crate::devices::goip::status::normalise(device, st, raw.clone());
        self.ctx.devices.push_status(DeviceKind::Goip, Some(device), norm.msg);
        let mut g = self.lock();
        if let Some(seq) = st.seq {
            let restarted = g.seqs.get(device).is_some_and(|&last| seq < last);
            g.seqs.insert(device.to_string(), seq);
            if restarted {
                log::info!("sms: goip {device} status seq restarted; registering again");
                self.wake(Some(device));
            }
        }
        let mut events = Vec::new();
        for p in &st.ports {
            let k = format!("{device}/{}", p.port);
            if g.ports.get(&k) != Some(&p.state) {
                remember_port(&mut g.ports, k, p.state);
                events.push(port_event(&sn, device, p));
            }
        }
        self.commit(&mut g, Vec::new(), &events)
    }
}

/// Port states remembered (a pushing peer may invent port names).
const MAX_PORTS: usize = 1024;

fn remember_port(ports: &mut HashMap<String, Option<i64>>, key: String, state: Option<i64>) {
    if ports.len() >= MAX_PORTS && !ports.contains_key(&key) {
        // Forgetting only means one more event for a port that changes.
        ports.clear();
    }
    ports.insert(key, state);
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn source_name(src: Source) -> &'static str {
    match src {
        Source::Push => "push",
        Source::Inbox => "inbox",
    }
}

/// `sms-received`, or `sms-delivery` for a delivery report (with the `id`
/// of the `sms` command that sent the message, when it is known).
/// `encoding`: `base64` when the text came base64-encoded (as documented)
/// and was decoded, `raw` when it is the content exactly as received.
/// Elements beyond the documented six are kept in `extra`.
pub fn sms_event(sn: &str, device: &str, s: &Sms, src: Source, id: Option<Value>) -> Value {
    let source = source_name(src);
    let mut f = if s.is_report {
        fields(json!({"device": device, "id": id.unwrap_or(Value::Null), "port": s.port, "smsTime": s.time, "from": s.from,
                      "to": s.to, "code": s.report_code, "delivered": s.report_code == Some(0), "scts": s.report_scts,
                      "report": s.text, "source": source}))
    } else {
        fields(json!({"device": device, "port": s.port, "smsTime": s.time, "from": s.from, "to": s.to,
                      "text": s.text, "encoding": if s.base64 { "base64" } else { "raw" }, "source": source}))
    };
    if !s.extra.is_empty() {
        f.insert("extra".into(), Value::Array(s.extra.clone()));
    }
    crate::events::envelope(sn, if s.is_report { "sms-delivery" } else { "sms-received" }, super::fit::fit_fields(f))
}

/// An SMS row that could not be read: published all the same, as
/// `sms-received` with `encoding: raw`, the row as received in `raw`, the
/// reason, and whatever fields could be read.
pub fn raw_sms_event(sn: &str, device: &str, b: &RowError, src: Source) -> Value {
    let a = b.raw.as_array();
    let at = |i: usize| a.and_then(|a| a.get(i));
    let f = json!({"device": device, "port": at(1).and_then(lenient::text), "smsTime": at(2).and_then(lenient::int),
                   "from": at(3).and_then(lenient::text), "to": at(4).and_then(lenient::text),
                   "text": at(5).and_then(lenient::text), "encoding": "raw", "raw": b.raw, "reason": b.reason,
                   "source": source_name(src)});
    crate::events::envelope(sn, "sms-received", super::fit::fit_fields(fields(f)))
}

/// `sms-report`: the task's counters and each number's outcome.
pub fn report_event(sn: &str, device: &str, id: Value, r: &TaskReport) -> Value {
    let mut details = Vec::new();
    for (ok, list) in [(true, &r.sdr), (false, &r.fdr)] {
        for d in list {
            details.push(json!({"index": d.index, "number": d.number, "port": d.port, "time": d.time, "ok": ok,
                                "reasonCode": d.reason_code, "reason": d.reason, "operatorReason": d.operator_reason}));
        }
    }
    details.sort_by_key(|d| d["index"].as_i64().unwrap_or(i64::MAX));
    let f = json!({"device": device, "id": id, "tid": r.tid, "sending": r.sending, "sent": r.sent, "failed": r.failed,
                   "unsent": r.unsent, "details": details, "badDetails": r.bad_details.len()});
    crate::events::envelope(sn, "sms-report", super::fit::fit_fields(fields(f)))
}

pub fn port_event(sn: &str, device: &str, p: &PortState) -> Value {
    let mut f = fields(crate::devices::goip::status::port_entry(p));
    f.insert("device".into(), json!(device));
    crate::events::envelope(sn, "port-status", f)
}
