//! The envelopes of what a device reports on its own (docs/PROTOCOL.md,
//! "Payload envelopes"): the state (birth and will), periodic reports
//! (`sys`, `procs`, `versions`), LAN device status (`periph`) and events.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The birth message on `{p}/state/{sn}` (retained); the will is [`Will`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Birth {
    pub sn: String,
    pub online: bool,
    pub time: u64,
    #[serde(rename = "bootTime")]
    pub boot_time: u64,
    pub ver: String,
    /// The agent runs only signed commands.
    pub signed: bool,
}

/// The will: `{"sn", "online": false}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Will {
    pub sn: String,
    pub online: bool,
}

/// `sys`, `procs`, `versions`: `{"sn", "time", "d"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub sn: String,
    pub time: u64,
    pub d: Value,
}

/// `periph`: one LAN device's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Periph {
    pub sn: String,
    pub time: u64,
    #[serde(rename = "gwId")]
    pub gw_id: String,
    #[serde(rename = "nId")]
    pub n_id: String,
    pub kind: String,
    pub online: bool,
    pub msg: Value,
}

/// `event`: `{"sn", "time", "eid", "type", ...}` with type-specific fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub sn: String,
    pub time: u64,
    /// Per device, only grows (across restarts): the platform drops a duplicate.
    pub eid: u64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_of_the_protocol() {
        let b = Birth { sn: "S".into(), online: true, time: 5, boot_time: 1, ver: "1.0.0 x".into(), signed: false };
        assert_eq!(serde_json::to_value(&b).unwrap(), json!({"sn": "S", "online": true, "time": 5, "bootTime": 1, "ver": "1.0.0 x", "signed": false}));
        let e: Event = serde_json::from_value(json!({"sn": "S", "time": 2, "eid": 9, "type": "sms-received", "text": "hi"})).unwrap();
        assert_eq!((e.eid, e.kind.as_str(), e.fields["text"].as_str()), (9, "sms-received", Some("hi")));
        assert_eq!(serde_json::to_value(&e).unwrap()["type"], "sms-received");
    }
}
