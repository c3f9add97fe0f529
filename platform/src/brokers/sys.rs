//! Mosquitto's `$SYS/broker/…` topics (published every `sys_interval`,
//! 10 s by default), kept in memory and shown in the seed's shapes.
//! Mosquitto publishes totals only: no per-node or per-client lists.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;

const MAX_KEYS: usize = 512;

#[derive(Default)]
pub struct SysStats {
    vals: Mutex<BTreeMap<String, String>>,
}

impl SysStats {
    /// `topic` without the `$SYS/` head, e.g. `broker/uptime`.
    pub fn record(&self, topic: &str, payload: &[u8]) {
        if payload.len() > 256 || topic.len() > 128 {
            return;
        }
        let mut m = self.vals.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() < MAX_KEYS || m.contains_key(topic) {
            m.insert(topic.to_string(), String::from_utf8_lossy(payload).into_owned());
        }
    }

    fn get(&self, k: &str) -> Option<String> {
        self.vals.lock().unwrap_or_else(|p| p.into_inner()).get(k).cloned()
    }

    fn num(&self, k: &str) -> u64 {
        self.get(k).and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok())).unwrap_or(0)
    }

    pub fn seen(&self) -> bool {
        self.get("broker/version").is_some()
    }

    /// The seed's node list (one node: the broker we are connected to).
    pub fn nodes(&self, node: &str, now: i64) -> Value {
        let sysdescr = self.get("broker/version").unwrap_or_default();
        let version = sysdescr.rsplit(' ').next().unwrap_or("").to_string();
        let up = self.num("broker/uptime");
        json!([{
            "datetime": crate::time::datetime(now),
            "node": node,
            "node_status": if self.seen() { "Running" } else { "Unknown" },
            "otp_release": "",
            "sysdescr": sysdescr,
            "uptime": format!("{} days,{} hours, {} minutes, {} seconds", up / 86_400, up / 3600 % 24, up / 60 % 60, up % 60),
            "version": version,
        }])
    }

    /// The seed's `stats` object: PUBLISH counts are `messages`, all MQTT
    /// packets are `packets` (mosquitto's `messages/…` counts every packet).
    pub fn stats(&self) -> Value {
        json!({
            "metrics": {
                "messageSentCount": self.num("broker/publish/messages/sent"),
                "messageReceivedCount": self.num("broker/publish/messages/received"),
                "packetSentCount": self.num("broker/messages/sent"),
                "packetReceivedCount": self.num("broker/messages/received"),
                "byteSentCount": self.num("broker/bytes/sent"),
                "byteReceivedCount": self.num("broker/bytes/received"),
            },
            "stats": {
                "nodeCount": 1,
                "sessionCount": self.num("broker/clients/total"),
                "connectionCount": self.num("broker/clients/connected"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosquitto_figures() {
        let s = SysStats::default();
        s.record("broker/version", b"mosquitto version 2.0.11");
        s.record("broker/uptime", b"90061 seconds");
        s.record("broker/clients/connected", b"3");
        s.record("broker/publish/messages/sent", b"42");
        let n = s.nodes("mosquitto@127.0.0.1:1883", 0);
        assert_eq!(n[0]["version"], "2.0.11");
        assert_eq!(n[0]["uptime"], "1 days,1 hours, 1 minutes, 1 seconds");
        assert_eq!(s.stats()["stats"]["connectionCount"], 3);
        assert_eq!(s.stats()["metrics"]["messageSentCount"], 42);
    }
}
