//! Which command created which GoIP task, durably: `status-report` pushes
//! name only the task id, and delivery reports (`recv-sms` rows with
//! flag 1) name nothing but the port, the recipient and a time — yet both
//! events must carry the `id` of the `sms` command (PROTOCOL.md).
//!
//! Per task: the command id, the recipients, when it was sent (agent
//! clock), and per recipient the port and device time the GoIP reported
//! in the task's `sdr` details. A delivery report is matched to the latest
//! task on that device that sent to that number, from that port when the
//! port is known, no later than the report.
//!
//! Bounded (oldest tasks forgotten first: at most [`CAP`] tasks and
//! [`MAX_NUMBERS`] recipients in all) and written atomically to
//! `tids.json` on each change (sends and reports are rare, the file small).

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Tasks remembered.
pub const CAP: usize = 256;
/// Recipients remembered over all tasks.
pub const MAX_NUMBERS: usize = 8192;
/// A delivery report later than this after the send is not matched
/// (an SMS centre keeps a message a few days at most).
const MAX_AGE: i64 = 7 * 86400;
/// Tolerated difference between the agent's and the GoIP's clocks when
/// only the agent's send time is known.
const SKEW: i64 = 3600;

#[derive(Debug, Clone, PartialEq)]
struct Sent {
    number: String,
    port: String,
    /// Device time of the send.
    time: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
struct Task {
    tid: i64,
    device: String,
    /// The command id as received.
    id: Value,
    /// Agent time of the send.
    at: i64,
    numbers: Vec<String>,
    sent: Vec<Sent>,
}

pub struct Tids {
    path: PathBuf,
    items: VecDeque<Task>,
}

/// Digits of a number (`+86 138-0000` → `861380000`).
fn digits(n: &str) -> String {
    n.chars().filter(char::is_ascii_digit).collect()
}

/// Same number, allowing one side in international form (`+8613800…`
/// against `13800…`): equal digits, or one ends with the other and the
/// shorter has at least 7 digits.
pub fn same_number(a: &str, b: &str) -> bool {
    let (a, b) = (digits(a), digits(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
    short == long || (short.len() >= 7 && long.ends_with(short.as_str()))
}

fn task_from(r: &Value) -> Option<Task> {
    let texts = |k: &str| -> Vec<String> {
        r.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    let sent = r
        .get("sent")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    Some(Sent {
                        number: x.get("number")?.as_str()?.to_string(),
                        port: x.get("port").and_then(Value::as_str).unwrap_or("").to_string(),
                        time: x.get("time").and_then(Value::as_i64),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Task {
        tid: r.get("tid")?.as_i64()?,
        device: r.get("device")?.as_str()?.to_string(),
        id: r.get("id").cloned().unwrap_or(Value::Null),
        at: r.get("at").and_then(Value::as_i64).unwrap_or(0),
        numbers: texts("numbers"),
        sent,
    })
}

fn task_json(t: &Task) -> Value {
    let sent: Vec<Value> = t.sent.iter().map(|s| json!({"number": s.number, "port": s.port, "time": s.time})).collect();
    json!({"tid": t.tid, "device": t.device, "id": t.id, "at": t.at, "numbers": t.numbers, "sent": sent})
}

impl Tids {
    /// Open (an unreadable file is a fresh start: the ids of older tasks are
    /// then `null` in their reports, nothing else is lost).
    pub fn open(dir: &Path) -> std::io::Result<Tids> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("tids.json");
        let items = match std::fs::read(&path).map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null)) {
            Ok(Value::Array(rows)) => rows.iter().filter_map(task_from).collect(),
            _ => VecDeque::new(),
        };
        let mut t = Tids { path, items };
        t.bound();
        Ok(t)
    }

    fn bound(&mut self) {
        while self.items.len() > CAP || (self.items.len() > 1 && self.items.iter().map(|t| t.numbers.len() + t.sent.len()).sum::<usize>() > MAX_NUMBERS) {
            self.items.pop_front();
        }
    }

    fn save(&self) -> std::io::Result<()> {
        let rows: Vec<Value> = self.items.iter().map(task_json).collect();
        crate::durable::write_atomic(&self.path, Value::Array(rows).to_string().as_bytes())
    }

    /// The command id of task `tid` on `device`.
    pub fn command_id(&self, device: &str, tid: i64) -> Option<Value> {
        self.items.iter().rev().find(|t| t.tid == tid && t.device == device).map(|t| t.id.clone())
    }

    /// Remember a task (durably) before it is sent.
    pub fn add(&mut self, device: &str, tid: i64, id: &Value, numbers: &[String]) -> std::io::Result<()> {
        let at = crate::util::unix_now() as i64;
        if let Some(t) = self.items.iter_mut().rev().find(|t| t.tid == tid && t.device == device && &t.id == id) {
            // A retry of the same command: the send time moves, nothing else.
            t.at = at;
        } else {
            let numbers = numbers.iter().take(MAX_NUMBERS).cloned().collect();
            self.items.push_back(Task { tid, device: device.to_string(), id: id.clone(), at, numbers, sent: Vec::new() });
        }
        self.bound();
        self.save()
    }

    /// The GoIP reported task `tid` sent to `number` from `port` at device
    /// time `time` (its `sdr` details). Returns whether anything changed.
    pub fn note_sent(&mut self, device: &str, tid: i64, details: &[(String, String, Option<i64>)]) -> std::io::Result<bool> {
        let Some(t) = self.items.iter_mut().rev().find(|t| t.tid == tid && t.device == device) else { return Ok(false) };
        let mut changed = false;
        for (number, port, time) in details {
            let s = Sent { number: number.clone(), port: port.clone(), time: *time };
            if !t.sent.contains(&s) && t.sent.len() < t.numbers.len().max(1) * 2 {
                t.sent.push(s);
                changed = true;
            }
        }
        if changed {
            self.bound();
            self.save()?;
        }
        Ok(changed)
    }

    /// The command whose message a delivery report is about: the latest
    /// task on `device` that sent to `number` (from `port` when the port of
    /// the send is known) no later than the report's device time `time`.
    pub fn match_delivery(&self, device: &str, port: &str, number: &str, time: i64) -> Option<Value> {
        let mut best: Option<(i64, &Task)> = None;
        for t in self.items.iter().filter(|t| t.device == device) {
            let sends: Vec<&Sent> = t.sent.iter().filter(|s| same_number(&s.number, number)).collect();
            let when = if !sends.is_empty() {
                // Known sends: the port must agree; device time against device time.
                let Some(s) = sends.iter().find(|s| s.port.is_empty() || s.port.eq_ignore_ascii_case(port)) else { continue };
                match s.time {
                    Some(st) if st <= time && time - st <= MAX_AGE => st,
                    Some(_) => continue,
                    None => t.at,
                }
            } else if t.numbers.iter().any(|n| same_number(n, number)) {
                // Only the agent's send time: allow for clock skew.
                if t.at - SKEW > time || time - t.at > MAX_AGE {
                    continue;
                }
                t.at
            } else {
                continue;
            };
            if best.is_none_or(|(w, _)| when >= w) {
                best = Some((when, t));
            }
        }
        best.map(|(_, t)| t.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_matched_by_port_number_and_time_across_reopen() {
        let d = std::env::temp_dir().join(format!("dma-tids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let now = crate::util::unix_now() as i64;
        {
            let mut t = Tids::open(&d).unwrap();
            t.add("g", 11, &json!(1), &["+8613800000001".into(), "10086".into()]).unwrap();
            t.add("g", 12, &json!("two"), &["13800000001".into()]).unwrap();
            t.note_sent("g", 11, &[("+8613800000001".into(), "1A".into(), Some(now - 50))]).unwrap();
            t.note_sent("g", 12, &[("13800000001".into(), "2A".into(), Some(now - 10))]).unwrap();
        }
        let t = Tids::open(&d).unwrap();
        assert_eq!(t.command_id("g", 12), Some(json!("two")));
        assert_eq!(t.match_delivery("g", "1A", "13800000001", now), Some(json!(1)), "port 1A: the first task");
        assert_eq!(t.match_delivery("g", "2A", "+8613800000001", now), Some(json!("two")));
        assert_eq!(t.match_delivery("g", "2A", "13800000001", now - 30), None, "a report before the send");
        assert_eq!(t.match_delivery("g", "3A", "10086", now), Some(json!(1)), "no port known: number and time");
        assert_eq!(t.match_delivery("h", "1A", "13800000001", now), None);
        assert!(!same_number("123", "0123"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
