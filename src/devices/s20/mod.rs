//! GL.iNet GL-S20 (Thread border router) client over its HTTP API
//! (`shared/seeds/gl-s20-http-api.txt`, DEVICE-NOTES "GL-S20").
//!
//! - [`auth`]: the login hash;
//! - [`client`]: challenge/login, the `Token` session and answer checks;
//! - [`status`]: the status poll and its normalised `msg`;
//! - [`command`]: validation of `s20 get|set` bodies.

pub mod auth;
pub mod client;
pub mod command;
pub mod status;

use super::{DeviceConfig, DeviceError, DeviceKind, DeviceStatus, LanDevice};
use serde_json::Value;

/// Answer fields that are credentials (Thread keys, Wi-Fi passwords,
/// joiner PSKds): masked in every command answer, as in the status.
pub const SECRET_FIELDS: &[&str] =
    &["NetworkKey", "PSKc", "Passphrase", "ActiveDataset", "nwk_key", "passphrase", "password", "pwd", "PSKd", "sid", "token"];

/// The S20 needs no options beyond address and password.
pub const EXTRA_OPTIONS: &[(&str, bool)] = &[];

pub struct S20Client {
    session: client::Session,
    /// A new admin password the S20 accepted, until the manager takes it.
    new_password: Option<String>,
}

impl S20Client {
    pub fn new(cfg: &DeviceConfig) -> Result<Self, String> {
        Ok(S20Client { session: client::Session::new(cfg)?, new_password: None })
    }

    /// `/sys/set_admin_pwd` (seed: `username` "root", `old_pwd`, `new_pwd`):
    /// `username` and `old_pwd` default to the agent's own. Once the S20
    /// accepts it the agent logs in with the new password at once (a fresh
    /// login, `credential.login` in the answer); a refused login is an
    /// error that says the change went through.
    fn set_admin_pwd(&mut self, call: &mut command::S20Call) -> Result<Value, DeviceError> {
        let new = match call.data.get("new_pwd") {
            Some(Value::String(p)) if !p.is_empty() && p.len() <= 64 && !p.chars().any(char::is_control) => p.clone(),
            _ => return Err(DeviceError::BadRequest("/sys/set_admin_pwd needs new_pwd, 1-64 printable characters".into())),
        };
        call.data.entry("username").or_insert_with(|| Value::from("root"));
        if !call.data.contains_key("old_pwd") {
            call.data.insert("old_pwd".into(), Value::from(self.session.password()));
        }
        let old = self.session.password().to_string();
        let mut answer = self.session.call(call.verb, &call.path, &call.data)?;
        self.session.set_password(&new);
        let check = |s: &mut client::Session| s.call(client::Verb::Get, "/sys/get_status", &serde_json::Map::new());
        match check(&mut self.session) {
            Ok(_) => {
                self.new_password = Some(new);
                if let Value::Object(m) = &mut answer {
                    m.insert("credential".into(), serde_json::json!({"changed": true, "login": "ok"}));
                }
                Ok(answer)
            }
            Err(DeviceError::Auth(m)) => {
                // Answered success but refuses the new one: does the old still work?
                self.session.set_password(&old);
                if check(&mut self.session).is_ok() {
                    return Err(DeviceError::Auth(format!(
                        "the S20 answered success but refuses the new admin password at login ({m}) and still takes the old one: the agent keeps the old password"
                    )));
                }
                self.session.set_password(&new);
                self.new_password = Some(new);
                Err(DeviceError::Auth(format!("the S20 accepted the new admin password but refuses it at login ({m}), and the old one too")))
            }
            Err(e) => {
                self.new_password = Some(new);
                Err(e.with_note("the S20 accepted the new admin password; the login with it could not be checked"))
            }
        }
    }
}

impl LanDevice for S20Client {
    fn kind(&self) -> DeviceKind {
        DeviceKind::S20
    }

    fn poll(&mut self) -> Result<DeviceStatus, DeviceError> {
        status::poll(&mut self.session)
    }

    /// Returns the S20's whole JSON answer (`{"code": 0, "result": {...}}`);
    /// a non-zero `code` is [`DeviceError::Device`].
    fn command(&mut self, method: &str, body: &Value) -> Result<Value, DeviceError> {
        let mut call = command::parse(method, body)?;
        if call.path == "/sys/set_admin_pwd" {
            return self.set_admin_pwd(&mut call);
        }
        let answer = if call.is_open() {
            if call.path == "/ui/set_init" && !call.data.contains_key("password") {
                // The configured password, so that the agent logs in again at once.
                call.data.insert("password".into(), Value::from(self.session.password()));
            }
            self.session.call_open(call.verb, &call.path, &call.data)?
        } else {
            self.session.call(call.verb, &call.path, &call.data)?
        };
        if call.ends_session() {
            self.session.forget_session();
        }
        Ok(super::mask_keys(&answer, SECRET_FIELDS))
    }

    fn take_new_password(&mut self) -> Option<String> {
        self.new_password.take()
    }
}
