//! SMS through the GoIP: the `sms` command, the push receiver, the
//! registration of the receiver with each GoIP, and inbox reconciliation.
//!
//! Nothing is lost: a push is answered 200 only once its events are in the
//! durable event queue; a push that is refused (queue full, rate, size)
//! stays in the GoIP's inbox and the reconciliation reads it from there;
//! the seen set makes sure a row is published once however it arrives.
//!
//! Threads: the receiver's workers, and one `sms-sync` thread that
//! registers and reconciles (HTTP calls to the GoIP never run on the MQTT
//! or command threads except for the `sms` command itself).

pub mod command;
pub mod fit;
pub mod ingest;
pub mod limit;
pub mod receiver;
pub mod reconcile;
pub mod register;
pub mod seen;
pub mod tids;
pub mod tokens;

use crate::agent::Ctx;
use crate::devices::goip::GoipClient;
use crate::devices::{DeviceConfig, DeviceKind};
use ingest::Ingest;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Retry delay after a failed registration or reconciliation, and the
/// pace of reconciliation while a device is behind.
const RETRY: Duration = Duration::from_secs(1);
const RETRY_FAILED: Duration = Duration::from_secs(5);

/// What the `sms` command needs of the running service.
pub struct Shared {
    pub ingest: Arc<Ingest>,
    /// Push URL per device (only when the receiver runs).
    urls: HashMap<String, String>,
}

impl Shared {
    pub fn url_for(&self, device: &str) -> Option<String> {
        self.urls.get(device).cloned()
    }
}

/// The SMS service's handle for the rest of the agent, owned by the
/// context (`Ctx::sms`): the service fills it when it starts (after the
/// engine, from state the engine must not own) and empties it when it
/// stops; the `sms` command reads it. Also the receiver's counter of
/// pushes refused for their token, shown by `agent get`.
#[derive(Default)]
pub struct Link {
    shared: RwLock<Option<Arc<Shared>>>,
    refused_token: Arc<AtomicUsize>,
}

impl Link {
    /// The running service's shared part, if any.
    pub fn shared(&self) -> Option<Arc<Shared>> {
        match self.shared.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, s: Option<Arc<Shared>>) {
        match self.shared.write() {
            Ok(mut g) => *g = s,
            Err(p) => *p.into_inner() = s,
        }
    }

    /// Counters of the push receiver for `agent get` (`state.sms`).
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({"pushRefusedToken": self.refused_token.load(Ordering::Relaxed) as u64})
    }
}

/// The running SMS subsystem.
pub struct SmsService {
    ctx: Arc<Ctx>,
    stop: Arc<AtomicBool>,
    ingest: Option<Arc<Ingest>>,
    receiver: Mutex<Option<receiver::Receiver>>,
    sync: Mutex<Option<JoinHandle<()>>>,
}

impl SmsService {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(i) = &self.ingest {
            i.wake(None);
        }
        if let Some(mut r) = self.receiver.lock().ok().and_then(|mut g| g.take()) {
            r.stop();
        }
        if let Some(t) = self.sync.lock().ok().and_then(|mut g| g.take()) {
            let _ = t.join();
        }
        self.ctx.sms.set(None);
    }
}

pub fn start(ctx: Arc<Ctx>) -> Result<SmsService, String> {
    let cfg = ctx.config();
    let rc = cfg.receiver.clone();
    let goips: Vec<DeviceConfig> = cfg.devices.iter().filter(|d| d.kind == DeviceKind::Goip && d.enabled).cloned().collect();
    let mut svc = SmsService { ctx: ctx.clone(), stop: Arc::new(AtomicBool::new(false)), ingest: None, receiver: Mutex::new(None), sync: Mutex::new(None) };
    if goips.is_empty() {
        return Ok(svc);
    }
    let dir = PathBuf::from(&cfg.agent.state_dir).join("sms");
    let seen = seen::Seen::open(&dir, rc.seen_size).map_err(|e| format!("seen set: {e}"))?;
    let tids = tids::Tids::open(&dir).map_err(|e| format!("task ids: {e}"))?;
    let names: Vec<String> = goips.iter().map(|d| d.name.clone()).collect();
    let ingest = Arc::new(Ingest::new(ctx.clone(), seen, tids, if rc.enabled { &names } else { &[] }));
    svc.ingest = Some(ingest.clone());
    if !rc.enabled {
        ctx.sms.set(Some(Arc::new(Shared { ingest, urls: HashMap::new() })));
        return Ok(svc);
    }
    let base = rc.push_url();
    let tokens = tokens::load_or_create(&dir, &names)?;
    let urls: HashMap<String, String> = tokens.iter().map(|(n, t)| (n.clone(), register::device_url(&base, n, t))).collect();
    let addresses: Vec<String> = goips.iter().map(|d| d.address.clone()).collect();
    let known = goips
        .iter()
        .map(|d| receiver::Known {
            name: d.name.clone(),
            host: limit::url_host(&d.address).and_then(|h| limit::allowed_sources(&[h], &[]).first().copied()),
        })
        .collect();
    let settings = receiver::Settings {
        listen: rc.listen.clone(),
        max_body: rc.max_body,
        rate: rc.rate,
        allowed: limit::allowed_sources(&rc.allow, &addresses),
        devices: known,
        tokens,
        refused_token: ctx.sms.refused_token.clone(),
    };
    let rx = receiver::Receiver::start(settings, ingest.clone())?;
    *svc.receiver.lock().map_err(|_| "poisoned")? = Some(rx);
    ctx.sms.set(Some(Arc::new(Shared { ingest: ingest.clone(), urls: urls.clone() })));
    let sync = Sync { ingest, dir, urls, goips, period: rc.status_period, interval: rc.reconcile_interval, stop: svc.stop.clone() };
    let t = crate::stack::spawn("sms-sync".into(), move || sync.run()).map_err(|e| e.to_string())?;
    *svc.sync.lock().map_err(|_| "poisoned")? = Some(t);
    log::info!("sms: receiver on {}, pushes to {}", rc.listen, base);
    Ok(svc)
}

/// The `sms-sync` thread: registration and reconciliation.
struct Sync {
    ingest: Arc<Ingest>,
    dir: PathBuf,
    urls: HashMap<String, String>,
    goips: Vec<DeviceConfig>,
    period: u64,
    interval: u64,
    stop: Arc<AtomicBool>,
}

impl Sync {
    fn run(self) {
        let mut clients: HashMap<String, GoipClient> = HashMap::new();
        for d in &self.goips {
            match GoipClient::new(d) {
                Ok(c) => {
                    clients.insert(d.name.clone(), c);
                }
                Err(e) => log::error!("sms: {e}"),
            }
        }
        let mut register: HashSet<String> = clients.keys().cloned().collect();
        let mut next_pass = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let mut failed = false;
            for name in register.clone() {
                let (Some(c), Some(url)) = (clients.get_mut(&name), self.urls.get(&name)) else {
                    continue;
                };
                match register::register(c, url, self.period) {
                    Ok(()) => {
                        log::info!("sms: goip {name} pushes to {url}");
                        register.remove(&name);
                    }
                    Err(e) => {
                        log::warn!("sms: goip {name}: registration failed: {e}");
                        failed = true;
                    }
                }
            }
            let behind = clients.keys().any(|n| self.ingest.is_behind(n));
            if behind || Instant::now() >= next_pass {
                for (name, c) in clients.iter_mut() {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    match reconcile::pass(c, &self.ingest, &self.dir, name) {
                        Ok(r) => {
                            if r.queued > 0 {
                                log::info!("sms: goip {name}: {} event(s) from the inbox", r.queued);
                            }
                            if r.restarted {
                                register.insert(name.clone());
                            }
                        }
                        Err(e) => {
                            log::warn!("sms: goip {name}: inbox: {e}");
                            failed = true;
                        }
                    }
                }
                next_pass = Instant::now() + Duration::from_secs(self.interval.max(1));
                if self.interval == 0 {
                    next_pass += Duration::from_secs(86400 * 365);
                }
            }
            let busy = !register.is_empty() || clients.keys().any(|n| self.ingest.is_behind(n));
            let wait = if failed {
                RETRY_FAILED
            } else if busy {
                RETRY
            } else {
                next_pass.saturating_duration_since(Instant::now()).min(Duration::from_secs(5))
            };
            crate::stack::release_unused();
            register.extend(self.ingest.wait(wait));
            // The seen set's group commit: keys a last push left unsynced.
            self.ingest.sync_seen();
        }
    }
}
