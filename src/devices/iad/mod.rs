//! OpenVox IAD (analogue VoIP gateway) client over the controller API
//! (`shared/seeds/openvox-iad-controller-api.txt`, DEVICE-NOTES "OpenVox IAD").
//!
//! - [`client`]: the token session and the answer envelope;
//! - [`status`]: the status poll and its normalised `msg`;
//! - [`ports`]: decoding of the interface board's per-port documents;
//! - [`command`]: validation of `iad get|set` bodies.

pub mod cdr;
pub mod client;
pub mod command;
pub mod diagnose;
pub mod password;
pub mod ports;
pub mod status;
pub mod upgrade;

use super::{DeviceConfig, DeviceError, DeviceKind, DeviceStatus, LanDevice};
use serde_json::Value;

/// Device options: `cdr` (`1`/`true`/`yes`/`on`: read `sys_info/cdr` in the
/// poll) and `cdr_limit` (the `limit` sent with it, 0–8 digits).
/// `upgrade_dir`, `upgrade_max_bytes`, `upgrade_stall_timeout`: the
/// firmware download of `{"action": "upgrade"}` (see [`upgrade`]).
pub const EXTRA_OPTIONS: &[(&str, bool)] = &[
    ("cdr", false),
    ("cdr_limit", false),
    ("upgrade_dir", false),
    ("upgrade_max_bytes", false),
    ("upgrade_stall_timeout", false),
];

/// Answer fields that are credentials (`sys_provision/get`'s
/// `upgrade_pass`, any account password or token): masked in every
/// command answer.
pub const SECRET_FIELDS: &[&str] = &["upgrade_pass", "password", "new_password", "new_password_confirm", "token", "passwd"];

pub struct IadClient {
    session: client::Session,
    opts: status::PollOptions,
    upgrade: upgrade::Settings,
    /// A new password the IAD accepted, until the manager takes it.
    new_password: Option<String>,
}

impl IadClient {
    pub fn new(cfg: &DeviceConfig) -> Result<Self, String> {
        let cdr = match cfg.opt("cdr") {
            None => false,
            Some(v) => parse_flag(v).ok_or_else(|| format!("iad {}: option cdr must be 0/1, got {v:?}", cfg.name))?,
        };
        let cdr_limit = cfg.opt("cdr_limit").unwrap_or("").to_string();
        if cdr_limit.len() > 8 || !cdr_limit.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("iad {}: option cdr_limit must be up to 8 digits", cfg.name));
        }
        Ok(IadClient {
            session: client::Session::new(cfg)?,
            opts: status::PollOptions { cdr, cdr_limit },
            upgrade: upgrade::Settings::from_config(cfg)?,
            new_password: None,
        })
    }
}

/// How long a command may run once started when it is one of the IAD's
/// long actions (a network test polls up to its `wait`; an upgrade
/// downloads, uploads and waits up to its `wait` for the IAD to come
/// back); `None` for an ordinary call. The manager waits that long for its
/// answer instead of `command_timeout`.
pub fn run_time(body: &Value) -> Option<std::time::Duration> {
    let wait = |default: u64| body.get("wait").and_then(Value::as_u64).unwrap_or(default);
    match body.get("action").and_then(Value::as_str) {
        Some(diagnose::ACTION) => Some(std::time::Duration::from_secs(wait(20).saturating_add(15))),
        // The download is bounded by its stall timeout, not by time: allow 15 min.
        Some(upgrade::ACTION) => Some(std::time::Duration::from_secs(wait(300).saturating_add(900))),
        _ => None,
    }
}

fn parse_flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl LanDevice for IadClient {
    fn kind(&self) -> DeviceKind {
        DeviceKind::Iad
    }

    fn poll(&mut self) -> Result<DeviceStatus, DeviceError> {
        status::poll(&mut self.session, &self.opts)
    }

    /// Runs the controller call and returns the IAD's `data`; a non-200
    /// `code` is [`DeviceError::Device`].
    fn command(&mut self, method: &str, body: &Value) -> Result<Value, DeviceError> {
        if body.get("action").and_then(Value::as_str) == Some(password::ACTION) {
            if method != "set" {
                return Err(DeviceError::BadRequest("set_password needs method set".into()));
            }
            let new = password::new_password(body)?;
            let mut accepted = false;
            let r = password::rotate(&mut self.session, &new, &mut accepted);
            // Accepted by the IAD: stored, whether or not the login then worked.
            if accepted {
                self.new_password = Some(new);
            }
            return r;
        }
        if body.get("action").and_then(Value::as_str) == Some(diagnose::ACTION) {
            if method != "set" {
                return Err(DeviceError::BadRequest("diagnose starts a test on the IAD: method set".into()));
            }
            return diagnose::run(&mut self.session, &diagnose::parse(body)?);
        }
        if body.get("action").and_then(Value::as_str) == Some(upgrade::ACTION) {
            if method != "set" {
                return Err(DeviceError::BadRequest("upgrade needs method set".into()));
            }
            return upgrade::run(&mut self.session, &self.upgrade, &upgrade::parse(body)?);
        }
        let call = command::parse(method, body)?;
        password::check_raw(&call.api, &call.params, self.session.username())?;
        let result = self.session.call(&call.api, &call.params)?;
        if call.api == command::REBOOT_API {
            // The token dies with the reboot.
            self.session.forget_token();
        }
        Ok(super::mask_keys(&result, SECRET_FIELDS))
    }

    fn take_new_password(&mut self) -> Option<String> {
        self.new_password.take()
    }
}
