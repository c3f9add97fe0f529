//! `report`: publish the asked reports now.

use super::envelope::{Command, Outcome};
use crate::agent::Ctx;
use crate::telemetry::ReportRequest;
use serde_json::{json, Value};

pub fn handle(ctx: &Ctx, cmd: &Command) -> Outcome {
    let what: Vec<String> = match cmd.wire.body.get("what") {
        None | Some(Value::Null) => vec!["all".into()],
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(|s| s.to_string())).collect(),
        Some(_) => return Outcome::err("bad body: what must be sys, procs, versions, periph or all"),
    };
    let mut reqs = Vec::new();
    for w in &what {
        match ReportRequest::parse(w) {
            Some(r) => reqs.push(r),
            None => return Outcome::err(format!("bad body: unknown report '{w}' (sys, procs, versions, periph, all)")),
        }
    }
    for r in reqs {
        if ctx.reports.try_send(r).is_err() {
            return Outcome::err("reporter busy; try again");
        }
    }
    Outcome::ok(json!({"requested": what}))
}
