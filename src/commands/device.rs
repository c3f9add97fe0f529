//! `iad|s20|goip|vpn get|set`: hand the body to that device's client.

use super::envelope::{Command, Outcome};
use crate::agent::Ctx;
use crate::devices::{DeviceError, DeviceKind};

pub fn handle(ctx: &Ctx, cmd: &Command) -> Outcome {
    let Some(kind) = DeviceKind::parse(&cmd.wire.command) else {
        return Outcome::err(format!("unknown command '{}'", cmd.wire.command));
    };
    if !matches!(cmd.wire.method.as_str(), "get" | "set") {
        return Outcome::err(format!("{kind}: method must be get or set"));
    }
    let name = cmd.wire.body.get("device").and_then(|v| v.as_str()).map(|s| s.to_string());
    let mut body = cmd.wire.body.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("device");
    }
    match ctx.devices.command(kind, name.as_deref(), &cmd.wire.method, body, &cmd.key) {
        Ok(result) => Outcome::ok(result),
        // The device answered, with an error: carried out, not successful.
        Err(DeviceError::Device { code, msg }) => {
            Outcome::failed(format!("{kind} error {code}: {msg}"), serde_json::json!({"code": code, "msg": msg}))
        }
        Err(e) => Outcome::err(format!("{kind}: {e}")),
    }
}
