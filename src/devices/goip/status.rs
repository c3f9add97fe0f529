//! The `periph` message of a GoIP: common keys first, the device's own
//! answer kept under `device`.

use super::push::{DevStatus, PortState};
use crate::devices::DeviceStatus;
use serde_json::{json, Value};

/// MAC as 12 upper-case hex digits (`00-30-f1-00-6c-55` → `0030F1006C55`),
/// when it is one.
pub fn mac_serial(mac: &str) -> Option<String> {
    let hex: String = mac.chars().filter(char::is_ascii_hexdigit).collect();
    let seps_ok = mac.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, '-' | ':' | '.'));
    (hex.len() == 12 && seps_ok).then(|| hex.to_ascii_uppercase())
}

/// One port as published, both in `periph.msg.ports` and in `port-status`
/// events (so the two always agree): the decoded fields, and the device's
/// own `seq`, balance (`bal`), IMEI and status text as it sent them.
pub fn port_entry(p: &PortState) -> Value {
    json!({
        "port": p.port,
        "port_no": p.port_no,
        "slot": p.slot,
        "state": p.state,
        "state_text": p.state_text,
        "status": p.raw.get("st").or_else(|| p.raw.get("status")),
        "registered": p.registered,
        "seq": p.seq,
        "imei": p.imei,
        "iccid": p.iccid,
        "imsi": p.imsi,
        "number": p.number,
        "operator": p.operator,
        "balance": p.balance,
        "bal": p.raw.get("bal"),
        "signal": p.signal,
    })
}

/// Ports kept in `msg.ports` at most (the largest GoIP has 32 ports of 4 slots).
const MAX_PORTS: usize = 256;

/// Replace (or add) one port's entry in a normalised `msg`, keeping the
/// registered count right.
pub fn merge_port(msg: &mut Value, entry: Value) {
    let Some(m) = msg.as_object_mut() else { return };
    let ports = m.entry("ports").or_insert_with(|| Value::Array(Vec::new()));
    if !ports.is_array() {
        *ports = Value::Array(Vec::new());
    }
    if let Some(list) = ports.as_array_mut() {
        let n = list.len();
        match list.iter_mut().find(|p| p.get("port") == entry.get("port")) {
            Some(p) => *p = entry,
            // A pushing peer may invent port names: the list stays bounded.
            None if n < MAX_PORTS => list.push(entry),
            None => {}
        }
        let registered = list.iter().filter(|p| p.get("registered") == Some(&Value::Bool(true))).count();
        m.insert("registered".into(), json!(registered));
    }
}

pub fn normalise(name: &str, st: &DevStatus, raw: Value) -> DeviceStatus {
    let serial = st.mac.as_deref().and_then(mac_serial);
    let model = raw.get("model").and_then(Value::as_str).unwrap_or("Ejoin GoIP").to_string();
    let slots: Vec<Value> = st.ports.iter().map(port_entry).collect();
    let registered = st.ports.iter().filter(|p| p.registered).count();
    let msg = json!({
        "name": name,
        "model": model,
        "firmware": st.version,
        "serial": serial,
        "mac": st.mac,
        "ip": st.ip,
        "max_ports": st.max_ports,
        "max_slots": st.max_slots,
        "registered": registered,
        "ports": slots,
        "bad_ports": st.bad_ports,
        "device": raw,
    });
    DeviceStatus { serial, firmware: st.version.clone(), msg }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_keys() {
        assert_eq!(mac_serial("00-30-f1-00-6c-55").as_deref(), Some("0030F1006C55"));
        assert_eq!(mac_serial("nonsense"), None);
        let raw = json!({"type":"dev-status","mac":"00:30:f1:01:02:03","ver":"1.2","max-ports":2,
            "status":[{"port":"1A","st":3,"opr":"46000 CMCC","bal":"1.50","sig":"20"},{"port":"2A","st":0}]});
        let st = DevStatus::from_value(&raw).unwrap();
        let d = normalise("goip1", &st, raw.clone());
        assert_eq!(d.serial.as_deref(), Some("0030F1010203"));
        assert_eq!(d.firmware.as_deref(), Some("1.2"));
        assert_eq!(d.msg["registered"], 1);
        assert_eq!(d.msg["ports"][0]["operator"], "46000 CMCC");
        assert_eq!(d.msg["ports"][0]["balance"], 1.5);
        assert_eq!(d.msg["ports"][1]["state_text"], "no SIM");
        assert_eq!(d.msg["device"], raw);
    }
}
