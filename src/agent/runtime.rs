//! Start-up, the main loop (signals, reload, restart) and shutdown.

use super::Ctx;
use crate::commands::broker_trial::{self, Resume};
use crate::commands::engine::Engine;
use crate::commands::journal::{read_boot_id, Journal};
use crate::config;
use super::apply::{apply_config, manager_settings};
use crate::devices::manager::DeviceManager;
use crate::events::EventQueue;
use crate::mqtt::{CommandAck, Session, SessionEvents};
use crate::telemetry::{ReportRequest, Reporter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
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

/// What the outbox's thread needs of the agent.
struct OutboxHost(Arc<Ctx>);

impl crate::outbox::driver::Host for OutboxHost {
    fn outbox(&self) -> &crate::outbox::Outbox {
        &self.0.outbox
    }
    fn publisher(&self) -> &crate::mqtt::Publisher {
        &self.0.publisher
    }
    fn journal(&self) -> &std::sync::Mutex<Journal> {
        &self.0.journal
    }
    fn events(&self) -> &EventQueue {
        &self.0.events
    }
    fn on_trial(&self) -> bool {
        self.0.upgrade.on_trial()
    }
    fn trial_confirmed(&self) {
        crate::commands::upgrade::txn::confirmed(&self.0)
    }
    fn birth(&self) -> Vec<u8> {
        super::birth::birth_payload(&self.0.publisher, !self.0.config().agent.trusted_keys.is_empty())
    }
}

/// The agent's side of the MQTT session.
struct Events {
    ctx: Arc<Ctx>,
    engine: Arc<Engine>,
}

impl SessionEvents for Events {
    fn birth(&self) -> Vec<u8> {
        super::birth::birth_payload(&self.ctx.publisher, !self.ctx.config().agent.trusted_keys.is_empty())
    }

    fn connected(&self, session_present: bool) {
        let ctx = &self.ctx;
        if let Ok(mut s) = ctx.state.lock() {
            s.connected_since = Some(crate::util::unix_now());
            s.connects += 1;
        }
        // The birth message is already on its way (the session sends it
        // first). Fresh reports follow: none were kept from while away.
        let _ = ctx.reports.try_send(ReportRequest::Connected);
        // Answers and events the broker never acknowledged (lost in an
        // outage, a restart or with the broker's session), and the birth
        // of a version on trial: the outbox's.
        ctx.outbox.on_connected(session_present);
    }

    fn disconnected(&self, reason: &str) {
        self.ctx.outbox.on_disconnected();
        if let Ok(mut s) = self.ctx.state.lock() {
            s.last_broker_error = Some(reason.to_string());
            if s.connected_since.is_some() {
                s.error(format!("broker: {reason}"));
            }
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
/// `loaded`: the file at `config_path` as parsed at start.
pub fn run(config_path: &str, loaded: Result<config::Config, config::ConfigError>) -> Result<Exit, String> {
    let cfg = Arc::new(loaded.map_err(|e| e.to_string())?);
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
        // A signal ends it at once (the handler wakes `signals`).
        while !TERM.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            signals.wait(left);
        }
        if TERM.load(Ordering::SeqCst) {
            // Stopped while waiting to start (procd's stop, a restart):
            // nothing was started, nothing to shut down.
            log::info!("stopped before start-up");
            return Ok(Exit::Stopped);
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
    // The one lock of the configuration file's writers (durable::WriteLock).
    let config_write = Arc::new(crate::durable::WriteLock::default());
    let (cfg, trial) = match broker_trial::resume(config_path, &config_write, &state_dir, &mut journal) {
        Resume::None => (cfg, None),
        Resume::Continue(rec) => (cfg, Some(rec)),
        Resume::Ended => (Arc::new(config::load(config_path).map_err(|e| e.to_string())?), None),
    };
    let events = Arc::new(
        EventQueue::open_numbered(&state_dir.join("events"), cfg.agent.event_queue_bytes, Some(state_dir.join("eid")))
            .map_err(|e| format!("event queue: {e}"))?,
    );
    let mut session = match (Session::create(&cfg.agent), &trial) {
        (Ok(s), _) => s,
        (Err(e), Some(rec)) => {
            // The new settings cannot even make a client (a TLS file): back now.
            broker_trial::roll_back(config_path, &config_write, &state_dir, &mut journal, rec, &e);
            return Ok(Exit::Restart);
        }
        (Err(e), None) => return Err(e),
    };
    let publisher = session.publisher.clone();
    let (rtx, rrx) = sync_channel(16);
    let devices = DeviceManager::new(publisher.clone(), manager_settings(&cfg));
    let ctx = Arc::new(Ctx::new(cfg.clone(), publisher.clone(), journal, rtx, devices, events.clone(), config_write));
    let engine = Arc::new(Engine::start(ctx.clone()).map_err(|e| e.to_string())?);
    // An upgrade transaction: answer it if decided, or note this version is on trial.
    crate::commands::upgrade::txn::at_start(&ctx);
    // The one owner of what must be acknowledged (answers, events, the
    // trial's birth): woken by the session, the stores and the PUBACKs.
    let outbox = crate::outbox::driver::start(Arc::new(OutboxHost(ctx.clone()))).map_err(|e| e.to_string())?;
    {
        let ob = ctx.outbox.clone();
        events.set_bell(Box::new(move || ob.nudge()));
    }
    let reporter = {
        let r = Reporter::new(ctx.clone());
        crate::stack::spawn("reports".into(), move || r.run(rrx)).map_err(|e| e.to_string())?
    };
    ctx.devices.set_event_sink(events.clone(), state_dir.join("cdr"));
    ctx.devices.set_config_path(config_path, ctx.config_write.clone());
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

    // The flags are checked before each wait: a signal that came during
    // start-up (its wake-up byte already drained) is not left for a minute.
    let mut code_pages = crate::code_pages::Releaser::new(std::time::Instant::now());
    let exit = loop {
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
        // Start-up code and rarely run paths leave the resident set (code_pages.rs).
        let released = code_pages.tick(std::time::Instant::now());
        if released > 0 {
            log::debug!("code pages: asked the kernel to reclaim {} KiB", released / 1024);
        }
        // What start-up left deep in the main thread's stack goes back too.
        crate::stack::release_unused();
        // Signals and restart requests (Ctx::request_restart) wake it at once.
        signals.wait(Duration::from_secs(60));
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
    // What is unsent goes out, what is in flight gets its moment (bounded).
    ctx.outbox.stop();
    let _ = outbox.join();
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

/// SIGHUP: re-read the file and apply it. Returns true when the change
/// needs a restart.
fn reload(ctx: &Ctx, path: &str) -> Result<bool, String> {
    let new = config::load(path).map_err(|e| e.to_string())?;
    let restart = apply_config(ctx, Arc::new(new));
    if restart.is_empty() {
        log::info!("configuration reloaded");
    } else {
        log::info!("reload: {restart:?} changed; restarting");
    }
    Ok(!restart.is_empty())
}

/// Keep the process's own executable path for a restart.
pub fn reexec() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let args: Vec<String> = std::env::args().collect();
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| std::path::PathBuf::from(&args[0]));
    log::info!("restarting {}", exe.display());
    std::process::Command::new(exe).args(&args[1..]).exec()
}
