//! dma-platform: the IoT platform side of dma-agent. It serves the REST API
//! of `shared/seeds/iot-platform-api.md` and a web console, keeps its state
//! in SQLite, and talks to the agents through any MQTT broker
//! (`shared/PROTOCOL.md`).
//!
//! Threads: the HTTP server (`http/`: two I/O threads and `http_threads`
//! handler threads), one MQTT session (`mqtt/`) feeding two ingest
//! workers (`pipeline.rs`: telemetry in batches, control one by one), the
//! command scheduler (`scheduler.rs`) and the outgoing-hook worker
//! (`hooks/`). They share nothing but the database and two bounded queues.

pub mod auth;
pub mod bench;
pub mod brokers;
pub mod config;
pub mod console;
pub mod db;
pub mod hooks;
pub mod http;
pub mod ids;
pub mod ingest;
pub mod logger;
pub mod mqtt;
pub mod pipeline;
pub mod redact;
pub mod roles;
pub mod routes;
pub mod scheduler;
pub mod signing;
pub mod secrets;
pub mod throttle;
pub mod time;
pub mod trust;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::Config;

/// What every part of a running platform shares.
pub struct Shared {
    pub cfg: Config,
    pub db: db::Db,
    pub mqtt: mqtt::Outbox,
    pub hooks: hooks::Queue,
    pub sys: brokers::SysStats,
    pub scheduler: scheduler::Wake,
    /// The command signing key (`signing_key`); none: commands go out unsigned.
    pub signer: Option<signing::Signer>,
    /// What was not believed, and the serials seen on per-device topics.
    pub trust: trust::Trust,
    /// Failed logins per user and per source address.
    pub logins: throttle::Throttle,
    /// The ingest queues and their figures.
    pub ingest: pipeline::Pipeline,
    /// The message routes, matched in memory.
    pub routes: routes::RouteCache,
}

/// A running platform (its threads live as long as the process).
pub struct Platform {
    /// Where the REST API and the console listen.
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
}

impl Platform {
    /// The console's address, e.g. `http://127.0.0.1:8080/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// Open the database, connect to the broker, start the scheduler, the hook
/// worker and the HTTP server.
pub fn start(cfg: Config) -> Result<Platform, String> {
    cfg.validate()?;
    let signer = match &cfg.signing_key {
        Some(k) => Some(signing::Signer::load(&k.file, &k.kid)?),
        None => None,
    };
    match &signer {
        Some(s) => log::info!("commands are signed with key {} ({})", s.kid(), s.public_key()),
        None => log::warn!("no signing_key: commands are published UNSIGNED; routers with trusted keys will refuse them (dma-platform keygen)"),
    }
    let db = db::Db::open(&cfg.database)?;
    let (hooks, hook_rx) = hooks::Queue::new(cfg.hooks.queue);
    let (outbox, conn) = mqtt::Outbox::new(&cfg.broker);
    let (ingest, ingest_rx) = pipeline::Pipeline::new(&cfg.ingest);
    let shared = Arc::new(Shared {
        db,
        mqtt: outbox,
        hooks,
        sys: brokers::SysStats::default(),
        scheduler: scheduler::Wake::default(),
        signer,
        trust: trust::Trust::default(),
        logins: throttle::Throttle::default(),
        ingest,
        routes: routes::RouteCache::default(),
        cfg,
    });
    hooks::start_worker(shared.clone(), hook_rx)?;
    pipeline::start(shared.clone(), ingest_rx)?;
    mqtt::start(shared.clone(), conn)?;
    scheduler::start(shared.clone())?;
    redact::start(shared.clone())?;
    let addr = http::start(shared.clone())?;
    Ok(Platform { addr, shared })
}
