//! Iad client (placeholder module being written; see issue "LAN devices").
use super::{DeviceConfig, DeviceError, DeviceKind, DeviceStatus, LanDevice};
use serde_json::Value;

pub const EXTRA_OPTIONS: &[(&str, bool)] = &[];

pub struct IadClient;

impl IadClient {
    pub fn new(_cfg: &DeviceConfig) -> Result<Self, String> {
        Err("iad client not built yet".into())
    }
}

impl LanDevice for IadClient {
    fn kind(&self) -> DeviceKind {
        DeviceKind::Iad
    }
    fn poll(&mut self) -> Result<DeviceStatus, DeviceError> {
        Err(DeviceError::Transport("not built".into()))
    }
    fn command(&mut self, _method: &str, _body: &Value) -> Result<Value, DeviceError> {
        Err(DeviceError::Transport("not built".into()))
    }
}
