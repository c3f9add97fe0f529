//! `s20 get|set` command bodies: `{"api": "/otbr/get_status", "data": {...}}`.
//!
//! The HTTP method comes from the seed's endpoint table: a read that the
//! S20 takes as POST (`/otbr/get_join_status`) is still POSTed. For paths
//! the table does not know, `get` is a GET with `data` as the query and
//! `set` a POST with `data` as JSON. A `get` of an endpoint that changes
//! the device (restart, reset, …) is refused: use `set`.
//!
//! Two `/ui/*` calls are reachable, both without a login (an S20 after a
//! factory reset has no password to log in with): `get /ui/check_initialized`
//! and `set /ui/set_init` with `{"lang"?: "en"|"zh-cn", "password"?: "…"}`,
//! which brings a reset S20 back. Without `password` the agent sends the
//! device password it is configured with, so that it can log in again at
//! once; `lang` defaults to `en`.

use super::client::Verb;
use crate::devices::DeviceError;
use serde_json::{Map, Value};

/// `(path, HTTP method, changes the device)` as the seed lists them.
const ENDPOINTS: &[(&str, Verb, bool)] = &[
    ("/ui/check_initialized", Verb::Get, false),
    ("/ui/set_init", Verb::Post, true),
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

/// The calls made without a session (seed "/ui": an uninitialised S20
/// cannot log in).
pub const OPEN_CALLS: &[&str] = &["/ui/check_initialized", "/ui/set_init"];
/// Languages `/ui/set_init` takes (seed).
pub const INIT_LANGS: &[&str] = &["zh-cn", "en"];

impl S20Call {
    /// True when the call ends the S20's sessions (restart, reset, new password).
    pub fn ends_session(&self) -> bool {
        matches!(self.path.as_str(), "/sys/restart" | "/sys/reset" | "/sys/set_admin_pwd" | "/sys/import_sys_config" | "/ui/set_init")
    }
    /// True when the call is made without a session.
    pub fn is_open(&self) -> bool {
        OPEN_CALLS.contains(&self.path.as_str())
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
    let mut data = data;
    if path == "/ui/set_init" {
        check_init(&mut data)?;
    }
    Ok(S20Call { verb, path, data })
}

/// `/ui/set_init` fields: `lang` one of [`INIT_LANGS`] (default `en`),
/// `password` a non-empty string when given; nothing else.
fn check_init(data: &mut Map<String, Value>) -> Result<(), DeviceError> {
    if let Some(k) = data.keys().find(|k| !matches!(k.as_str(), "lang" | "password")) {
        return Err(bad(format!("/ui/set_init takes lang and password, not {k:?}")));
    }
    match data.get("lang") {
        None => {
            data.insert("lang".into(), Value::from("en"));
        }
        Some(Value::String(l)) if INIT_LANGS.contains(&l.as_str()) => {}
        Some(other) => return Err(bad(format!("lang must be one of {}, not {other}", INIT_LANGS.join(", ")))),
    }
    match data.get("password") {
        None => Ok(()),
        Some(Value::String(p)) if !p.is_empty() => Ok(()),
        Some(_) => Err(bad("password must be a non-empty string".into())),
    }
}

/// `/group/call`, each part 1–64 of `[a-z0-9_]` (case-insensitive). The
/// `/ui/*` session calls are the agent's own (a login answer would carry
/// the sid), except [`OPEN_CALLS`].
fn validate_path(api: &str) -> Result<String, DeviceError> {
    let a = api.trim();
    let p = a.strip_prefix('/').unwrap_or(a);
    let parts: Vec<&str> = p.split('/').collect();
    let ok_part = |s: &str| (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if parts.len() != 2 || !parts.iter().all(|s| ok_part(s)) {
        return Err(bad(format!("api must be /group/call of letters, digits and _, got {api:?}")));
    }
    let path = format!("/{p}");
    if parts[0] == "ui" && !OPEN_CALLS.contains(&path.as_str()) {
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
        let c = parse("get", &json!({"api": "/ui/check_initialized"})).expect("ok");
        assert!(c.is_open() && c.verb == Verb::Get);
        let c = parse("set", &json!({"api": "/ui/set_init"})).expect("ok");
        assert!(c.is_open() && c.ends_session() && c.verb == Verb::Post);
        assert_eq!(c.data, json!({"lang": "en"}).as_object().cloned().unwrap_or_default());
    }

    #[test]
    fn rejects_bad_bodies() {
        for (m, b) in [
            ("get", json!({"api": "/sys/restart"})),
            ("get", json!({"api": "/ui/set_init"})),
            ("set", json!({"api": "/ui/set_init", "data": {"lang": "fr"}})),
            ("set", json!({"api": "/ui/set_init", "data": {"password": ""}})),
            ("set", json!({"api": "/ui/set_init", "data": {"passwd": "x"}})),
            ("set", json!({"api": "/ui/logout"})),
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
