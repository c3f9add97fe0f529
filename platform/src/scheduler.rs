//! Sends commands: each due command is expired, parked until its device is
//! online, given up, or claimed for one more try and published (same id,
//! so the agent's journal turns a repeat into a retry, never a second run).
//! Every instance runs one; the claim is a conditional UPDATE, so a try is
//! sent by one instance only. State lives in the database, so a restarted
//! platform carries on where it stopped.

use crate::db::commands::{Cmd, IN_PROGRESS, READY};
use crate::signing::Signer;
use crate::Shared;
use dma_wire::command::Outgoing;
use dma_wire::Id;
use serde_json::Value;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Upper bound of a poll (other instances' changes are seen this late).
const TICK: Duration = Duration::from_millis(500);
const BATCH: i64 = 1000;
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

/// The command of one try as the agent reads it (dma-wire's envelope: the
/// one definition of the contract both sides use).
pub fn payload(cmd: &Cmd, try_no: i64) -> Outgoing {
    let nonneg = |n: i64| u64::try_from(n).unwrap_or(0);
    Outgoing {
        id: Id::from_u64(cmd.id),
        from: cmd.spec.origin.clone(),
        command: cmd.spec.command.clone(),
        method: cmd.spec.method.clone(),
        d: serde_json::from_str::<Value>(&cmd.spec.body).unwrap_or_else(|_| Value::Object(Default::default())),
        publish_time: Some(nonneg(cmd.create_time)),
        expires: (cmd.spec.expires > 0).then(|| nonneg(cmd.spec.expires)),
        max_retries: Some(nonneg(cmd.spec.max_retries)),
        try_times: Some(nonneg(try_no)),
        detached: cmd.spec.detached,
        sn: None,
    }
}

/// The bytes published for one try: with a signing key, the signed
/// envelope (PROTOCOL.md "Signed commands") whose inner command adds the
/// target `sn`, `publishTime` = now and `expires` = the seconds left
/// (0: never), signed anew for every try; without one, the v1 command.
pub fn wire(signer: Option<&Signer>, cmd: &Cmd, try_no: i64, now: i64) -> Vec<u8> {
    let mut inner = payload(cmd, try_no);
    let bytes = |o: &Outgoing| serde_json::to_vec(o).unwrap_or_default();
    let Some(signer) = signer else { return bytes(&inner) };
    inner.sn = Some(cmd.spec.sn.clone());
    inner.publish_time = Some(u64::try_from(now).unwrap_or(0));
    // The scheduler never sends an expired command, so a live one has >= 1 s left.
    inner.expires = Some(cmd.expiry().map_or(0, |e| u64::try_from(e.saturating_sub(now).max(1)).unwrap_or(1)));
    signer.envelope(&bytes(&inner), try_no).to_string().into_bytes()
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
    let topic = dma_wire::topics::cmd(&sh.cfg.broker.prefix, &cmd.spec.sn);
    sh.mqtt.publish(&topic, wire(sh.signer.as_ref(), cmd, cmd.try_times + 1, now))?;
    log::info!("command {} to {}: try {}", cmd.id, cmd.spec.sn, cmd.try_times + 1);
    Ok(())
}

/// A due command `step` would simply claim and publish: not expired,
/// tries left, and its device online (or a first try to send at once).
fn plain_send(sh: &Shared, cmd: &Cmd, now: i64) -> bool {
    if cmd.expiry().is_some_and(|e| now >= e) || cmd.try_times >= cmd.spec.max_retries.max(1) {
        return false;
    }
    match sh.db.device_online(&cmd.spec.sn) {
        Ok(true) => true,
        Ok(false) => cmd.state == READY && cmd.spec.publish_now,
        Err(_) => false,
    }
}

/// Claim the next try of `cmds` in one transaction, then publish those claimed.
fn send_many(sh: &Shared, cmds: &[Cmd], now: i64) -> Result<(), String> {
    if cmds.is_empty() {
        return Ok(());
    }
    let claimed = sh.db.commands_claim_many(cmds, now, sh.cfg.answer_timeout)?;
    for (cmd, won) in cmds.iter().zip(claimed) {
        if !won {
            continue; // another instance (or an answer) got there first
        }
        let topic = dma_wire::topics::cmd(&sh.cfg.broker.prefix, &cmd.spec.sn);
        match sh.mqtt.publish(&topic, wire(sh.signer.as_ref(), cmd, cmd.try_times + 1, now)) {
            Ok(()) => log::info!("command {} to {}: try {}", cmd.id, cmd.spec.sn, cmd.try_times + 1),
            // Claimed but not sent: sent again after answer_timeout, like a lost try.
            Err(e) => log::error!("command {}: {e}", cmd.id),
        }
    }
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
                        // Plain sends are claimed together (one transaction); the rest one by one.
                        let (plain, other): (Vec<Cmd>, Vec<Cmd>) = due.iter().cloned().partition(|c| plain_send(&sh, c, now));
                        if let Err(e) = send_many(&sh, &plain, now) {
                            log::error!("commands: {e}");
                        }
                        for cmd in &other {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::commands::NewCommand;
    use base64::Engine as _;

    fn cmd(expires: i64) -> Cmd {
        let spec = NewCommand {
            sn: "A1".into(),
            origin: "t".into(),
            command: "sh".into(),
            method: String::new(),
            body: r#"{"shcmd":"id"}"#.into(),
            detached: false,
            publish_now: true,
            max_retries: 3,
            expires,
        };
        Cmd { id: 7, spec, create_time: 1000, state: 0, try_times: 0, publish_time: 0, finish_time: 0, failed_time: 0, next_at: 0, reason: String::new(), response: None, rev_time: 0 }
    }

    #[test]
    fn unsigned_is_v1_signed_carries_target_now_and_time_left() {
        let v1: Value = serde_json::from_slice(&wire(None, &cmd(600), 1, 1100)).unwrap();
        assert_eq!((v1["publishTime"].as_i64(), v1["expires"].as_i64(), v1.get("sn"), v1.get("signed")), (Some(1000), Some(600), None, None));
        let dir = std::env::temp_dir().join(format!("dma-sched-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("k.pem");
        crate::signing::keygen(&file, "k1").unwrap();
        let s = Signer::load(file.to_str().unwrap(), "k1").unwrap();
        let inner = |c: &Cmd, try_no, now| {
            let env: Value = serde_json::from_slice(&wire(Some(&s), c, try_no, now)).unwrap();
            assert_eq!(env["tryTimes"].as_i64(), Some(try_no));
            let b = base64::engine::general_purpose::STANDARD.decode(env["signed"]["cmd"].as_str().unwrap()).unwrap();
            serde_json::from_slice::<Value>(&b).unwrap()
        };
        let i = inner(&cmd(600), 2, 1100);
        assert_eq!((i["sn"].as_str(), i["id"].as_u64(), i["publishTime"].as_i64(), i["expires"].as_i64()), (Some("A1"), Some(7), Some(1100), Some(500)));
        assert_eq!(i["d"]["shcmd"], "id");
        assert_eq!(inner(&cmd(0), 1, 1100)["expires"].as_i64(), Some(0), "0: never expires");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
