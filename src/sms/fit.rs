//! One event must fit the event queue's per-event cap, whatever a GoIP
//! sends: an SMS whose event would be larger is cut to fit and flagged
//! (`"truncated": true`, with the original sizes), never refused — a
//! refused row would block its device's SMS path for good.

use crate::events::queue::MAX_EVENT;
use serde_json::{json, Map, Value};

/// Room kept under the cap for the flags this adds.
const MARGIN: usize = 512;
/// Room for the envelope (`sn`, `time`, `eid`, `type`).
const ENVELOPE: usize = 512;

/// Fields that may be cut, largest expected first.
const CUTTABLE: &[&str] = &["raw", "extra", "text"];

/// The event as is when it fits `cap` bytes of JSON, else with its long
/// fields cut (strings to a prefix, other values to a prefix of their JSON
/// text) and `truncated: true`; always returns something that fits.
pub fn fit(ev: Value, cap: usize) -> Value {
    let len = ev.to_string().len();
    if len <= cap {
        return ev;
    }
    let Value::Object(mut m) = ev else { return json!({"truncated": true}) };
    let budget = cap.saturating_sub(MARGIN);
    m.insert("truncated".into(), json!(true));
    m.insert("originalBytes".into(), json!(len));
    for key in CUTTABLE {
        if Value::Object(m.clone()).to_string().len() <= budget {
            break;
        }
        let Some(v) = m.get(*key) else { continue };
        let count = match v {
            Value::String(s) => s.chars().count(),
            other => other.to_string().chars().count(),
        };
        m.insert(format!("{key}Length"), json!(count));
        let now = Value::Object(m.clone()).to_string().len();
        if now <= budget {
            break;
        }
        let Some(v) = m.get(*key) else { continue };
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let over = now - budget;
        // Measured as JSON (escaping can make a character 6 bytes).
        let escaped = Value::String(text.clone()).to_string().len().saturating_sub(2);
        let keep_bytes = escaped.saturating_sub(over);
        let mut cut = String::new();
        let mut used = 0usize;
        for c in text.chars() {
            let w = Value::String(c.to_string()).to_string().len() - 2;
            if used + w > keep_bytes {
                break;
            }
            used += w;
            cut.push(c);
        }
        m.insert((*key).into(), Value::String(cut));
    }
    // Still too large (many long fields of other kinds): keep only the
    // envelope and the short identifying fields.
    if Value::Object(m.clone()).to_string().len() > budget {
        let keep = ["sn", "time", "type", "device", "port", "smsTime", "from", "to", "source", "encoding", "truncated", "originalBytes", "rawLength", "extraLength", "textLength"];
        m.retain(|k, v| keep.contains(&k.as_str()) && v.to_string().len() < 256);
    }
    Value::Object(m)
}

/// An event's own fields, cut (before the envelope is added) so that the
/// whole event fits the event queue's cap with room for the envelope.
pub fn fit_fields(f: Map<String, Value>) -> Map<String, Value> {
    match fit(Value::Object(f), MAX_EVENT - ENVELOPE) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_to_fit_and_flagged() {
        let small = json!({"type": "sms-received", "text": "hi"});
        assert_eq!(fit(small.clone(), 1000), small);
        let big = json!({"type": "sms-received", "text": "\u{1}é".repeat(5000), "extra": ["x".repeat(3000)]});
        let f = fit(big, 2000);
        assert!(f.to_string().len() <= 2000, "{}", f.to_string().len());
        assert_eq!(f["truncated"], true);
        assert_eq!(f["textLength"], 10000);
        assert!(f["text"].as_str().unwrap().starts_with("\u{1}é"));
    }
}
