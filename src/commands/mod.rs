//! Remote commands: parsing, the journal that makes their effects happen
//! once, the engine that schedules them, and one handler per command.

pub mod agent_cmd;
pub mod broker_trial;
pub mod device;
pub mod engine;
pub mod envelope;
pub mod journal;
pub mod reboot;
pub mod report;
pub mod sh;
pub mod upgrade;

use crate::agent::Ctx;
use envelope::{Command, Outcome};
use std::time::Duration;

/// Commands this agent knows.
pub const KNOWN: &[&str] = &["sh", "reboot", "agent", "report", "iad", "s20", "goip", "vpn", "sms", "upgrade"];

/// Run one command to its outcome. `reboot` publishes its own answer
/// (it must go out before the router goes down) and says so.
pub fn dispatch(ctx: &Ctx, cmd: &Command) -> Outcome {
    let cfg = ctx.config();
    match cmd.command.as_str() {
        "sh" => sh::handle(
            &cmd.body,
            cfg.agent.shell_enabled,
            sh::ShLimits {
                cap: cfg.agent.shell_output_cap,
                default_timeout: cfg.agent.shell_timeout,
                max_timeout: cfg.agent.shell_max_timeout,
            },
        ),
        "reboot" => reboot::handle(ctx, cmd),
        "agent" => agent_cmd::handle(ctx, cmd),
        "report" => report::handle(ctx, cmd),
        "iad" | "s20" | "goip" | "vpn" => device::handle(ctx, cmd),
        "sms" => crate::sms::command::handle(ctx, cmd),
        "upgrade" => upgrade::handle(ctx, cmd),
        other => Outcome::err(format!("unknown command '{other}'")),
    }
}

/// For commands whose effect may take the agent (or the router) down
/// (`reboot`, `upgrade`): store the answer in the journal — from where the
/// outbox publishes it at once — and wait, bounded, for the broker's
/// PUBACK, all before the effect. The engine then publishes nothing more
/// for this command (it finds the stored answer). Returns whether the
/// broker acknowledged: only a real PUBACK counts. Without one the answer
/// stays unacknowledged in the journal (the outbox keeps sending it: after
/// the next connect, or after a restart), and a PUBACK that comes later is
/// still recorded.
pub fn answer_first(ctx: &Ctx, cmd: &Command, out: &Outcome, ack_timeout: Duration) -> Result<bool, String> {
    let answer = engine::fitted_answer(ctx, cmd, out);
    ctx.journal
        .lock()
        .map_err(|_| "journal unavailable".to_string())?
        .store_answer(&cmd.key, &answer)
        .map_err(|e| format!("cannot journal the answer: {e}"))?;
    ctx.outbox.nudge();
    Ok(ctx.outbox.wait_acked(&ctx.journal, &cmd.key, ack_timeout))
}
