//! IAD call records (`sys_info/cdr`) as `cdr` events, each once: the poll
//! reads the device's recent records every time, so what was already
//! published is remembered durably — a bounded set of record keys and the
//! latest end time seen (`<state>/cdr/<device>.json`). A record is new
//! when its key is not remembered and it did not end long before the
//! latest one (so a lost or cut set cannot bring old records back).
//! Records are marked only once their events are in the event queue: a
//! full queue delays them to the next poll, it does not lose them.

use serde_json::{json, Map, Value};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// Record keys remembered.
pub const SEEN_CAP: usize = 1024;
/// A record that ended this long before the latest one is old.
const SLACK: i64 = 600;
/// Fields, characters per value and per name kept per record in its event
/// (even all escaped as `\uXXXX`, 32 × (200 + 64) × 6 bytes fit the
/// event queue's 64 KiB).
const MAX_FIELDS: usize = 32;
const MAX_TEXT: usize = 200;
const MAX_NAME: usize = 64;

pub struct CdrCursor {
    path: PathBuf,
    order: VecDeque<String>,
    set: HashSet<String>,
    /// Latest end time seen (device clock, Unix seconds).
    latest: Option<i64>,
}

fn file_name(device: &str) -> String {
    let safe: String = device.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    format!("{safe}.json")
}

/// A record's identity: a hash of all its fields (serde_json keeps object
/// keys sorted, so the same record always gives the same key).
pub fn key(row: &Value) -> String {
    let h = crate::util::sha256_hex(row.to_string().as_bytes());
    h.get(..24).unwrap_or(&h).to_string()
}

/// End time of a record (`end`, else `start`), a Unix time as text or number.
pub fn end_time(row: &Value) -> Option<i64> {
    let t = |k: &str| match row.get(k)? {
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    t("end").or_else(|| t("start")).filter(|&t| t > 0)
}

impl CdrCursor {
    /// Open (an unreadable file starts empty: at worst records still on the
    /// device are published again, never lost).
    pub fn open(dir: &Path, device: &str) -> CdrCursor {
        let path = dir.join(file_name(device));
        let v: Value = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
        let mut c = CdrCursor { path, order: VecDeque::new(), set: HashSet::new(), latest: v.get("latest").and_then(Value::as_i64) };
        for k in v.get("seen").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            c.remember(k.to_string());
        }
        c
    }

    fn remember(&mut self, k: String) {
        if self.set.insert(k.clone()) {
            self.order.push_back(k);
        }
        while self.order.len() > SEEN_CAP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// The records not published yet, in the device's order, with their keys.
    pub fn new_rows<'a>(&self, rows: &'a [Value]) -> Vec<(String, &'a Value)> {
        let mut out: Vec<(String, &Value)> = Vec::new();
        let mut batch: HashSet<String> = HashSet::new();
        for r in rows {
            let k = key(r);
            if self.set.contains(&k) || !batch.insert(k.clone()) {
                continue;
            }
            if let (Some(latest), Some(end)) = (self.latest, end_time(r)) {
                if end < latest.saturating_sub(SLACK) {
                    continue;
                }
            }
            out.push((k, r));
        }
        out
    }

    /// Remember published records durably.
    pub fn mark(&mut self, published: &[(String, &Value)]) -> std::io::Result<()> {
        if published.is_empty() {
            return Ok(());
        }
        for (k, r) in published {
            self.remember(k.clone());
            if let Some(end) = end_time(r) {
                self.latest = Some(self.latest.map_or(end, |l| l.max(end)));
            }
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let doc = json!({"latest": self.latest, "seen": self.order});
        crate::durable::write_atomic(&self.path, doc.to_string().as_bytes())
    }
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

fn cut_name(s: &str) -> String {
    s.chars().take(MAX_NAME).collect()
}

/// The `cdr` event of one record: its fields as the device gave them
/// (text cut to 200 characters, at most 32 fields), plus `device`.
pub fn cdr_event(sn: &str, device: &str, row: &Value) -> Value {
    let mut f = Map::new();
    f.insert("device".into(), json!(device));
    match row {
        Value::Object(m) => {
            for (k, v) in m.iter().take(MAX_FIELDS) {
                let v = match v {
                    Value::String(s) => Value::String(cut(s)),
                    Value::Number(_) | Value::Bool(_) | Value::Null => v.clone(),
                    other => Value::String(cut(&other.to_string())),
                };
                f.insert(cut_name(k), v);
            }
        }
        other => {
            f.insert("raw".into(), Value::String(cut(&other.to_string())));
        }
    }
    crate::events::envelope(sn, "cdr", f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_once_across_reopen() {
        let d = std::env::temp_dir().join(format!("dma-cdr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let row = |n: i64| json!({"from": "8001", "to": "100", "end": (1_700_000_000 + n).to_string(), "billsec": "5"});
        let rows = vec![row(1), row(2)];
        let mut c = CdrCursor::open(&d, "iad/1");
        let new = c.new_rows(&rows);
        assert_eq!(new.len(), 2);
        c.mark(&new).unwrap();
        assert!(c.new_rows(&rows).is_empty());
        let c = CdrCursor::open(&d, "iad/1");
        let more = vec![row(1), row(2), row(3)];
        let new = c.new_rows(&more);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].1["end"], "1700000003");
        // Long before the latest: old, even if forgotten.
        assert!(c.new_rows(&[row(-5000)]).is_empty());
        let e = cdr_event("SN", "iad1", &row(3));
        assert_eq!((e["type"].as_str(), e["device"].as_str(), e["to"].as_str()), (Some("cdr"), Some("iad1"), Some("100")));
        let _ = std::fs::remove_dir_all(&d);
    }
}
