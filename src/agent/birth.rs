//! The birth message: what the agent says on `state` when it comes online.

use serde_json::json;

/// The birth message (`{p}/state/{sn}`, retained).
pub fn birth_payload(p: &crate::mqtt::Publisher, signed: bool) -> Vec<u8> {
    json!({"sn": p.sn, "online": true, "time": crate::util::unix_now(),
           "bootTime": super::clock::boot_time(), "ver": crate::VERSION, "signed": signed})
    .to_string()
    .into_bytes()
}

