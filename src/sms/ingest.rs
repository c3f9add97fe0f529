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
use crate::devices::goip::push::{DevStatus, PortState, Sms, TaskReport};
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

    /// SMS pushed by the GoIP.
    pub fn pushed_sms(&self, device: &str, rows: &[Sms]) -> Result<usize, Refused> {
        let mut g = self.lock();
        if g.behind.contains(device) {
            g.refusals += 1;
            drop(g);
            self.wake(None);
            return Err(Refused::CatchingUp);
        }
        match self.queue_sms(&mut g, device, rows, Source::Push) {
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

    /// SMS read from the inbox (in inbox order).
    pub fn inbox_sms(&self, device: &str, rows: &[Sms]) -> Result<usize, QueueError> {
        let mut g = self.lock();
        self.queue_sms(&mut g, device, rows, Source::Inbox)
    }

    fn queue_sms(&self, g: &mut Inner, device: &str, rows: &[Sms], src: Source) -> Result<usize, QueueError> {
        let sn = self.ctx.sn();
        let mut keys = Vec::new();
        let mut events = Vec::new();
        for s in rows {
            let flag = if s.is_report { "1" } else { "0" };
            let k = seen::key("sms", &[device, flag, &s.port, &s.time.to_string(), &s.from, &s.to, &s.text]);
            if g.seen.contains(&k) || keys.contains(&k) {
                continue;
            }
            keys.push(k);
            events.push(sms_event(&sn, device, s, src));
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
            Err(full @ QueueError::Full { .. }) => {
                let mut queued = 0;
                for (k, e) in keys.iter().zip(events) {
                    if self.ctx.events.push(e).is_err() {
                        break;
                    }
                    self.mark_seen(g, std::slice::from_ref(k));
                    queued += 1;
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
            let id = g.tids.command_id(device, r.tid).unwrap_or(Value::Null);
            events.push(report_event(&sn, device, id, r));
        }
        self.commit(&mut g, keys, &events)
    }

    /// Remember which command made task `tid` (before it is sent).
    pub fn remember_task(&self, device: &str, tid: i64, id: &Value) -> std::io::Result<()> {
        self.lock().tids.add(device, tid, id)
    }

    /// A `port-status` push: periph update and an event.
    pub fn port_status(&self, device: &str, p: &PortState) -> Result<usize, QueueError> {
        let sn = self.ctx.sn();
        let mut g = self.lock();
        self.ctx.devices.push_status(DeviceKind::Goip, Some(device), json!({ "last_port_status": port_json(p) }));
        g.ports.insert(format!("{device}/{}", p.port), p.state);
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
                g.ports.insert(k, p.state);
                events.push(port_event(&sn, device, p));
            }
        }
        self.commit(&mut g, Vec::new(), &events)
    }
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `sms-received` (or `sms-delivery` for a delivery report).
pub fn sms_event(sn: &str, device: &str, s: &Sms, src: Source) -> Value {
    let source = match src {
        Source::Push => "push",
        Source::Inbox => "inbox",
    };
    if s.is_report {
        let f = json!({"device": device, "port": s.port, "smsTime": s.time, "from": s.from, "to": s.to,
                       "code": s.report_code, "delivered": s.report_code == Some(0), "scts": s.report_scts, "source": source});
        return crate::events::envelope(sn, "sms-delivery", fields(f));
    }
    let f = json!({"device": device, "port": s.port, "smsTime": s.time, "from": s.from, "to": s.to,
                   "text": s.text, "source": source});
    crate::events::envelope(sn, "sms-received", fields(f))
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
    crate::events::envelope(sn, "sms-report", fields(f))
}

fn port_json(p: &PortState) -> Value {
    json!({"port": p.port, "state": p.state, "stateText": p.state_text, "registered": p.registered,
           "operator": p.operator, "signal": p.signal, "number": p.number, "imsi": p.imsi, "iccid": p.iccid})
}

pub fn port_event(sn: &str, device: &str, p: &PortState) -> Value {
    let mut f = fields(port_json(p));
    f.insert("device".into(), json!(device));
    crate::events::envelope(sn, "port-status", f)
}
