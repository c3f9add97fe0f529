//! Goip client (placeholder module being written; see issue "LAN devices").
use super::{DeviceConfig, DeviceError, DeviceKind, DeviceStatus, LanDevice};
use serde_json::Value;

pub mod crypt;
pub mod lenient;
pub mod ports;
pub mod push;

pub const EXTRA_OPTIONS: &[(&str, bool)] = &[];

pub struct GoipClient;

impl GoipClient {
    pub fn new(_cfg: &DeviceConfig) -> Result<Self, String> {
        Err("goip client not built yet".into())
    }
}

impl LanDevice for GoipClient {
    fn kind(&self) -> DeviceKind {
        DeviceKind::Goip
    }
    fn poll(&mut self) -> Result<DeviceStatus, DeviceError> {
        Err(DeviceError::Transport("not built".into()))
    }
    fn command(&mut self, _method: &str, _body: &Value) -> Result<Value, DeviceError> {
        Err(DeviceError::Transport("not built".into()))
    }
}
