//! The guided tour: a few commands as the platform would send them, each
//! printed with the equivalent `dma-ctl` line and its decoded answer.

use super::fleet::{Fleet, PREFIX, SN};
use super::printer::{say, View};
use dma_ctl::args::{BrokerOpts, SendOpts, SignOpts};
use dma_ctl::connect::Conn;
use dma_ctl::{render, send};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest answer shown in the tour (the CLI shows everything).
const MAX_LINES: usize = 24;

fn clip_lines(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max {
        return text.to_string();
    }
    format!("{}\n    | … ({} more lines; `dma-ctl send` prints them all)", lines[..max].join("\n"), lines.len() - max)
}

struct Step {
    title: &'static str,
    command: &'static str,
    method: &'static str,
    body: Value,
}

fn steps() -> Vec<Step> {
    vec![
        Step { title: "a shell command on the router", command: "sh", method: "", body: json!({"shcmd": "echo \"hello from $(hostname)\"; uname -sr; echo 'a warning' >&2"}) },
        Step { title: "the VoIP gateway's OEM info", command: "iad", method: "get", body: json!({"api": "sys_info/oem"}) },
        Step { title: "the Thread border router's device info", command: "s20", method: "get", body: json!({"api": "/sys/get_info"}) },
        Step { title: "the GSM gateway's port status", command: "goip", method: "get", body: json!({"op": "status"}) },
        Step { title: "send an SMS through the GSM gateway", command: "sms", method: "", body: json!({"to": "10086", "sms": "Hello from the dma-agent demo", "from": "1A"}) },
    ]
}

/// How long the tour waits for the delivery report of its SMS: the GoIP
/// reports a task once it is sent, and the agent's event queue forwards it.
const REPORT_TIMEOUT: Duration = Duration::from_secs(25);

/// Event types that report an SMS's fate: the task's outcome per number
/// (`sms-report`) and the handset's delivery receipt (`sms-delivery`).
const REPORT_TYPES: &[&str] = &["sms-report", "sms-delivery"];

/// Wait for the delivery report of the SMS just sent (an event after
/// `from`, not any event) and print what it says.
fn show_report(view: &View, stop: &Arc<AtomicBool>, from: usize) {
    let is_report = |e: &Value| e.get("type").and_then(Value::as_str).is_some_and(|t| REPORT_TYPES.contains(&t));
    let got = view.wait_for(REPORT_TIMEOUT, |v| stop.load(Ordering::SeqCst) || v.events.iter().skip(from).any(is_report));
    if stop.load(Ordering::SeqCst) {
        return;
    }
    let report = view.with(|v| v.events.iter().skip(from).find(|e| is_report(e)).cloned());
    match report {
        Some(r) if got => say(&format!("delivery report for the SMS: {}", describe_report(&r))),
        _ => say(&format!("(no delivery report within {} s)", REPORT_TIMEOUT.as_secs())),
    }
}

/// One line for a `sms-report` / `sms-delivery` event.
fn describe_report(r: &Value) -> String {
    if r["type"] == "sms-delivery" {
        let ok = if r["delivered"] == true { "delivered" } else { "not delivered" };
        return format!("{ok} to {} (receipt via port {})", r["to"].as_str().unwrap_or("?"), r["port"].as_str().unwrap_or("?"));
    }
    let details = r["details"].as_array().cloned().unwrap_or_default();
    let parts: Vec<String> = details
        .iter()
        .map(|d| {
            let ok = if d["ok"] == true { "sent" } else { "failed" };
            let why = d["reason"].as_str().map(|w| format!(" ({w})")).unwrap_or_default();
            format!("{ok} to {} via port {}{why}", d["number"].as_str().unwrap_or("?"), d["port"].as_str().unwrap_or("?"))
        })
        .collect();
    let failed = r["failed"].as_u64().unwrap_or(0);
    format!("{}; {} failed (command id {})", if parts.is_empty() { "no per-number detail".to_string() } else { parts.join(", ") }, failed, r["id"])
}

fn ctl_line(port: u16, s: &Step) -> String {
    let method = if s.method.is_empty() { String::new() } else { format!(" --method {}", s.method) };
    format!("$ dma-agent ctl --port {port} send {SN} {}{method} --body '{}' --sign-key platform-signing.pem --kid {}", s.command, s.body, super::platform::KID)
}

/// Run the tour; stops early when `stop` is set (Ctrl-C). Returns the
/// number of steps that got an answer.
pub fn run(port: u16, fleet: &Fleet, view: &View, stop: &Arc<AtomicBool>, key_file: &std::path::Path) -> Result<usize, String> {
    let sign = SignOpts { key_file: key_file.to_string_lossy().into_owned(), kid: Some(super::platform::KID.into()) };
    let opts = BrokerOpts::local(Some(port));
    let mut conn = Conn::open(&opts).map_err(|f| f.msg)?;
    conn.cancel_on(stop.clone());
    let all = steps();
    let total = all.len() + 1;
    let mut answered = 0;
    for (i, s) in all.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            return Ok(answered);
        }
        say(&format!("\n=== tour {}/{total}: {} ===\n{}", i + 1, s.title, ctl_line(port, s)));
        let events_before = view.with(|v| v.events.len());
        let o = SendOpts { sn: SN.into(), command: s.command.into(), method: s.method.into(), body: s.body.clone(), timeout: ANSWER_TIMEOUT, id: None, sign: Some(sign.clone()) };
        match send::send(&mut conn, PREFIX, &o) {
            Ok(resp) => {
                answered += 1;
                say(&clip_lines(&render::answer(&resp), MAX_LINES));
            }
            Err(f) => say(&format!("(no answer: {})", f.msg)),
        }
        if s.command == "sms" {
            say("(waiting for the SMS's delivery report, sent as an event ...)");
            show_report(view, stop, events_before);
        }
    }
    if stop.load(Ordering::SeqCst) {
        return Ok(answered);
    }
    say(&format!("\n=== tour {total}/{total}: an SMS arrives at the GSM gateway ==="));
    let before = view.with(|v| v.events.len());
    let inbox_id = fleet.goip.deliver_sms("2A", "+15551234567", "Hi router, this is an inbound SMS");
    say(&format!("(the simulated GoIP received an SMS on port 2A from +15551234567, inbox id {inbox_id}; the platform should see an event)"));
    let got = view.wait_for(Duration::from_secs(8), |v| {
        stop.load(Ordering::SeqCst) || v.events.iter().skip(before).any(|e| e.get("type").and_then(Value::as_str).is_some_and(|t| t.contains("sms")))
    });
    if stop.load(Ordering::SeqCst) {
        return Ok(answered);
    }
    if got {
        say("inbound SMS event received by the platform (shown above)");
    } else {
        say("(no inbound SMS event within 8 s: this build's agent does not receive GoIP pushes yet)");
    }
    conn.close();
    Ok(answered)
}
