//! Simulator of an OpenVox IAD's controller API: token login (MD5 of the
//! password), tokens that expire after an idle lifetime, the `sys_info/*`
//! status calls with the interface board's embedded JSON documents, a
//! settings store behind the `*_get`/`*_set` calls, and reboot.

mod datetime;
mod diag;
mod firmware;
mod handler;
mod state;

use super::Sim;
use state::State;
use std::time::Duration;

pub use state::PortKind;

/// How the simulated IAD is set up.
#[derive(Debug, Clone)]
pub struct IadSimConfig {
    pub username: String,
    pub password: String,
    /// A token dies after this long without a call (device default 600 s).
    pub token_ttl: Duration,
    /// Port types of slot 0, port 1 first.
    pub ports: Vec<PortKind>,
    /// Whether the CDR function is on (`sys_info/cdr` answers no rows when off).
    pub cdr_enabled: bool,
    /// Upper bound of the random delay of the no-token calls
    /// (`sys_info/device_info`, `sys_info/oem_web`); the device uses 2 s.
    pub whitelist_max_delay: Duration,
    pub serial: String,
    pub mac: String,
    pub model: String,
    pub firmware_version: String,
    /// How long a network test (seed 4.5) runs before its result is ready.
    pub diag_time: Duration,
    /// How long the IAD is away after a firmware upload.
    pub reboot_time: Duration,
    /// `upload_permission` shuts the core service down (seed 4.2.1's low
    /// memory mode) until the upload ends.
    pub low_memory: bool,
    /// Largest firmware `/upload` takes (HTTP 413 above).
    pub max_upload_bytes: usize,
}

impl Default for IadSimConfig {
    /// The device of the seed's examples: an iAG800 V2-4S4O with ports 1–4
    /// FXO and 5–8 FXS, `admin`/`admin`.
    fn default() -> Self {
        IadSimConfig {
            username: "admin".into(),
            password: "admin".into(),
            token_ttl: Duration::from_secs(600),
            ports: [PortKind::Fxo; 4].into_iter().chain([PortKind::Fxs; 4]).collect(),
            cdr_enabled: true,
            whitelist_max_delay: Duration::from_secs(2),
            serial: "AG10S1234596".into(),
            mac: "A09F7A1B2C3D".into(),
            model: "iAG800 V2-4S4O".into(),
            firmware_version: "r0-4bdc68d4".into(),
            diag_time: Duration::from_millis(1200),
            reboot_time: Duration::from_secs(2),
            low_memory: true,
            max_upload_bytes: 2 * 1024 * 1024,
        }
    }
}

/// A running simulated IAD (where it listens and its fault switch:
/// [`Sim`]). Dropping it stops the server.
pub type IadSim = Sim<State>;

impl IadSim {
    pub fn start(bind: &str, cfg: IadSimConfig) -> std::io::Result<IadSim> {
        Sim::serve(bind, State::new(cfg), handler::handle)
    }

    /// The firmware version it runs now.
    pub fn firmware_version(&self) -> String {
        self.state().cfg.firmware_version.clone()
    }
    /// What happened around firmware uploads, in order: `permission`,
    /// `core down`, `upload <bytes> keep_sys=<yes|no>`, `core up`,
    /// `rebooting`, `refused: <why>`.
    pub fn upgrade_log(&self) -> Vec<String> {
        self.state().upgrade_log.clone()
    }
    /// True while the core service is down (after `upload_permission`).
    pub fn core_down(&self) -> bool {
        self.state().core_down
    }
    /// Restart the box by hand (what the seed says brings a stuck IAD back).
    pub fn power_cycle(&self) {
        let mut s = self.state();
        s.core_down = false;
        s.upload_permission = false;
        s.reboot();
    }
    /// The MD5 of `user`'s web password, if the account exists.
    pub fn account_md5(&self, user: &str) -> Option<String> {
        self.state().accounts.get(user).cloned()
    }
    /// Fault: `sys_user/set` answers success but changes nothing.
    pub fn ignore_password_change(&self, on: bool) {
        self.state().ignore_password_change = on;
    }

    /// Put a line in use (a call up) or free it. Ports count from 1.
    pub fn set_line_in_use(&self, port: usize, in_use: bool) {
        if let Some(p) = self.state().port_mut(port) {
            p.in_use = in_use;
        }
    }
    /// Lift or hang up the handset of an FXS port; lifting it also puts the line in use.
    pub fn set_offhook(&self, port: usize, offhook: bool) {
        if let Some(p) = self.state().port_mut(port) {
            p.offhook = offhook;
            p.in_use = offhook;
        }
    }
    /// Connect or disconnect the PSTN line of an FXO port (no line: RED alarm).
    pub fn set_line_connected(&self, port: usize, connected: bool) {
        if let Some(p) = self.state().port_mut(port) {
            p.line_connected = connected;
        }
    }
    /// SIP registration of a port's account (`None`: no account).
    pub fn set_sip_registered(&self, port: usize, registered: Option<bool>) {
        if let Some(p) = self.state().port_mut(port) {
            p.sip_registered = registered;
        }
    }
    /// Add one call record as `sys_info/cdr` lists them.
    pub fn push_cdr(&self, from: &str, to: &str, disposition: &str, billsec: u32) {
        self.state().push_cdr(from, to, disposition, billsec)
    }
    /// Invalidate every token now, as a lifetime running out would.
    pub fn expire_tokens(&self) {
        self.state().tokens.clear()
    }
    /// Successful logins so far.
    pub fn login_count(&self) -> usize {
        self.state().login_count
    }
    /// Reboots asked for so far.
    pub fn reboot_count(&self) -> usize {
        self.state().reboot_count
    }
    /// Factory resets (`sys_maintain/sys_reset`) so far.
    pub fn reset_count(&self) -> usize {
        self.state().reset_count
    }
    /// Calls so far per `class/method` (all calls, also refused ones).
    pub fn call_count(&self, api: &str) -> usize {
        self.state().calls.get(api).copied().unwrap_or(0)
    }
}
