//! LAN device clients. One folder per device; each exposes a client that
//! implements [`LanDevice`] so that the poller and the `iad|s20|goip|vpn`
//! command handlers treat them alike.

/// Bounded downloads (the agent's `upgrade`, the IAD's firmware).
pub mod download;
pub mod goip;
pub mod http;
pub mod manager;
pub mod iad;
pub mod s20;
pub mod vpn;

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The four kinds of LAN device the agent knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    Iad,
    S20,
    Goip,
    Vpn,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Iad => "iad",
            DeviceKind::S20 => "s20",
            DeviceKind::Goip => "goip",
            DeviceKind::Vpn => "vpn",
        }
    }
    pub fn parse(s: &str) -> Option<DeviceKind> {
        match s {
            "iad" => Some(DeviceKind::Iad),
            "s20" => Some(DeviceKind::S20),
            "goip" => Some(DeviceKind::Goip),
            "vpn" => Some(DeviceKind::Vpn),
            _ => None,
        }
    }
    /// Device-specific UCI options this kind accepts, and whether each is a
    /// secret (masked in `check-config`, `agent get` and logs).
    pub fn extra_options(self) -> &'static [(&'static str, bool)] {
        match self {
            DeviceKind::Iad => iad::EXTRA_OPTIONS,
            DeviceKind::S20 => s20::EXTRA_OPTIONS,
            DeviceKind::Goip => goip::EXTRA_OPTIONS,
            DeviceKind::Vpn => vpn::EXTRA_OPTIONS,
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `config device` section of the UCI file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    /// UCI section name; the default `nId` of the device.
    pub name: String,
    pub kind: DeviceKind,
    /// Base URL, e.g. `http://127.0.0.1:8081` (`https://…:4430` for the VPN console).
    pub address: String,
    pub username: String,
    pub password: String,
    pub poll_interval: Duration,
    /// Connect and read timeout of one HTTP call.
    pub timeout: Duration,
    pub enabled: bool,
    /// Device-specific options (see [`DeviceKind::extra_options`]).
    pub options: BTreeMap<String, String>,
}

impl DeviceConfig {
    pub fn opt(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(|s| s.as_str()).filter(|s| !s.is_empty())
    }
}

/// What one status poll returns.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    /// The device's own serial or MAC when it reports one (used as `nId`
    /// only when configured to; the section name is the default).
    pub serial: Option<String>,
    /// Firmware version for the `versions` report.
    pub firmware: Option<String>,
    /// The normalised `msg` of the `periph` message: common keys (`model`,
    /// `firmware`, `serial`, `mac`, `uptime`, ports/lines/slots, …) plus
    /// the device's own answers kept as they came.
    pub msg: Value,
}

/// Why a call to a LAN device failed. The text is safe to publish: it
/// never carries credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceError {
    /// The command body is wrong (caught before anything is sent).
    BadRequest(String),
    /// Could not connect, or the connection broke.
    Transport(String),
    /// No answer in time.
    Timeout(String),
    /// Login refused, or the session could not be re-established.
    Auth(String),
    /// The device answered something that is not what its API promises.
    Protocol(String),
    /// The device answered with an error code.
    Device { code: i64, msg: String },
}

impl DeviceError {
    /// True when the device could not be reached at all (counts towards
    /// marking it offline); false when it answered, even with an error.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DeviceError::Transport(_) | DeviceError::Timeout(_))
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::BadRequest(m) => write!(f, "bad request: {m}"),
            DeviceError::Transport(m) => write!(f, "unreachable: {m}"),
            DeviceError::Timeout(m) => write!(f, "timeout: {m}"),
            DeviceError::Auth(m) => write!(f, "authentication failed: {m}"),
            DeviceError::Protocol(m) => write!(f, "malformed answer: {m}"),
            DeviceError::Device { code, msg } => write!(f, "device error {code}: {msg}"),
        }
    }
}

impl std::error::Error for DeviceError {}

impl DeviceError {
    /// The same error with `more` appended to its text.
    pub fn with_note(self, more: &str) -> DeviceError {
        self.map_text(|m| format!("{m}; {more}"))
    }

    /// The same kind of error with its text rewritten by `f`.
    pub fn map_text(self, f: impl FnOnce(String) -> String) -> DeviceError {
        match self {
            DeviceError::BadRequest(m) => DeviceError::BadRequest(f(m)),
            DeviceError::Transport(m) => DeviceError::Transport(f(m)),
            DeviceError::Timeout(m) => DeviceError::Timeout(f(m)),
            DeviceError::Auth(m) => DeviceError::Auth(f(m)),
            DeviceError::Protocol(m) => DeviceError::Protocol(f(m)),
            DeviceError::Device { code, msg } => DeviceError::Device { code, msg: f(msg) },
        }
    }
}

/// What a masked secret shows.
pub const MASK: &str = "******";

/// `v` with the value of every key in `keys` (at any depth, compared
/// without case) replaced by [`MASK`] when it is not empty: device answers
/// that carry credentials never reach the platform as they came.
pub fn mask_keys(v: &Value, keys: &[&str]) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, val)| {
                    let secret = keys.iter().any(|s| s.eq_ignore_ascii_case(k));
                    let empty = matches!(val, Value::Null) || val.as_str() == Some("");
                    (k.clone(), if secret && !empty { Value::String(MASK.into()) } else { mask_keys(val, keys) })
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| mask_keys(x, keys)).collect()),
        other => other.clone(),
    }
}

/// A LAN device client. Implementations are blocking and must bound every
/// call by the configured timeout; each device runs on its own thread so a
/// dead box never stalls the others.
pub trait LanDevice: Send {
    fn kind(&self) -> DeviceKind;
    /// Fetch the full status.
    fn poll(&mut self) -> Result<DeviceStatus, DeviceError>;
    /// Carry out `<kind> get|set` with the command body `d`; returns the
    /// result to put in the answer's `d.result`.
    fn command(&mut self, method: &str, body: &Value) -> Result<Value, DeviceError>;
    /// The agent's own password for this device when the last command
    /// changed it and the device accepted the change; taken once. The
    /// client already logs in with it; the manager stores it in the
    /// configuration file (credential rotation).
    fn take_new_password(&mut self) -> Option<String> {
        None
    }
}

/// Build the client for one configured device.
pub fn build(cfg: &DeviceConfig) -> Result<Box<dyn LanDevice>, String> {
    Ok(match cfg.kind {
        DeviceKind::Iad => Box::new(iad::IadClient::new(cfg)?),
        DeviceKind::S20 => Box::new(s20::S20Client::new(cfg)?),
        DeviceKind::Goip => Box::new(goip::GoipClient::new(cfg)?),
        DeviceKind::Vpn => Box::new(vpn::VpnClient::new(cfg)?),
    })
}
