//! What every part of the running agent shares.

use super::AgentState;
use crate::commands::journal::Journal;
use crate::commands::upgrade::flags::Flags as UpgradeFlags;
use crate::config::Config;
use crate::devices::manager::DeviceManager;
use crate::durable::WriteLock;
use crate::events::EventQueue;
use crate::mqtt::Publisher;
use crate::outbox::Outbox;
use crate::telemetry::ReportRequest;
use crate::trust::refusals::Refusals;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, RwLock};

pub struct Ctx {
    config: RwLock<Arc<Config>>,
    pub publisher: Publisher,
    pub journal: Mutex<Journal>,
    pub state: Mutex<AgentState>,
    /// Asks the reporter thread for reports now.
    pub reports: SyncSender<ReportRequest>,
    pub devices: DeviceManager,
    pub events: Arc<EventQueue>,
    /// Every publish that must be acknowledged goes through it.
    pub outbox: Arc<Outbox>,
    /// Set when a configuration change needs a restart (re-exec); set it
    /// through [`Ctx::request_restart`], which also wakes the main loop.
    pub restart: AtomicBool,
    /// Set on SIGTERM/SIGINT.
    pub stopping: AtomicBool,
    /// Commands refused for reasons of trust, by reason (`agent get`).
    pub refusals: Refusals,
    /// The upgrade's "on trial" and "running" flags.
    pub upgrade: UpgradeFlags,
    /// The SMS service's handle for the `sms` command (filled while it runs).
    pub sms: crate::sms::Link,
    /// Held by every writer of the configuration file (`agent set`, a
    /// broker move, a device thread storing a rotated password).
    pub config_write: Arc<WriteLock>,
}

impl Ctx {
    pub fn new(
        config: Arc<Config>,
        publisher: Publisher,
        journal: Journal,
        reports: SyncSender<ReportRequest>,
        devices: DeviceManager,
        events: Arc<EventQueue>,
        config_write: Arc<WriteLock>,
    ) -> Ctx {
        Ctx {
            config: RwLock::new(config),
            publisher,
            journal: Mutex::new(journal),
            state: Mutex::new(AgentState::new()),
            reports,
            devices,
            events,
            outbox: Arc::new(Outbox::new()),
            restart: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            refusals: Refusals::default(),
            upgrade: UpgradeFlags::default(),
            sms: crate::sms::Link::default(),
            config_write,
        }
    }

    /// The current configuration (a snapshot; cheap to clone).
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set_config(&self, c: Arc<Config>) {
        match self.config.write() {
            Ok(mut g) => *g = c,
            Err(p) => *p.into_inner() = c,
        }
    }

    /// Ask the main loop to restart the agent (re-exec) once the current
    /// answer is out.
    pub fn request_restart(&self) {
        self.restart.store(true, Ordering::SeqCst);
        super::wake::wake();
    }

    pub fn sn(&self) -> String {
        self.publisher.sn.clone()
    }

    pub fn note_error(&self, msg: impl Into<String>) {
        if let Ok(mut s) = self.state.lock() {
            s.error(msg);
        }
    }
}
