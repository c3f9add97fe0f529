//! `s20 get|set` command bodies: `{"api": "/otbr/get_status", "data": {...}}`.
//!
//! The HTTP method comes from the seed's endpoint table: a read that the
//! S20 takes as POST (`/otbr/get_join_status`) is still POSTed. For paths
//! the table does not know, `get` is a GET with `data` as the query and
//! `set` a POST with `data` as JSON. A `get` of an endpoint that changes
//! the device (restart, reset, …) is refused: use `set`.

use super::client::Verb;
use crate::devices::DeviceError;
use serde_json::{Map, Value};

/// `(path, HTTP method, changes the device)` as the seed lists them.
const ENDPOINTS: &[(&str, Verb, bool)] = &[
    ("/ui/check_initialized", Verb::Get, false),
    ("/otbr/get_status", Verb::Get, false),
    ("/otbr/scan", Verb::Get, false),
    ("/otbr/get_join_status", Verb::Post, false),
    ("/otbr/join", Verb::Post, true),
    ("/otbr/set_config", Verb::Post, true),
    ("/otbr/stop", Verb::Post, true),
    ("/otbr/start", Verb::Post, true),
    ("/otbr/generate_thread_network", Verb::Get, false),
    ("/otbr/set_txpower", Verb::Post, true),
    ("/otbr/set_commissioning", Verb::Post, true),
    ("/otbr/add_joiner", Verb::Post, true),
    ("/otbr/get_commissioning_status", Verb::Get, false),
    ("/otbr/rejoin_all", Verb::Post, true),
    ("/otbr/get_joiner_list", Verb::Get, false),
    ("/otbr/remove_joiner_list", Verb::Post, true),
    ("/otbr/export_joiner_list", Verb::Get, false),
    ("/otbr/import_joiner_list", Verb::Post, true),
    ("/otbr/commit_joiner_list", Verb::Post, true),
    ("/otbr/get_bbr_status", Verb::Get, false),
    ("/otbr/disable_bbr", Verb::Post, true),
    ("/otbr/enable_bbr", Verb::Post, true),
    ("/eth/get_status", Verb::Get, false),
    ("/eth/get_config", Verb::Get, false),
    ("/eth/set_config", Verb::Post, true),
    ("/wifi/get_status", Verb::Get, false),
    ("/wifi/stop", Verb::Post, true),
    ("/wifi/start", Verb::Post, true),
    ("/wifi/get_save_wifi", Verb::Get, false),
    ("/wifi/delete_save_wifi", Verb::Post, true),
    ("/wifi/scan", Verb::Get, false),
    ("/wifi/set_reconn_to_saved_wifi", Verb::Post, true),
    ("/wifi/get_reconn_to_saved_wifi", Verb::Get, false),
    ("/wan_failover/get_config", Verb::Get, false),
    ("/wan_failover/set_config", Verb::Post, true),
    ("/sys/get_info", Verb::Get, false),
    ("/sys/get_status", Verb::Get, false),
    ("/sys/get_time_config", Verb::Get, false),
    ("/sys/set_time_config", Verb::Post, true),
    ("/sys/check_current_firmware", Verb::Get, false),
    ("/sys/check_online_firmware", Verb::Get, false),
    ("/sys/upgrade_online_firmware", Verb::Post, true),
    ("/sys/check_upgrade_status", Verb::Get, false),
    ("/sys/upgrade_online_certificate", Verb::Post, true),
    ("/sys/upgrade_local_certificate", Verb::Post, true),
    ("/sys/get_log", Verb::Get, false),
    ("/sys/export_sys_config", Verb::Post, false),
    ("/sys/import_sys_config", Verb::Post, true),
    ("/sys/set_admin_pwd", Verb::Post, true),
    ("/sys/reset", Verb::Post, true),
    ("/sys/restart", Verb::Post, true),
];

/// A validated command.
#[derive(Debug, Clone, PartialEq)]
pub struct S20Call {
    pub verb: Verb,
    pub path: String,
    pub data: Map<String, Value>,
}

impl S20Call {
    /// True when the call ends the S20's sessions (restart, reset, new password).
    pub fn ends_session(&self) -> bool {
        matches!(self.path.as_str(), "/sys/restart" | "/sys/reset" | "/sys/set_admin_pwd" | "/sys/import_sys_config")
    }
}

pub fn parse(method: &str, body: &Value) -> Result<S20Call, DeviceError> {
    let is_set = match method {
        "get" => false,
        "set" => true,
        other => return Err(bad(format!("method must be get or set, not {other:?}"))),
    };
    let obj = body.as_object().ok_or_else(|| bad("body must be a JSON object".into()))?;
    let api = obj.get("api").and_then(Value::as_str).ok_or_else(|| bad("api (\"/group/call\") is required".into()))?;
    let path = validate_path(api)?;
    let data = match obj.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(bad("data must be a JSON object".into())),
    };
    let verb = match ENDPOINTS.iter().find(|(p, _, _)| *p == path) {
        Some((_, _, true)) if !is_set => return Err(bad(format!("{path} changes the device: use method set"))),
        Some((_, verb, _)) => *verb,
        None if is_set => Verb::Post,
        None => Verb::Get,
    };
    if verb == Verb::Get {
        if let Some((k, _)) = data.iter().find(|(_, v)| v.is_object() || v.is_array()) {
            return Err(bad(format!("data.{k}: a GET call takes only scalar values")));
        }
    }
    Ok(S20Call { verb, path, data })
}

/// `/group/call`, each part 1–64 of `[a-z0-9_]` (case-insensitive). The
/// `/ui/*` session calls are the agent's own, except the harmless
/// `/ui/check_initialized`: a login answer would carry the sid.
fn validate_path(api: &str) -> Result<String, DeviceError> {
    let a = api.trim();
    let p = a.strip_prefix('/').unwrap_or(a);
    let parts: Vec<&str> = p.split('/').collect();
    let ok_part = |s: &str| (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if parts.len() != 2 || !parts.iter().all(|s| ok_part(s)) {
        return Err(bad(format!("api must be /group/call of letters, digits and _, got {api:?}")));
    }
    let path = format!("/{p}");
    if parts[0] == "ui" && path != "/ui/check_initialized" {
        return Err(bad("/ui/* session calls are managed by the agent".into()));
    }
    Ok(path)
}

fn bad(m: String) -> DeviceError {
    DeviceError::BadRequest(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn methods_follow_the_seed() {
        let c = parse("get", &json!({"api": "/otbr/get_status"})).expect("ok");
        assert_eq!((c.verb, c.path.as_str()), (Verb::Get, "/otbr/get_status"));
        let c = parse("get", &json!({"api": "/otbr/get_join_status", "data": {"CredentialType": "pskdType"}})).expect("ok");
        assert_eq!(c.verb, Verb::Post);
        let c = parse("set", &json!({"api": "otbr/set_txpower", "data": {"TXPower": 10}})).expect("ok");
        assert_eq!((c.verb, c.path.as_str()), (Verb::Post, "/otbr/set_txpower"));
        assert_eq!(parse("get", &json!({"api": "/new/thing", "data": {"a": 1}})).map(|c| c.verb), Ok(Verb::Get));
        assert_eq!(parse("set", &json!({"api": "/new/thing"})).map(|c| c.verb), Ok(Verb::Post));
    }

    #[test]
    fn rejects_bad_bodies() {
        for (m, b) in [
            ("get", json!({"api": "/sys/restart"})),
            ("get", json!({"api": "/ui/login"})),
            ("set", json!({"api": "/ui/challenge"})),
            ("get", json!({"api": "/a/b/c"})),
            ("get", json!({"api": "/sys/get status"})),
            ("get", json!({"api": "/sys/get_status", "data": {"x": {"y": 1}}})),
            ("get", json!({"api": "/sys/get_status", "data": "x"})),
            ("get", json!({})),
            ("", json!({"api": "/sys/get_status"})),
        ] {
            assert!(matches!(parse(m, &b), Err(DeviceError::BadRequest(_))), "{m} {b}");
        }
    }
}
