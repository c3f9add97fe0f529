//! `iad set {"action": "upgrade", "url": "...", "sha256": "<hex>"}`: the
//! IAD's firmware upgrade end to end (seed 4.2.1, 4.2.2).
//!
//! 1. Download the firmware with the agent's own upgrade rules (the same
//!    code as the `upgrade` command: `commands/upgrade/download.rs`): to a
//!    file in `upgrade_dir` (RAM, `/tmp`), stall timeout, size cap, the
//!    partial file removed on failure; the SHA-256 must match. All of it
//!    before the IAD is touched.
//! 2. `sys_maintain/upload_permission`. The seed warns it may shut the
//!    IAD's core service down until `/upload` completes, which is why that
//!    call is never reachable alone (`iad set` refuses it) and the upload
//!    follows at once.
//! 3. `POST /upload`, `multipart/form-data` with `type=controller`,
//!    `keep_sys` (`yes` by default: keep the configuration) and the file as
//!    `binary`; the answer `{"msg": "Upgrading Firmware", "code": 200}`.
//! 4. Wait (at most `wait` s, default 300) for the IAD to go away and
//!    answer again, then report its firmware. The same firmware as before
//!    is an error (the upgrade did not take).
//!
//! Device options: `upgrade_dir` (default `/tmp`), `upgrade_max_bytes`
//! (default 26 MiB, the seed's largest upload), `upgrade_stall_timeout`
//! (seconds, default 60).


use super::client::Session;
use crate::devices::{DeviceConfig, DeviceError};
// The same download rules as the agent's own `upgrade` (one copy of the code).
use crate::devices::download::{self, Limits, TempFile};
use serde_json::{json, Map, Value};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const ACTION: &str = "upgrade";
pub const PERMISSION_API: &str = "sys_maintain/upload_permission";
/// Largest upload the seed allows (128 MB RAM models: < 26 MB).
const DEFAULT_MAX: u64 = 26 * 1024 * 1024;
const DEFAULT_WAIT: u64 = 300;
const MAX_WAIT: u64 = 1800;
/// The multipart boundary (not in any firmware's first bytes we send: the
/// parts are length-delimited by it, so it must not occur in the file; a
/// file that contains it is refused before the upload).
const BOUNDARY: &str = "----dma-agent-iad-firmware-7f3a9c1e5b";

/// Where and how the firmware is downloaded (device options).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub stall: Duration,
    pub timeout: Duration,
    pub name: String,
}

impl Settings {
    pub fn from_config(cfg: &DeviceConfig) -> Result<Settings, String> {
        let num = |k: &str, default: u64, max: u64| -> Result<u64, String> {
            match cfg.opt(k) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| format!("iad {}: {k} must be 1-{max}", cfg.name)),
            }
        };
        let dir = cfg.opt("upgrade_dir").unwrap_or("/tmp");
        if !dir.starts_with('/') {
            return Err(format!("iad {}: upgrade_dir must be an absolute path", cfg.name));
        }
        Ok(Settings {
            dir: PathBuf::from(dir),
            max_bytes: num("upgrade_max_bytes", DEFAULT_MAX, 256 * 1024 * 1024)?,
            stall: Duration::from_secs(num("upgrade_stall_timeout", 60, 3600)?),
            timeout: cfg.timeout,
            name: cfg.name.clone(),
        })
    }
}

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Upgrade {
    pub url: String,
    pub sha256: String,
    pub keep_sys: bool,
    pub wait: Duration,
}

pub fn parse(body: &Value) -> Result<Upgrade, DeviceError> {
    let bad = |m: String| DeviceError::BadRequest(m);
    let obj = body.as_object().ok_or_else(|| bad("body must be a JSON object".into()))?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "action" | "url" | "sha256" | "keep_sys" | "wait" | "device")) {
        return Err(bad(format!("upgrade takes url, sha256, keep_sys, wait; not {k:?}")));
    }
    let url = obj.get("url").and_then(Value::as_str).filter(|u| u.starts_with("http://") || u.starts_with("https://"));
    let url = url.ok_or_else(|| bad("upgrade needs url, http:// or https://".into()))?.to_string();
    let sha = obj.get("sha256").and_then(Value::as_str).map(str::to_ascii_lowercase).filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    let sha256 = sha.ok_or_else(|| bad("upgrade needs sha256, 64 hex digits".into()))?;
    let keep_sys = match obj.get("keep_sys") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s == "yes" || s == "no" => s == "yes",
        Some(_) => return Err(bad("keep_sys must be true/false or yes/no".into())),
    };
    let wait = match obj.get("wait") {
        None => DEFAULT_WAIT,
        Some(v) => v.as_u64().filter(|n| (1..=MAX_WAIT).contains(n)).ok_or_else(|| bad(format!("wait must be 1-{MAX_WAIT}")))?,
    };
    Ok(Upgrade { url, sha256, keep_sys, wait: Duration::from_secs(wait) })
}

pub fn run(session: &mut Session, s: &Settings, u: &Upgrade) -> Result<Value, DeviceError> {
    // 1. Download and check, before the IAD is touched.
    std::fs::create_dir_all(&s.dir).map_err(|e| DeviceError::BadRequest(format!("cannot create {}: {e}", s.dir.display())))?;
    let file = TempFile::new(s.dir.join(format!("dma-iad-{}-firmware.part", s.name)));
    let got = download::fetch(&u.url, &file, &Limits { max_bytes: s.max_bytes, stall: s.stall })
        .map_err(|e| DeviceError::BadRequest(format!("firmware download failed: {e}")))?;
    if got != u.sha256 {
        return Err(DeviceError::BadRequest(format!("firmware sha256 mismatch: got {got}; nothing sent to the IAD")));
    }
    let size = std::fs::metadata(file.path()).map(|m| m.len()).map_err(|e| DeviceError::BadRequest(format!("firmware file: {e}")))?;
    if size == 0 {
        return Err(DeviceError::BadRequest("the firmware file is empty; nothing sent to the IAD".into()));
    }
    if contains(file.path(), BOUNDARY.as_bytes())? {
        return Err(DeviceError::BadRequest("the firmware contains the upload's multipart boundary; not sent".into()));
    }
    let before = firmware(session).ok();
    // 2. Permission, then 3. the upload at once.
    session.call(PERMISSION_API, &Map::new())?;
    let answer = upload(session, s, file.path(), size, u.keep_sys).map_err(|e| {
        e.with_note("the IAD was given upload permission and may have its core service down until it is restarted by hand (seed 4.2.1)")
    })?;
    drop(file);
    session.forget_token();
    // 4. Back, with which firmware?
    let back = wait_back(session, before.as_deref(), u.wait)?;
    if before.as_deref() == Some(back.as_str()) {
        return Err(DeviceError::Device {
            code: 0,
            msg: format!("the IAD accepted the upload but came back with the same firmware {back}; the upgrade did not take"),
        });
    }
    Ok(json!({"sha256": got, "bytes": size, "upload": answer, "firmware_before": before, "firmware": back, "upgraded": true}))
}

/// True when `needle` occurs in the file (read in chunks, bounded memory).
fn contains(path: &std::path::Path, needle: &[u8]) -> Result<bool, DeviceError> {
    let mut f = std::fs::File::open(path).map_err(|e| DeviceError::BadRequest(format!("firmware file: {e}")))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = f.read(&mut buf).map_err(|e| DeviceError::BadRequest(format!("firmware file: {e}")))?;
        if n == 0 {
            return Ok(false);
        }
        carry.extend_from_slice(buf.get(..n).unwrap_or_default());
        if carry.windows(needle.len()).any(|w| w == needle) {
            return Ok(true);
        }
        let keep = carry.len().saturating_sub(needle.len());
        carry.drain(..keep);
    }
}

/// The IAD's firmware version (`sys_info/oem`).
fn firmware(session: &mut Session) -> Result<String, DeviceError> {
    let oem = session.call("sys_info/oem", &Map::new())?;
    oem.get("firmware_version").and_then(Value::as_str).map(str::to_string).ok_or_else(|| DeviceError::Protocol("sys_info/oem has no firmware_version".into()))
}

/// `POST /upload`: the form's text fields, then the file, streamed.
fn upload(session: &Session, s: &Settings, path: &std::path::Path, size: u64, keep_sys: bool) -> Result<Value, DeviceError> {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ncontroller\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"keep_sys\"\r\n\r\n{}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"binary\"; filename=\"firmware.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        if keep_sys { "yes" } else { "no" }
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let total = (head.len() as u64).saturating_add(size).saturating_add(tail.len() as u64);
    let file = std::fs::File::open(path).map_err(|e| DeviceError::BadRequest(format!("firmware file: {e}")))?;
    let mut body = std::io::Cursor::new(head.into_bytes()).chain(file.take(size)).chain(std::io::Cursor::new(tail.into_bytes()));
    // Per-read/write timeouts, no total: 26 MB over a slow LAN still goes.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(s.timeout))
        .timeout_per_read(Some(s.stall))
        .timeout_per_write(Some(s.stall))
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}/upload", session.base());
    let resp = agent
        .post(&url)
        .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .header("Content-Length", total.to_string())
        .send(ureq::SendBody::from_reader(&mut body))
        .map_err(|e| crate::devices::http::map_err("/upload", e))?;
    let (status, text) = crate::devices::http::read_text("/upload", resp)?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = v.get("code").and_then(Value::as_i64).unwrap_or(i64::from(status));
    let msg = v.get("msg").and_then(Value::as_str).unwrap_or(&text).chars().take(200).collect::<String>();
    match (status, code) {
        (200, 200) => Ok(v),
        (413, _) => Err(DeviceError::Device { code: 413, msg: format!("/upload: the firmware is larger than the IAD accepts ({msg})") }),
        (500, _) => Err(DeviceError::Device { code: 500, msg: format!("/upload: the IAD ran out of memory ({msg})") }),
        _ => Err(DeviceError::Device { code, msg: format!("/upload: HTTP {status}: {msg}") }),
    }
}

/// Wait until the IAD answers a logged-in call again after the upload; the
/// firmware it then reports. It must first stop answering or change its
/// firmware (an IAD still on the old image has not restarted yet).
fn wait_back(session: &mut Session, before: Option<&str>, wait: Duration) -> Result<String, DeviceError> {
    let until = Instant::now() + wait;
    let mut went_down = false;
    let mut last = String::from("no answer yet");
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
        match firmware(session) {
            Ok(fw) if went_down || before != Some(fw.as_str()) => return Ok(fw),
            Ok(fw) => last = format!("it still answers with the old firmware {fw} and has not restarted"),
            Err(e) => {
                went_down = true;
                session.forget_token();
                last = e.to_string();
            }
        }
    }
    Err(DeviceError::Timeout(format!("the IAD took the firmware upload but was not back on a new firmware within {} s ({last})", wait.as_secs())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let sha = "ab".repeat(32);
        let u = parse(&json!({"action": "upgrade", "url": "http://127.0.0.1/fw.bin", "sha256": sha})).unwrap();
        assert!(u.keep_sys && u.wait == Duration::from_secs(300));
        for b in [
            json!({"action": "upgrade", "sha256": sha}),
            json!({"action": "upgrade", "url": "ftp://x", "sha256": sha}),
            json!({"action": "upgrade", "url": "http://x", "sha256": "abc"}),
            json!({"action": "upgrade", "url": "http://x", "sha256": sha, "keep_sys": "maybe"}),
            json!({"action": "upgrade", "url": "http://x", "sha256": sha, "force": true}),
        ] {
            assert!(parse(&b).is_err(), "{b}");
        }
    }
}
