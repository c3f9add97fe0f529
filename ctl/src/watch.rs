//! `ctl watch`: print what devices publish until Ctrl-C (or `--count`).

use super::connect::Conn;
use super::{render, Failure};
use dma_agent::mqtt::topics;
use serde_json::{json, Value};

/// The topics a device publishes on, in both layouts (`topic_layout`).
pub fn filters(prefix: &str, sn: Option<&str>) -> Vec<String> {
    let mut f = vec![format!("{prefix}/state/{}", sn.unwrap_or("+"))];
    for t in topics::DEVICE_KINDS {
        f.extend(topics::filters(prefix, t, sn));
    }
    f
}

/// Whether a message is from `sn`: a per-device topic (subscribed for
/// that serial only) is; on a shared topic, the payload says.
fn from_device(topic: &str, payload: &[u8], prefix: &str, sn: &str) -> bool {
    if topic.starts_with(&format!("{prefix}/state/")) || topics::kind_of(prefix, topic).is_some_and(|k| topic.len() > prefix.len() + 1 + k.len()) {
        return true;
    }
    serde_json::from_slice::<Value>(payload).ok().and_then(|v| v.get("sn").and_then(Value::as_str).map(|s| s == sn)).unwrap_or(false)
}

/// JSON form of one message: topic, retained flag, payload (parsed when JSON).
pub fn json_line(topic: &str, retain: bool, payload: &[u8]) -> Value {
    let p = serde_json::from_slice::<Value>(payload).unwrap_or_else(|_| Value::from(String::from_utf8_lossy(payload).into_owned()));
    json!({"topic": topic, "retain": retain, "payload": p})
}

pub fn watch(conn: &mut Conn, prefix: &str, sn: Option<&str>, count: Option<u64>, as_json: bool) -> Result<(), Failure> {
    conn.subscribe(&filters(prefix, sn))?;
    if !as_json {
        eprintln!("watching {} under '{prefix}/' (Ctrl-C to stop)", sn.map(|s| format!("device {s}")).unwrap_or("all devices".into()));
    }
    let mut seen = 0u64;
    while count.is_none_or(|c| seen < c) {
        let Some(m) = conn.next(None)? else { break };
        if sn.is_some_and(|s| !from_device(&m.topic, &m.payload, prefix, s)) {
            continue;
        }
        seen += 1;
        if as_json {
            println!("{}", json_line(&m.topic, m.retain, &m.payload));
        } else {
            let stamp = render::fmt_time(dma_agent::util::unix_now());
            let clock = stamp.get(11..19).unwrap_or("");
            println!("{clock} {}{}", render::message(prefix, &m.topic, &m.payload), if m.retain { "  (retained)" } else { "" });
        }
    }
    Ok(())
}
