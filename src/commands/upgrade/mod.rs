//! `upgrade`: download the package (to `upgrade_dir`, /tmp by default: RAM,
//! not the flash state dir), check its SHA-256, pick the installer (apk for
//! an .apk, opkg for an .ipk, or `upgrade_command`), answer and wait for the
//! PUBACK (installing restarts the agent), then install. apk and opkg both
//! keep a modified /etc/config/dma-agent and put the new one beside it.

mod download;
mod installer;

use super::envelope::{Command, Outcome};
use crate::agent::Ctx;
use download::{Limits, TempFile};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Every file the upgrade writes starts with this, in `upgrade_dir`.
const PREFIX: &str = "dma-agent-upgrade";

/// One upgrade at a time (a `detached` one could otherwise run beside
/// another and share its file names).
static RUNNING: AtomicBool = AtomicBool::new(false);

struct Running;

impl Running {
    fn claim() -> Option<Running> {
        (!RUNNING.swap(true, Ordering::SeqCst)).then_some(Running)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::SeqCst);
    }
}

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
    let Some(_running) = Running::claim() else {
        return Outcome::err("busy: another upgrade is running");
    };
    let cfg = ctx.config();
    let dir = Path::new(&cfg.agent.upgrade_dir);
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Outcome::err(format!("cannot create {}: {e}", dir.display()));
    }
    remove_leftovers(dir);
    let mut file = TempFile::new(dir.join(format!("{PREFIX}.part")));
    let limits = Limits { max_bytes: cfg.agent.upgrade_max_bytes, stall: Duration::from_secs(cfg.agent.upgrade_stall_timeout) };
    let got = match download::fetch(url, &file, &limits) {
        Ok(h) => h,
        Err(e) => return Outcome::err(format!("download failed: {e}")),
    };
    if got != want {
        return Outcome::err(format!("sha256 mismatch: got {got}"));
    }
    let format = match installer::sniff(file.path()) {
        Ok(f) => f,
        Err(e) => return Outcome::err(e),
    };
    // apk and opkg tell a package file from a package name by its extension.
    if let Err(e) = file.rename(dir.join(format!("{PREFIX}.{}", format.ext()))) {
        return Outcome::err(e);
    }
    let path_env = std::env::var("PATH").ok();
    let line = match installer::command_line(format, file.path(), &cfg.agent.upgrade_command, path_env.as_deref()) {
        Ok(l) => l,
        Err(e) => return Outcome::err(e),
    };
    let out = Outcome::ok(json!({"sha256": got, "format": format.ext(), "installing": true}));
    // Installing restarts the agent: the answer goes out first.
    if let Err(e) = super::answer_first(ctx, cmd, &out, Duration::from_secs(cfg.agent.reboot_ack_timeout)) {
        return Outcome::err(format!("upgrade not done: {e}"));
    }
    log::warn!("upgrade: running {line}");
    // The package's scripts usually restart the agent while the installer
    // runs; the shell outlives us and removes the package itself.
    let script = format!("( {line} ); rc=$?; rm -f {}; exit $rc", installer::shell_quote(&file.path().to_string_lossy()));
    let st = std::process::Command::new("/bin/sh").arg("-c").arg(&script).status();
    drop(file);
    match st {
        Ok(s) if s.success() => {
            // Still here (the package did not restart us): restart to run the new binary.
            ctx.request_restart();
            out
        }
        Ok(s) => Outcome::failed(format!("install failed: {s}"), json!({"sha256": got})),
        Err(e) => Outcome::err(format!("cannot run the install command: {e}")),
    }
}

/// Files of an upgrade the agent did not finish (killed mid-download): at
/// most a few, all ours by name; removed so the directory (RAM) never
/// fills. Called before each download and at start-up.
pub fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten().take(1024) {
        if e.file_name().to_string_lossy().starts_with(PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
