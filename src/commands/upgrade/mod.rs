//! `upgrade`: download the package (to `upgrade_dir`, /tmp by default: RAM,
//! not the flash state dir), check its SHA-256, check that the router can
//! install it (apk for an .apk, opkg for an .ipk, or `upgrade_command`),
//! then hand it to the transaction runner (`/usr/libexec/dma-agent/upgrade`,
//! detached: it outlives this agent being stopped by the package scripts).
//! The runner keeps the previous version, installs with the real upgrade
//! path (never remove-then-install) and puts the new version on trial
//! (`trial` s in the body, default 300): the new agent commits once its
//! birth message is acknowledged and answers `ok` with its version; without
//! that the runner restores the previous version, which answers `err` with
//! the reason (txn.rs). One answer, journalled: exactly once.

pub mod flags;
mod installer;
pub mod txn;

use super::envelope::{Command, Outcome};
use crate::agent::Ctx;
use crate::devices::download::{self, Limits, TempFile};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Every file the download writes starts with this, in `upgrade_dir`.
const PREFIX: &str = "dma-agent-upgrade";
/// The transaction runner the package installs, and its copy in `upgrade_dir`.
const RUNNER: &str = "/usr/libexec/dma-agent/upgrade";
const RUNNER_COPY: &str = "dma-agent-txn.sh";
/// Trial time of the new version, seconds (the body's `trial`).
const DEFAULT_TRIAL: u64 = 300;
const MIN_TRIAL: u64 = 10;
const MAX_TRIAL: u64 = 3600;

pub fn handle(ctx: &Ctx, cmd: &Command) -> Outcome {
    let Some(url) = cmd.wire.body.get("url").and_then(|v| v.as_str()) else {
        return Outcome::err("bad body: url (the package's http(s) URL) is required");
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Outcome::err("bad body: url must be http:// or https://");
    }
    let Some(want) = cmd.wire.body.get("sha256").and_then(|v| v.as_str()).map(|s| s.to_ascii_lowercase()) else {
        return Outcome::err("bad body: sha256 (hex) is required");
    };
    if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Outcome::err("bad body: sha256 must be 64 hex digits");
    }
    let Some(_running) = ctx.upgrade.claim() else {
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
    // Refuses a package this router cannot install, before anything changes.
    let line = match installer::command_line(format, file.path(), &cfg.agent.upgrade_command, path_env.as_deref()) {
        Ok(l) => l,
        Err(e) => return Outcome::err(e),
    };
    if !Path::new(RUNNER).exists() {
        // Not installed from the package (a hand-copied binary, the host
        // tests): no transaction runner, so no trial and no rollback.
        return direct(ctx, cmd, file, &got, format, &line);
    }
    transactional(ctx, cmd, file, &got, format)
}

/// Hand the package to the transaction runner (see the module's doc).
fn transactional(ctx: &Ctx, cmd: &Command, file: TempFile, got: &str, format: installer::Format) -> Outcome {
    let cfg = ctx.config();
    let dir = Path::new(&cfg.agent.upgrade_dir);
    let trial = match cmd.wire.body.get("trial") {
        None => DEFAULT_TRIAL,
        Some(v) => match v.as_u64() {
            Some(t) if (MIN_TRIAL..=MAX_TRIAL).contains(&t) => t,
            _ => return Outcome::err(format!("bad body: trial must be {MIN_TRIAL}..{MAX_TRIAL} seconds")),
        },
    };
    // The runner runs from a copy in RAM: the install replaces its file.
    let runner = dir.join(RUNNER_COPY);
    if let Err(e) = std::fs::copy(RUNNER, &runner) {
        return Outcome::err(format!("cannot use the upgrade runner {RUNNER}: {e} (the installed package is older than the transactional upgrade)"));
    }
    let pkg = dir.join(format!("dma-agent-txn.{}", format.ext()));
    if let Err(e) = std::fs::rename(file.path(), &pkg) {
        return Outcome::err(format!("cannot keep the package: {e}"));
    }
    drop(file);
    if let Err(e) = txn::write_request(&cfg.agent.state_dir, cmd) {
        let _ = std::fs::remove_file(&pkg);
        return Outcome::err(e);
    }
    // Until the transaction is decided the journal holds this (acknowledged,
    // so never published): a stop of this agent by the package scripts must
    // not answer "interrupted" over the real answer, which the agent running
    // after the trial journals (txn::settle).
    let pending = Outcome::err("upgrade in progress: the answer comes after the trial");
    let stored = ctx.journal.lock().map_err(|_| "journal unavailable".to_string()).and_then(|mut j| {
        j.store_answer(&cmd.key, &super::engine::answer_of(ctx, cmd, &pending))
            .and_then(|_| j.mark_acked(&cmd.key))
            .map_err(|e| e.to_string())
    });
    if let Err(e) = stored {
        let _ = std::fs::remove_file(&pkg);
        return Outcome::err(format!("cannot journal the upgrade: {e}"));
    }
    let q = |p: &Path| installer::shell_quote(&p.to_string_lossy());
    // Double fork + setsid: the runner is nobody's child in procd's instance.
    let line = format!(
        "setsid /bin/sh {} run {} {trial} {} {} </dev/null >/dev/null 2>&1 &",
        q(&runner),
        installer::shell_quote(&cfg.agent.state_dir),
        q(&pkg),
        installer::shell_quote(&cfg.agent.upgrade_command)
    );
    log::warn!("upgrade: {} ({got}) handed to the transaction runner, trial {trial} s", pkg.display());
    match std::process::Command::new("/bin/sh").arg("-c").arg(&line).status() {
        Ok(s) if s.success() => {}
        Ok(s) => return Outcome::err(format!("cannot start the upgrade runner: {s}")),
        Err(e) => return Outcome::err(format!("cannot start the upgrade runner: {e}")),
    }
    // The package scripts stop this agent; if the runner finishes first (the
    // package was refused), the transaction is decided while we still run.
    let state_dir = cfg.agent.state_dir.clone();
    let until = std::time::Instant::now() + Duration::from_secs(trial + 600);
    while std::time::Instant::now() < until && !ctx.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(500));
        if txn::decided_without_us(&state_dir) {
            txn::settle_now(ctx);
            break;
        }
    }
    // An `ok` outcome makes the engine keep the answer the journal holds
    // (the pending one, or the final one txn::settle stored) and publish
    // nothing itself.
    Outcome::ok(json!({"handed_over": true}))
}

/// Without the runner: answer first (installing restarts the agent), then
/// run the installer; no trial, no rollback.
fn direct(ctx: &Ctx, cmd: &Command, file: TempFile, got: &str, format: installer::Format, line: &str) -> Outcome {
    let cfg = ctx.config();
    let out = Outcome::ok(json!({"sha256": got, "format": format.ext(), "installing": true, "trial": false}));
    if let Err(e) = super::answer_first(ctx, cmd, &out, Duration::from_secs(cfg.agent.reboot_ack_timeout)) {
        return Outcome::err(format!("upgrade not done: {e}"));
    }
    log::warn!("upgrade: no {RUNNER} (not installed from the package): running {line} without a trial");
    // The package's scripts may restart the agent while the installer runs;
    // the shell outlives us and removes the package itself.
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
