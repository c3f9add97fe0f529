//! Simulator of a GL.iNet GL-S20's HTTP API: challenge/login with the
//! HMAC-SHA256 + MD5 hash and a nonce that expires, `Token` sessions that
//! die when idle, and the status/config calls of the seed with a Thread
//! network that attaches after a while.

mod extra;
mod handler;
mod state;

pub use handler::expected_hash as login_hash;

use super::Sim;
use state::State;
use std::time::Duration;

/// How the simulated S20 is set up.
#[derive(Debug, Clone)]
pub struct S20SimConfig {
    pub password: String,
    /// The device's login salt (sent verbatim by `/ui/challenge`).
    pub salt: String,
    /// A challenge's nonce is accepted this long (device: 2000 ms).
    pub nonce_ttl: Duration,
    /// A sid dies after this long without a call (device: 35 s).
    pub sid_idle: Duration,
    /// Time from starting the Thread network to becoming leader.
    pub attach_time: Duration,
    pub model: String,
    pub serial: String,
    pub eth_mac: String,
    pub firmware_version: String,
}

impl Default for S20SimConfig {
    fn default() -> Self {
        S20SimConfig {
            password: "goodlife123".into(),
            salt: "ZmVhMjk5".into(),
            nonce_ttl: Duration::from_millis(2000),
            sid_idle: Duration::from_secs(35),
            attach_time: Duration::from_secs(3),
            model: "S20".into(),
            serial: "S2024A0B1C2D3E4".into(),
            eth_mac: "94:83:C4:A0:B1:C2".into(),
            firmware_version: "1.2.0".into(),
        }
    }
}

/// A running simulated S20 (where it listens and its fault switch:
/// [`Sim`]). Dropping it stops the server.
pub type S20Sim = Sim<State>;

impl S20Sim {
    pub fn start(bind: &str, cfg: S20SimConfig) -> std::io::Result<S20Sim> {
        Sim::serve(bind, State::new(cfg), handler::handle)
    }

    /// `(method, path)` of every request answered with success so far.
    pub fn reached(&self) -> Vec<(String, String)> {
        self.state().reached.iter().cloned().collect()
    }
    /// The firmware version it reports now.
    pub fn firmware_version(&self) -> String {
        self.state().cfg.firmware_version.clone()
    }
    /// Successful logins so far.
    pub fn login_count(&self) -> usize {
        self.state().login_count
    }
    /// Whether the device is initialised (false after `/sys/reset`).
    pub fn initialized(&self) -> bool {
        self.state().initialized()
    }
    /// Factory resets so far.
    pub fn resets(&self) -> usize {
        self.state().resets
    }
    /// `lang` of the last `/ui/set_init`.
    pub fn lang(&self) -> String {
        self.state().lang.clone()
    }
    /// Kill every sid now, as idle time running out would.
    pub fn expire_sessions(&self) {
        self.state().sessions.clear()
    }
    /// Start or stop the Thread network (as `/otbr/start` and `/otbr/stop`).
    pub fn set_thread_enabled(&self, on: bool) {
        self.state().set_thread(on)
    }
    /// Force the RCP state (0 disabled … 4 leader); `None` lets it move again.
    pub fn set_thread_role(&self, state: Option<i64>) {
        self.state().forced_role = state
    }
    /// Connect WiFi to `ssid`, or disconnect (`None`).
    pub fn set_wifi(&self, ssid: Option<&str>) {
        self.state().wifi_ssid = ssid.map(str::to_string)
    }
}
