//! The command engine: takes raw command payloads from the MQTT thread,
//! applies the journal's exactly-once rules, and runs commands on a
//! bounded set of worker threads with a bounded waiting queue.
//!
//! Scheduling: at most `max_running` commands run at once. Commands with
//! `detached: true` run alongside others; the rest run one at a time in
//! arrival order. A command that cannot start at once waits; when
//! `queue_size` wait already it gets an `err` answer ("busy") at once —
//! never silence, never journalled.
//!
//! Trust (docs/PROTOCOL.md, "Signed commands"): every payload goes through
//! `trust::gate` first (signature, serial, age, replay guard; a
//! verification is ~50 µs), on the dispatcher — or on the MQTT thread for
//! a small read-only command it answers itself. A refused command is
//! answered and never journalled. The replay guard is the dispatcher's
//! (lent under a lock the MQTT thread only tries); only the dispatcher
//! records an accepted id in it (on flash), right before the journal.
//!
//! Read-only commands (`agent get`, `report`, a LAN device's `get`:
//! `Name::is_read_only`) change nothing, so they are neither journalled nor
//! recorded in the replay guard: no fsync on their way (docs/PROTOCOL.md,
//! "Commands"). `agent get` and `report` are answered on the MQTT thread
//! itself when nothing else is being decided, running or waiting and the
//! locks they need are free (`Engine::answer_here`: no thread hop at all,
//! the same checks), else on the dispatcher thread when they could start
//! at once; either way their answer goes straight into the MQTT client. A
//! LAN device's `get` waits for its device like any command, on a command
//! thread.
//!
//! Acknowledgement: the broker's PUBLISH of a command is acknowledged only
//! once the command is journalled, or answered without journalling
//! (malformed, unknown, expired, busy, too large, a redelivery), or, for a
//! read-only command, queued or answered. If the agent dies before, the
//! broker delivers it again.
//!
//! The MQTT thread never waits for room in the MQTT request queue: it is
//! the thread that empties it. A command it cannot hand over (inbox full,
//! too large) is kept as the little its answer needs and answered by the
//! dispatcher, which can wait; answered from the MQTT thread, the answer
//! was lost whenever a burst had filled the request queue, and the command
//! stayed unanswered until the next reconnect.

use super::envelope::{self, answer_for, Command, Outcome};
use dma_wire::Answer;
use super::journal::State;
use crate::agent::Ctx;
use crate::mqtt::session::MAX_COMMAND;
use crate::mqtt::CommandAck;
use crate::trust::gate::{self, Policy};
use crate::trust::refusals::Reason;
use crate::trust::replay::ReplayGuard;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
// AtomicUsize, not AtomicU64: 32-bit MIPS has no 64-bit atomics.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Raw payloads waiting for the dispatcher (beyond this, answered "busy").
const INBOX: usize = 32;
/// Their bytes together (commands are up to 256 KiB each).
const INBOX_BYTES: usize = 1024 * 1024;
const BUSY: &str = "busy: too many commands waiting; try again later";
/// Largest command answered on the MQTT thread (`agent get`, `report`,
/// signed or not, are far smaller).
const HERE_MAX: usize = 8 * 1024;


/// Counters for `agent get`.
pub fn stats(ctx: &Ctx) -> Value {
    let Ok(s) = ctx.state.lock() else { return Value::Null };
    json!({"running": s.commands_running, "queued": s.commands_queued, "done": s.commands_done, "rejected": s.commands_rejected})
}

/// Record the engine's load for `agent get`.
fn note_load(ctx: &Ctx, running: usize, queued: usize) {
    if let Ok(mut st) = ctx.state.lock() {
        st.commands_running = running;
        st.commands_queued = queued;
    }
}

#[derive(Default)]
struct Sched {
    queue: VecDeque<Command>,
    running: usize,
    serial_busy: bool,
    /// Journalled and not finished (queued or running), by key.
    live: HashMap<String, Command>,
    accepting: bool,
}

impl Sched {
    /// Would `cmd` start at once (rather than wait)?
    fn can_start(&self, cmd: &Command, max_running: usize) -> bool {
        self.running < max_running && (cmd.wire.detached || (!self.serial_busy && !self.queue.iter().any(|c| !c.wire.detached)))
    }
}

/// Commands refused on the MQTT thread and waiting for their answer
/// (beyond this, answered from the MQTT thread if the request queue has
/// room, else left to the broker's redelivery). Each is a few hundred bytes.
const REFUSED_MAX: usize = 256;
/// Longest `from`, `command` or `method` kept for such an answer.
const REFUSED_TEXT: usize = 64;

// The inbox's slots have the size of a command either way; boxing it
// would cost an allocation per command.
#[allow(clippy::large_enum_variant)]
enum Inbound {
    /// A raw command with the PUBACK to send once it is dealt with.
    Command(Vec<u8>, CommandAck),
    /// Answer the refused commands.
    Refused,
}

/// A command the dispatcher answers without running it: its head (id,
/// names, the reason) and its PUBACK.
struct Refusal {
    head: envelope::ParseError,
    ack: CommandAck,
}

pub struct Engine {
    ctx: Arc<Ctx>,
    inbox: SyncSender<Inbound>,
    refused: Arc<Mutex<VecDeque<Refusal>>>,
    sched: Arc<(Mutex<Sched>, Condvar)>,
    /// Bytes of commands in the inbox (offered, not yet taken by the dispatcher).
    inbox_used: Arc<AtomicUsize>,
    /// Commands handed to the dispatcher and not yet decided by it.
    undecided: Arc<AtomicUsize>,
    /// The replay guard: the dispatcher's, lent to the MQTT thread for a
    /// read-only command answered there ([`Engine::answer_here`]).
    guard: Arc<Mutex<ReplayGuard>>,
}

impl Engine {
    pub fn start(ctx: Arc<Ctx>) -> std::io::Result<Engine> {
        let (tx, rx) = sync_channel(INBOX);
        let sched = Arc::new((Mutex::new(Sched { accepting: true, ..Default::default() }), Condvar::new()));
        let refused = Arc::new(Mutex::new(VecDeque::new()));
        let guard = {
            let cfg = ctx.config();
            let now = crate::agent::clock::trusted(cfg.agent.clock_trust).then(crate::util::unix_now);
            ReplayGuard::open(std::path::Path::new(&cfg.agent.state_dir), now)
        };
        if let Some(why) = &guard.recovered {
            ctx.note_error(why.clone());
        }
        let inbox_used = Arc::new(AtomicUsize::new(0));
        let undecided = Arc::new(AtomicUsize::new(0));
        let guard = Arc::new(Mutex::new(guard));
        {
            let (ctx, sched, refused, used, undecided, guard) = (ctx.clone(), sched.clone(), refused.clone(), inbox_used.clone(), undecided.clone(), guard.clone());
            crate::stack::spawn("dispatch".into(), move || dispatcher(ctx, sched, rx, refused, guard, used, undecided))?;
        }
        Ok(Engine { ctx, inbox: tx, refused, sched, inbox_used, undecided, guard })
    }

    /// Called on the MQTT thread: never blocks.
    pub fn offer(&self, payload: &[u8], ack: CommandAck) {
        if let Ok(mut s) = self.ctx.state.lock() {
            s.commands_received += 1;
        }
        if payload.len() > MAX_COMMAND {
            return self.refuse(payload, format!("too large: the command has {} bytes, the limit is {MAX_COMMAND}", payload.len()), ack);
        }
        let Some(ack) = self.answer_here(payload, ack) else { return };
        if self.inbox_used.load(Ordering::SeqCst) + payload.len() > INBOX_BYTES {
            return self.refuse(payload, BUSY.into(), ack);
        }
        self.inbox_used.fetch_add(payload.len(), Ordering::SeqCst);
        self.undecided.fetch_add(1, Ordering::SeqCst);
        match self.inbox.try_send(Inbound::Command(payload.to_vec(), ack)) {
            Ok(()) => {}
            Err(TrySendError::Full(Inbound::Command(p, ack))) | Err(TrySendError::Disconnected(Inbound::Command(p, ack))) => {
                self.inbox_used.fetch_sub(p.len(), Ordering::SeqCst);
                self.undecided.fetch_sub(1, Ordering::SeqCst);
                self.refuse(&p, BUSY.into(), ack);
            }
            Err(_) => {}
        }
    }

    /// On the MQTT thread: answer a read-only `agent get` or `report` right
    /// here — no thread hop at all — when nothing handed to the dispatcher
    /// is still undecided (arrival order), no refusal waits, and every lock
    /// it needs is free at once (`try_lock`: this thread never waits on a
    /// lock another thread holds across an fsync). The checks are the
    /// dispatcher's own (`decide`, signature and replay guard included);
    /// nothing here waits for room: an answer the client's queue or the
    /// outbox cannot take at once goes back to the dispatcher. Returns the
    /// PUBACK when the dispatcher must decide instead.
    fn answer_here(&self, payload: &[u8], ack: CommandAck) -> Option<CommandAck> {
        // (Small: a command's head is read here, on the MQTT thread.)
        if payload.len() > HERE_MAX || journal_delay().is_some() || self.undecided.load(Ordering::SeqCst) != 0 {
            return Some(ack);
        }
        if !self.refused.lock().map(|q| q.is_empty()).unwrap_or(false) {
            return Some(ack);
        }
        // Eligible by its head alone (no side effect yet).
        let eligible = match crate::trust::verify::envelope(payload) {
            Ok(crate::trust::verify::Envelope::Plain) => envelope::parse_head(payload),
            Ok(crate::trust::verify::Envelope::Signed(s)) => envelope::parse_head(&s.cmd),
            Err(_) => return Some(ack),
        };
        if !super::answered_at_once_by_name(&eligible.command, &eligible.method) {
            return Some(ack);
        }
        let Ok(mut guard) = self.guard.try_lock() else { return Some(ack) };
        // (undecided is 0 and only this thread hands commands over: the
        // dispatcher cannot take one while this runs.)
        match decide(&self.ctx, &self.sched, &mut guard, payload, Here::Yes) {
            Decided::Ack => {
                ack.ack();
                None
            }
            Decided::Unanswered => None,
            Decided::Refused(head) => {
                // Its refusal is counted (`admit`); the dispatcher publishes it (waiting for room).
                self.refused.lock().unwrap_or_else(|p| p.into_inner()).push_back(Refusal { head: *head, ack });
                let _ = self.inbox.try_send(Inbound::Refused);
                None
            }
            Decided::Elsewhere => Some(ack),
        }
    }

    /// Answer `payload` with `msg` without running it. On the MQTT thread:
    /// the dispatcher answers it (see the module's note); only with
    /// [`REFUSED_MAX`] already waiting is it answered here, if the request
    /// queue has room, else left unacknowledged for the broker to deliver
    /// again.
    fn refuse(&self, payload: &[u8], msg: String, ack: CommandAck) {
        count_rejected(&self.ctx);
        let mut head = envelope::parse_head(payload);
        head.msg = msg;
        for t in [&mut head.from, &mut head.command, &mut head.method] {
            crate::util::truncate_utf8(t, REFUSED_TEXT);
        }
        let mut q = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() < REFUSED_MAX {
            let first = q.is_empty();
            q.push_back(Refusal { head, ack });
            drop(q);
            // One nudge per batch: the dispatcher answers every refusal
            // waiting, and looks at them before each command it takes
            // (so a full inbox needs no nudge either).
            if first {
                let _ = self.inbox.try_send(Inbound::Refused);
            }
            return;
        }
        drop(q);
        if publish_answer(&self.ctx, None, &envelope::answer_for_parse_error(&self.ctx.sn(), &head), false) {
            ack.ack();
        }
    }

    /// Stop taking commands; wait (bounded) for running ones. Commands
    /// still running at the deadline are journalled as interrupted and
    /// answered so (a full answer envelope), unless they already gave their
    /// answer (`reboot`, `upgrade`): that one stands. Returns their keys.
    pub fn drain(&self, timeout: Duration) -> Vec<String> {
        let (m, cv) = &*self.sched;
        let deadline = Instant::now() + timeout;
        let Ok(mut s) = m.lock() else { return Vec::new() };
        s.accepting = false;
        // Queued commands never started: they fail, so a redelivery retries them.
        let queued: Vec<Command> = s.queue.drain(..).collect();
        for c in &queued {
            s.live.remove(&c.key);
        }
        note_load(&self.ctx, s.running, 0);
        drop(s);
        for c in &queued {
            // No waiting for room at shutdown (procd's term_timeout): what is
            // not queued now goes out from the journal after the restart.
            finish(&self.ctx, c, &Outcome::err("agent stopping; not started (a redelivery runs it)"), false);
        }
        let Ok(mut s) = m.lock() else { return Vec::new() };
        while s.running > 0 && Instant::now() < deadline {
            match cv.wait_timeout(s, deadline.saturating_duration_since(Instant::now())) {
                Ok((g, _)) => s = g,
                Err(_) => return Vec::new(),
            }
        }
        let left: Vec<Command> = s.live.values().cloned().collect();
        for c in &left {
            let answered = self.ctx.journal.lock().ok().and_then(|j| j.get(&c.key).map(|e| e.answer.is_some())).unwrap_or(false);
            if !answered {
                // Its thread, should it still end, must not answer over this.
                s.live.remove(&c.key);
            }
        }
        drop(s);
        for c in &left {
            let answered = self.ctx.journal.lock().ok().and_then(|j| j.get(&c.key).map(|e| e.answer.is_some())).unwrap_or(false);
            if answered {
                log::warn!("command {} ({}) still running at shutdown; its answer was already given", c.key, c.wire.command);
                continue;
            }
            if super::is_read_only(c) {
                send_unjournalled(&self.ctx, c, &Outcome::err("interrupted: the agent stopped while this read-only command ran; send it again"), false);
                continue;
            }
            let a = answer_of(
                &self.ctx,
                c,
                &Outcome::err("interrupted: the agent stopped while this command ran; its effect is unknown, it is not run again"),
            );
            // Handed to the outbox under the journal's lock (see `finish`).
            let taken = match self.ctx.journal.lock() {
                Ok(mut j) => {
                    if let Err(e) = j.finish(&c.key, State::Interrupted, &a) {
                        log::error!("journal: {e}");
                    }
                    self.ctx.outbox.try_send(Some(&c.key), &a)
                }
                Err(_) => false,
            };
            if !taken {
                deliver(&self.ctx, &c.key, &a, false);
            }
        }
        left.into_iter().map(|c| c.key).collect()
    }
}

/// Answer the commands the MQTT thread refused, oldest first, waiting for
/// room in the request queue as needed; acknowledge each answered one.
fn answer_refused(ctx: &Ctx, refused: &Mutex<VecDeque<Refusal>>) {
    loop {
        let Some(r) = refused.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else { return };
        if publish_answer(ctx, None, &envelope::answer_for_parse_error(&ctx.sn(), &r.head), true) {
            r.ack.ack_waiting(ROOM_WAIT);
        }
    }
}

/// Answer a parsed command we will not run. Returns whether the answer
/// was queued (if not, the command is left unacknowledged).
fn reject_cmd(ctx: &Ctx, cmd: &Command, msg: &str) -> bool {
    count_rejected(ctx);
    publish_answer(ctx, None, &answer_for(&ctx.sn(), cmd, &Outcome::err(msg)), true)
}

fn count_rejected(ctx: &Ctx) {
    if let Ok(mut s) = ctx.state.lock() {
        s.commands_rejected += 1;
    }
}

/// The answer envelope of `cmd`. Not cut here: it is cut once, where its
/// bytes are made for the broker (`mqtt::fit::answer_payload`); the
/// journal cuts its own copy to its record limit.
pub fn answer_of(ctx: &Ctx, cmd: &Command, o: &Outcome) -> Answer {
    answer_for(&ctx.sn(), cmd, o)
}

/// Publish the answer of a read-only command (never journalled): straight
/// into the MQTT client, no outbox in between (nothing is recorded of its
/// PUBACK: a lost answer is a lost read, and the platform's retry after
/// its answer timeout runs the command again). Through the outbox's
/// memory lane, like a refusal, when the broker is away or the client's
/// queue is full. Returns whether the answer was queued.
fn send_unjournalled(ctx: &Ctx, cmd: &Command, o: &Outcome, wait: bool) -> bool {
    if o.deferred {
        return true;
    }
    if !o.ok && !o.msg.is_empty() {
        log::info!("command {} '{}': {}", cmd.key, cmd.wire.command, o.msg);
    }
    let answer = answer_of(ctx, cmd, o);
    let p = &ctx.publisher;
    if p.is_connected() && p.publish(&p.topics.resp, true, false, crate::mqtt::fit::answer_payload(&answer)).is_ok() {
        return true;
    }
    publish_answer(ctx, None, &answer, wait)
}

/// Run a read-only command on the dispatcher thread and answer it.
fn run_here(ctx: &Ctx, cmd: &Command) -> bool {
    let outcome = super::dispatch(ctx, cmd);
    if let Ok(mut st) = ctx.state.lock() {
        st.commands_done += 1;
    }
    send_unjournalled(ctx, cmd, &outcome, true)
}

/// How long a thread other than the MQTT one waits for room in the
/// outbox or the request queue (they fill in bursts, e.g. 60 commands
/// answered "busy").
const ROOM_WAIT: Duration = Duration::from_secs(10);

/// Hand an answer that is not waiting in the journal to the outbox (a
/// refusal, or a stored answer published again); with a journal key its
/// PUBACK is recorded there. With `wait`, wait (bounded, while connected)
/// for room rather than refuse it. Returns whether the outbox took it (if
/// not, the command is left unacknowledged: the broker delivers it again
/// and it is answered then).
fn publish_answer(ctx: &Ctx, key: Option<&str>, answer: &Answer, wait: bool) -> bool {
    if wait {
        ctx.outbox.send_waiting(key, answer, ROOM_WAIT, &|| ctx.publisher.is_connected())
    } else {
        ctx.outbox.send(key, answer)
    }
}

/// Publish a command's final answer, just journalled: whole, from memory
/// (the journal may hold it cut to its record limit), its PUBACK recorded
/// in the journal. Should the outbox have no room, the journal's copy goes.
fn deliver(ctx: &Ctx, key: &str, answer: &Answer, wait: bool) {
    if !publish_answer(ctx, Some(key), answer, wait) {
        ctx.outbox.nudge();
    }
}

/// Test hook (builds with the `test-hooks` feature only, never the router's):
/// `DMA_TEST_JOURNAL_DELAY_MS` holds each command this long between
/// receipt and journalling, so a test can kill the agent in that window.
fn journal_delay() -> Option<Duration> {
    #[cfg(feature = "test-hooks")]
    {
        static D: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
        *D.get_or_init(|| {
            let d = std::env::var("DMA_TEST_JOURNAL_DELAY_MS").ok()?.parse().ok().map(Duration::from_millis);
            log::warn!("test hook: journalling delayed by {d:?}");
            d
        })
    }
    #[cfg(not(feature = "test-hooks"))]
    {
        None
    }
}

/// The dispatcher thread: the only one that decides (and so the only
/// owner of the replay guard: its check and its record cannot race).
fn dispatcher(
    ctx: Arc<Ctx>,
    sched: Arc<(Mutex<Sched>, Condvar)>,
    rx: Receiver<Inbound>,
    refused: Arc<Mutex<VecDeque<Refusal>>>,
    guard: Arc<Mutex<ReplayGuard>>,
    inbox_used: Arc<AtomicUsize>,
    undecided: Arc<AtomicUsize>,
) {
    let _ = journal_delay();
    while let Ok(item) = rx.recv() {
        answer_refused(&ctx, &refused);
        let Inbound::Command(payload, ack) = item else { continue };
        inbox_used.fetch_sub(payload.len(), Ordering::SeqCst);
        let decided = {
            let mut g = guard.lock().unwrap_or_else(|p| p.into_inner());
            decide(&ctx, &sched, &mut g, &payload, Here::No)
        };
        if matches!(decided, Decided::Ack) {
            ack.ack_waiting(ROOM_WAIT);
        }
        undecided.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where `decide` runs: on the dispatcher, or on the MQTT thread
/// ([`Engine::answer_here`]: never waits, hands back what it cannot finish).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Here {
    No,
    Yes,
}

/// What `decide` did with a command.
enum Decided {
    /// Dealt with: the command may be acknowledged.
    Ack,
    /// Its answer could not be queued: left unacknowledged (the broker
    /// delivers it again).
    Unanswered,
    /// On the MQTT thread only: refused, its refusal counted, the answer
    /// for the dispatcher to publish.
    Refused(Box<envelope::ParseError>),
    /// On the MQTT thread only: not decided, nothing done; the dispatcher decides.
    Elsewhere,
}

impl From<bool> for Decided {
    fn from(ok: bool) -> Decided {
        if ok {
            Decided::Ack
        } else {
            Decided::Unanswered
        }
    }
}

/// A signed command admitted by the trust gate.
struct SignedBy {
    kid: String,
    publish_time: u64,
    /// Its id is in the replay guard's set, with this `publishTime`.
    seen: Option<u64>,
}

/// Decide what to do with one command: check its signature (when keys
/// are configured), answer it at once, or record it in the replay guard,
/// journal it and queue it. Returns whether the command may now be
/// acknowledged: not when an answer that is not journalled could not be
/// queued (the broker then delivers the command again and it is answered then).
fn decide(ctx: &Arc<Ctx>, sched: &Arc<(Mutex<Sched>, Condvar)>, guard: &mut ReplayGuard, payload: &[u8], here: Here) -> Decided {
    match here {
        Here::No => decide_on_dispatcher(ctx, sched, guard, payload).into(),
        Here::Yes => decide_here(ctx, sched, guard, payload),
    }
}

/// Now, when the clock may be believed for a command's age (else `None`).
fn trusted_now(cfg: &crate::config::Config) -> Option<u64> {
    crate::agent::clock::trusted(cfg.agent.clock_trust).then(crate::util::unix_now)
}

/// The trust gate with this agent's policy, for both deciders. A refusal
/// is counted (by reason, and in the rejected total) and logged here,
/// wherever it is decided; its answer is the caller's. `trusted_now`:
/// [`trusted_now`].
fn admit(ctx: &Ctx, cfg: &crate::config::Config, sn: &str, trusted_now: Option<u64>, guard: &ReplayGuard, payload: &[u8]) -> Result<Option<gate::Admitted>, Box<gate::Refusal>> {
    let policy = Policy { keys: &cfg.agent.trusted_keys, sn, max_age: cfg.agent.command_max_age, trusted_now };
    gate::admit(payload, &policy, guard).inspect_err(|r| {
        ctx.refusals.count(r.reason);
        log::warn!("command refused: {}", r.head.msg);
        count_rejected(ctx);
    })
}

/// The MQTT thread's part of [`decide`] ([`Engine::answer_here`]): the same
/// checks (the trust gate, the journal, expiry), for the one case it
/// finishes — a read-only `agent get` or `report` with no command running
/// or waiting, an id the journal does not know and the replay guard has
/// not seen. Anything else goes to the dispatcher before any side effect,
/// except a refusal by the trust gate (counted in [`admit`]: its answer is
/// left to the dispatcher). Never waits on a lock held by another thread except
/// inside `agent get`'s statistics (the journal's: at worst one fsync by
/// the outbox recording a PUBACK, which never waits on this thread).
fn decide_here(ctx: &Arc<Ctx>, sched: &Arc<(Mutex<Sched>, Condvar)>, guard: &ReplayGuard, payload: &[u8]) -> Decided {
    let cfg = ctx.config();
    let now = trusted_now(&cfg);
    let (parsed, signed) = match admit(ctx, &cfg, &ctx.sn(), now, guard, payload) {
        Err(r) => return Decided::Refused(Box::new(r.head)),
        Ok(None) => (envelope::parse(payload), None),
        Ok(Some(a)) => (envelope::parse(&a.inner), Some(a)),
    };
    let Ok(mut cmd) = parsed else { return Decided::Elsewhere };
    if signed.as_ref().is_some_and(|a| a.seen.is_some()) || !super::answered_at_once(&cmd) {
        return Decided::Elsewhere;
    }
    if crate::agent::clock::expired_at(cmd.wire.publish_time, cmd.wire.expires, now) {
        return Decided::Elsewhere;
    }
    {
        let (m, _) = &**sched;
        let Ok(s) = m.try_lock() else { return Decided::Elsewhere };
        if !s.accepting || s.running > 0 || !s.queue.is_empty() {
            return Decided::Elsewhere;
        }
        match ctx.journal.try_lock() {
            Ok(j) if j.get(&cmd.key).is_none() => {}
            _ => return Decided::Elsewhere,
        }
    }
    cmd.signed_by = signed.map(|a| a.kid);
    log_received(&cmd);
    let outcome = super::dispatch(ctx, &cmd);
    if let Ok(mut st) = ctx.state.lock() {
        st.commands_done += 1;
    }
    if send_unjournalled(ctx, &cmd, &outcome, false) {
        Decided::Ack
    } else {
        // Nothing took the answer at once: the dispatcher runs it again
        // (read-only) and waits for room.
        Decided::Elsewhere
    }
}

/// One line per command taken: at `info` for a command that changes the
/// router (the operator's record of what was done to it), at `debug` for a
/// read (`agent get`, `report`, a device `get`): a platform polling status
/// would otherwise fill the router's log ring, and the line's write is a
/// measurable part of a read's round trip.
fn log_received(cmd: &Command) {
    let level = if super::is_read_only(cmd) { log::Level::Debug } else { log::Level::Info };
    if log::log_enabled!(level) {
        let signer = cmd.signed_by.as_ref().map(|k| format!(" signed by '{k}'")).unwrap_or_default();
        log::log!(level, "command {} '{}' {} from '{}'{signer}", cmd.key, cmd.wire.command, cmd.wire.method, cmd.wire.from);
    }
}

/// [`decide`] on the dispatcher.
fn decide_on_dispatcher(ctx: &Arc<Ctx>, sched: &Arc<(Mutex<Sched>, Condvar)>, guard: &mut ReplayGuard, payload: &[u8]) -> bool {
    let cfg = ctx.config();
    let sn = ctx.sn();
    let trusted_now = trusted_now(&cfg);
    let (parsed, signed) = match admit(ctx, &cfg, &sn, trusted_now, guard, payload) {
        Err(r) => return publish_answer(ctx, None, &envelope::answer_for_parse_error(&sn, &r.head), true),
        Ok(None) => (envelope::parse(payload), None),
        Ok(Some(a)) => (envelope::parse(&a.inner), Some(SignedBy { kid: a.kid, publish_time: a.publish_time, seen: a.seen })),
    };
    let mut cmd = match parsed {
        Ok(c) => c,
        Err(e) => {
            log::warn!("bad command: {}", e.msg);
            count_rejected(ctx);
            return publish_answer(ctx, None, &envelope::answer_for_parse_error(&sn, &e), true);
        }
    };
    cmd.signed_by = signed.as_ref().map(|s| s.kid.clone());
    log_received(&cmd);
    if !super::KNOWN.contains(&cmd.wire.command.as_str()) {
        return reject_cmd(ctx, &cmd, &format!("unknown command '{}'", cmd.wire.command));
    }
    // Expiry forbids running, not answering: judged after the journal, so a
    // succeeded id redelivered late still gets its stored answer.
    let expired = crate::agent::clock::expired_at(cmd.wire.publish_time, cmd.wire.expires, trusted_now);
    if let Some(d) = journal_delay() {
        std::thread::sleep(d);
    }
    let (m, cv) = &**sched;
    let Ok(mut s) = m.lock() else { return false };
    // Exactly-once rules.
    let prior = ctx.journal.lock().ok().and_then(|j| j.get(&cmd.key).cloned());
    if prior.is_none() && signed.as_ref().is_some_and(|s| s.seen.is_some()) {
        // Accepted before (the guard recorded it) and the journal has
        // forgotten it (compaction): its answer is gone, it never runs again.
        drop(s);
        ctx.refusals.count(Reason::Replayed);
        return reject_cmd(ctx, &cmd, "replayed: this id was accepted before and its journal entry is gone; not run again");
    }
    if let Some(e) = &prior {
        if e.hash != cmd.hash {
            drop(s);
            return reject_cmd(ctx, &cmd, &format!("conflict: id {} was already used for a different command", cmd.wire.id));
        }
        match e.state {
            State::Running => {
                log::info!("command {} is already running; redelivery ignored", cmd.key);
                return true;
            }
            State::Succeeded | State::Interrupted => {
                drop(s);
                // Succeeded: the stored answer. Interrupted: its effect is
                // unknown, so it is not run again; say so.
                let a = match (e.state, e.answer.clone()) {
                    (State::Succeeded, Some(a)) => a,
                    _ => answer_of(ctx, &cmd, &Outcome::err("interrupted: the agent stopped while this command ran; not run again")),
                };
                log::info!("command {} already done; answer published again", cmd.key);
                publish_answer(ctx, Some(&cmd.key), &a, true);
                return true;
            }
            State::Failed => {
                // A retry must be signed anew (a newer publishTime): the
                // captured bytes of a failed try never run a second time.
                if let Some(sg) = signed.as_ref().filter(|sg| sg.seen.is_some_and(|t| sg.publish_time <= t)) {
                    drop(s);
                    ctx.refusals.count(Reason::Replayed);
                    let msg = format!("replayed: id {} failed before; a retry must be signed anew (publishTime after {})", cmd.wire.id, sg.seen.unwrap_or(0));
                    return reject_cmd(ctx, &cmd, &msg);
                }
                log::info!("command {} failed before; running it again", cmd.key)
            }
        }
    }
    if expired {
        drop(s);
        return reject_cmd(ctx, &cmd, "expired: the command's expiry time has passed; not run");
    }
    if !s.accepting {
        drop(s);
        return reject_cmd(ctx, &cmd, "agent stopping; not started");
    }
    // Every command that would wait counts against queue_size, serial or detached.
    if !s.can_start(&cmd, cfg.agent.max_running) && s.queue.len() >= cfg.agent.queue_size {
        let (running, waiting) = (s.running, s.queue.len());
        drop(s);
        return reject_cmd(ctx, &cmd, &format!("busy: {running} running and {waiting} waiting; try again later"));
    }
    if super::is_read_only(&cmd) {
        // Changes nothing: not journalled, not recorded in the replay guard
        // (a replay runs it again, which changes nothing either).
        if s.live.contains_key(&cmd.key) {
            log::info!("command {} is already running; redelivery ignored", cmd.key);
            return true;
        }
        if super::answered_at_once(&cmd) && s.can_start(&cmd, cfg.agent.max_running) {
            // Nothing serial waits or runs, and nothing is decided while it
            // runs here: the arrival order stands.
            drop(s);
            return run_here(ctx, &cmd);
        }
    } else {
        // The replay guard before the journal (docs/PROTOCOL.md): once
        // journalled, the id is in the guard for good (a retry: with its newer time).
        if let Some(sg) = signed.as_ref().filter(|sg| sg.seen.is_none_or(|t| sg.publish_time > t)) {
            if let Err(e) = guard.record(&sg.kid, &cmd.key, sg.publish_time, trusted_now, cfg.agent.command_max_age) {
                drop(s);
                ctx.note_error(format!("replay guard: {e}"));
                return reject_cmd(ctx, &cmd, &format!("cannot record the command in the replay guard: {e}; not run"));
            }
        }
        // Journal before any side effect.
        let journaled = ctx.journal.lock().map_err(|_| "poisoned".to_string()).and_then(|mut j| j.begin(&cmd.key, &cmd.hash, &cmd.wire.command).map_err(|e| e.to_string()));
        if let Err(e) = journaled {
            drop(s);
            ctx.note_error(format!("journal: {e}"));
            return reject_cmd(ctx, &cmd, &format!("cannot record the command in the journal: {e}"));
        }
    }
    s.live.insert(cmd.key.clone(), cmd.clone());
    s.queue.push_back(cmd);
    note_load(ctx, s.running, s.queue.len());
    schedule(ctx, sched, &mut s);
    cv.notify_all();
    true
}

/// Start what can start. Called with the lock held.
fn schedule(ctx: &Arc<Ctx>, sched: &Arc<(Mutex<Sched>, Condvar)>, s: &mut Sched) {
    let max = ctx.config().agent.max_running;
    while s.running < max {
        let pos = s.queue.iter().position(|c| c.wire.detached || !s.serial_busy);
        let Some(cmd) = pos.and_then(|p| s.queue.remove(p)) else { break };
        s.running += 1;
        if !cmd.wire.detached {
            s.serial_busy = true;
        }
        note_load(ctx, s.running, s.queue.len());
        let (ctx2, sched2) = (ctx.clone(), sched.clone());
        let detached = cmd.wire.detached;
        let failed = cmd.clone();
        let spawned = crate::stack::spawn("cmd".into(), move || run_one(ctx2, sched2, cmd));
        if let Err(e) = spawned {
            log::error!("cannot start a command thread: {e}");
            s.running -= 1;
            if !detached {
                s.serial_busy = false;
            }
            s.live.remove(&failed.key);
            finish(ctx, &failed, &Outcome::err(format!("cannot start a command thread: {e}")), false);
            break;
        }
    }
}

fn run_one(ctx: Arc<Ctx>, sched: Arc<(Mutex<Sched>, Condvar)>, cmd: Command) {
    let outcome = super::dispatch(&ctx, &cmd);
    let (m, cv) = &*sched;
    // Not after drain() gave up on it: its interrupted answer stands.
    let still_live = m.lock().map(|mut s| s.live.remove(&cmd.key).is_some()).unwrap_or(false);
    if still_live {
        finish(&ctx, &cmd, &outcome, true);
    }
    if let Ok(mut st) = ctx.state.lock() {
        st.commands_done += 1;
    }
    if let Ok(mut s) = m.lock() {
        s.running -= 1;
        if !cmd.wire.detached {
            s.serial_busy = false;
        }
        note_load(&ctx, s.running, s.queue.len());
        if s.accepting {
            schedule(&ctx, &sched, &mut s);
        }
        cv.notify_all();
    }
}

/// Journal the final state and publish the answer (`wait`: for room in
/// the outbox, bounded; the journal's copy goes out anyway).
fn finish(ctx: &Ctx, cmd: &Command, o: &Outcome, wait: bool) {
    if o.deferred {
        log::info!("command {} '{}': answer deferred", cmd.key, cmd.wire.command);
        return;
    }
    if super::is_read_only(cmd) {
        send_unjournalled(ctx, cmd, o, wait);
        return;
    }
    // A command that answered before its effect (`answer_first`) stored
    // that answer; it is final, already in the outbox's hands, and its
    // PUBACK, if the outbox saw it already, stands (read under the same
    // lock as the write: never lost).
    let fresh = || answer_of(ctx, cmd, o);
    let to_send = match ctx.journal.lock() {
        Ok(mut j) => {
            let stored = if o.ok { j.get(&cmd.key).and_then(|e| e.answer.clone().map(|a| (a, e.acked))) } else { None };
            let already_sent = stored.is_some();
            let (answer, was_acked) = stored.unwrap_or_else(|| (fresh(), false));
            let state = if o.ok { State::Succeeded } else { State::Failed };
            if let Err(e) = j.finish(&cmd.key, state, &answer) {
                log::error!("journal: {e}");
            }
            if was_acked {
                let _ = j.mark_acked(&cmd.key);
            }
            // Handed to the outbox before the journal is let go: the
            // journal's copy (maybe cut) is never published beside it.
            (!already_sent && !ctx.outbox.try_send(Some(&cmd.key), &answer)).then_some(answer)
        }
        Err(_) => Some(fresh()),
    };
    if !o.ok && !o.msg.is_empty() {
        log::info!("command {} '{}': {}", cmd.key, cmd.wire.command, o.msg);
    }
    match to_send {
        Some(answer) => deliver(ctx, &cmd.key, &answer, wait),
        None => ctx.outbox.nudge(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(key: &str, detached: bool) -> Command {
        let mut c = envelope::parse(format!(r#"{{"id":"{key}","command":"sh","d":{{"shcmd":"true"}}}}"#).as_bytes()).unwrap();
        c.wire.detached = detached;
        c
    }

    #[test]
    fn only_commands_that_can_start_at_once_do_not_count_as_waiting() {
        let mut s = Sched { accepting: true, ..Default::default() };
        assert!(s.can_start(&cmd("a", false), 4));
        s.running = 1;
        s.serial_busy = true;
        assert!(!s.can_start(&cmd("b", false), 4), "a serial one waits behind the running serial one");
        assert!(s.can_start(&cmd("c", true), 4), "a detached one runs beside it");
        s.serial_busy = false;
        s.queue.push_back(cmd("d", false));
        assert!(!s.can_start(&cmd("e", false), 4), "arrival order: not ahead of a waiting serial one");
        s.running = 4;
        assert!(!s.can_start(&cmd("f", true), 4), "max_running reached");
    }
}
