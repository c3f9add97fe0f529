//! The S20 status poll and its normalised `msg`.
//!
//! Calls `/sys/get_status` (primary), then `/sys/get_info`,
//! `/otbr/get_status`, `/eth/get_status`, `/wifi/get_status` and
//! `/sys/check_current_firmware`.
//!
//! Failure policy: when the primary call fails, or any call finds the
//! device unreachable (transport error, timeout) or the session cannot be
//! re-established, the poll fails with that error. Any other failure of a
//! secondary call is reported in `msg.errors` as `{"call", "error"}`.
//!
//! The Thread network's secrets (`NetworkKey`, `PSKc`, `Passphrase`,
//! `ActiveDataset`, which embeds the key) never leave the agent in a
//! status report: they are masked in `msg.raw`.

use super::client::{result_of, Session, Verb};
use crate::devices::{DeviceError, DeviceStatus};
use serde_json::{json, Map, Value};

const SECONDARY: &[(&str, &str)] = &[
    ("info", "/sys/get_info"),
    ("otbr", "/otbr/get_status"),
    ("eth", "/eth/get_status"),
    ("wifi", "/wifi/get_status"),
    ("firmware", "/sys/check_current_firmware"),
];

/// A refused login may mean the S20 was factory-reset: it then has no
/// password until `/ui/set_init`. Ask it (no session needed) and say so.
fn explain_refusal(s: &mut Session, m: String) -> String {
    let uninitialised = s
        .call_open(Verb::Get, "/ui/check_initialized", &Map::new())
        .ok()
        .is_some_and(|v| result_of(&v).get("initialized").and_then(Value::as_bool) == Some(false));
    if uninitialised {
        format!("{m}; the S20 is not initialised (factory reset?): bring it back with s20 set {{\"api\": \"/ui/set_init\"}}")
    } else {
        m
    }
}

/// Keys of `/otbr/get_status` → `Network` that are credentials.
const THREAD_SECRETS: &[&str] = &["NetworkKey", "PSKc", "Passphrase", "ActiveDataset"];

pub fn poll(s: &mut Session) -> Result<DeviceStatus, DeviceError> {
    let sys = match s.call(Verb::Get, "/sys/get_status", &Map::new()) {
        Ok(v) => result_of(&v).clone(),
        Err(DeviceError::Auth(m)) => return Err(DeviceError::Auth(explain_refusal(s, m))),
        Err(e) => return Err(e),
    };
    let mut errors = Vec::new();
    let mut raw = Map::new();
    raw.insert("sys".into(), sys.clone());
    for (key, path) in SECONDARY {
        match s.call(Verb::Get, path, &Map::new()) {
            Ok(v) => {
                raw.insert((*key).into(), result_of(&v).clone());
            }
            Err(e) if e.is_unreachable() || matches!(e, DeviceError::Auth(_)) => return Err(e),
            Err(e) => errors.push(json!({"call": path, "error": e.to_string()})),
        }
    }
    let null = Value::Null;
    let get = |k: &str| raw.get(k).unwrap_or(&null);
    let (info, otbr, fw) = (get("info"), get("otbr"), get("firmware"));

    let firmware = text(fw, "current_firmware_version");
    let serial = text(&sys, "sn").or_else(|| text(&sys, "eth_mac"));
    let mut msg = json!({
        "model": text(&sys, "model"),
        "serial": text(&sys, "sn"),
        "mac": text(&sys, "eth_mac"),
        "wifi_mac": text(&sys, "wifi_mac"),
        "ble_mac": text(&sys, "ble_mac"),
        "firmware": firmware,
        "firmware_type": text(fw, "current_firmware_type"),
        "memory": {"total": sys.get("memory_total").and_then(Value::as_i64), "free": sys.get("memory_free").and_then(Value::as_i64)},
        "wan": info.get("wan_status").and_then(Value::as_i64).map(wan_name),
        "thread": thread(info, otbr),
        "eth": link(get("eth"), eth_name),
        "wifi": link(get("wifi"), wifi_name),
    });
    if let Some(Value::Object(net)) = raw.get_mut("otbr").and_then(|o| o.get_mut("Network")) {
        for k in THREAD_SECRETS {
            if net.contains_key(*k) {
                net.insert((*k).into(), json!("***"));
            }
        }
    }
    msg["raw"] = Value::Object(raw);
    if !errors.is_empty() {
        msg["errors"] = Value::Array(errors);
    }
    Ok(DeviceStatus { serial, firmware, msg })
}

/// Thread network state from `/otbr/get_status` and `/sys/get_info`.
fn thread(info: &Value, otbr: &Value) -> Value {
    let (net, rcp) = (&otbr["Network"], &otbr["RCP"]);
    let state = rcp.get("State").and_then(Value::as_i64);
    json!({
        "network": info.get("thread_nwk_status").and_then(Value::as_i64).map(|v| v == 1),
        "commissioner": info.get("thread_commissioner_status").and_then(Value::as_i64).map(|v| v == 1),
        "state": state,
        "role": state.map(role_name),
        "network_name": text(net, "NetworkName"),
        "channel": net.get("Channel").and_then(Value::as_i64),
        "panid": net.get("PanId").and_then(panid),
        "ext_panid": text(net, "ExtPanId"),
        "mesh_local_prefix": text(net, "MeshLocalPrefix"),
        "ipv6": net.get("IPv6").cloned().unwrap_or(Value::Null),
        "rloc16": rcp.get("Rloc16").and_then(Value::as_i64),
        "tx_power": rcp.get("TXPower").and_then(Value::as_i64),
        "ext_address": text(rcp, "ExtAddress"),
        "eui64": text(rcp, "EUI64"),
        "rcp_version": text(rcp, "RCPVersion"),
        "thread_version": text(otbr, "ThreadVersion"),
        "otbr_version": text(otbr, "OTBRVersion"),
    })
}

/// Ethernet / WiFi link state: status code and name, addresses.
fn link(v: &Value, name: fn(i64) -> &'static str) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    let code = v.get("status").and_then(Value::as_i64);
    let mut out = json!({
        "status": code.map(name),
        "code": code,
        "ipv4": v["ipv4"].get("ip").cloned().unwrap_or(Value::Null),
        "gateway": v["ipv4"].get("gateway").cloned().unwrap_or(Value::Null),
        "ipv6": v["ipv6"].get("ip").cloned().unwrap_or(Value::Null),
    });
    for k in ["protocol", "ssid", "bssid", "fail_msg"] {
        if let Some(x) = v.get(k) {
            out[k] = x.clone();
        }
    }
    out
}

/// PAN ID as `0x` + 4 hex digits; the seed gives it as a string in
/// `get_status` and as a number in `scan`.
fn panid(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| format!("0x{n:04x}")),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_ascii_lowercase()),
        _ => None,
    }
}

pub fn role_name(state: i64) -> &'static str {
    match state {
        0 => "disabled",
        1 => "detached",
        2 => "child",
        3 => "router",
        4 => "leader",
        _ => "unknown",
    }
}

fn wan_name(v: i64) -> &'static str {
    match v {
        0 => "no_network",
        1 => "ip_no_internet",
        2 => "available",
        _ => "unknown",
    }
}

fn eth_name(v: i64) -> &'static str {
    match v {
        0 => "disconnected",
        1 => "connected",
        2 => "connecting",
        3 => "no_cable",
        _ => "unknown",
    }
}

fn wifi_name(v: i64) -> &'static str {
    match v {
        0 => "idle",
        1 => "connecting",
        2 => "connected",
        3 => "failed",
        _ => "unknown",
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panid_forms() {
        assert_eq!(panid(&json!(4660)), Some("0x1234".into()));
        assert_eq!(panid(&json!("0xABCD")), Some("0xabcd".into()));
        assert_eq!(panid(&json!("")), None);
    }

    #[test]
    fn thread_state() {
        let otbr = json!({"Network": {"NetworkName": "OpenThread-1", "Channel": 15, "PanId": "0x1234"}, "RCP": {"State": 4}});
        let t = thread(&json!({"thread_nwk_status": 1}), &otbr);
        assert_eq!(t["role"], "leader");
        assert_eq!(t["network"], true);
        assert_eq!(t["channel"], 15);
    }
}
