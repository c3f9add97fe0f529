//! SMS through the GoIP: the `sms` command, the push receiver, inbox
//! reconciliation.

pub mod command;

use crate::agent::Ctx;
use std::sync::Arc;

/// The running SMS subsystem.
pub struct SmsService {}

impl SmsService {
    pub fn stop(&self) {}
}

pub fn start(_ctx: Arc<Ctx>) -> Result<SmsService, String> {
    Ok(SmsService {})
}
