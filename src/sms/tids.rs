//! Which command created which GoIP task: `status-report` pushes only name
//! the task id, and the `sms-report` event must carry the command's id.
//! Bounded (oldest forgotten first) and written atomically to
//! `tids.json` when a task is added (sends are rare, the file is small).

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Tasks remembered.
pub const CAP: usize = 1024;

pub struct Tids {
    path: PathBuf,
    /// (tid, device, command id as received)
    items: VecDeque<(i64, String, Value)>,
}

impl Tids {
    pub fn open(dir: &Path) -> std::io::Result<Tids> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("tids.json");
        let mut items = VecDeque::new();
        if let Ok(Value::Array(rows)) = std::fs::read(&path).map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null)) {
            for r in rows {
                if let (Some(tid), Some(dev)) = (r.get("tid").and_then(Value::as_i64), r.get("device").and_then(Value::as_str)) {
                    items.push_back((tid, dev.to_string(), r.get("id").cloned().unwrap_or(Value::Null)));
                }
            }
        }
        Ok(Tids { path, items })
    }

    /// The command id of task `tid` on `device`.
    pub fn command_id(&self, device: &str, tid: i64) -> Option<Value> {
        self.items.iter().rev().find(|(t, d, _)| *t == tid && d == device).map(|(_, _, id)| id.clone())
    }

    /// Remember a task (durably) before it is sent.
    pub fn add(&mut self, device: &str, tid: i64, id: &Value) -> std::io::Result<()> {
        if self.command_id(device, tid).as_ref() == Some(id) {
            return Ok(());
        }
        self.items.push_back((tid, device.to_string(), id.clone()));
        while self.items.len() > CAP {
            self.items.pop_front();
        }
        let rows: Vec<Value> = self.items.iter().map(|(t, d, id)| json!({"tid": t, "device": d, "id": id})).collect();
        crate::config::write_atomic(&self.path, Value::Array(rows).to_string().as_bytes())
    }
}
