//! The command engine: takes raw command payloads from the MQTT thread,
//! applies the journal's exactly-once rules, and runs commands on a
//! bounded set of worker threads with a bounded waiting queue.
//!
//! Scheduling: at most `max_running` commands run at once. Commands with
//! `detached: true` run alongside others; the rest run one at a time in
//! arrival order. When `max_running` run and `queue_size` wait, a new
//! command gets an `err` answer ("busy") at once — never silence.

use super::envelope::{self, answer_for, Command, Outcome};
use super::journal::State;
use crate::agent::Ctx;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
// AtomicUsize, not AtomicU64: 32-bit MIPS has no 64-bit atomics.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Raw payloads waiting for the dispatcher (beyond this, answered "busy").
const INBOX: usize = 32;
/// Stack of a command thread: handlers are shallow; keep RSS small.
const WORKER_STACK: usize = 256 * 1024;

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static QUEUED: AtomicUsize = AtomicUsize::new(0);
static DONE: AtomicUsize = AtomicUsize::new(0);
static REJECTED: AtomicUsize = AtomicUsize::new(0);

/// Counters for `agent get`.
pub fn stats() -> Value {
    json!({"running": RUNNING.load(Ordering::Relaxed), "queued": QUEUED.load(Ordering::Relaxed),
           "done": DONE.load(Ordering::Relaxed), "rejected": REJECTED.load(Ordering::Relaxed)})
}

#[derive(Default)]
struct Sched {
    queue: VecDeque<Command>,
    running: usize,
    serial_busy: bool,
    running_keys: HashSet<String>,
    accepting: bool,
}

pub struct Engine {
    ctx: Arc<Ctx>,
    inbox: SyncSender<Vec<u8>>,
    sched: Arc<(Mutex<Sched>, Condvar)>,
}

impl Engine {
    pub fn start(ctx: Arc<Ctx>) -> std::io::Result<Engine> {
        let (tx, rx) = sync_channel(INBOX);
        let sched = Arc::new((Mutex::new(Sched { accepting: true, ..Default::default() }), Condvar::new()));
        {
            let (ctx, sched) = (ctx.clone(), sched.clone());
            std::thread::Builder::new().name("dispatch".into()).stack_size(512 * 1024).spawn(move || dispatcher(ctx, sched, rx))?;
        }
        Ok(Engine { ctx, inbox: tx, sched })
    }

    /// Called on the MQTT thread: never blocks.
    pub fn offer(&self, payload: &[u8]) {
        if let Ok(mut s) = self.ctx.state.lock() {
            s.commands_received += 1;
        }
        match self.inbox.try_send(payload.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(p)) | Err(TrySendError::Disconnected(p)) => {
                reject(&self.ctx, &p, "busy: too many commands waiting; try again later")
            }
        }
    }

    /// Stop taking commands; wait (bounded) for running ones. Returns the
    /// keys still running at the deadline (journalled as interrupted).
    pub fn drain(&self, timeout: Duration) -> Vec<String> {
        let (m, cv) = &*self.sched;
        let deadline = Instant::now() + timeout;
        let Ok(mut s) = m.lock() else { return Vec::new() };
        s.accepting = false;
        // Queued commands never started: they fail, so a redelivery retries them.
        for c in s.queue.drain(..) {
            finish(&self.ctx, &c, &Outcome::err("agent stopping; not started"), false);
        }
        QUEUED.store(0, Ordering::Relaxed);
        while s.running > 0 && Instant::now() < deadline {
            match cv.wait_timeout(s, deadline.saturating_duration_since(Instant::now())) {
                Ok((g, _)) => s = g,
                Err(_) => return Vec::new(),
            }
        }
        let left: Vec<String> = s.running_keys.iter().cloned().collect();
        drop(s);
        if let Ok(mut j) = self.ctx.journal.lock() {
            for k in &left {
                let a = json!({"interrupted": k});
                if let Err(e) = j.finish(k, State::Interrupted, &a) {
                    log::error!("journal: {e}");
                }
            }
        }
        left
    }
}

/// Answer a raw payload we will not run (the dispatcher never saw it),
/// with whatever id it carries.
fn reject(ctx: &Ctx, payload: &[u8], msg: &str) {
    match envelope::parse(payload) {
        Ok(c) => reject_cmd(ctx, &c, msg),
        Err(e) => {
            count_rejected(ctx);
            let a = envelope::answer_for_parse_error(&ctx.sn(), &envelope::ParseError { msg: msg.to_string(), ..e });
            publish_answer(ctx, None, &a);
        }
    }
}

/// Answer a parsed command we will not run.
fn reject_cmd(ctx: &Ctx, cmd: &Command, msg: &str) {
    count_rejected(ctx);
    publish_answer(ctx, None, &answer_for(&ctx.sn(), cmd, &Outcome::err(msg)));
}

fn count_rejected(ctx: &Ctx) {
    REJECTED.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut s) = ctx.state.lock() {
        s.commands_rejected += 1;
    }
}

/// Publish an answer; when it has a journal key, record its PUBACK.
fn publish_answer(ctx: &Ctx, key: Option<&str>, answer: &Value) {
    let p = &ctx.publisher;
    match p.publish_json(&p.topics.resp, true, false, answer) {
        Ok(Some(w)) => {
            if let Some(k) = key {
                crate::agent::runtime::watch_ack(k.to_string(), w);
            }
        }
        Ok(None) => {}
        Err(e) => log::warn!("answer not queued ({e}); it is sent again after reconnect"),
    }
}

fn dispatcher(ctx: Arc<Ctx>, sched: Arc<(Mutex<Sched>, Condvar)>, rx: Receiver<Vec<u8>>) {
    while let Ok(payload) = rx.recv() {
        let cmd = match envelope::parse(&payload) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("bad command: {}", e.msg);
                count_rejected(&ctx);
                publish_answer(&ctx, None, &envelope::answer_for_parse_error(&ctx.sn(), &e));
                continue;
            }
        };
        log::info!("command {} '{}' {} from '{}'", cmd.key, cmd.command, cmd.method, cmd.from);
        if !super::KNOWN.contains(&cmd.command.as_str()) {
            reject_cmd(&ctx, &cmd, &format!("unknown command '{}'", cmd.command));
            continue;
        }
        let cfg = ctx.config();
        if crate::agent::clock::expired(cmd.publish_time, cmd.expires, cfg.agent.clock_trust) {
            reject_cmd(&ctx, &cmd, "expired: the command's expiry time has passed; not run");
            continue;
        }
        let (m, cv) = &*sched;
        let Ok(mut s) = m.lock() else { return };
        // Exactly-once rules.
        let prior = ctx.journal.lock().ok().and_then(|j| j.get(&cmd.key).cloned());
        if let Some(e) = &prior {
            if e.hash != cmd.hash {
                drop(s);
                reject_cmd(&ctx, &cmd, &format!("conflict: id {} was already used for a different command", cmd.id));
                continue;
            }
            match e.state {
                State::Running => {
                    log::info!("command {} is already running; redelivery ignored", cmd.key);
                    continue;
                }
                State::Succeeded | State::Interrupted => {
                    drop(s);
                    // Succeeded: the stored answer. Interrupted: its effect is
                    // unknown, so it is not run again; say so.
                    let a = match (e.state, e.answer.clone()) {
                        (State::Succeeded, Some(a)) => a,
                        _ => answer_for(&ctx.sn(), &cmd, &Outcome::err("interrupted: the agent stopped while this command ran; not run again")),
                    };
                    log::info!("command {} already done; answer published again", cmd.key);
                    publish_answer(&ctx, Some(&cmd.key), &a);
                    continue;
                }
                State::Failed => log::info!("command {} failed before; running it again", cmd.key),
            }
        }
        if !s.accepting {
            drop(s);
            reject_cmd(&ctx, &cmd, "agent stopping; not started");
            continue;
        }
        if s.queue.len() >= cfg.agent.queue_size && s.running >= cfg.agent.max_running {
            drop(s);
            reject_cmd(&ctx, &cmd, &format!("busy: {} running and {} waiting; try again later", cfg.agent.max_running, cfg.agent.queue_size));
            continue;
        }
        // Journal before any side effect.
        let journaled = ctx.journal.lock().map_err(|_| "poisoned".to_string()).and_then(|mut j| j.begin(&cmd.key, &cmd.hash, &cmd.command).map_err(|e| e.to_string()));
        if let Err(e) = journaled {
            drop(s);
            ctx.note_error(format!("journal: {e}"));
            reject_cmd(&ctx, &cmd, &format!("cannot record the command in the journal: {e}"));
            continue;
        }
        s.running_keys.insert(cmd.key.clone());
        s.queue.push_back(cmd);
        QUEUED.store(s.queue.len(), Ordering::Relaxed);
        schedule(&ctx, &sched, &mut s);
        cv.notify_all();
    }
}

/// Start what can start. Called with the lock held.
fn schedule(ctx: &Arc<Ctx>, sched: &Arc<(Mutex<Sched>, Condvar)>, s: &mut Sched) {
    let max = ctx.config().agent.max_running;
    while s.running < max {
        let pos = s.queue.iter().position(|c| c.detached || !s.serial_busy);
        let Some(cmd) = pos.and_then(|p| s.queue.remove(p)) else { break };
        s.running += 1;
        if !cmd.detached {
            s.serial_busy = true;
        }
        RUNNING.store(s.running, Ordering::Relaxed);
        QUEUED.store(s.queue.len(), Ordering::Relaxed);
        let (ctx2, sched2) = (ctx.clone(), sched.clone());
        let detached = cmd.detached;
        let key = cmd.key.clone();
        let spawned = std::thread::Builder::new()
            .name("cmd".into())
            .stack_size(WORKER_STACK)
            .spawn(move || run_one(ctx2, sched2, cmd));
        if let Err(e) = spawned {
            log::error!("cannot start a command thread: {e}");
            s.running -= 1;
            if !detached {
                s.serial_busy = false;
            }
            s.running_keys.remove(&key);
            if let Ok(mut j) = ctx.journal.lock() {
                let _ = j.finish(&key, State::Failed, &json!({"error": "no thread"}));
            }
            break;
        }
    }
}

fn run_one(ctx: Arc<Ctx>, sched: Arc<(Mutex<Sched>, Condvar)>, cmd: Command) {
    let outcome = super::dispatch(&ctx, &cmd);
    finish(&ctx, &cmd, &outcome, true);
    DONE.fetch_add(1, Ordering::Relaxed);
    let (m, cv) = &*sched;
    if let Ok(mut s) = m.lock() {
        s.running -= 1;
        if !cmd.detached {
            s.serial_busy = false;
        }
        s.running_keys.remove(&cmd.key);
        RUNNING.store(s.running, Ordering::Relaxed);
        if s.accepting {
            schedule(&ctx, &sched, &mut s);
        }
        cv.notify_all();
    }
}

/// Journal the final state and publish the answer.
fn finish(ctx: &Ctx, cmd: &Command, o: &Outcome, publish: bool) {
    // A command that answered before its effect (`answer_first`) stored
    // that answer; it is final and was already published.
    let stored = if o.ok {
        ctx.journal.lock().ok().and_then(|j| j.get(&cmd.key).and_then(|e| e.answer.clone()))
    } else {
        None
    };
    let already_sent = stored.is_some();
    let answer = stored.unwrap_or_else(|| answer_for(&ctx.sn(), cmd, o));
    let state = if o.ok { State::Succeeded } else { State::Failed };
    if let Ok(mut j) = ctx.journal.lock() {
        if let Err(e) = j.finish(&cmd.key, state, &answer) {
            log::error!("journal: {e}");
        }
        if already_sent {
            let _ = j.mark_acked(&cmd.key);
        }
    }
    if !o.ok && !o.msg.is_empty() {
        log::info!("command {} '{}': {}", cmd.key, cmd.command, o.msg);
    }
    if publish && !already_sent {
        publish_answer(ctx, Some(&cmd.key), &answer);
    }
}
