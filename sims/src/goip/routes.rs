//! The simulated GoIP's HTTP endpoints (seed §3–§10). Each handler returns
//! its answer and the pushes it causes; pushes are sent after the state
//! lock is released.

use super::state::{Push, SessionRec, SimPort, SimTask, State, TaskState};
use super::vendor::{self, number, words, Cipher, Selection};
use crate::{SimRequest, SimResponse};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

type Out = (SimResponse, Vec<Push>);

fn ok(v: Value) -> Out {
    (SimResponse::json(&v), Vec::new())
}

fn unauthorized(s: &mut State, why: &str) -> Out {
    s.login_failures += 1;
    (SimResponse::json_status(401, &json!({"code": 401, "reason": format!("Unauthorized: {why}")})), Vec::new())
}

/// Query parameter, name case-insensitive (the seed writes `Username=`).
fn param(q: &[(String, String)], k: &str) -> Option<String> {
    q.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone())
}

pub(super) fn handle(s: &mut State, req: &SimRequest) -> Out {
    let q = req.query_pairs();
    let path = req.path.as_str();
    if vendor::SESSION_PATHS.contains(&path) {
        return handshake(s, path, &q);
    }
    let body = match authenticate(s, path, &q, &req.body) {
        Ok(b) => b,
        Err(out) => return out,
    };
    let json_body = if body.is_empty() { None } else { parse_json(&body) };
    if !body.is_empty() && json_body.is_none() {
        return (SimResponse::json_status(400, &json!({"code": 400, "reason": "Bad JSON"})), Vec::new());
    }
    let b = json_body.unwrap_or(Value::Null);
    match path {
        "/goip_get_status.html" => get_status(s, &q),
        "/goip_send_cmd.html" => send_cmd(s, &q, &b),
        "/goip_post_sms.html" => post_sms(s, &b),
        "/goip_get_sms.html" => get_sms(s, &q),
        "/goip_pause_sms.html" => task_control(s, &b, TaskState::Queued, TaskState::Paused),
        "/goip_resume_sms.html" => task_control(s, &b, TaskState::Paused, TaskState::Queued),
        "/goip_remove_sms.html" => remove_tasks(s, &b),
        "/goip_get_tasks.html" => get_tasks(s, &q),
        "/goip_get_sms_stat.html" => sms_stats(s, &q),
        "/goip_get_call_stat.html" => call_stats(s, &q),
        _ => (SimResponse::text(404, "Not Found"), Vec::new()),
    }
}

fn handshake(s: &mut State, path: &str, q: &[(String, String)]) -> Out {
    let fail = |s: &mut State, code: i64, desc: &str| {
        s.login_failures += 1;
        ok(json!({"code": code, "desc": desc}))
    };
    let (Some(user), Some(cnonce), Some(auth)) = (param(q, "username"), param(q, "cnonce"), param(q, "auth")) else {
        return fail(s, 1, "username, cnonce and auth are required");
    };
    let mode = match Cipher::from_wire(&param(q, "crypt").unwrap_or_default()) {
        Some(m) => m,
        None => return fail(s, 2, "unsupported crypt"),
    };
    if user != s.cfg.username || auth != vendor::handshake_auth(&user, &s.cfg.password, &cnonce, path) {
        return fail(s, 3, "authentication failed");
    }
    let expires = param(q, "expires").and_then(|e| e.parse().ok()).filter(|&e: &u64| e > 0).unwrap_or(180);
    let session = s.new_session_id();
    s.handshakes += 1;
    s.sessions.insert(
        session.clone(),
        SessionRec { initial_auth: auth, crypt: mode, last_seq: 0, expires: Duration::from_secs(expires), last_use: Instant::now() },
    );
    ok(json!({"code": 0, "desc": "OK", "session": session, "expires": expires}))
}

/// Check credentials or session auth; returns the (decrypted) body.
fn authenticate(s: &mut State, path: &str, q: &[(String, String)], body: &[u8]) -> Result<Vec<u8>, Out> {
    if let Some(session) = param(q, "session") {
        let seq: u64 = param(q, "seq").and_then(|x| x.parse().ok()).ok_or_else(|| unauthorized(s, "seq"))?;
        let auth = param(q, "auth").unwrap_or_default();
        let (user, pass, order) = (s.cfg.username.clone(), s.cfg.password.clone(), s.cfg.auth_order);
        let Some(rec) = s.sessions.get(&session).cloned() else {
            return Err(unauthorized(s, "unknown session"));
        };
        if rec.last_use.elapsed() > rec.expires {
            s.sessions.remove(&session);
            return Err(unauthorized(s, "session expired"));
        }
        if seq <= rec.last_seq {
            return Err(unauthorized(s, "seq not increasing"));
        }
        if auth != vendor::request_auth(order, &user, &pass, &session, path, seq) {
            return Err(unauthorized(s, "bad auth"));
        }
        let key = vendor::body_key(&user, &pass, &rec.initial_auth, &session, seq);
        let plain = vendor::decrypt_body(rec.crypt, &key, body)
            .map_err(|e| (SimResponse::json_status(400, &json!({"code": 400, "reason": e})), Vec::new()))?;
        if let Some(r) = s.sessions.get_mut(&session) {
            r.last_seq = seq;
            r.last_use = Instant::now();
            if let Some(e) = param(q, "expires").and_then(|e| e.parse().ok()).filter(|&e: &u64| e > 0) {
                r.expires = Duration::from_secs(e);
            }
        }
        return Ok(plain);
    }
    // Seed §6.3.1.2: URL parameters are in the query of a GET and, for a
    // POST, attributes of the body's JSON; the seed's own examples put them
    // in the query of POSTs too. A real device has to take both.
    let in_body = |k: &str| -> Option<String> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let o = v.as_object()?;
        o.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).and_then(|(_, v)| v.as_str().map(str::to_string))
    };
    let user = param(q, "username").or_else(|| in_body("username"));
    let pass = param(q, "password").or_else(|| in_body("password"));
    if user.as_deref() == Some(s.cfg.username.as_str()) && pass.as_deref() == Some(s.cfg.password.as_str()) {
        s.body_credentials += u64::from(param(q, "username").is_none());
        Ok(body.to_vec())
    } else {
        Err(unauthorized(s, "Invalid User"))
    }
}

fn get_status(s: &mut State, q: &[(String, String)]) -> Out {
    if let Some(url) = param(q, "url") {
        s.status_url = Some(url).filter(|u| !u.is_empty());
        s.last_status_push = Instant::now();
    }
    if let Some(p) = param(q, "period").and_then(|p| p.parse().ok()) {
        s.period = p;
    }
    let all = param(q, "all_sims").as_deref() == Some("1");
    ok(s.dev_status(all))
}

/// A command's answer. Success is `"code": 0` as the seed's example of
/// `goip_send_cmd.html` shows (§6.4.2). The seed lists no error codes for
/// commands; the simulator answers 400 with the task table's wording
/// ("Invalid Port", "Invalid CMD").
fn cmd_answer(code: i64, reason: &str) -> Out {
    ok(json!({"code": code, "reason": reason}))
}

const CMD_OK: i64 = 0;

/// A JSON body as the device reads it: trailing NULs and whitespace ignored.
fn parse_json(body: &[u8]) -> Option<Value> {
    let end = body.iter().rposition(|b| *b != 0 && !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    serde_json::from_slice(body.get(..end)?).ok()
}

fn send_cmd(s: &mut State, q: &[(String, String)], b: &Value) -> Out {
    let op = param(q, "op").or_else(|| b.get("op").and_then(Value::as_str).map(String::from)).unwrap_or_default();
    let mut logged = b.clone();
    if logged.is_null() {
        logged = json!({"op": op});
    }
    s.commands.push(logged);
    const RESERVED: &[&str] = &["op", "version", "username", "password", "session", "seq", "auth", "expires"];
    let names = q.iter().filter(|(k, _)| !RESERVED.iter().any(|r| k.eq_ignore_ascii_case(r)));
    match op.as_str() {
        // The seed shows no answer of op=get; the simulator puts each asked
        // name beside code and reason, "" for one never set.
        "get" => {
            let mut v = json!({"code": CMD_OK, "reason": "OK"});
            for (k, _) in names {
                v[k] = json!(s.params.get(k).cloned().unwrap_or_default());
            }
            ok(v)
        }
        "set" => {
            let pairs: Vec<(String, String)> = names.cloned().collect();
            for (k, val) in pairs {
                s.params.insert(k, val);
            }
            cmd_answer(CMD_OK, "OK")
        }
        "lock" | "unlock" | "switch" | "reset" => port_op(s, &op, b.get("ports")),
        "multiple" => {
            let ops = b.get("ops").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut pushes = Vec::new();
            for o in ops {
                let op = o.get("op").and_then(Value::as_str).unwrap_or_default().to_string();
                let (resp, p) = port_op(s, &op, o.get("ports"));
                let code = serde_json::from_slice::<Value>(&resp.body).ok().and_then(|v| v.get("code").and_then(number));
                if resp.status != 200 || code != Some(CMD_OK) {
                    return (resp, pushes);
                }
                pushes.extend(p);
            }
            (SimResponse::json(&json!({"code": CMD_OK, "reason": "OK"})), pushes)
        }
        "save" => cmd_answer(CMD_OK, "OK"),
        "reboot" => {
            s.boots += 1;
            s.power_on();
            cmd_answer(CMD_OK, "OK")
        }
        _ => cmd_answer(400, "Invalid CMD"),
    }
}

/// lock → state 12, unlock/reset → registering again, switch → active slot.
fn port_op(s: &mut State, op: &str, ports: Option<&Value>) -> Out {
    let Some(spec) = ports.and_then(Value::as_str).and_then(Selection::read) else {
        return cmd_answer(400, "Invalid Port");
    };
    let idx = s.select(&spec);
    if idx.is_empty() {
        return cmd_answer(400, "Invalid Port");
    }
    let now = Instant::now();
    for &i in &idx {
        let reg = s.cfg.register_after;
        let slots = s.cfg.slots;
        let p = &mut s.ports[i];
        match op {
            "lock" => p.state = 12,
            "unlock" | "reset" => {
                p.state = if p.has_sim { 2 } else { 0 };
                p.registers_at = now + reg;
            }
            "switch" => {
                match spec.slot_for(p.no) {
                    Some(sl) if sl <= slots => {
                        p.slot = sl;
                        p.state = if p.has_sim { 2 } else { 0 };
                        p.registers_at = now + reg;
                    }
                    _ => return cmd_answer(400, "Invalid Port"),
                }
            }
            _ => return cmd_answer(400, "Invalid CMD"),
        }
    }
    let mut pushes = Vec::new();
    if let Some(url) = s.status_url.clone() {
        for i in idx {
            if let Some(b) = s.port_status(i) {
                pushes.push((url.clone(), b));
            }
        }
    }
    (SimResponse::json(&json!({"code": CMD_OK, "reason": "OK"})), pushes)
}

fn post_sms(s: &mut State, b: &Value) -> Out {
    let Some(o) = b.as_object() else {
        return ok(json!({"code": 400, "reason": "Bad Request"}));
    };
    if let Some(u) = words(o.get("sms_url")) {
        s.params.insert("sms_url".into(), u);
    }
    let sr_url = words(o.get("sr_url"));
    let tasks = o.get("tasks").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut status = Vec::new();
    for t in tasks {
        let (tid, st) = accept_task(s, &t, sr_url.clone());
        status.push(json!({"tid": tid, "status": st}));
    }
    ok(json!({"code": 200, "reason": "OK", "type": "task-status", "status": status}))
}

fn accept_task(s: &mut State, t: &Value, sr_url: Option<String>) -> (i64, &'static str) {
    let empty = Map::new();
    let o = t.as_object().unwrap_or(&empty);
    let Some(tid) = o.get("tid").and_then(number) else { return (0, "11 TID Expected") };
    let Some(to) = words(o.get("to")) else { return (tid, "9 TO expected") };
    let sms = words(o.get("sms"));
    if sms.is_none() && o.get("smstype").and_then(number) != Some(1) {
        return (tid, "8 SMS expected");
    }
    let from = words(o.get("from"));
    if let Some(f) = &from {
        match Selection::read(f) {
            Some(spec) if !s.select(&spec).is_empty() => {}
            _ => return (tid, "2 Invalid Port"),
        }
    }
    if s.tasks.iter().any(|x| x.tid == tid && x.state != TaskState::Removed) {
        return (tid, "13 Duplicated TaskId");
    }
    let to: Vec<String> = to.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
    s.tasks.push(SimTask {
        tid,
        from,
        to,
        sms: sms.unwrap_or_default(),
        state: TaskState::Queued,
        raw: t.clone(),
        sr_url: words(o.get("sr_url")).or(sr_url),
        due: Instant::now() + s.cfg.send_delay,
    });
    (tid, "0 OK")
}

fn get_sms(s: &mut State, q: &[(String, String)]) -> Out {
    let start: i64 = param(q, "sms_id").and_then(|x| x.parse().ok()).unwrap_or(1).max(1);
    let num: usize = param(q, "sms_num").and_then(|x| x.parse().ok()).unwrap_or(0);
    let del = param(q, "sms_del").as_deref() == Some("1");
    let limit = if num == 0 { usize::MAX } else { num };
    let picked: Vec<(i64, Value)> = s.inbox.iter().filter(|(id, _)| *id >= start).take(limit).cloned().collect();
    let next = picked.last().map_or(start.min(s.next_sms_id), |(id, _)| id + 1);
    if del {
        s.inbox.retain(|(id, _)| !picked.iter().any(|(p, _)| p == id));
    }
    let data: Vec<Value> = picked.into_iter().map(|(_, r)| r).collect();
    ok(json!({"code": 0, "reason": "OK", "ssrc": s.ssrc, "sms_num": data.len(), "next_sms": next, "data": data}))
}

fn tids_of(b: &Value) -> Option<Vec<i64>> {
    b.get("tids").and_then(Value::as_array).map(|a| a.iter().filter_map(number).collect())
}

/// pause (Queued → Paused) and resume (Paused → Queued).
fn task_control(s: &mut State, b: &Value, from: TaskState, to: TaskState) -> Out {
    let Some(tids) = tids_of(b) else {
        for t in s.tasks.iter_mut().filter(|t| t.state == from) {
            t.state = to;
        }
        return ok(json!({"code": 200, "reason": "OK"}));
    };
    let results: Vec<Value> = tids
        .into_iter()
        .map(|tid| match s.tasks.iter_mut().find(|t| t.tid == tid && t.state == from) {
            Some(t) => {
                t.state = to;
                json!({"tid": tid, "status": "0 OK"})
            }
            None => json!({"tid": tid, "status": "11 TID Expected"}),
        })
        .collect();
    ok(json!({"code": 200, "reason": "OK", "results": results}))
}

fn remove_tasks(s: &mut State, b: &Value) -> Out {
    let waiting = |t: &SimTask| matches!(t.state, TaskState::Queued | TaskState::Paused);
    let Some(tids) = tids_of(b) else {
        for t in s.tasks.iter_mut().filter(|t| waiting(t)) {
            t.state = TaskState::Removed;
        }
        return ok(json!({"code": 200, "reason": "OK"}));
    };
    let results: Vec<Value> = tids
        .into_iter()
        .map(|tid| match s.tasks.iter_mut().find(|t| t.tid == tid && waiting(t)) {
            Some(t) => {
                t.state = TaskState::Removed;
                json!({"tid": tid, "status": "0 OK"})
            }
            None => json!({"tid": tid, "status": "11 TID Expected"}),
        })
        .collect();
    ok(json!({"code": 200, "reason": "OK", "results": results}))
}

fn get_tasks(s: &mut State, q: &[(String, String)]) -> Out {
    let Some(port) = param(q, "port").and_then(|p| p.parse::<u16>().ok()) else {
        return ok(json!({"code": 400, "reason": "port expected"}));
    };
    let pos: usize = param(q, "pos").and_then(|x| x.parse().ok()).unwrap_or(0);
    let num: usize = param(q, "num").and_then(|x| x.parse().ok()).unwrap_or(10);
    let content = param(q, "has_content").as_deref() == Some("1");
    let on_port = |t: &&SimTask| {
        matches!(t.state, TaskState::Queued | TaskState::Paused)
            && t.from
                .as_deref()
                .and_then(Selection::read)
                .is_none_or(|spec| spec.has_port(port))
    };
    let all: Vec<&SimTask> = s.tasks.iter().filter(on_port).collect();
    let rows: Vec<Value> = all
        .iter()
        .skip(pos)
        .take(num)
        .map(|t| {
            let mut v = json!({"tid": t.tid, "state": (t.state == TaskState::Paused) as u8, "from": t.from.clone().unwrap_or_default(),
                "to": t.to.join(","), "chs": "utf8", "coding": 0});
            if content {
                v["sms"] = json!(t.sms);
            }
            v
        })
        .collect();
    ok(json!({"code": 200, "reason": "OK", "total_num": all.len(), "task_num": rows.len(), "tasks": rows}))
}

/// A statistics answer: one entry per port of the `ports` selection (all
/// when absent), or `Invalid Port`.
fn port_stats(s: &State, q: &[(String, String)], entry: impl Fn(&State, &SimPort) -> Value) -> Out {
    let idx: Vec<usize> = match param(q, "ports") {
        None => (0..s.ports.len()).collect(),
        Some(p) => match Selection::read(&p) {
            Some(spec) => s.select(&spec),
            None => return ok(json!({"code": 400, "reason": "Invalid Port"})),
        },
    };
    let stats: Vec<Value> = idx.into_iter().filter_map(|i| s.ports.get(i)).map(|p| entry(s, p)).collect();
    ok(json!({"code": 200, "reason": "OK", "count": stats.len(), "stats": stats}))
}

fn sms_stats(s: &mut State, q: &[(String, String)]) -> Out {
    port_stats(s, q, |s, p| {
        let label = State::port_label(p);
        let received = s.inbox.iter().filter(|(_, r)| r.get(1).and_then(Value::as_str) == Some(label.as_str())).count();
        let mine = |t: &&SimTask| t.from.as_deref().and_then(Selection::read).map_or(p.no == 1, |spec| spec.has_port(p.no));
        let tasks: Vec<&SimTask> = s.tasks.iter().filter(mine).collect();
        let sent: Vec<&String> = tasks.iter().filter(|t| t.state == TaskState::Sent).flat_map(|t| t.to.iter()).collect();
        let failed = sent.iter().filter(|n| !s.cfg.fail_prefix.is_empty() && n.starts_with(&s.cfg.fail_prefix)).count();
        let unsent: usize = tasks.iter().filter(|t| matches!(t.state, TaskState::Queued | TaskState::Paused)).map(|t| t.to.len()).sum();
        json!({"port": p.no, "slot": p.slot, "received": received, "sent": sent.len(), "sent_ok": sent.len() - failed,
            "sent_failed": failed, "con_failed": failed, "unsent": unsent, "sending": 0})
    })
}

/// Call counters are fixed per port (the simulator places no calls).
fn call_stats(s: &mut State, q: &[(String, String)]) -> Out {
    port_stats(s, q, |_, p| {
        let n = p.no as i64;
        json!({"port": p.no, "slot": p.slot, "calls": 10 * n, "alerted": 8 * n, "connected": 5 * n, "con_failed": 0,
            "nc": format!("{}/{}", 5 * n, 10 * n), "pdd": 3, "acd": 60, "asr": 50, "tcd": 5 * n, "act_tcd": 300 * n})
    })
}
