//! The simulated IAD's network tests (seed 4.5): `*_do` starts one,
//! `*_result` answers `{"status", "result"}` with the status codes of the
//! seed (0 None, 1 Pending, 2 Processing, 3 Completed; for `record`
//! 0 None, 1 Recording, 2 Finished) and, once done, the relative URL of
//! the result file, which `GET /download/<name>` serves.
//!
//! Where the seed is silent, stated:
//! - a test is Pending for its first quarter, then Processing, and done
//!   after `diag_time` (a capture stays Processing until `action` 0 stops
//!   it; a recording is done after `diag_time` whatever `record_limit`);
//! - the files: ping/tracert/dns as the Linux tools print them (text),
//!   capture as a gzip stream (`.tar.gz`, binary), record as PCM16 stereo
//!   8 kHz (`.pcm`, binary, 32000 bytes a second of `record_limit`, capped
//!   at the seed's 5 MB); nothing is really sent on a network;
//! - `GET /download/*` needs no token (the seed gives only the URL), and a
//!   file stays readable until the next run of its test (the seed's "flow
//!   data" / "one-time reading" notes are not modelled);
//! - field checks follow the seed's formats: a field out of range is 400.

use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// One test's run.
#[derive(Debug, Clone)]
pub struct Run {
    pub started: Instant,
    /// A capture runs until stopped.
    pub stopped: Option<Instant>,
    pub file: String,
    pub content: Vec<u8>,
}

/// The file name of each test's result (seed examples).
pub fn file_name(test: &str) -> Option<&'static str> {
    Some(match test {
        "ping" => "ping_result",
        "tracert" => "tracert_result",
        "dns" => "dns_result",
        "capture" => "capture_result.tar.gz",
        "record" => "record_result.pcm",
        _ => return None,
    })
}

fn text<'a>(body: &'a Map<String, Value>, k: &str) -> &'a str {
    body.get(k).and_then(Value::as_str).unwrap_or("")
}

fn int(body: &Map<String, Value>, k: &str, default: i64, lo: i64, hi: i64) -> Result<i64, String> {
    match body.get(k) {
        None => Ok(default),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|n| (lo..=hi).contains(n))
            .ok_or_else(|| format!("invalid {k}: {lo}-{hi}")),
    }
}

fn host(body: &Map<String, Value>) -> Result<String, String> {
    let h = text(body, "host");
    if h.is_empty() || h.len() > 63 || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b)) {
        return Err("invalid host: 1-63 characters".into());
    }
    Ok(h.to_string())
}

/// Start `test` with the `*_do` body; `Ok(None)` for a capture stop.
pub fn start(test: &str, body: &Map<String, Value>) -> Result<Option<Vec<u8>>, String> {
    Ok(Some(match test {
        "ping" => {
            let (h, count, size) = (host(body)?, int(body, "count", 5, 1, 100)?, int(body, "size", 56, 56, 1024)?);
            let mut out = format!("PING {h} ({h}): {size} data bytes\n");
            for seq in 0..count {
                out.push_str(&format!("{} bytes from {h}: seq={seq} ttl=64 time={}.{:03} ms\n", size + 8, 1 + seq % 3, 100 + seq * 7));
            }
            out.push_str(&format!("\n--- {h} ping statistics ---\n{count} packets transmitted, {count} packets received, 0% packet loss\n"));
            out.into_bytes()
        }
        "tracert" => {
            let (h, _wait, hops) = (host(body)?, int(body, "waittime", 3, 1, 10)?, int(body, "maxhops", 30, 1, 255)?);
            let mut out = format!("traceroute to {h} ({h}), {hops} hops max, 38 byte packets\n");
            out.push_str(&format!(" 1  127.0.0.1  0.512 ms  0.433 ms  0.401 ms\n 2  {h}  1.204 ms  1.118 ms  1.097 ms\n"));
            out.into_bytes()
        }
        "dns" => {
            let h = host(body)?;
            let server = text(body, "dns_server");
            if server.starts_with("127.") {
                return Err("dns_server must not start with 127 (leave it empty for the IAD's own resolver)".into());
            }
            let server = if server.is_empty() { "127.0.0.1" } else { server };
            format!("Server:    {server}\nAddress 1: {server}\n\nName:      {h}\nAddress 1: 192.0.2.10\n").into_bytes()
        }
        "capture" => {
            if !matches!(text(body, "interface"), "" | "wan" | "lan" | "vpn1" | "mgt") {
                return Err("invalid interface: wan lan vpn1 mgt".into());
            }
            int(body, "port", 0, 0, 65535)?;
            let action = body.get("action").map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_else(|| "0".into());
            match action.as_str() {
                "0" => return Ok(None),
                "1" => {}
                _ => return Err("invalid action: 0 stop, 1 start".into()),
            }
            // A gzip member header, then bytes that are not UTF-8.
            let mut v = vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03];
            v.extend((0..2048u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80));
            v
        }
        "record" => {
            int(body, "slotnum", 0, 0, 0)?;
            int(body, "record_channel", 1, 1, 64)?;
            let limit = int(body, "record_limit", 60, 1, 300)?;
            let record = int(body, "record", 2, 1, 2)?;
            if record == 2 {
                return Ok(None);
            }
            let bytes = usize::try_from(limit).unwrap_or(60).saturating_mul(32_000).min(5 * 1024 * 1024);
            (0..bytes).map(|i| if i % 2 == 0 { 0x00 } else { 0xff }).collect()
        }
        _ => return Err("unknown test".into()),
    }))
}

/// The `*_result` answer of a run.
pub fn result(test: &str, run: Option<&Run>, diag_time: Duration) -> Value {
    let Some(run) = run else { return json!({"status": 0, "result": ""}) };
    let elapsed = run.started.elapsed();
    let done = match test {
        "capture" => run.stopped.is_some(),
        _ => elapsed >= diag_time,
    };
    let (done_code, running_code) = if test == "record" { (2, 1) } else { (3, if elapsed < diag_time / 4 { 1 } else { 2 }) };
    if done {
        json!({"status": done_code, "result": format!("/download/{}", run.file)})
    } else {
        json!({"status": running_code, "result": ""})
    }
}
