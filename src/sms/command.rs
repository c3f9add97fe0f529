//! The `sms` command.
use crate::agent::Ctx;
use crate::commands::envelope::{Command, Outcome};

pub fn handle(ctx: &Ctx, cmd: &Command) -> Outcome {
    let _ = (ctx, cmd);
    Outcome::err("sms: no goip device is configured")
}
