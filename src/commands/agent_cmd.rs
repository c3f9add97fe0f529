//! `agent get|set`: the agent's configuration (secrets masked) and live
//! state; `set` validates, persists atomically to the UCI file and
//! applies — at once where possible, by a clean self-restart where the
//! broker session itself must change.

use super::broker_trial;
use super::envelope::{Command, Outcome};
use crate::agent::apply::apply_config;
use crate::agent::Ctx;
use crate::config::uci::UciValue;
use crate::config::AgentConfig;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub fn handle(ctx: &Ctx, cmd: &Command) -> Outcome {
    match cmd.wire.method.as_str() {
        "get" | "" => get(ctx, &cmd.wire.body),
        "set" => set(ctx, cmd),
        m => Outcome::err(format!("agent: method must be get or set, not '{m}'")),
    }
}

fn get(ctx: &Ctx, body: &Value) -> Outcome {
    let cfg = ctx.config();
    let keys: Option<Vec<String>> = match body.get("keys") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let mut v = Vec::new();
            for k in a {
                match k.as_str() {
                    Some(s) => v.push(s.to_string()),
                    None => return Outcome::err("bad body: keys must be a list of option names"),
                }
            }
            Some(v)
        }
        Some(_) => return Outcome::err("bad body: keys must be a list of option names"),
    };
    let config = cfg.agent.to_json_masked_only(keys.as_deref());
    if let (Some(keys), Value::Object(m)) = (&keys, &config) {
        let unknown: Vec<&String> = keys.iter().filter(|k| !m.contains_key(k.as_str()) && *k != "state").collect();
        if !unknown.is_empty() {
            return Outcome::err(format!("bad body: unknown option(s) {unknown:?}"));
        }
    }
    let mut state = ctx.state.lock().map(|s| s.to_json()).unwrap_or(Value::Null);
    if let Value::Object(s) = &mut state {
        let (queued, inflight) = ctx.publisher.tracker().pending();
        s.insert("mqttQueued".into(), json!(queued));
        s.insert("mqttInflight".into(), json!(inflight));
        if let Ok(j) = ctx.journal.lock() {
            let (bytes, cap) = j.bytes();
            s.insert("journal".into(), json!({"size": j.len(), "bytes": bytes, "capBytes": cap, "states": j.counts(), "bootId": j.boot_id()}));
        }
        s.insert("commands".into(), crate::commands::engine::stats(ctx));
        s.insert("refused".into(), ctx.refusals.to_json());
        s.insert("signed".into(), json!(!cfg.agent.trusted_keys.is_empty()));
        s.insert("events".into(), ctx.events.stats());
        s.insert("devices".into(), ctx.devices.overview());
        s.insert("sms".into(), ctx.sms.stats());
        s.insert("version".into(), json!(crate::telemetry::versions::agent_version()));
    }
    Outcome::ok(json!({"config": config, "devices": cfg.devices.iter().map(crate::config::model::device_to_json_masked).collect::<Vec<_>>(), "state": state}))
}

/// A JSON value as the UCI text of an option.
fn to_uci(key: &str, v: &Value) -> Result<Option<UciValue>, String> {
    Ok(Some(match (key, v) {
        (_, Value::Null) => return Ok(None),
        ("watch", Value::Array(items)) => UciValue::List(
            items
                .iter()
                .map(|i| i.as_str().map(|s| s.to_string()).ok_or_else(|| format!("{key}: items must be strings")))
                .collect::<Result<_, _>>()?,
        ),
        ("watch", Value::String(s)) => UciValue::List(s.split_whitespace().map(|x| x.to_string()).collect()),
        ("trusted_key", Value::Array(items)) => UciValue::List(
            items
                .iter()
                .map(|i| i.as_str().map(|s| s.to_string()).ok_or_else(|| format!("{key}: items must be kid:BASE64 strings")))
                .collect::<Result<_, _>>()?,
        ),
        ("trusted_key", Value::String(s)) => UciValue::List(vec![s.clone()]),
        (_, Value::String(s)) => UciValue::Single(s.clone()),
        (_, Value::Bool(b)) => UciValue::Single(if *b { "1" } else { "0" }.into()),
        (_, Value::Number(n)) => UciValue::Single(n.to_string()),
        _ => return Err(format!("{key}: value must be a string, number or boolean")),
    }))
}

/// Settings that decide who controls the router (docs/PROTOCOL.md,
/// "Settings that decide trust"): an unsigned `agent set` cannot change them.
pub const TRUST_SETTINGS: &[&str] = &[
    "shell_enabled", "reboot_command", "upgrade_command", "trusted_key", "broker_host", "broker_port", "client_id",
    "username", "password", "tls", "ca_file", "cert_file", "key_file", "state_dir", "topic_layout", "prefix",
    "command_max_age",
];

/// Refuse what an `agent set` may not do given how it was sent: trust
/// settings need a signature; the last trusted key cannot be removed by a
/// command (signature enforcement is never turned off remotely).
fn trust_refusal(m: &Map<String, Value>, signed: bool, refusals: &crate::trust::refusals::Refusals) -> Option<String> {
    if !signed {
        let mut asked: Vec<&str> = m.keys().map(String::as_str).filter(|k| TRUST_SETTINGS.contains(k)).collect();
        if !asked.is_empty() {
            asked.sort_unstable();
            refusals.count(crate::trust::refusals::Reason::SignatureRequired);
            return Some(format!("signature required: {} decide(s) who controls this router; send a signed command", asked.join(", ")));
        }
    }
    match m.get("trusted_key") {
        Some(Value::Null) => Some("trusted_key: the last trusted key cannot be removed by a command".into()),
        Some(Value::Array(a)) if a.is_empty() => Some("trusted_key: the last trusted key cannot be removed by a command".into()),
        Some(Value::String(s)) if s.trim().is_empty() => Some("trusted_key: the last trusted key cannot be removed by a command".into()),
        _ => None,
    }
}

fn set(ctx: &Ctx, cmd: &Command) -> Outcome {
    let signed = cmd.signed_by.is_some();
    let Value::Object(m) = &cmd.wire.body else { return Outcome::err("bad body: an object of option: value") };
    if m.is_empty() {
        return Outcome::err("bad body: no options to set");
    }
    if m.contains_key("device") {
        return set_device(ctx, m, signed);
    }
    if let Some(why) = trust_refusal(m, signed, &ctx.refusals) {
        return Outcome::err(why);
    }
    // Validate every key and value against a scratch copy first.
    let mut scratch = AgentConfig::default();
    let mut updates = Vec::new();
    let known = AgentConfig::default().to_json_masked();
    for (k, v) in m {
        if known.get(k.as_str()).is_none() {
            return Outcome::err(format!("bad value for {k}: unknown option"));
        }
        let uv = match to_uci(k, v) {
            Ok(uv) => uv,
            Err(e) => return Outcome::err(format!("bad body: {e}")),
        };
        let checked = match &uv {
            Some(UciValue::Single(s)) => scratch.set(k, s),
            Some(UciValue::List(items)) => scratch.set_list(k, items),
            None => Ok(()),
        };
        if let Err(e) = checked {
            return Outcome::err(format!("bad value for {k}: {e}"));
        }
        updates.push((k.clone(), uv));
    }
    let path = ctx.config().path.clone();
    // A change of broker settings is tried, not trusted: apply → test →
    // rollback, the answer from wherever the agent ends up online.
    if updates.iter().any(|(k, _)| broker_trial::BROKER_KEYS.contains(&k.as_str())) {
        let state_dir = std::path::PathBuf::from(&ctx.config().agent.state_dir);
        if broker_trial::path(&state_dir).exists() {
            return Outcome::err("not applied: a broker trial is in progress; try again when it has ended");
        }
        let keys: Vec<String> = updates.iter().map(|(k, _)| k.clone()).collect();
        let old = match broker_trial::raw_values(&path, &keys) {
            Ok(v) => v,
            Err(e) => return Outcome::err(format!("not applied: {e}")),
        };
        if broker_trial::is_broker_move(&updates, &old) {
            if let Err(e) = broker_trial::begin(ctx, cmd, &updates, old) {
                return Outcome::err(e);
            }
            ctx.request_restart();
            return Outcome::deferred();
        }
    }
    // Read-modify-write and apply under the config write lock: concurrent
    // sets are serialised, and each applies on top of the one before.
    let mut restart = Vec::new();
    let new = crate::config::update_agent_section(&path, &ctx.config_write, &updates, |new| {
        restart = apply_config(ctx, Arc::new(new.clone()));
    });
    let new = match new {
        Ok(c) => c,
        Err(e) => return Outcome::err(format!("not applied: {e}")),
    };
    let changed: Map<String, Value> = {
        let shown = new.agent.to_json_masked();
        m.keys().filter_map(|k| shown.get(k).map(|v| (k.clone(), v.clone()))).collect()
    };
    let needs_restart = !restart.is_empty();
    if needs_restart {
        log::info!("agent set: {restart:?} changed; restarting to apply");
        ctx.request_restart();
    }
    Outcome::ok(json!({"applied": changed, "restart": needs_restart}))
}

/// `agent set {"device": NAME, "options": {option: value, …}}`: options of
/// one LAN device's section. A device section holds where the agent sends
/// that device's credentials and what they are, so it is a trust setting:
/// only a signed command may change it. Validated against a copy of the
/// device first; the file is rewritten atomically; the device's thread is
/// rebuilt with the new settings (the answer never shows a secret).
fn set_device(ctx: &Ctx, m: &Map<String, Value>, signed: bool) -> Outcome {
    if let Some(extra) = m.keys().find(|k| *k != "device" && *k != "options") {
        return Outcome::err(format!("bad body: '{extra}' cannot be set with a device; send agent options in their own set"));
    }
    let Some(name) = m.get("device").and_then(Value::as_str) else {
        return Outcome::err("bad body: device must be the name of a device section");
    };
    let Some(Value::Object(opts)) = m.get("options") else {
        return Outcome::err("bad body: options must be an object of option: value");
    };
    if opts.is_empty() {
        return Outcome::err("bad body: no options to set");
    }
    if !signed {
        ctx.refusals.count(crate::trust::refusals::Reason::SignatureRequired);
        return Outcome::err(format!(
            "signature required: the section of device '{name}' holds its address and credentials; send a signed command"
        ));
    }
    let cfg = ctx.config();
    let Some(current) = cfg.devices.iter().find(|d| d.name == name) else {
        return Outcome::err(format!("bad body: no device section named '{name}'"));
    };
    let mut scratch = current.clone();
    let mut updates = Vec::new();
    for (k, v) in opts {
        if k == "type" || k == "name" {
            return Outcome::err(format!("bad value for {k}: a device's {k} cannot be changed; add a new section instead"));
        }
        // The same JSON → UCI text as the agent's own options; a device
        // option is one value (no lists, no removal).
        let text = match to_uci(k, v) {
            Ok(Some(UciValue::Single(s))) => s,
            _ => return Outcome::err(format!("bad value for {k}: must be a string, number or boolean")),
        };
        if let Err(e) = crate::config::model::set_device_option(&mut scratch, k, &text) {
            return Outcome::err(format!("bad value for {k}: {e}"));
        }
        updates.push((k.clone(), Some(UciValue::Single(text))));
    }
    let path = cfg.path.clone();
    // A device section never needs a restart: its thread is rebuilt.
    let written = crate::config::device_store::update_device_section(&path, &ctx.config_write, name, &updates, |new| {
        apply_config(ctx, Arc::new(new.clone()));
    });
    let new = match written {
        Ok(c) => c,
        Err(e) => return Outcome::err(format!("not applied: {e}")),
    };
    let shown = new.devices.iter().find(|d| d.name == name).map(crate::config::model::device_to_json_masked).unwrap_or(Value::Null);
    log::info!("agent set: device {name}: {:?} changed", opts.keys().collect::<Vec<_>>());
    Outcome::ok(json!({"device": shown, "applied": opts.keys().collect::<Vec<_>>()}))
}
