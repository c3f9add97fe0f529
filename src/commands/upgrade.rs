//! `upgrade`: download the package, check its SHA-256, answer (and wait
//! for the PUBACK: installing restarts the agent), then install it with
//! `upgrade_command` (default `opkg install --force-reinstall {file}`,
//! which keeps a modified /etc/config/dma-agent as a conffile).

use super::envelope::{Command, Outcome};
use crate::agent::Ctx;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub fn handle(ctx: &Ctx, cmd: &Command) -> Outcome {
    let Some(url) = cmd.body.get("url").and_then(|v| v.as_str()) else {
        return Outcome::err("bad body: url (the package's http(s) URL) is required");
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Outcome::err("bad body: url must be http:// or https://");
    }
    let Some(want) = cmd.body.get("sha256").and_then(|v| v.as_str()).map(|s| s.to_ascii_lowercase()) else {
        return Outcome::err("bad body: sha256 (hex) is required");
    };
    if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Outcome::err("bad body: sha256 must be 64 hex digits");
    }
    let cfg = ctx.config();
    let dir = std::path::Path::new(&cfg.agent.state_dir).join("upgrade");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Outcome::err(format!("cannot create {}: {e}", dir.display()));
    }
    let file = dir.join("package.ipk");
    let got = match download(url, &file, cfg.agent.upgrade_max_bytes) {
        Ok(h) => h,
        Err(e) => return Outcome::err(format!("download failed: {e}")),
    };
    if got != want {
        let _ = std::fs::remove_file(&file);
        return Outcome::err(format!("sha256 mismatch: got {got}"));
    }
    let out = Outcome::ok(json!({"sha256": got, "installing": true}));
    // Installing restarts the agent: the answer goes out first.
    if let Err(e) = super::answer_first(ctx, cmd, &out, Duration::from_secs(cfg.agent.reboot_ack_timeout)) {
        return Outcome::err(format!("upgrade not done: {e}"));
    }
    let line = cfg.agent.upgrade_command.replace("{file}", &file.to_string_lossy());
    log::warn!("upgrade: running {line}");
    let st = std::process::Command::new("/bin/sh").arg("-c").arg(&line).status();
    let _ = std::fs::remove_file(&file);
    match st {
        Ok(s) if s.success() => {
            // Still here (the package did not restart us): restart to run the new binary.
            ctx.restart.store(true, Ordering::SeqCst);
            out
        }
        Ok(s) => Outcome::failed(format!("install failed: {s}"), json!({"sha256": got})),
        Err(e) => Outcome::err(format!("cannot run the install command: {e}")),
    }
}

/// Stream `url` into `path` (bounded), returning the SHA-256 hex.
fn download(url: &str, path: &std::path::Path, max: u64) -> Result<String, String> {
    let agent = crate::devices::http::agent(Duration::from_secs(30));
    let resp = agent.get(url).call().map_err(|e| e.to_string())?;
    if resp.status().as_u16() != 200 {
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    let mut body = resp.into_body();
    let mut reader = body.with_config().limit(max).reader();
    let mut f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut h = Sha256::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(|e| e.to_string())?;
    }
    f.sync_all().map_err(|e| e.to_string())?;
    Ok(crate::util::hex(&h.finalize()))
}
