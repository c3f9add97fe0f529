//! `iad set {"action": "diagnose", "test": "ping", "data": {...}}`: one of
//! the IAD's network tests (seed 4.5) end to end.
//!
//! 1. `sys_analysis/<test>_do` with `data` (the seed's fields: ping
//!    `host`/`count`/`size`, tracert `host`/`waittime`/`maxhops`, dns
//!    `host`/`dns_server`, capture `interface`/`proto`/`host`/`port`/`action`,
//!    record `slotnum`/`record`/`record_channel`/`record_limit`); skipped
//!    with `"start": false` (read the result of a test already running,
//!    e.g. a capture stopped with `action` 0);
//! 2. `sys_analysis/<test>_result` every [`POLL_EVERY`] until the status
//!    says done (3 "Completed"; 2 "Recording finished" for `record`), for
//!    at most `wait` seconds (default 20, at most 120);
//! 3. the file at the answer's `result`, a relative URL on the IAD
//!    (`/download/ping_result`), fetched with GET from the IAD's own
//!    address only (never another host), at most `max_bytes` (default
//!    64 KiB, at most [`MAX_BYTES`]).
//!
//! The answer: `{"test", "status", "done", "url", "bytes", "truncated",
//! "text"}` — or `"base64"` instead of `"text"` when the file is not UTF-8
//! (a capture `.tar.gz`, a PCM recording). `truncated` is true when the
//! file was longer than the bound and is cut. Not done within `wait`:
//! `done` false and no file; ask again with `"start": false`.

use super::client::Session;
use crate::devices::DeviceError;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::io::Read;
use std::time::{Duration, Instant};

pub const ACTION: &str = "diagnose";
/// The tests of seed 4.5 with a `*_do` / `*_result` pair and a file.
pub const TESTS: &[&str] = &["ping", "tracert", "dns", "capture", "record"];
/// Between two `*_result` reads.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Largest result the agent returns (a command answer travels over MQTT).
pub const MAX_BYTES: u64 = 256 * 1024;
const DEFAULT_BYTES: u64 = 64 * 1024;
const DEFAULT_WAIT: u64 = 20;
const MAX_WAIT: u64 = 120;

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnose {
    pub test: String,
    pub data: Map<String, Value>,
    pub start: bool,
    pub wait: Duration,
    pub max_bytes: u64,
}

pub fn parse(body: &Value) -> Result<Diagnose, DeviceError> {
    let bad = |m: String| DeviceError::BadRequest(m);
    let obj = body.as_object().ok_or_else(|| bad("body must be a JSON object".into()))?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "action" | "test" | "data" | "start" | "wait" | "max_bytes" | "device")) {
        return Err(bad(format!("diagnose takes test, data, start, wait, max_bytes; not {k:?}")));
    }
    let test = obj.get("test").and_then(Value::as_str).filter(|t| TESTS.contains(t));
    let test = test.ok_or_else(|| bad(format!("diagnose needs test, one of {}", TESTS.join(", "))))?.to_string();
    let mut data = match obj.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(bad("data must be a JSON object".into())),
    };
    data.remove("token");
    let start = match obj.get("start") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("start must be true or false".into())),
    };
    let number = |k: &str, default: u64, max: u64| match obj.get(k) {
        None => Ok(default),
        Some(v) => v.as_u64().filter(|n| (1..=max).contains(n)).ok_or_else(|| bad(format!("{k} must be 1-{max}"))),
    };
    Ok(Diagnose {
        test,
        data,
        start,
        wait: Duration::from_secs(number("wait", DEFAULT_WAIT, MAX_WAIT)?),
        max_bytes: number("max_bytes", DEFAULT_BYTES, MAX_BYTES)?,
    })
}

/// True when `status` means the result is ready.
fn done(test: &str, status: i64) -> bool {
    if test == "record" {
        status == 2
    } else {
        status == 3
    }
}

/// A relative URL on the device: `/` then printable ASCII, no `..`, no
/// `//` (which would name another host), no backslash.
pub fn safe_path(p: &str) -> Option<&str> {
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && p.len() <= 512
        && p.bytes().all(|b| b.is_ascii_graphic())
        && !p.contains("..")
        && !p.contains('\\');
    ok.then_some(p)
}

pub fn run(session: &mut Session, d: &Diagnose) -> Result<Value, DeviceError> {
    if d.start {
        session.call(&format!("sys_analysis/{}_do", d.test), &d.data)?;
    }
    let result_api = format!("sys_analysis/{}_result", d.test);
    let until = Instant::now() + d.wait;
    let (status, url) = loop {
        let data = session.call(&result_api, &Map::new())?;
        let status = data.get("status").and_then(|s| s.as_i64().or_else(|| s.as_str().and_then(|t| t.trim().parse().ok())));
        let status = status.ok_or_else(|| DeviceError::Protocol(format!("{result_api}: no numeric status")))?;
        let url = data.get("result").and_then(Value::as_str).unwrap_or_default().to_string();
        if done(&d.test, status) || Instant::now() + POLL_EVERY > until {
            break (status, url);
        }
        std::thread::sleep(POLL_EVERY);
    };
    if !done(&d.test, status) {
        return Ok(json!({"test": d.test, "status": status, "done": false}));
    }
    let path = safe_path(&url).ok_or_else(|| DeviceError::Protocol(format!("{result_api}: result {url:?} is not a relative URL on the IAD")))?;
    let (bytes, truncated) = fetch(session, path, d.max_bytes)?;
    let mut out = json!({"test": d.test, "status": status, "done": true, "url": path, "bytes": bytes.len(), "truncated": truncated});
    match String::from_utf8(bytes) {
        Ok(text) => out["text"] = Value::String(text),
        Err(e) => out["base64"] = Value::String(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
    }
    Ok(out)
}

/// GET `path` on the IAD, at most `max` bytes; true when there was more.
fn fetch(session: &Session, path: &str, max: u64) -> Result<(Vec<u8>, bool), DeviceError> {
    let url = format!("{}{path}", session.base());
    let resp = session.http().get(&url).call().map_err(|e| crate::devices::http::map_err(path, e))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(DeviceError::Device { code: i64::from(status), msg: format!("GET {path}: HTTP {status}") });
    }
    let mut buf = Vec::new();
    let mut reader = resp.into_body().into_reader().take(max.saturating_add(1));
    reader.read_to_end(&mut buf).map_err(|e| DeviceError::Transport(format!("GET {path}: {e}")))?;
    let cut = buf.len() as u64 > max;
    buf.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    Ok((buf, cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_paths() {
        let d = parse(&json!({"action": "diagnose", "test": "ping", "data": {"host": "192.0.2.1", "count": 2, "token": "x"}})).unwrap();
        assert_eq!((d.test.as_str(), d.start, d.wait, d.max_bytes), ("ping", true, Duration::from_secs(20), 65536));
        assert!(!d.data.contains_key("token"));
        for b in [
            json!({"action": "diagnose"}),
            json!({"action": "diagnose", "test": "msglog"}),
            json!({"action": "diagnose", "test": "ping", "wait": 0}),
            json!({"action": "diagnose", "test": "ping", "max_bytes": 1_000_000}),
            json!({"action": "diagnose", "test": "ping", "url": "http://x"}),
        ] {
            assert!(parse(&b).is_err(), "{b}");
        }
        assert_eq!(safe_path("/download/ping_result"), Some("/download/ping_result"));
        for p in ["download/x", "//evil.example/x", "/download/../etc/passwd", "http://x/y", "/a b", "/a\\b"] {
            assert_eq!(safe_path(p), None, "{p}");
        }
        assert!(done("record", 2) && !done("ping", 2) && done("ping", 3));
    }
}
