//! `iad get|set` command bodies: `{"api": "<class>/<method>", "data": {...}}`
//! for any controller call, or `{"action": "reboot"}`.

use crate::devices::DeviceError;
use serde_json::{Map, Value};

/// The controller call that reboots the IAD (seed 4.2.3).
pub const REBOOT_API: &str = "sys_maintain/sys_reboot";

/// A validated command.
#[derive(Debug, Clone, PartialEq)]
pub struct IadCall {
    pub api: String,
    pub params: Map<String, Value>,
}

pub fn parse(method: &str, body: &Value) -> Result<IadCall, DeviceError> {
    if !matches!(method, "get" | "set" | "") {
        return Err(bad(format!("method must be get or set, not {method:?}")));
    }
    let obj = body.as_object().ok_or_else(|| bad("body must be a JSON object".into()))?;
    if let Some(action) = obj.get("action") {
        return match action.as_str() {
            Some("reboot") if method != "get" => Ok(IadCall { api: REBOOT_API.into(), params: Map::new() }),
            Some("reboot") => Err(bad("action reboot needs method set".into())),
            _ => Err(bad(format!("unknown action {action}; supported: reboot"))),
        };
    }
    let api = obj.get("api").and_then(Value::as_str).ok_or_else(|| bad("api (\"class/method\") is required".into()))?;
    let api = validate_api(api)?;
    let mut params = match obj.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(bad("data must be a JSON object".into())),
    };
    // The session's own token is always the one sent.
    params.remove("token");
    Ok(IadCall { api, params })
}

/// `class/method` (a leading `/` or `/controller/` is tolerated), each part
/// 1–64 of `[A-Za-z0-9_]`. `auth/*` is refused: the agent owns the session
/// and a login answer would carry a token into the command result.
fn validate_api(api: &str) -> Result<String, DeviceError> {
    let a = api.trim();
    let a = a.strip_prefix("/controller/").or_else(|| a.strip_prefix('/')).unwrap_or(a);
    let parts: Vec<&str> = a.split('/').collect();
    let ok_part = |p: &str| (1..=64).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if parts.len() != 2 || !parts.iter().all(|p| ok_part(p)) {
        return Err(bad(format!("api must be class/method of letters, digits and _, got {api:?}")));
    }
    if parts[0] == "auth" {
        return Err(bad("auth/* calls are managed by the agent".into()));
    }
    Ok(a.to_string())
}

fn bad(m: String) -> DeviceError {
    DeviceError::BadRequest(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_calls_and_reboot() {
        let c = parse("get", &json!({"api": "sys_info/oem"})).expect("ok");
        assert_eq!(c.api, "sys_info/oem");
        let c = parse("set", &json!({"api": "/controller/sys_snmp/set", "data": {"enabled": 1, "token": "x"}})).expect("ok");
        assert_eq!(c.api, "sys_snmp/set");
        assert_eq!(c.params, json!({"enabled": 1}).as_object().cloned().unwrap_or_default());
        assert_eq!(parse("set", &json!({"action": "reboot"})).map(|c| c.api), Ok(REBOOT_API.to_string()));
    }

    #[test]
    fn rejects_bad_bodies() {
        for (m, b) in [
            ("get", json!({"api": "../etc/passwd"})),
            ("get", json!({"api": "sys_info"})),
            ("get", json!({"api": "a/b/c"})),
            ("get", json!({"api": "sys info/oem"})),
            ("get", json!({"api": "auth/login"})),
            ("get", json!({"api": "sys_info/oem", "data": [1]})),
            ("get", json!({"action": "reboot"})),
            ("set", json!({"action": "format"})),
            ("delete", json!({"api": "sys_info/oem"})),
            ("get", json!("sys_info/oem")),
        ] {
            assert!(matches!(parse(m, &b), Err(DeviceError::BadRequest(_))), "{m} {b}");
        }
    }
}
