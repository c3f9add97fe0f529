//! Applying a configuration to the running agent: the one path that SIGHUP
//! (the file edited on the router) and `agent set` (the file edited by a
//! command) both take, so both apply the same steps in the same order.
//!
//! The caller has already validated (and, for `agent set`, written) the new
//! configuration. Applying never fails: what cannot change while running
//! (the broker session, the state dir, the SMS receiver's socket) is
//! returned as the keys that need a restart, and the caller restarts.

use super::Ctx;
use crate::config::Config;
use crate::devices::manager::ManagerSettings;
use crate::telemetry::ReportRequest;
use std::sync::Arc;
use std::time::Duration;

/// What the device manager needs of a configuration.
pub fn manager_settings(cfg: &Config) -> ManagerSettings {
    ManagerSettings {
        sn: cfg.agent.sn.clone(),
        gw_id: cfg.agent.gateway_id.clone(),
        failures: cfg.agent.device_failures,
        periph_interval: Duration::from_secs(cfg.agent.periph_interval),
    }
}

/// Make `new` the running configuration. Returns the options whose change
/// needs a restart (empty: everything applied at once).
pub fn apply_config(ctx: &Ctx, new: Arc<Config>) -> Vec<&'static str> {
    // New secret values are scrubbed from the log from now on, before
    // anything that might log them runs.
    crate::logging::add_secrets(new.secrets());
    let old = ctx.config();
    let mut restart = crate::config::model::restart_keys_changed(&old.agent, &new.agent);
    if old.receiver != new.receiver {
        // The receiver's socket and its GoIP registration are made at start.
        restart.push("sms_receiver");
    }
    ctx.set_config(new.clone());
    ctx.devices.apply(&new.devices, manager_settings(&new));
    let _ = ctx.reports.try_send(ReportRequest::Reschedule);
    restart
}
