//! The agent's side of the upgrade transaction that the runner script
//! (`/usr/libexec/dma-agent/upgrade`, openwrt/dma-agent/files/dma-agent.upgrade)
//! drives. Files in `{state_dir}/upgrade/` (flash, format 1):
//!
//! - `request.json`: written by the agent that took the command, before it
//!   hands over to the runner: `{"v":1,"key":…,"from":…,"from_package":…}`.
//! - `phase`: the runner's step (`backup`, `trial`, `rollback`, `done`).
//! - `decide`: the undecided token. The new agent on trial renames it to
//!   `commit` once its birth message got its PUBACK; the runner renames it
//!   to `rollback` at the trial's deadline. One rename wins.
//! - `result`: the reason of a rollback (one line, written by the runner).
//!
//! An agent is on trial when it starts while the phase is `trial` and the
//! token is undecided. Whichever agent runs once the transaction is decided
//! (the new one after `commit`, the restored old one after `rollback`)
//! journals the command's one answer (`ok` with the new version, or `err`
//! with the reason) and removes the request: the journal makes it
//! exactly-once (a redelivery gets the stored answer, nothing runs twice).

use crate::agent::Ctx;
use crate::commands::envelope::{self, Command, Outcome};
use crate::commands::journal::State;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Format of the files above.
pub const FORMAT: u64 = 1;
/// The key under which the trial's birth PUBACK is watched (never a
/// command key: those come from `envelope` and hold no NUL).
pub const TRIAL_KEY: &str = "\0upgrade-trial";
/// Largest request / result file read.
const MAX_FILE: u64 = 4096;

pub fn dir(state_dir: &str) -> PathBuf {
    Path::new(state_dir).join("upgrade")
}

fn read_small(p: &Path) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(p).ok()?;
    let mut s = String::new();
    f.take(MAX_FILE).read_to_string(&mut s).ok()?;
    Some(s)
}

/// The request the old agent writes before starting the runner.
pub fn write_request(state_dir: &str, cmd: &Command) -> Result<(), String> {
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    if d.join("phase").exists() && !matches!(phase(&d).as_deref(), Some("done")) {
        return Err("busy: an upgrade transaction is still open".into());
    }
    for f in ["decide", "commit", "rollback", "result", "phase"] {
        let _ = std::fs::remove_file(d.join(f));
    }
    let req = json!({"v": FORMAT, "key": cmd.key, "id": cmd.wire.id.to_value(), "idText": cmd.wire.id.text(), "by": cmd.wire.from, "command": cmd.wire.command,
                     "method": cmd.wire.method, "from": crate::telemetry::versions::agent_version(),
                     "from_package": package_version()});
    crate::durable::write_atomic(&d.join("request.json"), req.to_string().as_bytes()).map_err(|e| format!("cannot write the upgrade request: {e}"))
}

fn phase(d: &Path) -> Option<String> {
    read_small(&d.join("phase")).map(|s| s.trim().to_string())
}

fn request(d: &Path) -> Option<Value> {
    let v: Value = serde_json::from_str(&read_small(&d.join("request.json"))?).ok()?;
    // A newer format this agent does not know: leave it to the newer agent.
    (v.get("v").and_then(|x| x.as_u64()) == Some(FORMAT)).then_some(v)
}

/// At start-up, after the journal is open: answer a decided transaction, or
/// note that this agent is the new version on trial.
pub fn at_start(ctx: &Ctx) {
    let d = dir(&ctx.config().agent.state_dir);
    if !d.join("request.json").exists() {
        return;
    }
    if d.join("commit").exists() {
        // Committed by an agent that died before it answered.
        settle(ctx, &d, false);
        return;
    }
    match phase(&d).as_deref() {
        Some("trial") if d.join("decide").exists() => {
            log::warn!("upgrade: this version is on trial: it commits once its birth message is acknowledged");
            ctx.upgrade.set_on_trial();
        }
        Some("backup") | Some("trial") | Some("rollback") => {}
        // The connect that follows publishes what the journal holds.
        _ => settle(ctx, &d, false),
    }
}

/// The transaction was decided while this agent runs (connected): answer now.
pub fn settle_now(ctx: &Ctx) {
    let d = dir(&ctx.config().agent.state_dir);
    if d.join("request.json").exists() {
        settle(ctx, &d, true);
    }
}

/// The runner rolled back while the agent that took the command still runs
/// (the package was refused before its scripts stopped this agent).
pub fn decided_without_us(state_dir: &str) -> bool {
    let d = dir(state_dir);
    d.join("rollback").exists() && phase(&d).as_deref() == Some("done") && d.join("request.json").exists()
}

/// The birth message of an agent on trial got its PUBACK: commit (unless the
/// runner already decided to roll back) and answer.
pub fn confirmed(ctx: &Ctx) {
    if !ctx.upgrade.end_trial() {
        return;
    }
    let d = dir(&ctx.config().agent.state_dir);
    // Still the package that took the command: the install never happened
    // (a power cut before it, or the same version sent). Not a commit: the
    // runner restores the backup and this version answers err.
    let installed = package_version();
    let before = request(&d).and_then(|r| r.get("from_package").cloned());
    if !installed.is_null() && before.as_ref() == Some(&installed) {
        let v = installed.as_str().unwrap_or("");
        let why = format!("the new package was not installed (interrupted, or the same version {v}); the previous version runs\n");
        if crate::durable::write_atomic(&d.join("result"), why.as_bytes()).is_ok() && std::fs::rename(d.join("decide"), d.join("rollback")).is_ok() {
            log::warn!("upgrade: {}", why.trim());
        }
        return;
    }
    match std::fs::rename(d.join("decide"), d.join("commit")) {
        Ok(()) => {
            log::warn!("upgrade: trial passed (connected, birth acknowledged): committed");
            settle(ctx, &d, true);
        }
        Err(e) => log::warn!("upgrade: trial over before the commit ({e}): the runner rolls back"),
    }
}

/// The transaction is decided: journal the command's answer (published by
/// the resend of unacknowledged answers) and remove the request.
fn settle(ctx: &Ctx, d: &Path, publish: bool) {
    let Some(req) = request(d) else {
        log::warn!("upgrade: unreadable {}; removed", d.join("request.json").display());
        let _ = std::fs::remove_file(d.join("request.json"));
        return;
    };
    let text = |k: &str| req.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let key = text("key");
    // `idText`: the id as received (an agent before dma-wire wrote `id` only).
    let id = match req.get("idText").and_then(Value::as_str).map(dma_wire::Id::from_text) {
        Some(Ok(id)) => id,
        _ => dma_wire::Id::from_value(req.get("id").unwrap_or(&Value::Null)),
    };
    let version = crate::telemetry::versions::agent_version();
    let outcome = if d.join("rollback").exists() {
        let reason = read_small(&d.join("result")).map(|s| s.trim().to_string()).unwrap_or_else(|| "rolled back".into());
        Outcome::failed(format!("upgrade rolled back: {reason}"), json!({"version": version, "package": package_version(),
                                                                      "from_package": req.get("from_package")}))
    } else {
        Outcome::ok(json!({"version": version, "package": package_version(),
                           "from": req.get("from"), "from_package": req.get("from_package")}))
    };
    let ok = outcome.ok;
    // Cut where its bytes are made (mqtt::fit::answer_payload), as every answer.
    let answer = envelope::answer(&ctx.sn(), &id, &text("by"), &text("command"), &text("method"), &outcome);
    // Interrupted: a rolled-back upgrade is not run again by a redelivery
    // (it gets this answer); the operator sends a new command.
    let state = if ok { State::Succeeded } else { State::Interrupted };
    let journaled = match ctx.journal.lock() {
        Ok(mut j) if j.get(&key).is_some() => j.finish(&key, state, &answer).map_err(|e| e.to_string()),
        Ok(_) => Err(format!("command {key} is not in the journal")),
        Err(_) => Err("journal unavailable".into()),
    };
    match journaled {
        Ok(()) => log::warn!("upgrade {key}: {}", if ok { "ok" } else { "rolled back" }),
        Err(e) => log::error!("upgrade {key}: cannot journal the answer: {e}"),
    }
    // After a commit the runner still runs: `commit` and `phase` are its to
    // remove. After a rollback it is done (phase `done`).
    let _ = std::fs::remove_file(d.join("request.json"));
    if !ok {
        for f in ["rollback", "result", "phase"] {
            let _ = std::fs::remove_file(d.join(f));
        }
    }
    // The outbox publishes it from the journal (at start-up, once connected).
    if publish {
        ctx.outbox.nudge();
    }
}

/// The installed package's version: apk's database, else opkg's status.
pub fn package_version() -> Value {
    let apk = std::fs::read_to_string("/lib/apk/db/installed").ok().and_then(|s| field_after(&s, "P:dma-agent", "V:"));
    let opkg = || std::fs::read_to_string("/usr/lib/opkg/status").ok().and_then(|s| field_after(&s, "Package: dma-agent", "Version: "));
    apk.or_else(opkg).map(Value::String).unwrap_or(Value::Null)
}

/// In the blank-line separated record whose line is `head`, the value of `field`.
fn field_after(text: &str, head: &str, field: &str) -> Option<String> {
    text.split("\n\n")
        .find(|rec| rec.lines().any(|l| l.trim_end() == head))
        .and_then(|rec| rec.lines().find_map(|l| l.strip_prefix(field)).map(|v| v.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_package_versions_of_both_databases() {
        let apk = "C:Q1x\nP:libc\nV:1.2\n\nC:Q1y\nP:dma-agent\nV:0.1.0-r2\nA:x86_64\n\n";
        assert_eq!(field_after(apk, "P:dma-agent", "V:").as_deref(), Some("0.1.0-r2"));
        let opkg = "Package: libc\nVersion: 1.2.5-r4\n\nPackage: dma-agent\nVersion: 0.1.0-r1\nStatus: install user installed\n";
        assert_eq!(field_after(opkg, "Package: dma-agent", "Version: ").as_deref(), Some("0.1.0-r1"));
        assert_eq!(field_after(opkg, "Package: other", "Version: "), None);
    }
}
