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

/// The S20 needs no options beyond address and password.
pub const EXTRA_OPTIONS: &[(&str, bool)] = &[];

pub struct S20Client {
    session: client::Session,
}

impl S20Client {
    pub fn new(cfg: &DeviceConfig) -> Result<Self, String> {
        Ok(S20Client { session: client::Session::new(cfg)? })
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
        Ok(answer)
    }
}
