//! Decoding of one interface board (`sys_info/interface` → `interface[]`)
//! into per-port state. The board reports its ports in five JSON documents
//! embedded as strings: `dahdi_scan` (port types), `dahdi_port` (DAHDI
//! channel status, "(In use)", alarms), `dahdi_analog` (hook state of FXS
//! ports), `voltage` and `sip_register`.

use crate::devices::DeviceError;
use serde_json::{json, Map, Value};

/// Decode one `IFACEKV` entry into `(slot summary, ports, registrations)`.
pub fn decode_board(board: &Value) -> Result<(Value, Vec<Value>, Vec<Value>), DeviceError> {
    let b = board.as_object().ok_or_else(|| proto("interface entry is not an object"))?;
    let slot = b.get("slotnum").and_then(as_i64).ok_or_else(|| proto("interface entry has no slotnum"))?;
    let scan = embedded(b, "dahdi_scan")?;
    let status = embedded(b, "dahdi_port")?;
    let hooks = embedded(b, "dahdi_analog")?;
    let volts = embedded(b, "voltage")?;
    let sip = embedded(b, "sip_register")?;

    let registrations = decode_registrations(&sip);
    let mut ports = Vec::new();
    for (span_key, span) in &scan {
        let span_no = span_key.parse::<i64>().map_err(|_| proto(&format!("dahdi_scan: span key {span_key:?} is not a number")))?;
        let types = span.get("port").and_then(Value::as_object).ok_or_else(|| proto("dahdi_scan: span has no port map"))?;
        let span_status = status.get(span_key).and_then(Value::as_object);
        for (ch_key, kind) in types {
            let ch = ch_key.parse::<i64>().map_err(|_| proto(&format!("dahdi_scan: port key {ch_key:?} is not a number")))?;
            let line = span_status.and_then(|s| s.get(ch_key)).and_then(Value::as_str).unwrap_or("");
            let reg = registrations.iter().find(|r| r.get("port").and_then(Value::as_i64) == Some(ch));
            ports.push(json!({
                "slot": slot,
                "span": span_no,
                "port": ch,
                "type": kind.as_str().unwrap_or("").to_ascii_uppercase(),
                "in_use": line.contains("(In use)"),
                "hook": hooks.get(ch_key).and_then(Value::as_str).map(|h| h.to_ascii_lowercase()),
                "voltage": volts.get(ch_key).and_then(number_like),
                "alarm": alarm(line),
                "status": line,
                "sip": reg.map(|r| json!({"state": r["state"], "registered": r["registered"], "detail": r["detail"]})),
            }));
        }
    }
    ports.sort_by_key(|p| (p["span"].as_i64(), p["port"].as_i64()));
    let summary = json!({
        "slot": slot,
        "model": b.get("model").cloned().unwrap_or(Value::Null),
        "version": b.get("version").cloned().unwrap_or(Value::Null),
        "interface": b.get("interface").cloned().unwrap_or(Value::Null),
        "uptime": b.get("uptime").and_then(as_i64),
        "mac": b.get("macaddr").cloned().unwrap_or(Value::Null),
    });
    Ok((summary, ports, registrations))
}

/// `{"6reg": "Registered (exp. 3600s)"}` → one entry per account; the port
/// is the key's leading number when it has one.
fn decode_registrations(sip: &Map<String, Value>) -> Vec<Value> {
    sip.iter()
        .map(|(name, v)| {
            let detail = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
            let state = detail.split(" (").next().unwrap_or("").trim().to_string();
            json!({
                "name": name,
                "port": digits.parse::<i64>().ok(),
                "state": state,
                "registered": state.eq_ignore_ascii_case("registered"),
                "detail": detail,
            })
        })
        .collect()
}

/// DAHDI alarm word in a channel status line, if any.
fn alarm(line: &str) -> Option<&'static str> {
    ["RED", "YELLOW", "BLUE", "RECOVERING", "NOTOPEN", "LOOPBACK"].into_iter().find(|a| line.split_whitespace().any(|w| w == *a))
}

/// Parse a field that holds JSON in a string. Absent or empty means "none";
/// an object is accepted as it is (some firmware sends it unquoted).
fn embedded(b: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, DeviceError> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(Value::Array(a)) if a.is_empty() => Ok(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(Value::Array(a)) if a.is_empty() => Ok(Map::new()),
            Ok(_) => Err(proto(&format!("{key} is not a JSON object"))),
            Err(e) => Err(proto(&format!("{key} is not valid JSON ({e})"))),
        },
        Some(_) => Err(proto(&format!("{key} is neither a JSON string nor an object"))),
    }
}

/// Numbers arrive as numbers or as strings ("48").
pub fn number_like(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => crate::util::decimal(s.trim()),
        _ => None,
    }
}

pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn proto(msg: &str) -> DeviceError {
    DeviceError::Protocol(format!("sys_info/interface: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The board from the seed's `sys_info/interface` example.
    fn seed_board() -> Value {
        json!({
            "slotnum": 0, "uptime": 180860, "model": "iac-v14", "version": "r0-4bdc68d4", "interface": "analog",
            "dahdi_scan": "{\"1\":{\"basechan\":\"1\",\"totchans\":\"8\",\"type\":\"analog\",\"port\":{\"1\":\"FXO\",\"2\":\"FXO\",\"3\":\"FXO\",\"4\":\"FXO\",\"5\":\"FXS\",\"6\":\"FXS\",\"7\":\"FXS\",\"8\":\"FXS\"}}}",
            "dahdi_port": "{\"1\":{\"1\":\"FXSLS (In use) RED (EC: G168V2 - INACTIVE)\",\"3\":\"FXSLS RED (EC: G168V2 - INACTIVE)\",\"5\":\"FXOLS (In use) (EC: G168V2 - INACTIVE)\"}}",
            "sip_register": "{\"6reg\":\"Rejected (exp. 11597s ago)\"}",
            "dahdi_analog": "{\"5\":\"Onhook\",\"6\":\"Offhook\"}",
            "macaddr": "",
            "voltage": "{\"1\":\"1\",\"5\":\"48\"}",
        })
    }

    #[test]
    fn decodes_seed_example() {
        let (summary, ports, regs) = decode_board(&seed_board()).expect("decodes");
        assert_eq!(summary["model"], "iac-v14");
        assert_eq!(ports.len(), 8);
        assert_eq!(ports[0]["type"], "FXO");
        assert_eq!(ports[0]["in_use"], true);
        assert_eq!(ports[0]["alarm"], "RED");
        assert_eq!(ports[2]["in_use"], false);
        assert_eq!(ports[4]["type"], "FXS");
        assert_eq!(ports[4]["hook"], "onhook");
        assert_eq!(ports[4]["voltage"], 48.0);
        assert_eq!(ports[4]["alarm"], Value::Null);
        assert_eq!(ports[5]["hook"], "offhook");
        assert_eq!(ports[5]["sip"]["state"], "Rejected");
        assert_eq!(ports[5]["sip"]["registered"], false);
        assert_eq!(regs[0]["port"], 6);
    }

    #[test]
    fn malformed_embedded_json_is_protocol_error() {
        let mut b = seed_board();
        b["dahdi_port"] = json!("{\"1\": ");
        assert!(matches!(decode_board(&b), Err(DeviceError::Protocol(m)) if m.contains("dahdi_port")));
        assert!(matches!(decode_board(&json!({"uptime": 1})), Err(DeviceError::Protocol(_))));
    }
}
