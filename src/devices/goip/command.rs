//! `goip get|set` (PROTOCOL.md): the command body names an `op`; reading
//! ops take `get`, ops that change the device take `set`. The result is the
//! GoIP's JSON answer (after its code was checked), except `status`, which
//! answers the normalised `periph` message (the device's answer inside),
//! and `sms_inbox`, which adds the decoded `messages` to the answer.
//!
//! | op | method | body |
//! |---|---|---|
//! | `status` | get | — |
//! | `get` | get | `{"names": ["sms_url", …]}` |
//! | `sms_inbox` | get | `{"sms_id"?: 1, "sms_num"?: 50}` |
//! | `tasks` | get | `{"port": 1, "pos"?: 0, "num"?: 10, "content"?: false}` |
//! | `sms_stats`, `call_stats` | get | `{"ports"?: "all", "slots"?: "1-4", "type"?: 0..3}` |
//! | `lock`, `unlock`, `switch`, `reset` | set | `{"ports": "1A,4-32", "auto_fail_sim_switch"?: "0"}` |
//! | `save`, `reboot` | set | — |
//! | `set` | set | `{"params": {"sms_url": "http://…"}}` |
//! | `multiple` | set | `{"ops": [{"op": "lock", "ports": "1A"}, …]}` |
//! | `pause`, `resume`, `remove` | set | `{"tids"?: [1, 2]}` (all tasks without) |
//!
//! `pause`, `resume` and `remove` with `tids` answer per task: the result
//! adds `tasks` (`[{"tid", "ok", "code", "reason"}]`, in the order asked)
//! and `failed` (the tids the device did not act on). When any task failed
//! (or the device gave no verdict for it) the command fails — `status`
//! err — and its message names each failing task with the device's reason.
//! Without `tids` the device acts on every task and, as the seed says,
//! reports no per-task results.
//! | `sms_delete` | set | `{"sms_id": 1, "sms_num": 5}` |
//! | `status_push` | set | `{"url": "http://…", "period": 60}` |

use super::api::{check_code, CmdOp, TaskStatus};
use super::ports::PortSpec;
use super::push::{split_rows, Sms};
use super::{lenient, GoipClient, OK_200, OK_INBOX};
use crate::devices::{DeviceError, LanDevice};
use serde_json::{json, Map, Value};

/// Ops answered by `get`.
pub const GET_OPS: &[&str] = &["status", "get", "sms_inbox", "tasks", "sms_stats", "call_stats"];
/// Ops answered by `set`.
pub const SET_OPS: &[&str] =
    &["lock", "unlock", "switch", "reset", "save", "reboot", "set", "multiple", "pause", "resume", "remove", "sms_delete", "status_push"];

fn bad(m: impl Into<String>) -> DeviceError {
    DeviceError::BadRequest(m.into())
}

/// Run one command body.
pub fn run(c: &mut GoipClient, method: &str, body: &Value) -> Result<Value, DeviceError> {
    let b = match body {
        Value::Object(o) => o.clone(),
        Value::Null => Map::new(),
        _ => return Err(bad("body must be a JSON object")),
    };
    let op = b.get("op").and_then(Value::as_str).ok_or_else(|| bad("body needs \"op\""))?;
    let wanted = if GET_OPS.contains(&op) {
        "get"
    } else if SET_OPS.contains(&op) {
        "set"
    } else {
        return Err(bad(format!("unknown op {op:?}; get: {}; set: {}", GET_OPS.join(", "), SET_OPS.join(", "))));
    };
    if method != wanted {
        return Err(bad(format!("op {op} needs method {wanted}, not {method:?}")));
    }
    match op {
        "status" => c.poll().map(|s| s.msg),
        "get" => {
            let names = string_list(b.get("names"), "names")?.ok_or_else(|| bad("get needs \"names\": [parameter, …]"))?;
            let extra: Map<String, Value> = names.into_iter().map(|n| (n, Value::Null)).collect();
            c.send_cmd(CmdOp::Get, None, &extra)
        }
        "sms_inbox" => {
            let start = uint(&b, "sms_id")?.unwrap_or(1).max(1);
            let num = uint(&b, "sms_num")?.unwrap_or(c.sms_page as u64);
            let mut v = c.inbox_raw(start, num, false)?;
            check_code("get-sms", &v, OK_INBOX)?;
            add_messages(&mut v);
            Ok(v)
        }
        "tasks" => {
            let port = uint(&b, "port")?.ok_or_else(|| bad("tasks needs \"port\" (1-based)"))?;
            let port = u16::try_from(port).map_err(|_| bad("port out of range"))?;
            let pos = uint(&b, "pos")?.unwrap_or(0);
            let num = uint(&b, "num")?.unwrap_or(10);
            let content = b.get("content").is_some_and(|v| v.as_bool().unwrap_or(lenient::int(v) == Some(1)));
            let v = c.get_tasks_raw(port, clamp(pos), clamp(num), content)?;
            check_code("get-tasks", &v, OK_200)?;
            Ok(v)
        }
        "sms_stats" | "call_stats" => {
            let q = stats_query(&b)?;
            let res = if op == "sms_stats" { "/goip_get_sms_stat.html" } else { "/goip_get_call_stat.html" };
            let v = c.stats_raw(res, &q)?;
            check_code(op, &v, OK_200)?;
            Ok(v)
        }
        "lock" | "unlock" | "switch" | "reset" | "save" | "reboot" | "multiple" => {
            let cmd = CmdOp::parse(op).ok_or_else(|| bad("unknown op"))?;
            let ports = match b.get("ports") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(PortSpec::parse(s).map_err(bad)?),
                Some(_) => return Err(bad("ports must be a string such as \"1A,4-32\"")),
            };
            let mut extra = b.clone();
            extra.remove("op");
            extra.remove("ports");
            c.send_cmd(cmd, ports.as_ref(), &extra)
        }
        "set" => {
            let params = b.get("params").and_then(Value::as_object).filter(|p| !p.is_empty());
            let params = params.ok_or_else(|| bad("set needs \"params\": {name: value}"))?;
            if let Some((k, _)) = params.iter().find(|(_, v)| v.is_object() || v.is_array() || v.is_null()) {
                return Err(bad(format!("params.{k}: value must be a string, number or bool")));
            }
            c.send_cmd(CmdOp::Set, None, params)
        }
        "pause" | "resume" | "remove" => {
            let tids = match b.get("tids") {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) => {
                    Some(a.iter().map(lenient::int).collect::<Option<Vec<i64>>>().ok_or_else(|| bad("tids must be integers"))?)
                }
                Some(_) => return Err(bad("tids must be an array of task ids")),
            };
            if tids.as_ref().is_some_and(|t| t.is_empty()) {
                return Err(bad("tids is empty (leave it out to act on every task)"));
            }
            let res = format!("/goip_{op}_sms.html");
            let v = c.task_control_raw(&res, tids.as_deref())?;
            let o = check_code(op, &v, OK_200)?;
            match tids {
                None => Ok(v),
                Some(tids) => task_report(op, &tids, TaskStatus::list(lenient::field(o, "results"))?, v),
            }
        }
        "sms_delete" => {
            let start = uint(&b, "sms_id")?.ok_or_else(|| bad("sms_delete needs \"sms_id\""))?.max(1);
            let num = uint(&b, "sms_num")?.ok_or_else(|| bad("sms_delete needs \"sms_num\""))?;
            if num == 0 {
                return Err(bad("sms_num must be at least 1"));
            }
            let mut v = c.inbox_raw(start, num, true)?;
            check_code("get-sms", &v, OK_INBOX)?;
            add_messages(&mut v);
            Ok(v)
        }
        "status_push" => {
            let url = b.get("url").and_then(Value::as_str).filter(|u| !u.is_empty()).ok_or_else(|| bad("status_push needs \"url\""))?;
            let period = uint(&b, "period")?.unwrap_or(60);
            let v = c.status_raw(Some((url, clamp(period))))?;
            Ok(v)
        }
        _ => Err(bad(format!("unknown op {op:?}"))),
    }
    .and_then(|v| if v.is_object() { Ok(v) } else { Err(DeviceError::Protocol("answer is not a JSON object".into())) })
}

/// The per-task outcome of pause/resume/remove: the answer plus `tasks`
/// and `failed`; an error naming the failing tasks when any failed.
fn task_report(op: &str, asked: &[i64], results: Vec<TaskStatus>, mut answer: Value) -> Result<Value, DeviceError> {
    let mut tasks = Vec::with_capacity(asked.len());
    let mut failed: Vec<(i64, i64, String)> = Vec::new();
    for &tid in asked {
        match results.iter().find(|r| r.tid == tid) {
            Some(r) => {
                tasks.push(json!({"tid": tid, "ok": r.accepted(), "code": r.code, "reason": r.reason}));
                if !r.accepted() {
                    failed.push((tid, r.code, r.reason.clone()));
                }
            }
            None => {
                let why = "no result from the device".to_string();
                tasks.push(json!({"tid": tid, "ok": false, "code": Value::Null, "reason": why}));
                failed.push((tid, -1, why));
            }
        }
    }
    if let Some(&(_, code, _)) = failed.first() {
        let named: Vec<String> = failed.iter().map(|(tid, code, why)| format!("task {tid}: {code} {why}")).collect();
        let done: Vec<String> = tasks.iter().filter(|t| t["ok"] == true).map(|t| t["tid"].to_string()).collect();
        let done = if done.is_empty() { "none".to_string() } else { done.join(", ") };
        return Err(DeviceError::Device {
            code,
            msg: format!("{op}: {} of {} tasks failed ({}); done: {done}", failed.len(), asked.len(), named.join("; ")),
        });
    }
    if let Some(o) = answer.as_object_mut() {
        o.insert("tasks".into(), Value::Array(tasks));
        o.insert("failed".into(), json!([]));
    }
    Ok(answer)
}

/// Add `messages` (decoded rows) beside the inbox's `data`.
fn add_messages(v: &mut Value) {
    let rows = v.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
    let (sms, bad) = split_rows(&rows, Sms::from_value);
    if let Some(o) = v.as_object_mut() {
        o.insert("messages".into(), json!(sms));
        if !bad.is_empty() {
            o.insert("bad_rows".into(), json!(bad));
        }
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn uint(b: &Map<String, Value>, k: &str) -> Result<Option<u64>, DeviceError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            lenient::int(v).and_then(|n| u64::try_from(n).ok()).map(Some).ok_or_else(|| bad(format!("{k} must be a non-negative integer")))
        }
    }
}

fn string_list(v: Option<&Value>, k: &str) -> Result<Option<Vec<String>>, DeviceError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().filter(|s| !s.is_empty()).map(String::from))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad(format!("{k} must be non-empty strings"))),
        Some(_) => Err(bad(format!("{k} must be an array of strings"))),
    }
    .and_then(|l| match l {
        Some(l) if l.is_empty() => Err(bad(format!("{k} is empty"))),
        other => Ok(other),
    })
}

fn stats_query(b: &Map<String, Value>) -> Result<super::api::StatsQuery, DeviceError> {
    let text = |k: &str| b.get(k).and_then(lenient::text).filter(|s| !s.is_empty());
    let period = match uint(b, "type")? {
        None => Default::default(),
        Some(n) => super::api::StatsPeriod::from_code(n as i64)
            .ok_or_else(|| bad("type must be 0 (hour), 1 (two hours), 2 (today) or 3 (total)"))?,
    };
    Ok(super::api::StatsQuery { ports: text("ports"), slots: text("slots"), period })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(tid: i64, code: i64, reason: &str) -> TaskStatus {
        TaskStatus { tid, code, reason: reason.into() }
    }

    #[test]
    fn per_task_report() {
        let ok = task_report("pause", &[2, 3], vec![st(2, 0, "OK"), st(3, 0, "OK")], json!({"code": 200})).unwrap();
        assert_eq!(ok["tasks"][1], json!({"tid": 3, "ok": true, "code": 0, "reason": "OK"}));
        assert_eq!(ok["failed"], json!([]));
        let e = task_report("remove", &[5, 6, 7], vec![st(5, 0, "OK"), st(6, 11, "TID Expected")], json!({})).unwrap_err();
        let DeviceError::Device { code, msg } = e else { panic!("device error expected") };
        assert_eq!(code, 11);
        assert!(msg.contains("2 of 3 tasks failed"), "{msg}");
        assert!(msg.contains("task 6: 11 TID Expected") && msg.contains("task 7: -1 no result"), "{msg}");
        assert!(msg.ends_with("done: 5"), "{msg}");
    }
}
