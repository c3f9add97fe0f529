//! `reboot`: answer first and wait (bounded) for the broker's PUBACK, sync
//! the filesystems, then reboot. The answer is stored in the journal
//! before anything happens, so a redelivery after the reboot (new boot id)
//! is answered from the journal and does not reboot again.

use super::envelope::{Command, Outcome};
use crate::agent::Ctx;
use serde_json::json;
use std::time::Duration;

/// Longest `delay` accepted.
const MAX_DELAY: u64 = 3600;

pub fn handle(ctx: &Ctx, cmd: &Command) -> Outcome {
    let delay = match cmd.wire.body.get("delay") {
        None | Some(serde_json::Value::Null) => 0,
        Some(v) => match v.as_u64() {
            Some(d) if d <= MAX_DELAY => d,
            _ => return Outcome::err(format!("bad body: delay must be 0..{MAX_DELAY} seconds")),
        },
    };
    let cfg = ctx.config();
    let out = Outcome::ok(json!({"rebooting": true, "delay": delay}));
    let ack_timeout = Duration::from_secs(cfg.agent.reboot_ack_timeout);
    match super::answer_first(ctx, cmd, &out, ack_timeout) {
        Ok(true) => {}
        Ok(false) => log::warn!("reboot: no PUBACK for the answer within {} s; rebooting anyway", cfg.agent.reboot_ack_timeout),
        Err(e) => return Outcome::err(format!("reboot not done: {e}")),
    }
    if delay > 0 {
        std::thread::sleep(Duration::from_secs(delay));
    }
    nix::unistd::sync();
    log::warn!("rebooting the router (command {})", cmd.key);
    if let Err(e) = reboot_now(&cfg.agent.reboot_command) {
        log::error!("reboot failed: {e}");
        return Outcome::err(format!("reboot failed: {e}"));
    }
    out
}

/// The configured reboot action: a command line, or the reboot syscall.
fn reboot_now(command: &str) -> Result<(), String> {
    if command.is_empty() {
        nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT).map_err(|e| std::io::Error::from(e).to_string())?; // libc's strerror, not nix's table of texts
        return Ok(());
    }
    let st = std::process::Command::new("/bin/sh").arg("-c").arg(command).status().map_err(|e| e.to_string())?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("reboot_command exited with {st}"))
    }
}
