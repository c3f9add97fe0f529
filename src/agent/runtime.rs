//! Start-up, the main loop (signals, reload, restart) and shutdown.

use super::Ctx;
use crate::commands::broker_trial::{self, Resume};
use crate::commands::engine::Engine;
use crate::commands::journal::{read_boot_id, Journal};
use crate::config::{self, Config};
use crate::devices::manager::{DeviceManager, ManagerSettings};
use crate::events::EventQueue;
use crate::mqtt::{AckWaiter, CommandAck, Session, SessionEvents};
use crate::telemetry::{ReportRequest, Reporter};
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

static TERM: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);
extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        HUP.store(true, Ordering::SeqCst);
    } else {
        TERM.store(true, Ordering::SeqCst);
    }
    super::wake::wake();
}

fn install_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to atomics (async-signal-safe).
        if let Err(e) = unsafe { sigaction(s, &act) } {
            log::error!("cannot install the {s} handler: {e}");
        }
    }
}

pub fn manager_settings(cfg: &Config) -> ManagerSettings {
    ManagerSettings {
        sn: cfg.agent.sn.clone(),
        gw_id: cfg.agent.gateway_id.clone(),
        failures: cfg.agent.device_failures,
        periph_interval: Duration::from_secs(cfg.agent.periph_interval),
    }
}

/// Work for the acks thread.
enum AckJob {
    /// An answer waiting for its PUBACK, to mark it acknowledged in the journal.
    Watch(String, AckWaiter),
    /// (Re)connected: publish every answer the broker has not acknowledged.
    Resend,
}

static ACKS: OnceLock<SyncSender<AckJob>> = OnceLock::new();

pub fn watch_ack(key: String, w: AckWaiter) {
    if let Some(tx) = ACKS.get() {
        let _ = tx.try_send(AckJob::Watch(key, w));
    }
}

/// Publish every unacknowledged journalled answer (as after a connect).
pub fn request_resend() {
    if let Some(tx) = ACKS.get() {
        let _ = tx.try_send(AckJob::Resend);
    }
}

/// How long an answer's PUBACK is watched; after that it stays unacked in
/// the journal and goes out again after the next connect.
const ACK_WATCH: Duration = Duration::from_secs(120);

fn acker(ctx: Arc<Ctx>, rx: Receiver<AckJob>) {
    let mut waiting: VecDeque<(String, AckWaiter, Instant)> = VecDeque::new();
    let mut resend = false;
    loop {
        // Nothing to watch and nothing to resend: sleep until something
        // arrives (no idle wake-ups).
        let next = if waiting.is_empty() && !resend {
            rx.recv().map_err(|_| std::sync::mpsc::RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(Duration::from_millis(100))
        };
        match next {
            Ok(AckJob::Watch(k, w)) => {
                if waiting.len() >= 1024 {
                    waiting.pop_front();
                }
                waiting.push_back((k, w, Instant::now()));
            }
            Ok(AckJob::Resend) => resend = true,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            Err(_) => {}
        }
        let mut done = Vec::new();
        waiting.retain(|(k, w, at)| {
            if w.is_acked() && k == crate::commands::upgrade::txn::TRIAL_KEY {
                // The birth of a version on trial was acknowledged: commit.
                crate::commands::upgrade::txn::confirmed(&ctx);
                false
            } else if w.is_acked() {
                done.push(k.clone());
                false
            } else if w.is_lost() {
                // The broker lost the session: send it again now.
                resend = true;
                false
            } else {
                at.elapsed() < ACK_WATCH
            }
        });
        if !done.is_empty() {
            if let Ok(mut j) = ctx.journal.lock() {
                for k in done {
                    let _ = j.mark_acked(&k);
                }
            }
        }
        if resend && ctx.publisher.is_connected() {
            resend = !resend_unacked(&ctx, &mut waiting);
        }
    }
}

/// Publish every unacknowledged answer in the journal (in journal order),
/// waiting for room in the request queue rather than dropping any.
/// Returns false when the connection dropped before all went out.
fn resend_unacked(ctx: &Ctx, waiting: &mut VecDeque<(String, AckWaiter, Instant)>) -> bool {
    let unacked = ctx.journal.lock().map(|j| j.unacked()).unwrap_or_default();
    if !unacked.is_empty() {
        log::info!("publishing {} unacknowledged answer(s) again", unacked.len());
    }
    let p = &ctx.publisher;
    for (key, a) in unacked {
        loop {
            if !p.is_connected() {
                return false;
            }
            match p.publish_json(&p.topics.resp, true, false, &a) {
                Ok(Some(w)) => {
                    waiting.retain(|(k, _, _)| k != &key);
                    waiting.push_back((key, w, Instant::now()));
                    break;
                }
                Ok(None) => break,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    true
}

/// The birth message (`{p}/state/{sn}`, retained).
pub fn birth_payload(p: &crate::mqtt::Publisher, signed: bool) -> Vec<u8> {
    json!({"sn": p.sn, "online": true, "time": crate::util::unix_now(),
           "bootTime": super::clock::boot_time(), "ver": crate::VERSION, "signed": signed})
    .to_string()
    .into_bytes()
}

/// The agent's side of the MQTT session.
struct Events {
    ctx: Arc<Ctx>,
    engine: Arc<Engine>,
}

impl SessionEvents for Events {
    fn birth(&self) -> Vec<u8> {
        birth_payload(&self.ctx.publisher, !self.ctx.config().agent.trusted_keys.is_empty())
    }

    fn connected(&self, _session_present: bool) {
        let ctx = &self.ctx;
        if let Ok(mut s) = ctx.state.lock() {
            s.connected = true;
            s.connected_since = Some(crate::util::unix_now());
            s.connects += 1;
        }
        // The birth message is already on its way (the session sends it
        // first). Fresh reports follow: none were kept from while away.
        let _ = ctx.reports.try_send(ReportRequest::Connected);
        // A new version on trial: its birth again, QoS 1, PUBACK watched
        // (the session's own birth has no waiter); acknowledged = commit.
        if crate::commands::upgrade::txn::on_trial() {
            let p = &ctx.publisher;
            if let Ok(Some(w)) = p.publish(&p.topics.state, true, true, self.birth()) {
                watch_ack(crate::commands::upgrade::txn::TRIAL_KEY.to_string(), w);
            }
        }
        // Answers the broker never acknowledged (lost in an outage, a
        // restart or with the broker's session).
        request_resend();
        ctx.events.set_connected(true);
    }

    fn disconnected(&self, reason: &str) {
        self.ctx.events.set_connected(false);
        if let Ok(mut s) = self.ctx.state.lock() {
            s.last_broker_error = Some(reason.to_string());
            if s.connected {
                s.error(format!("broker: {reason}"));
            }
            s.connected = false;
            s.connected_since = None;
        }
    }

    fn command(&self, payload: &[u8], ack: CommandAck) {
        self.engine.offer(payload, ack);
    }
}

/// What `run` ends with.
pub enum Exit {
    Stopped,
    Restart,
}

/// Run the agent until SIGTERM/SIGINT (or a restart is needed).
pub fn run(config_path: &str) -> Result<Exit, String> {
    let cfg = Arc::new(config::load(config_path).map_err(|e| e.to_string())?);
    // One agent per state dir (faults-local): refuse at once, before anything else.
    let _lock = super::lock::acquire(std::path::Path::new(&cfg.agent.state_dir))?;
    let signals = super::wake::Waiter::new();
    install_signal_handlers();
    let _ = crate::mqtt::tls::provider().install_default();
    if cfg.agent.trusted_keys.is_empty() {
        log::warn!(
            "no trusted_key configured: accepting UNSIGNED commands (whoever can publish on {}/cmd/{} runs commands as root); \
             add `list trusted_key 'kid:BASE64'` to require signed commands",
            cfg.agent.prefix,
            cfg.agent.sn
        );
    } else {
        let kids: Vec<&str> = cfg.agent.trusted_keys.iter().map(|k| k.kid.as_str()).collect();
        log::info!("signed commands required; trusted keys: {}", kids.join(", "));
    }
    if cfg.agent.startup_delay > 0 {
        // Spread a fleet's reconnects after a regional power cut.
        let d = crate::mqtt::backoff::Rng::from_entropy().below(cfg.agent.startup_delay * 1000);
        log::info!("start-up delay {d} ms");
        let until = Instant::now() + Duration::from_millis(d);
        while Instant::now() < until && !TERM.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let state_dir = std::path::PathBuf::from(&cfg.agent.state_dir);
    // A state dir that cannot be written (full, read-only) must not keep the
    // agent off the platform: the journal and the queue refuse what they
    // cannot store, with the cause (faults-local).
    if let Err(e) = std::fs::create_dir_all(&state_dir) {
        log::error!("state dir {}: {e}", state_dir.display());
    }
    crate::commands::upgrade::remove_leftovers(std::path::Path::new(&cfg.agent.upgrade_dir)); // a download cut by a kill (apk)
    let boot = read_boot_id(&cfg.agent.boot_id_file);
    let mut journal = Journal::open(&state_dir, cfg.agent.journal_size, cfg.agent.journal_bytes, &boot).map_err(|e| format!("journal: {e}"))?;
    // A broker move left by the previous run: continue it, or finish its
    // rollback before connecting anywhere (commands/broker_trial.rs).
    let (cfg, trial) = match broker_trial::resume(config_path, &state_dir, &mut journal) {
        Resume::None => (cfg, None),
        Resume::Continue(rec) => (cfg, Some(rec)),
        Resume::Ended => (Arc::new(config::load(config_path).map_err(|e| e.to_string())?), None),
    };
    crate::events::eid::init(&state_dir);
    let events = Arc::new(EventQueue::open(&state_dir.join("events"), cfg.agent.event_queue_bytes).map_err(|e| format!("event queue: {e}"))?);
    let mut session = match (Session::create(&cfg.agent), &trial) {
        (Ok(s), _) => s,
        (Err(e), Some(rec)) => {
            // The new settings cannot even make a client (a TLS file): back now.
            broker_trial::roll_back(config_path, &state_dir, &mut journal, rec, &e);
            return Ok(Exit::Restart);
        }
        (Err(e), None) => return Err(e),
    };
    let publisher = session.publisher.clone();
    let (rtx, rrx) = sync_channel(16);
    let devices = DeviceManager::new(publisher.clone(), manager_settings(&cfg));
    let ctx = Arc::new(Ctx::new(cfg.clone(), publisher.clone(), journal, rtx, devices, events.clone()));
    let engine = Arc::new(Engine::start(ctx.clone()).map_err(|e| e.to_string())?);
    let (atx, arx) = sync_channel(256);
    let _ = ACKS.set(atx);
    // An upgrade transaction: answer it if decided, or note this version is on trial.
    crate::commands::upgrade::txn::at_start(&ctx);
    {
        let ctx = ctx.clone();
        crate::stack::spawn("acks".into(), move || acker(ctx, arx)).map_err(|e| e.to_string())?;
    }
    let reporter = {
        let r = Reporter::new(ctx.clone());
        crate::stack::spawn("reports".into(), move || r.run(rrx)).map_err(|e| e.to_string())?
    };
    let stop_events = Arc::new(AtomicBool::new(false));
    let sender = {
        let (q, p, stop) = (events.clone(), publisher.clone(), stop_events.clone());
        crate::stack::spawn("events".into(), move || q.run_sender(&p, &stop)).map_err(|e| e.to_string())?
    };
    ctx.devices.set_event_sink(events.clone(), state_dir.join("cdr"));
    ctx.devices.set_config_path(config_path);
    ctx.devices.apply(&cfg.devices, manager_settings(&cfg));
    // SMS state on a full or read-only state dir must not keep the agent
    // off the platform (faults-local): run without the SMS service.
    let sms = match crate::sms::start(ctx.clone()) {
        Ok(s) => Some(s),
        Err(e) => {
            log::error!("sms: {e}; running without the SMS receiver");
            ctx.note_error(format!("sms: {e}"));
            None
        }
    };
    session.start(Arc::new(Events { ctx: ctx.clone(), engine: engine.clone() }))?;
    if let Some(rec) = trial {
        let ctx = ctx.clone();
        crate::stack::spawn("trial".into(), move || broker_trial::watch(ctx, *rec)).map_err(|e| e.to_string())?;
    }
    log::info!(
        "dma-agent {} started: sn {}, broker {}:{}{}, {} LAN device(s)",
        crate::telemetry::versions::agent_version(),
        cfg.agent.sn,
        cfg.agent.broker_host,
        cfg.agent.broker_port,
        if cfg.agent.tls { " (TLS)" } else { "" },
        cfg.devices.iter().filter(|d| d.enabled).count()
    );

    let exit = loop {
        // Signals and restart requests (Ctx::request_restart) wake it at once.
        signals.wait(Duration::from_secs(60));
        if TERM.load(Ordering::SeqCst) {
            log::info!("stopping");
            break Exit::Stopped;
        }
        if ctx.restart.load(Ordering::SeqCst) {
            // Let the answer that asked for it leave first.
            std::thread::sleep(Duration::from_millis(500));
            break Exit::Restart;
        }
        if HUP.swap(false, Ordering::SeqCst) {
            match reload(&ctx, config_path) {
                Ok(true) => break Exit::Restart,
                Ok(false) => {}
                Err(e) => {
                    log::error!("reload refused, keeping the running configuration: {e}");
                    ctx.note_error(format!("reload: {e}"));
                }
            }
        }
    };

    // Shutdown: stop taking commands, let running ones finish (bounded),
    // say we are going offline, disconnect cleanly.
    ctx.stopping.store(true, Ordering::SeqCst);
    let left = engine.drain(Duration::from_secs(10));
    if !left.is_empty() {
        log::warn!("{} command(s) journalled as interrupted: {left:?}", left.len());
    }
    if let Some(sms) = &sms {
        sms.stop();
    }
    ctx.devices.stop_all();
    let _ = ctx.reports.try_send(ReportRequest::Stop);
    let _ = reporter.join();
    stop_events.store(true, Ordering::SeqCst);
    events.set_connected(false);
    let _ = sender.join();
    let p = &ctx.publisher;
    if let Ok(Some(w)) = p.publish(&p.topics.state, true, true, crate::mqtt::session::offline_payload(&p.sn)) {
        if !w.wait(Duration::from_secs(3)) {
            log::warn!("offline state not acknowledged (broker away?)");
        }
    }
    session.shutdown(Duration::from_secs(3));
    log::info!("stopped");
    Ok(exit)
}

/// SIGHUP: re-read the file. Returns true when the change needs a restart.
fn reload(ctx: &Ctx, path: &str) -> Result<bool, String> {
    let new = config::load(path).map_err(|e| e.to_string())?;
    // Secrets changed in the file are scrubbed from the log from now on.
    crate::logging::add_secrets(new.secrets());
    let old = ctx.config();
    let restart = crate::config::model::restart_keys_changed(&old.agent, &new.agent);
    if !restart.is_empty() {
        log::info!("reload: {restart:?} changed; restarting");
        return Ok(true);
    }
    let restart_sms = old.receiver != new.receiver;
    ctx.devices.apply(&new.devices, manager_settings(&new));
    ctx.set_config(Arc::new(new));
    let _ = ctx.reports.try_send(ReportRequest::Reschedule);
    log::info!("configuration reloaded");
    Ok(restart_sms)
}

/// Keep the process's own executable path for a restart.
pub fn reexec() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let args: Vec<String> = std::env::args().collect();
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| std::path::PathBuf::from(&args[0]));
    log::info!("restarting {}", exe.display());
    std::process::Command::new(exe).args(&args[1..]).exec()
}
