//! Human-readable rendering of what devices publish and of command answers.

use base64::Engine as _;
use serde_json::Value;

/// Longest one-line rendering of a JSON value before it is cut.
const LINE_MAX: usize = 200;

/// `2024-05-01 12:00:00Z` from unix seconds (UTC, no time-zone database on routers).
pub fn fmt_time(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = dma_agent::agent::clock::civil(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}Z")
}

/// `3d 4h 05m` for an uptime.
pub fn fmt_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60, secs % 60);
    match (d, h) {
        (0, 0) => format!("{m}m {s:02}s"),
        (0, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h}h {m:02}m"),
    }
}

/// Cut to `max` characters (on a character boundary), marking the cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Base64 text decoded as (lossy) UTF-8; None when it is not base64.
pub fn unb64(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn compact(v: &Value) -> String {
    clip(&v.to_string(), LINE_MAX)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn kib(v: &Value) -> String {
    match v.as_f64() {
        Some(k) if k >= 1024.0 * 1024.0 => format!("{:.1} GiB", k / 1024.0 / 1024.0),
        Some(k) if k >= 1024.0 => format!("{:.1} MiB", k / 1024.0),
        Some(k) => format!("{k} KiB"),
        None => "?".into(),
    }
}

/// The exit code an answer maps to: 0 ok, 1 anything else.
pub fn answer_exit(resp: &Value) -> u8 {
    if resp.get("status").and_then(Value::as_str) == Some("ok") {
        0
    } else {
        1
    }
}

/// A command answer, decoded for people: status, reason, output.
pub fn answer(resp: &Value) -> String {
    let d = resp.get("d").cloned().unwrap_or(Value::Null);
    let method = if s(resp, "method").is_empty() { String::new() } else { format!(" {}", s(resp, "method")) };
    let exe = if s(&d, "exestatus").is_empty() { "?" } else { s(&d, "exestatus") };
    let mut out = format!(
        "answer {} from {}: {}{method} -> status {} (carried out: {exe})",
        resp.get("id").map(Value::to_string).unwrap_or_default(),
        s(resp, "sn"),
        s(resp, "command"),
        s(resp, "status"),
    );
    let out_w = &mut out;
    let mut line = |t: String| {
        out_w.push('\n');
        out_w.push_str(&t);
    };
    if !s(&d, "msg").is_empty() {
        line(format!("  msg: {}", s(&d, "msg")));
    }
    if let Some(code) = d.get("code").filter(|c| !c.is_null()) {
        line(format!("  exit code: {code}"));
    }
    let is_sh = s(resp, "command") == "sh";
    match d.get("result") {
        Some(r) if is_sh => match unb64(r) {
            Some(text) => line(format!("  stdout:\n{}", indent(&text))),
            None => line(format!("  result: {}", compact(r))),
        },
        Some(Value::Null) | None => {}
        Some(r) => line(format!("  result: {}", indent(&serde_json::to_string_pretty(r).unwrap_or_default()).trim_start())),
    }
    if let Some(text) = d.get("stderr").and_then(unb64).filter(|t| !t.is_empty()) {
        line(format!("  stderr:\n{}", indent(&text)));
    }
    for flag in ["stdoutTruncated", "stderrTruncated", "timedOut"] {
        if d.get(flag) == Some(&Value::Bool(true)) {
            line(format!("  {flag}: true{}", d.get("cap").map(|c| format!(" (cap {c} bytes)")).unwrap_or_default()));
        }
    }
    out
}

fn indent(text: &str) -> String {
    let t = text.strip_suffix('\n').unwrap_or(text);
    t.lines().map(|l| format!("    | {l}")).collect::<Vec<_>>().join("\n")
}

/// One message a device published, in one line (answers: several).
pub fn message(prefix: &str, topic: &str, payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return format!("{topic:<16} {}", clip(&text, LINE_MAX));
    };
    let rest = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).unwrap_or(topic);
    let sn = s(&v, "sn");
    let d = v.get("d").cloned().unwrap_or(Value::Null);
    let kind = rest.split('/').next().unwrap_or(rest);
    let body = match kind {
        "state" => {
            let sn = rest.strip_prefix("state/").unwrap_or(sn);
            if v.get("online") == Some(&Value::Bool(true)) {
                let boot = v.get("bootTime").and_then(Value::as_u64).map(fmt_time).unwrap_or_default();
                return format!("{:<9} {sn:<14} ONLINE  ver {} booted {boot}", "state", s(&v, "ver"));
            }
            return format!("{:<9} {sn:<14} OFFLINE", "state");
        }
        "sys" => format!(
            "free {} used {} load {} uptime {}",
            kib(&d["free"]),
            kib(&d["used"]),
            d.get("load").map(Value::to_string).unwrap_or_default(),
            d.get("uptime").and_then(Value::as_u64).map(fmt_duration).unwrap_or_default()
        ),
        "procs" => d
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        let cpu = p.get("cpu").map(Value::to_string).unwrap_or_default();
                        format!("{} {} {cpu}%", s(p, "n"), kib(&p["mem"]))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        "versions" => d
            .as_array()
            .map(|a| a.iter().map(|p| format!("{} {}", s(p, "n"), s(p, "v"))).collect::<Vec<_>>().join(" | "))
            .unwrap_or_default(),
        "periph" => format!(
            "{:<4} {:<16} {:<7} {}",
            s(&v, "kind"),
            s(&v, "nId"),
            if v.get("online") == Some(&Value::Bool(true)) { "online" } else { "OFFLINE" },
            v.get("msg").map(compact).unwrap_or_default()
        ),
        "event" => {
            let mut rest = v.clone();
            if let Some(o) = rest.as_object_mut() {
                for k in ["sn", "time", "type"] {
                    o.remove(k);
                }
            }
            format!("{} {}", s(&v, "type"), compact(&rest))
        }
        "resp" => return answer(&v),
        "cmd" => format!("-> {} {} {}", s(&v, "command"), s(&v, "method"), compact(v.get("d").unwrap_or(&Value::Null))),
        _ => compact(&v),
    };
    format!("{kind:<9} {sn:<14} {}", clip(&body, LINE_MAX * 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(fmt_time(1_542_604_400), "2018-11-19 05:13:20Z");
        assert_eq!(fmt_time(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(fmt_duration(3725), "1h 02m");
    }

    #[test]
    fn sh_answer_decoded() {
        let r = json!({"id": 5, "sn": "AB", "command": "sh", "method": "", "status": "err",
                       "d": {"exestatus": "ok", "status": "err", "msg": "exit code 3", "result": "aGkK", "stderr": "b29wcwo=", "code": 3}});
        let t = answer(&r);
        assert!(t.contains("    | hi"), "{t}");
        assert!(t.contains("    | oops"), "{t}");
        assert!(t.contains("exit code: 3"), "{t}");
        assert_eq!(answer_exit(&r), 1);
    }

    #[test]
    fn clip_is_char_safe() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(message("dma", "dma/state/AB", b"{\"sn\":\"AB\",\"online\":false}"), format!("{:<9} {:<14} OFFLINE", "state", "AB"));
    }
}
