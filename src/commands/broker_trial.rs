//! A broker move as apply → test → rollback (issue 19 B9; PROTOCOL.md,
//! "Settings that decide trust"): an `agent set` that changes where or how
//! the agent logs in to its broker is tried, not trusted.
//!
//! 1. The handler (old process) writes a trial record to the state dir
//!    (the old and the new raw UCI values, when it started, how long it
//!    may take), then the new settings to the UCI file, and restarts the
//!    agent. Its answer is deferred: nothing is published on the old broker.
//! 2. The restarted agent finds the record ([`resume`]) and connects with
//!    the new settings; [`watch`] waits until it is online there: CONNACK
//!    accepted and the PUBACK of a birth message.
//! 3. Online in time: the answer `ok` is journalled and goes out on the new
//!    broker; the record is removed. Not in time: the old values go back
//!    into the UCI file, the answer `err` (with why) is journalled, the
//!    record is removed and the agent restarts onto the old broker, where
//!    the journal publishes the answer.
//!
//! Every step is ordered so that a crash or restart at any point either
//! continues the trial (its time keeps running from the original start) or
//! finishes the rollback: the record goes last.
//!
//! The record holds the old and new values, the password included: it is
//! written mode 0600 next to the journal, like the UCI file it mirrors.

use super::envelope::{self, Command, Outcome};
use super::journal::{Journal, State};
use crate::agent::Ctx;
use crate::config::uci::{self, UciValue};
use crate::durable::WriteLock;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options that decide which broker the agent is online on, and as whom.
pub const BROKER_KEYS: &[&str] =
    &["broker_host", "broker_port", "client_id", "username", "password", "tls", "ca_file", "cert_file", "key_file"];

const FILE: &str = "broker-trial.json";

/// Raw UCI values of some options (None: not set, the default applies).
pub type Values = Vec<(String, Option<UciValue>)>;

/// A broker move in progress, as persisted in the state dir.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The command: journal key, hash, and what its answer echoes.
    pub key: String,
    pub hash: String,
    pub id: dma_wire::Id,
    pub from: String,
    pub method: String,
    pub sn: String,
    /// The options the command set, before and after.
    pub old: Values,
    pub new: Values,
    /// Unix time the trial started, and seconds it may take (`broker_trial`).
    pub started: u64,
    pub trial: u64,
    /// `host:port` before and after, for the answer.
    pub old_broker: String,
    pub new_broker: String,
}

fn value_json(v: &Option<UciValue>) -> Value {
    match v {
        None => Value::Null,
        Some(UciValue::Single(s)) => json!(s),
        Some(UciValue::List(l)) => json!(l),
    }
}

fn json_value(v: &Value) -> Result<Option<UciValue>, String> {
    Ok(match v {
        Value::Null => None,
        Value::String(s) => Some(UciValue::Single(s.clone())),
        Value::Array(a) => Some(UciValue::List(a.iter().map(|i| i.as_str().map(String::from).ok_or("list item not a string")).collect::<Result<_, _>>()?)),
        _ => return Err("value not a string, list or null".into()),
    })
}

fn values_json(v: &Values) -> Value {
    Value::Object(v.iter().map(|(k, x)| (k.clone(), value_json(x))).collect::<Map<_, _>>())
}

fn json_values(v: Option<&Value>) -> Result<Values, String> {
    let Some(Value::Object(m)) = v else { return Err("values missing".into()) };
    m.iter().map(|(k, x)| Ok((k.clone(), json_value(x)?))).collect()
}

impl Record {
    fn to_json(&self) -> Value {
        // `id` as a JSON value for earlier agents (exact up to 64 bits),
        // `idText` the id as received (dma-wire), read first.
        json!({"key": self.key, "hash": self.hash, "id": self.id.to_value(), "idText": self.id.text(), "from": self.from, "method": self.method, "sn": self.sn,
               "old": values_json(&self.old), "new": values_json(&self.new), "started": self.started, "trial": self.trial,
               "oldBroker": self.old_broker, "newBroker": self.new_broker})
    }

    fn from_json(v: &Value) -> Result<Record, String> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from).ok_or_else(|| format!("{k} missing"));
        let n = |k: &str| v.get(k).and_then(Value::as_u64).ok_or_else(|| format!("{k} missing"));
        Ok(Record {
            key: s("key")?,
            hash: s("hash")?,
            id: match v.get("idText").and_then(Value::as_str).map(dma_wire::Id::from_text) {
                Some(Ok(id)) => id,
                _ => dma_wire::Id::from_value(v.get("id").unwrap_or(&Value::Null)),
            },
            from: s("from")?,
            method: s("method")?,
            sn: s("sn")?,
            old: json_values(v.get("old"))?,
            new: json_values(v.get("new"))?,
            started: n("started")?,
            trial: n("trial")?,
            old_broker: s("oldBroker")?,
            new_broker: s("newBroker")?,
        })
    }

    fn answer(&self, o: &Outcome) -> dma_wire::Answer {
        envelope::answer(&self.sn, &self.id, &self.from, "agent", &self.method, o)
    }
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The trial in progress, if any. A record that cannot be read is
/// reported as an error (the caller logs it and removes it).
pub fn load(state_dir: &Path) -> Result<Option<Record>, String> {
    let text = match std::fs::read(path(state_dir)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {FILE}: {e}")),
    };
    let v: Value = serde_json::from_slice(&text).map_err(|e| format!("{FILE}: {e}"))?;
    Record::from_json(&v).map(Some).map_err(|e| format!("{FILE}: {e}"))
}

pub fn save(state_dir: &Path, r: &Record) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = path(state_dir);
    // Created 0600 first: write_atomic keeps the permissions of the file it replaces.
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(&p)?;
    crate::durable::write_atomic(&p, r.to_json().to_string().as_bytes())
}

pub fn remove(state_dir: &Path) {
    let p = path(state_dir);
    if let Err(e) = std::fs::remove_file(&p) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::error!("cannot remove {}: {e}", p.display());
        }
    }
    let _ = crate::durable::sync_dir(state_dir);
}

/// The raw values of `keys` in the agent section of the UCI file.
pub fn raw_values(config_path: &str, keys: &[String]) -> Result<Values, String> {
    let text = std::fs::read_to_string(config_path).map_err(|e| format!("cannot read {config_path}: {e}"))?;
    let sections = uci::parse(&text).map_err(|e| format!("{config_path}:{}: {}", e.line, e.msg))?;
    let agent = sections.iter().find(|s| s.stype == "agent");
    Ok(keys.iter().map(|k| (k.clone(), agent.and_then(|s| s.get(k)).map(|o| o.value.clone()))).collect())
}

/// Seconds left of a trial that started at `started` (unix) and may take
/// `trial`, at `now`. A clock stepped back (NTP after boot) never gives
/// more than the whole trial; one stepped forward may end it early (the
/// agent then rolls back: the safe side).
pub fn remaining(started: u64, trial: u64, now: u64) -> u64 {
    started.saturating_add(trial).saturating_sub(now).min(trial)
}

/// Whether the changes in `updates` move the agent to another broker (or
/// log it in differently), compared with the raw values in the file.
pub fn is_broker_move(updates: &Values, current: &Values) -> bool {
    updates.iter().any(|(k, v)| BROKER_KEYS.contains(&k.as_str()) && current.iter().find(|(c, _)| c == k).map(|(_, x)| x) != Some(v))
}

/// Start a trial (the handler, in the old process): record, then write the
/// new values. The caller restarts the agent and defers the answer.
pub fn begin(ctx: &Ctx, cmd: &Command, updates: &Values, old: Values) -> Result<(), String> {
    let cfg = ctx.config();
    let state_dir = PathBuf::from(&cfg.agent.state_dir);
    let mut next = cfg.agent.clone();
    for (k, v) in updates {
        if let Some(UciValue::Single(s)) = v {
            next.set(k, s).map_err(|e| format!("bad value for {k}: {e}"))?;
        }
    }
    let rec = Record {
        key: cmd.key.clone(),
        hash: cmd.hash.clone(),
        id: cmd.wire.id.clone(),
        from: cmd.wire.from.clone(),
        method: cmd.wire.method.clone(),
        sn: ctx.sn(),
        old,
        new: updates.clone(),
        started: crate::util::unix_now(),
        trial: cfg.agent.broker_trial,
        old_broker: format!("{}:{}", cfg.agent.broker_host, cfg.agent.broker_port),
        new_broker: format!("{}:{}", next.broker_host, next.broker_port),
    };
    save(&state_dir, &rec).map_err(|e| format!("cannot record the broker trial: {e}"))?;
    let written = crate::config::update_agent_section(&cfg.path, &ctx.config_write, updates, |new| {
        crate::logging::add_secrets(new.secrets());
        ctx.set_config(Arc::new(new.clone()));
    });
    if let Err(e) = written {
        remove(&state_dir);
        return Err(format!("not applied: {e}"));
    }
    log::info!("broker trial: moving from {} to {} (up to {} s to get online there)", rec.old_broker, rec.new_broker, rec.trial);
    Ok(())
}

/// What [`resume`] found.
#[derive(Debug)]
pub enum Resume {
    /// No trial.
    None,
    /// A trial runs on: the config file holds the new values; [`watch`] it.
    Continue(Box<Record>),
    /// A trial ended here (its time was up, or the move was never written):
    /// the file holds the old values again; reload it.
    Ended,
}

/// At start-up: continue or finish the trial a previous run left.
pub fn resume(config_path: &str, lock: &WriteLock, state_dir: &Path, journal: &mut Journal) -> Resume {
    let rec = match load(state_dir) {
        Ok(Some(r)) => r,
        Ok(None) => return Resume::None,
        Err(e) => {
            // Nothing to roll back to: keep the settings in the file.
            log::error!("broker trial: {e}; record removed, keeping the configured broker");
            remove(state_dir);
            return Resume::None;
        }
    };
    let keys: Vec<String> = rec.new.iter().map(|(k, _)| k.clone()).collect();
    match raw_values(config_path, &keys) {
        Ok(now) if now != rec.new => {
            // Stopped between the record and the config write.
            finish(journal, &rec, State::Failed, &Outcome::err("not applied: the agent stopped before the new broker settings were written"));
            remove(state_dir);
            return Resume::Ended;
        }
        Ok(_) => {}
        Err(e) => log::error!("broker trial: {e}"),
    }
    if remaining(rec.started, rec.trial, crate::util::unix_now()) == 0 {
        let why = format!("not online on {} within {} s (the agent restarted meanwhile)", rec.new_broker, rec.trial);
        roll_back(config_path, lock, state_dir, journal, &rec, &why);
        return Resume::Ended;
    }
    // Running again: a redelivery of the command is not run twice meanwhile.
    if let Err(e) = journal.begin(&rec.key, &rec.hash, "agent") {
        log::error!("broker trial: journal: {e}");
    }
    log::info!("broker trial: continuing the move to {}", rec.new_broker);
    Resume::Continue(Box::new(rec))
}

fn finish(journal: &mut Journal, rec: &Record, state: State, o: &Outcome) {
    let answer = rec.answer(o);
    if journal.get(&rec.key).is_none() {
        let _ = journal.begin(&rec.key, &rec.hash, "agent");
    }
    if let Err(e) = journal.finish(&rec.key, state, &answer) {
        log::error!("broker trial: cannot journal the answer: {e}");
    }
}

/// Put the old values back and journal the `err` answer; the caller
/// restarts (or, at start-up, reloads) onto the old broker.
pub fn roll_back(config_path: &str, lock: &WriteLock, state_dir: &Path, journal: &mut Journal, rec: &Record, why: &str) {
    let restored = crate::config::update_agent_section(config_path, lock, &rec.old, |_| {});
    let msg = match &restored {
        Ok(_) => format!("broker trial failed: {why}; rolled back to {}", rec.old_broker),
        Err(e) => format!("broker trial failed: {why}; ROLLBACK FAILED: {e}"),
    };
    log::error!("{msg}");
    finish(journal, rec, State::Failed, &Outcome::err(msg));
    remove(state_dir);
}

/// The trial's success: the `ok` answer (sent on the new broker by the
/// journal's resend), and the record goes.
fn succeed(ctx: &Ctx, rec: &Record) {
    let shown = ctx.config().agent.to_json_masked();
    let applied: Map<String, Value> = rec.new.iter().filter_map(|(k, _)| shown.get(k).map(|v| (k.clone(), v.clone()))).collect();
    let o = Outcome::ok(json!({"applied": applied, "restart": true, "broker": rec.new_broker}));
    if let Ok(mut j) = ctx.journal.lock() {
        finish(&mut j, rec, State::Succeeded, &o);
    }
    remove(Path::new(&ctx.config().agent.state_dir));
    log::info!("broker trial: online on {}; the move stands", rec.new_broker);
    ctx.outbox.nudge();
}

/// How long one birth waits for its PUBACK before the next try.
const BIRTH_ACK_WAIT: Duration = Duration::from_secs(5);

/// Watch a trial (its own thread, in the restarted agent): online on the
/// new broker in time, or roll back and restart.
pub fn watch(ctx: Arc<Ctx>, rec: Record) {
    let left = remaining(rec.started, rec.trial, crate::util::unix_now());
    let deadline = Instant::now() + Duration::from_secs(left);
    let p = &ctx.publisher;
    while Instant::now() < deadline {
        if ctx.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return; // the record stays: the next start continues the trial
        }
        if p.is_connected() {
            let birth = crate::agent::birth::birth_payload(p, !ctx.config().agent.trusted_keys.is_empty());
            if let Ok(Some(w)) = p.publish(&p.topics.state, true, true, birth) {
                if w.wait(BIRTH_ACK_WAIT.min(deadline.saturating_duration_since(Instant::now()))) {
                    succeed(&ctx, &rec);
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = ctx.state.lock().ok().and_then(|s| s.last_broker_error.clone()).unwrap_or_else(|| "no answer".into());
    let why = format!("{last} (not online on {} within {} s)", rec.new_broker, rec.trial);
    let cfg = ctx.config();
    if let Ok(mut j) = ctx.journal.lock() {
        roll_back(&cfg.path, &ctx.config_write, Path::new(&cfg.agent.state_dir), &mut j, &rec, &why);
    }
    ctx.request_restart();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dma-trial-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn single(k: &str, v: &str) -> (String, Option<UciValue>) {
        (k.to_string(), Some(UciValue::Single(v.to_string())))
    }

    fn record() -> Record {
        Record {
            key: "n:5".into(),
            hash: "h".into(),
            id: dma_wire::Id::from_u64(5),
            from: "t".into(),
            method: "set".into(),
            sn: "SN1".into(),
            old: vec![single("broker_port", "1883"), ("password".into(), None)],
            new: vec![single("broker_port", "1884"), single("password", "pw")],
            started: 1000,
            trial: 120,
            old_broker: "h:1883".into(),
            new_broker: "h:1884".into(),
        }
    }

    #[test]
    fn time_left_never_exceeds_the_trial_and_ends() {
        assert_eq!(remaining(1000, 120, 1000), 120);
        assert_eq!(remaining(1000, 120, 1100), 20);
        assert_eq!(remaining(1000, 120, 1120), 0);
        assert_eq!(remaining(1000, 120, 5000), 0);
        assert_eq!(remaining(1000, 120, 10), 120, "clock stepped back");
    }

    #[test]
    fn record_round_trips_through_its_file_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmp("rec");
        assert_eq!(load(&d).unwrap(), None);
        save(&d, &record()).unwrap();
        assert_eq!(load(&d).unwrap(), Some(record()));
        assert_eq!(std::fs::metadata(path(&d)).unwrap().permissions().mode() & 0o777, 0o600);
        remove(&d);
        assert_eq!(load(&d).unwrap(), None);
        std::fs::write(path(&d), "{").unwrap();
        assert!(load(&d).is_err());
    }

    #[test]
    fn a_move_is_a_change_of_a_broker_key() {
        let cur = vec![single("broker_port", "1883"), ("sys_interval".into(), None)];
        assert!(is_broker_move(&vec![single("broker_port", "1884")], &cur));
        assert!(!is_broker_move(&vec![single("broker_port", "1883")], &cur));
        assert!(!is_broker_move(&vec![single("sys_interval", "5")], &cur));
    }

    fn journal(d: &Path) -> Journal {
        Journal::open(d, 64, 256 * 1024, "boot").unwrap()
    }

    const CONF: &str = "config agent 'agent'\n\toption sn 'SN1'\n\toption broker_port '1884'\n\toption password 'pw'\n\toption state_dir '/tmp'\n";

    #[test]
    fn expired_trial_rolls_back_the_file_and_journals_err() {
        let d = tmp("expired");
        let conf = d.join("c.conf");
        std::fs::write(&conf, CONF).unwrap();
        save(&d, &record()).unwrap();
        let mut j = journal(&d);
        let r = resume(conf.to_str().unwrap(), &Default::default(), &d, &mut j);
        assert!(matches!(r, Resume::Ended), "{r:?}");
        let back = raw_values(conf.to_str().unwrap(), &["broker_port".into(), "password".into()]).unwrap();
        assert_eq!(back, record().old);
        let e = j.get("n:5").unwrap();
        assert_eq!(e.state, State::Failed);
        let a = e.answer.clone().unwrap();
        assert_eq!(a.id.text(), "5");
        assert!(!a.is_ok());
        let msg = a.msg();
        assert!(msg.starts_with("broker trial failed:") && msg.contains("rolled back to h:1883"), "{msg}");
        assert_eq!(load(&d).unwrap(), None);
    }

    #[test]
    fn trial_in_time_continues_and_marks_the_command_running() {
        let d = tmp("cont");
        let conf = d.join("c.conf");
        std::fs::write(&conf, CONF).unwrap();
        let rec = Record { started: crate::util::unix_now(), ..record() };
        save(&d, &rec).unwrap();
        let mut j = journal(&d);
        match resume(conf.to_str().unwrap(), &Default::default(), &d, &mut j) {
            Resume::Continue(r) => assert_eq!(*r, rec),
            other => panic!("{other:?}"),
        }
        assert_eq!(j.get("n:5").unwrap().state, State::Running);
        assert!(load(&d).unwrap().is_some(), "the record stays until the trial ends");
    }

    #[test]
    fn a_move_never_written_is_answered_err_and_forgotten() {
        let d = tmp("unwritten");
        let conf = d.join("c.conf");
        std::fs::write(&conf, CONF.replace("1884", "1883")).unwrap();
        save(&d, &Record { started: crate::util::unix_now(), ..record() }).unwrap();
        let mut j = journal(&d);
        assert!(matches!(resume(conf.to_str().unwrap(), &Default::default(), &d, &mut j), Resume::Ended));
        assert_eq!(j.get("n:5").unwrap().state, State::Failed);
        assert_eq!(load(&d).unwrap(), None);
        assert!(std::fs::read_to_string(&conf).unwrap().contains("1883"));
    }
}
