//! The IAD status poll and its normalised `msg`.
//!
//! Calls, in order: `sys_info/oem` (primary), `sys_info/performance`,
//! `sys_info/interface` for every slot (`maxslots` from oem), and
//! `sys_info/cdr` for every slot when the device's `cdr` option is on.
//!
//! Failure policy: when the primary call fails, or any call finds the
//! device unreachable (transport error, timeout), the poll fails with that
//! error. Any other failure of a secondary call (device error code,
//! malformed answer) is reported in `msg.errors` as `{"call", "error"}` and
//! the rest of the status is still published.

use super::client::Session;
use super::ports::{as_i64, decode_board, number_like};
use crate::devices::{DeviceError, DeviceStatus};
use serde_json::{json, Map, Value};

/// Upper bound on slots asked for, whatever `maxslots` says.
const MAX_SLOTS: i64 = 16;

/// What the poll reads besides the always-read calls.
pub struct PollOptions {
    pub cdr: bool,
    /// `limit` sent with `sys_info/cdr` (empty: the device's default).
    pub cdr_limit: String,
}

pub fn poll(s: &mut Session, opts: &PollOptions) -> Result<DeviceStatus, DeviceError> {
    let mut errors: Vec<Value> = Vec::new();
    let oem = s.call("sys_info/oem", &Map::new())?;
    if !oem.is_object() {
        return Err(DeviceError::Protocol("sys_info/oem: data is not an object".into()));
    }
    let perf = secondary(s, "sys_info/performance", Map::new(), &mut errors)?;

    let slots = oem.get("maxslots").and_then(as_i64).unwrap_or(1).clamp(1, MAX_SLOTS);
    let (mut boards, mut ports, mut regs, mut raw_ifaces) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut board_uptime = None;
    for slot in 0..slots {
        let api = "sys_info/interface";
        let Some(data) = secondary(s, api, slot_params(slot), &mut errors)? else { continue };
        board_uptime = board_uptime.or_else(|| data.get("uptime").and_then(as_i64));
        match data.get("interface").and_then(Value::as_array) {
            Some(list) => {
                for board in list {
                    match decode_board(board) {
                        Ok((summary, p, r)) => {
                            boards.push(summary);
                            ports.extend(p);
                            regs.extend(r.into_iter().map(|mut r| {
                                r["slot"] = json!(slot);
                                r
                            }));
                        }
                        Err(e) => errors.push(json!({"call": api, "slot": slot, "error": e.to_string()})),
                    }
                }
            }
            None => errors.push(json!({"call": api, "slot": slot, "error": "data has no interface list"})),
        }
        raw_ifaces.push(data);
    }

    let mut cdr = Vec::new();
    if opts.cdr {
        for slot in 0..slots {
            let mut p = slot_params(slot);
            p.insert("limit".into(), json!(opts.cdr_limit));
            p.insert("source_tpl".into(), json!(""));
            p.insert("source".into(), json!(""));
            match secondary(s, "sys_info/cdr", p, &mut errors)? {
                Some(Value::Array(rows)) => cdr.extend(rows),
                Some(Value::Null) | None => {}
                Some(_) => errors.push(json!({"call": "sys_info/cdr", "slot": slot, "error": "data is not a list"})),
            }
        }
    }

    let serial = text(&oem, "sn").or_else(|| text(&oem, "mac_str"));
    let firmware = text(&oem, "firmware_version");
    let perf_v = perf.clone().unwrap_or(Value::Null);
    let mut msg = json!({
        "model": text(&oem, "model2"),
        "product": text(&oem, "product"),
        "vendor": text(&oem, "vendor"),
        "firmware": firmware,
        "firmware_model": text(&oem, "firmware_model"),
        "serial": text(&oem, "sn"),
        "mac": text(&oem, "mac_str"),
        "interface": text(&oem, "interface"),
        "uptime": perf_v.get("uptime").and_then(as_i64).or(board_uptime),
        "cpu": cpu_percent(&perf_v),
        "memory": {
            "total_kb": perf_v.get("memory_total").and_then(as_i64),
            "free_kb": perf_v.get("memory_idle").and_then(as_i64),
        },
        "slots": boards,
        "lines": line_summary(&ports),
        "ports": ports,
        "sip_registrations": regs,
        "raw": {"oem": oem, "performance": perf_v, "interface": raw_ifaces},
    });
    if opts.cdr {
        msg["cdr"] = Value::Array(cdr);
    }
    if !errors.is_empty() {
        msg["errors"] = Value::Array(errors);
    }
    Ok(DeviceStatus { serial, firmware, msg })
}

/// A secondary call: unreachable → the poll fails; any other error → noted.
fn secondary(s: &mut Session, api: &str, params: Map<String, Value>, errors: &mut Vec<Value>) -> Result<Option<Value>, DeviceError> {
    match s.call(api, &params) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_unreachable() => Err(e),
        Err(e) => {
            let mut entry = json!({"call": api, "error": e.to_string()});
            if let Some(slot) = params.get("slotnum") {
                entry["slot"] = slot.clone();
            }
            errors.push(entry);
            Ok(None)
        }
    }
}

fn slot_params(slot: i64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("slotnum".into(), json!(slot));
    m
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// CPU use in percent from the processor "full" and "idle" counters.
fn cpu_percent(perf: &Value) -> Option<f64> {
    let total = perf.get("processor_total").and_then(number_like)?;
    let idle = perf.get("processor_idle").and_then(number_like)?;
    (total > 0.0).then(|| ((total - idle.min(total)) * 1000.0 / total).round() / 10.0)
}

fn line_summary(ports: &[Value]) -> Value {
    let count = |f: &dyn Fn(&Value) -> bool| ports.iter().filter(|p| f(p)).count();
    json!({
        "total": ports.len(),
        "fxs": count(&|p| p["type"] == "FXS"),
        "fxo": count(&|p| p["type"] == "FXO"),
        "in_use": count(&|p| p["in_use"] == true),
        "offhook": count(&|p| p["hook"] == "offhook"),
        "alarm": count(&|p| !p["alarm"].is_null()),
        "sip_registered": count(&|p| p["sip"]["registered"] == true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_from_seed_counters() {
        let perf = json!({"uptime": 380, "processor_total": 391, "processor_idle": 389});
        assert_eq!(cpu_percent(&perf), Some(0.5));
        assert_eq!(cpu_percent(&json!({"processor_total": 0, "processor_idle": 0})), None);
    }
}
