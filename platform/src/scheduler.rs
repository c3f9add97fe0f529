//! Sends commands: each due command is expired, parked until its device is
//! online, given up, or claimed for one more try and published (same id,
//! so the agent's journal turns a repeat into a retry, never a second run).
//! Every instance runs one; the claim is a conditional UPDATE, so a try is
//! sent by one instance only. State lives in the database, so a restarted
//! platform carries on where it stopped.

use crate::db::commands::{Cmd, IN_PROGRESS, READY};
use crate::Shared;
use serde_json::{json, Value};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Upper bound of a poll (other instances' changes are seen this late).
const TICK: Duration = Duration::from_millis(500);
const BATCH: i64 = 200;
/// "Until the device is online" for a command that never expires.
const FOREVER: i64 = i64::MAX / 2;

#[derive(Default)]
pub struct Wake {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    pub fn wake(&self) {
        *self.flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    fn wait(&self, d: Duration) {
        let g = self.flag.lock().unwrap_or_else(|p| p.into_inner());
        let mut g = self.cv.wait_timeout_while(g, d, |f| !*f).map(|r| r.0).unwrap_or_else(|p| p.into_inner().0);
        *g = false;
    }
}

/// The MQTT payload of one try (PROTOCOL.md "Commands").
pub fn payload(cmd: &Cmd, try_no: i64) -> Value {
    let mut v = json!({
        "id": cmd.id,
        "from": cmd.spec.origin,
        "command": cmd.spec.command,
        "method": cmd.spec.method,
        "d": serde_json::from_str::<Value>(&cmd.spec.body).unwrap_or(json!({})),
        "publishTime": cmd.create_time,
        "maxRetries": cmd.spec.max_retries,
        "tryTimes": try_no,
        "detached": cmd.spec.detached,
    });
    if cmd.spec.expires > 0 {
        v["expires"] = json!(cmd.spec.expires);
    }
    v
}

fn step(sh: &Shared, cmd: &Cmd, now: i64) -> Result<(), String> {
    let expiry = cmd.expiry();
    if expiry.is_some_and(|e| now >= e) {
        if sh.db.command_fail(cmd, now, "expired")? {
            log::info!("command {} to {} expired after {} tries", cmd.id, cmd.spec.sn, cmd.try_times);
        }
        return Ok(());
    }
    let until_expiry = expiry.unwrap_or(FOREVER);
    if cmd.try_times >= cmd.spec.max_retries.max(1) {
        // Sent as often as allowed and not answered: wait for a late answer until it expires.
        if expiry.is_some() {
            sh.db.command_defer(cmd, until_expiry)?;
        } else {
            sh.db.command_fail(cmd, now, "no answer")?;
        }
        return Ok(());
    }
    let online = sh.db.device_online(&cmd.spec.sn)?;
    if cmd.state == READY && !cmd.spec.publish_now && !online {
        // publishNow false: wait for the device's birth (state/online wakes it).
        sh.db.command_park_offline(cmd, until_expiry)?;
        return Ok(());
    }
    if cmd.state == IN_PROGRESS && !online {
        // The broker keeps the last try for the device's session; look again later.
        sh.db.command_park_offline(cmd, now.saturating_add(sh.cfg.answer_timeout).min(until_expiry))?;
        return Ok(());
    }
    if !sh.db.command_claim_try(cmd, now, sh.cfg.answer_timeout)? {
        return Ok(()); // another instance (or an answer) got there first
    }
    let topic = format!("{}/cmd/{}", sh.cfg.broker.prefix, cmd.spec.sn);
    sh.mqtt.publish(&topic, payload(cmd, cmd.try_times + 1).to_string().into_bytes())?;
    log::info!("command {} to {}: try {}", cmd.id, cmd.spec.sn, cmd.try_times + 1);
    Ok(())
}

pub fn start(sh: Arc<Shared>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || {
            let mut housekeeping = Instant::now();
            loop {
                let now = crate::time::now();
                match sh.db.commands_due(now, BATCH) {
                    Ok(due) => {
                        for cmd in &due {
                            if let Err(e) = step(&sh, cmd, now) {
                                log::error!("command {}: {e}", cmd.id);
                            }
                        }
                        if due.len() as i64 == BATCH {
                            continue;
                        }
                    }
                    Err(e) => log::error!("scheduler: {e}"),
                }
                if housekeeping.elapsed() > Duration::from_secs(5) {
                    housekeeping = Instant::now();
                    if let Err(e) = sh.db.commands_prune(sh.cfg.command_history) {
                        log::error!("prune: {e}");
                    }
                    // Routes added by another instance.
                    if let Ok(r) = sh.db.routes() {
                        sh.subscribe_routes(&r.into_iter().map(|r| r.topic).collect::<Vec<_>>());
                    }
                }
                sh.scheduler.wait(TICK);
            }
        })
        .map(|_| ())
        .map_err(|e| format!("scheduler thread: {e}"))
}
