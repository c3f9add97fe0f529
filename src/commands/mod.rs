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

/// Commands this agent knows: the protocol's registry (dma-wire).
pub use dma_wire::names::KNOWN;
use dma_wire::names::Name;

/// Changes nothing (`Name::is_read_only`): not journalled (docs/PROTOCOL.md,
/// "Commands").
pub fn is_read_only(cmd: &Command) -> bool {
    Name::parse(&cmd.wire.command).is_some_and(|n| n.is_read_only(&cmd.wire.method))
}

/// A read-only command answered from memory at once (`agent get`,
/// `report`): run on the dispatcher thread, no command thread.
pub fn answered_at_once(cmd: &Command) -> bool {
    answered_at_once_by_name(&cmd.wire.command, &cmd.wire.method)
}

/// [`answered_at_once`] by a command's name and method.
pub fn answered_at_once_by_name(command: &str, method: &str) -> bool {
    matches!(Name::parse(command), Some(n @ (Name::Agent | Name::Report)) if n.is_read_only(method))
}

/// Run one command to its outcome. `reboot` publishes its own answer
/// (it must go out before the router goes down) and says so.
pub fn dispatch(ctx: &Ctx, cmd: &Command) -> Outcome {
    let cfg = ctx.config();
    let Some(name) = Name::parse(&cmd.wire.command) else {
        return Outcome::err(format!("unknown command '{}'", cmd.wire.command));
    };
    match name {
        Name::Sh => sh::handle(
            &cmd.wire.body,
            cfg.agent.shell_enabled,
            sh::ShLimits {
                cap: cfg.agent.shell_output_cap,
                default_timeout: cfg.agent.shell_timeout,
                max_timeout: cfg.agent.shell_max_timeout,
            },
        ),
        Name::Reboot => reboot::handle(ctx, cmd),
        Name::Agent => agent_cmd::handle(ctx, cmd),
        Name::Report => report::handle(ctx, cmd),
        Name::Iad | Name::S20 | Name::Goip | Name::Vpn => device::handle(ctx, cmd),
        Name::Sms => crate::sms::command::handle(ctx, cmd),
        Name::Upgrade => upgrade::handle(ctx, cmd),
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
    let answer = engine::answer_of(ctx, cmd, out);
    ctx.journal
        .lock()
        .map_err(|_| "journal unavailable".to_string())?
        .store_answer(&cmd.key, &answer)
        .map_err(|e| format!("cannot journal the answer: {e}"))?;
    ctx.outbox.nudge();
    Ok(ctx.outbox.wait_acked(&ctx.journal, &cmd.key, ack_timeout))
}
