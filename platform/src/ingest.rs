//! What the agents publish, into the database, once `trust` believes the
//! message speaks for its serial: `state` (online/offline,
//! callbacks, waking the device's waiting commands), `sys`/`procs`/
//! `versions` (kept as JSON text with `revtime`), `periph`, `event`,
//! `resp/cmd` (the command state machine). Every message is also offered
//! to the message routes. Malformed payloads are logged and dropped.

use crate::db::batch::{ReportRow, StateRow};
use crate::db::commands::{Answer, Answered};
use crate::db::fleet::NewEvent;
use crate::db::devices::Report;
use crate::db::hooks::HookKind;
use crate::hooks::{topic, Post};
use crate::pipeline::Msg;
use crate::trust::{self, Dropped, Kind};
use crate::Shared;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};

/// A serial as the platform accepts it in a topic or payload.
pub fn valid_sn(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The message as JSON text with the receipt time `revtime` added (keys sorted).
pub fn with_revtime(mut obj: Map<String, Value>, now: i64) -> String {
    obj.insert("revtime".into(), json!(now));
    Value::Object(obj).to_string()
}

/// The device's own text with `"revtime":N` put first inside its outer
/// braces: its bytes stay as sent (key order, number forms). A payload that
/// already has a `revtime` is re-serialized instead.
pub fn splice_revtime(raw: &str, obj: Map<String, Value>, now: i64) -> String {
    match revtime_first(raw, now) {
        Some(text) if !obj.contains_key("revtime") => text,
        _ => with_revtime(obj, now),
    }
}

/// `"revtime":N` put first inside the outer braces of `raw`, a JSON
/// object's text without a `revtime` (`None` if it does not start with `{`).
fn revtime_first(raw: &str, now: i64) -> Option<String> {
    let rest = raw.trim_start().strip_prefix('{')?;
    let sep = if rest.trim_start().starts_with('}') { "" } else { "," };
    Some(format!("{{\"revtime\":{now}{sep}{rest}"))
}

/// One message, one by one (the control queue, and what a telemetry batch
/// does not batch).
pub fn handle(sh: &Shared, topic: &str, payload: &[u8], retain: bool, now: i64) {
    if let Some(t) = topic.strip_prefix("$SYS/") {
        sh.sys.record(t, payload);
        return;
    }
    let device_topic = topic.strip_prefix(&sh.cfg.broker.prefix).and_then(|r| r.strip_prefix('/')).and_then(trust::classify);
    let Some(dt) = device_topic else {
        // Not a device's topic: only a message route subscribed to it.
        return route(sh, topic, payload);
    };
    if payload.is_empty() {
        return route(sh, topic, payload); // a cleared retained message
    }
    let obj = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(o)) => o,
        _ => {
            log::warn!("{topic:?}: payload is not a JSON object, dropped");
            return;
        }
    };
    // Whose message it may be (PROTOCOL.md "What the platform believes");
    // what is not believed is not stored, not routed.
    let Some(sn) = sh.believe(topic, dt, payload_sn(&obj)) else { return };
    // An answer is routed only once it is taken for a command sent to that serial (below).
    if dt.kind != Kind::Answer {
        route(sh, topic, payload);
    }
    let r = match dt.kind {
        Kind::Sys => report(sh, &sn, Report::Sys, payload, obj, now),
        Kind::Procs => report(sh, &sn, Report::Procs, payload, obj, now),
        Kind::Versions => report(sh, &sn, Report::Versions, payload, obj, now),
        Kind::Periph => periph(sh, &sn, obj, now),
        Kind::Event => sh.db.device_touch(&sn, now),
        Kind::Answer => answer(sh, topic, &sn, obj, &String::from_utf8_lossy(payload), now).map(|taken| {
            if taken {
                route(sh, topic, payload);
            }
        }),
        Kind::State => state(sh, &sn, &obj, retain, now),
    };
    if let Err(e) = r {
        log::warn!("{topic:?}: {e}");
    }
}

fn route(sh: &Shared, topic: &str, payload: &[u8]) {
    let routes = match sh.routes.get(|| sh.db.routes()) {
        Ok(r) => r,
        Err(e) => return log::error!("routes: {e}"),
    };
    for r in routes.iter().filter(|r| topic::matches(&r.topic, topic)) {
        sh.post(Post { kind: HookKind::Route, id: r.id, url: r.url.clone(), body: payload.to_vec(), topic: Some(topic.to_string()) });
    }
}

/// A `state` message as `state` reads it.
fn state_row(sn: String, obj: &Map<String, Value>, m: &Msg) -> Result<StateRow, String> {
    let online = obj.get("online").and_then(Value::as_bool).ok_or("no boolean 'online'")?;
    Ok(StateRow {
        sn,
        online,
        boot_time: obj.get("bootTime").and_then(Value::as_i64),
        ver: obj.get("ver").and_then(Value::as_str).map(|v| v.chars().take(64).collect()),
        signed: obj.get("signed").and_then(Value::as_bool),
        now: m.now,
    })
}

/// After a state was stored: the warnings, the log line and callback of a change, the scheduler woken.
fn state_done(sh: &Shared, r: &StateRow, retain: bool, changed: bool, woken: usize) {
    let sn = &r.sn;
    if r.online && r.signed == Some(false) {
        log::warn!("device {sn} accepts UNSIGNED commands (no trusted key configured)");
    }
    if changed {
        log::info!("device {sn} {}{}", if r.online { "online" } else { "offline" }, if retain { " (retained)" } else { "" });
        sh.callback("device", json!({"type": "device", "sn": sn, "online": r.online, "time": r.now, "bootTime": r.boot_time.unwrap_or(-1)}));
    }
    if woken > 0 {
        sh.scheduler.wake();
    }
}

/// An event as stored: its `eid` (duplicates dropped), `type`, the
/// device's `time`, and its text (secrets masked).
fn new_event(sn: String, obj: &Map<String, Value>, m: &Msg) -> NewEvent {
    let text = String::from_utf8_lossy(&m.payload).into_owned();
    NewEvent {
        sn,
        eid: obj.get("eid").and_then(Value::as_i64),
        kind: obj.get("type").and_then(Value::as_str).unwrap_or("").chars().take(64).collect(),
        time: obj.get("time").and_then(Value::as_i64).unwrap_or(m.now),
        rev_time: m.now,
        body: crate::secrets::mask_text(&text).unwrap_or(text),
    }
}

/// An answer read from the control queue, waiting for its batch's transaction.
struct Pending<'a> {
    topic: &'a str,
    payload: &'a [u8],
    sn: String,
    id: u64,
    ok: bool,
    reason: String,
    response: String,
}

/// A batch from the control queue (`pipeline.rs`): peripherals one by one
/// as `handle` does; the states in one transaction, the events in one, the
/// answers taken in another (their devices marked alive in one more), then
/// counted and routed as `answer` does.
pub fn control_batch(sh: &Shared, batch: Vec<Msg>) {
    let prefix = &sh.cfg.broker.prefix;
    let mut pending = Vec::new();
    let mut states: Vec<(StateRow, bool)> = Vec::new();
    let mut events = Vec::new();
    let mut touches: HashMap<String, i64> = HashMap::new();
    let mut now = 0;
    for m in &batch {
        let dt = m.topic.strip_prefix(prefix.as_str()).and_then(|r| r.strip_prefix('/')).and_then(trust::classify);
        let (Some(dt), false) = (dt.filter(|d| matches!(d.kind, Kind::Answer | Kind::Event | Kind::State)), m.payload.is_empty()) else {
            handle(sh, &m.topic, &m.payload, m.retain, m.now);
            continue;
        };
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&m.payload) else {
            handle(sh, &m.topic, &m.payload, m.retain, m.now); // logs and drops it
            continue;
        };
        let Some(sn) = sh.believe(&m.topic, dt, payload_sn(&obj)) else { continue };
        if dt.kind == Kind::State {
            route(sh, &m.topic, &m.payload);
            match state_row(sn, &obj, m) {
                Ok(r) => states.push((r, m.retain)),
                Err(e) => log::warn!("{:?}: {e}", m.topic),
            }
            continue;
        }
        touches.insert(sn.clone(), m.now);
        now = now.max(m.now);
        if dt.kind == Kind::Event {
            route(sh, &m.topic, &m.payload);
            events.push(new_event(sn, &obj, m));
            continue;
        }
        let Some(id) = obj.get("id").and_then(crate::ids::parse) else {
            sh.trust.count(Dropped::AnswerUnknown, &m.topic, Some(&sn));
            continue;
        };
        let ok = obj.get("status").and_then(Value::as_str) == Some("ok");
        let reason = obj.get("d").and_then(|d| d.get("msg")).and_then(Value::as_str).unwrap_or("").chars().take(500).collect::<String>();
        let response = splice_revtime(&String::from_utf8_lossy(&m.payload), obj, m.now);
        let response = crate::secrets::mask_text(&response).unwrap_or(response);
        pending.push(Pending { topic: &m.topic, payload: &m.payload, sn, id, ok, reason, response });
    }
    if !states.is_empty() {
        let rows: Vec<StateRow> = states.iter().map(|s| s.0.clone()).collect();
        match sh.db.devices_state_many(&rows) {
            Ok(done) => {
                for ((r, retain), (changed, woken)) in states.iter().zip(done) {
                    state_done(sh, r, *retain, changed, woken);
                }
            }
            Err(e) => {
                sh.ingest.figures.write_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                log::error!("ingest: {} states not stored: {e}", rows.len());
            }
        }
    }
    let touches: Vec<(String, i64)> = touches.into_iter().collect();
    if !touches.is_empty() {
        let _ = sh.db.devices_report_batch(&[], &touches);
    }
    if !events.is_empty() {
        if let Err(e) = sh.db.events_insert(&events) {
            sh.ingest.figures.write_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::error!("ingest: {} events not stored: {e}", events.len());
        }
    }
    if pending.is_empty() {
        return;
    }
    let answers: Vec<Answer> = pending.iter().map(|p| Answer { id: p.id, sn: &p.sn, ok: p.ok, reason: &p.reason, response: &p.response }).collect();
    let results = match sh.db.commands_answer_many(&answers, now, sh.cfg.retry_delay) {
        Ok(r) => r,
        Err(e) => {
            sh.ingest.figures.write_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return log::error!("ingest: {} answers not taken: {e}", answers.len());
        }
    };
    for (p, answered) in pending.iter().zip(results) {
        let (id, sn) = (p.id, p.sn.as_str());
        match answered {
            Answered::Retry => sh.scheduler.wake(),
            Answered::Done(s) => log::info!("command {id} on {sn}: state {s}"),
            Answered::Unknown => sh.trust.count(Dropped::AnswerUnknown, p.topic, Some(sn)),
            Answered::WrongDevice => sh.trust.count(Dropped::AnswerWrongDevice, p.topic, Some(sn)),
            Answered::NotSent => sh.trust.count(Dropped::AnswerNotSent, p.topic, Some(sn)),
        }
        if matches!(answered, Answered::Retry | Answered::Done(_)) {
            route(sh, p.topic, p.payload);
        }
    }
}

/// The payload's `sn` when it is a string (what `believe` compares).
fn payload_sn(obj: &Map<String, Value>) -> Option<&str> {
    obj.get("sn").and_then(Value::as_str)
}

/// What the telemetry path reads of a report to believe and store it: its
/// `sn` (any JSON value: only a string can match), and whether it already
/// has a `revtime`. Deserializing only these (the rest is checked and
/// skipped, not built) is what keeps the batch's reading stage cheap: a
/// `Value` tree per message, re-serialized, was most of its time.
#[derive(Deserialize)]
struct ReportHead {
    #[serde(default)]
    sn: Value,
    #[serde(default, deserialize_with = "present")]
    revtime: bool,
}

/// True for a member that is there, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// A telemetry payload read as `ReportHead`, with its text: `None` unless
/// it is one JSON object in UTF-8 (a repeated `sn` or `revtime` member,
/// of which a `Value` would have kept the last, is refused too).
fn read_report(payload: &[u8]) -> Option<(ReportHead, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    // A derived struct also accepts a JSON array (its members in order): only an object is a report.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<ReportHead>(text).ok().map(|h| (h, text))
}

/// The stored text of a report: the device's own text with `revtime` put
/// first (`revtime_first`, as `splice_revtime` does without the parsed
/// map); one that already has a `revtime` is parsed and re-serialized with
/// the receipt time instead.
fn report_text(text: &str, has_revtime: bool, now: i64) -> Option<String> {
    if !has_revtime {
        return revtime_first(text, now);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => Some(with_revtime(o, now)),
        _ => None,
    }
}

/// A telemetry batch read and ready for its one transaction
/// (`telemetry_write`): the last report of each kind from each device, and
/// the other messages' touches, each sorted (instances sharing a
/// PostgreSQL database lock rows in one order). `messages`: how many the
/// batch had.
pub struct TelemetryWrite {
    pub rows: Vec<ReportRow>,
    pub touches: Vec<(String, i64)>,
    pub messages: u64,
}

/// A batch from the telemetry queue (`pipeline.rs`), read: believed and
/// routed message by message as `handle` does, the last report of each
/// kind from each device kept. What is not telemetry (a route-only topic)
/// is handled as `handle` does. The write is `telemetry_write`, on its own
/// thread, so the next batch is read while this one commits.
pub fn telemetry_read(sh: &Shared, batch: Vec<Msg>) -> TelemetryWrite {
    let messages = batch.len() as u64;
    let prefix = &sh.cfg.broker.prefix;
    let mut parsed = Vec::with_capacity(batch.len());
    for m in &batch {
        let dt = m.topic.strip_prefix(prefix.as_str()).and_then(|r| r.strip_prefix('/')).and_then(trust::classify);
        let Some(dt) = dt.filter(|_| !m.payload.is_empty()) else {
            handle(sh, &m.topic, &m.payload, m.retain, m.now);
            continue;
        };
        match read_report(&m.payload) {
            Some((head, text)) => parsed.push((m, dt, head, text)),
            None => log::warn!("{:?}: payload is not one JSON object (or repeats sn or revtime), dropped", m.topic),
        }
    }
    // New per-device serials marked in one transaction, not one each.
    let fresh: Vec<String> = parsed
        .iter()
        .filter_map(|(_, dt, h, _)| dt.sn.filter(|t| valid_sn(t) && h.sn.as_str() == Some(*t)))
        .filter(|t| !sh.trust.is_per_device_cached(t))
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !fresh.is_empty() {
        match sh.db.devices_mark_per_device_many(&fresh) {
            Ok(marked) => {
                log::info!("{} devices publish on their per-device topics: their shared-topic messages are ignored from now on", marked.len());
                sh.trust.remember_all(&marked);
            }
            Err(e) => log::error!("trust: {e}"),
        }
    }
    let mut last: HashMap<(String, Report), (&str, bool, i64)> = HashMap::new();
    let mut touches: HashMap<String, i64> = HashMap::new();
    for (m, dt, head, text) in parsed {
        let Some(sn) = sh.believe(&m.topic, dt, head.sn.as_str()) else { continue };
        route(sh, &m.topic, &m.payload);
        let kind = match dt.kind {
            Kind::Sys => Report::Sys,
            Kind::Procs => Report::Procs,
            Kind::Versions => Report::Versions,
            _ => {
                let t = touches.entry(sn).or_insert(m.now);
                *t = (*t).max(m.now);
                continue;
            }
        };
        // Only the last of a device's reports of a kind is written: its text is made for it alone.
        last.insert((sn, kind), (text, head.revtime, m.now));
    }
    let mut rows: Vec<ReportRow> =
        last.into_iter().filter_map(|((sn, kind), (text, has_revtime, now))| Some(ReportRow { text: report_text(text, has_revtime, now)?, sn, kind, now })).collect();
    rows.sort_by(|a, b| (a.sn.as_str(), a.kind.column()).cmp(&(b.sn.as_str(), b.kind.column())));
    let mut touches: Vec<(String, i64)> = touches.into_iter().collect();
    touches.sort();
    TelemetryWrite { rows, touches, messages }
}

/// A read batch's one transaction. Returns where its time went (`None`:
/// nothing to write, or the write failed: counted and logged).
pub fn telemetry_write(sh: &Shared, w: &TelemetryWrite) -> Option<crate::db::batch::TxTiming> {
    let (rows, touches) = (&w.rows, &w.touches);
    if rows.is_empty() && touches.is_empty() {
        return None;
    }
    match sh.db.devices_report_batch(rows, touches) {
        Ok((_, timing)) => Some(timing),
        Err(e) => {
            sh.ingest.figures.write_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::error!("ingest: a batch of {} reports not written: {e}", rows.len());
            None
        }
    }
}

/// `sn` is the topic's serial, which the payload's `sn` equals (`believe`).
fn state(sh: &Shared, sn: &str, obj: &Map<String, Value>, retain: bool, now: i64) -> Result<(), String> {
    let online = obj.get("online").and_then(Value::as_bool).ok_or("no boolean 'online'")?;
    let boot = obj.get("bootTime").and_then(Value::as_i64);
    let ver = obj.get("ver").and_then(Value::as_str);
    // v2 births say whether the agent requires signed commands; a v1 birth does not (unknown).
    let signed = obj.get("signed").and_then(Value::as_bool);
    if online && signed == Some(false) {
        log::warn!("device {sn} accepts UNSIGNED commands (no trusted key configured)");
    }
    let changed = sh.db.device_state(sn, online, boot, ver, signed, now)?;
    if changed {
        log::info!("device {sn} {}{}", if online { "online" } else { "offline" }, if retain { " (retained)" } else { "" });
        sh.callback("device", json!({"type": "device", "sn": sn, "online": online, "time": now, "bootTime": boot.unwrap_or(-1)}));
    }
    if online && sh.db.commands_wake(sn, now)? > 0 {
        sh.scheduler.wake();
    }
    Ok(())
}

/// Stored as the batch stores it: the device's text with `revtime` first.
fn report(sh: &Shared, sn: &str, kind: Report, raw: &[u8], obj: Map<String, Value>, now: i64) -> Result<(), String> {
    sh.db.device_report(sn, kind, &splice_revtime(&String::from_utf8_lossy(raw), obj, now), now)
}

fn periph(sh: &Shared, sn: &str, obj: Map<String, Value>, now: i64) -> Result<(), String> {
    let text = |k: &str| match obj.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let nid = text("nId").filter(|s| !s.is_empty() && s.len() <= 128).ok_or("no valid 'nId'")?;
    let gw = text("gwId").unwrap_or_else(|| sn.to_string());
    let kind = text("kind").unwrap_or_default();
    let online = obj.get("online").and_then(Value::as_bool).ok_or("no boolean 'online'")?;
    let msg = obj.get("msg").map(|m| m.to_string()).unwrap_or_default();
    if sh.db.periph_update(sn, &nid, &gw, &kind, online, &msg, now)? {
        sh.callback("peripheral", json!({"type": "peripheral", "sn": sn, "nId": nid, "gwId": gw, "kind": kind, "online": online, "time": now}));
    }
    Ok(())
}

/// An answer from `sn` (on its own answer topic, or on the shared one for a
/// v1 device: `believe`), for a command the platform sent to `sn`. True
/// when it was taken (else it is counted and changes nothing).
fn answer(sh: &Shared, topic: &str, sn: &str, obj: Map<String, Value>, raw: &str, now: i64) -> Result<bool, String> {
    let _ = sh.db.device_touch(sn, now);
    let Some(id) = obj.get("id").and_then(crate::ids::parse) else {
        sh.trust.count(Dropped::AnswerUnknown, topic, Some(sn));
        return Ok(false);
    };
    let ok = obj.get("status").and_then(Value::as_str) == Some("ok");
    let reason = obj.get("d").and_then(|d| d.get("msg")).and_then(Value::as_str).unwrap_or("").chars().take(500).collect::<String>();
    let response = splice_revtime(raw, obj, now);
    // Secrets in an answer (a VPN user's passwd, …) are never stored.
    let response = crate::secrets::mask_text(&response).unwrap_or(response);
    let a = Answer { id, sn, ok, reason: &reason, response: &response };
    let answered = sh.db.command_answer(&a, now, sh.cfg.retry_delay)?;
    let taken = matches!(answered, Answered::Retry | Answered::Done(_));
    match answered {
        Answered::Retry => sh.scheduler.wake(),
        Answered::Done(s) => log::info!("command {id} on {sn}: state {s}"),
        Answered::Unknown => sh.trust.count(Dropped::AnswerUnknown, topic, Some(sn)),
        Answered::WrongDevice => sh.trust.count(Dropped::AnswerWrongDevice, topic, Some(sn)),
        Answered::NotSent => sh.trust.count(Dropped::AnswerNotSent, topic, Some(sn)),
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revtime_added_keys_sorted() {
        let Value::Object(o) = serde_json::from_str(r#"{"sn":"X","time":5,"d":{"load":0.1}}"#).unwrap() else { panic!() };
        assert_eq!(with_revtime(o, 7), r#"{"d":{"load":0.1},"revtime":7,"sn":"X","time":5}"#);
        let raw = r#" {"id": 201811260000000001, "status":"ok", "d":{"result":"cm9vdA=="}}"#;
        let Value::Object(o) = serde_json::from_str(raw).unwrap() else { panic!() };
        let s = splice_revtime(raw, o, 9);
        assert_eq!(s, r#"{"revtime":9,"id": 201811260000000001, "status":"ok", "d":{"result":"cm9vdA=="}}"#);
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap()["id"].as_u64(), Some(201811260000000001));
        let Value::Object(o) = serde_json::from_str("{}").unwrap() else { panic!() };
        assert_eq!(splice_revtime("{}", o, 9), r#"{"revtime":9}"#);
        let Value::Object(o) = serde_json::from_str(r#"{"revtime":1}"#).unwrap() else { panic!() };
        assert_eq!(splice_revtime(r#"{"revtime":1}"#, o, 9), r#"{"revtime":9}"#);
        assert!(valid_sn("8CFCA0107D1B"));
    }

    #[test]
    fn a_report_is_read_for_its_serial_and_stored_as_sent_with_revtime_first() {
        let raw = br#" {"time":5,"sn":"X","d":{"load":0.10}}"#;
        let (h, text) = read_report(raw).unwrap();
        assert_eq!((h.sn.as_str(), h.revtime), (Some("X"), false));
        assert_eq!(report_text(text, h.revtime, 7).unwrap(), r#"{"revtime":7,"time":5,"sn":"X","d":{"load":0.10}}"#);
        let (h, _) = read_report(br#"{"sn":5}"#).unwrap();
        assert_eq!(h.sn.as_str(), None, "a number is no serial");
        let (h, text) = read_report(br#"{"revtime":null,"sn":"X"}"#).unwrap();
        assert!(h.revtime, "a revtime member, even null, is replaced");
        assert_eq!(report_text(text, h.revtime, 9).unwrap(), r#"{"revtime":9,"sn":"X"}"#);
        assert_eq!(report_text("{}", false, 9).unwrap(), r#"{"revtime":9}"#);
        for bad in [&br#"["X"]"#[..], b"{\"sn\":\"X\"", br#"{"sn":"X","sn":"Y"}"#, b"{\"sn\":\"\xff\"}", b"{} {}", b"null", b""] {
            assert!(read_report(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(!valid_sn("a/b"));
        assert!(!valid_sn(""));
    }
}
