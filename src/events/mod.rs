//! Events (`{p}/event`): things that happened and must not be lost. They
//! go through a durable, bounded, ordered on-disk queue and leave it only
//! after the broker's PUBACK.

pub mod eid;
pub mod queue;

pub use queue::{EventQueue, QueueError};

use serde_json::{Map, Value};

/// Build an event envelope: `{"sn", "time", "type", ...fields}`, cut to
/// fit the queue's and the packet's limit (flagged `"truncated": true`).
/// The queue stamps its `eid` as it appends it.
pub fn envelope(sn: &str, kind: &str, fields: Map<String, Value>) -> Value {
    let mut m = Map::new();
    m.insert("sn".into(), Value::String(sn.to_string()));
    m.insert("time".into(), Value::from(crate::util::unix_now()));
    m.insert("type".into(), Value::String(kind.to_string()));
    for (k, v) in fields {
        m.entry(k).or_insert(v);
    }
    crate::mqtt::fit::fit_to(Value::Object(m), queue::MAX_EVENT.min(crate::mqtt::fit::budget("", crate::mqtt::fit::MAX_PACKET) - 1024))
}
