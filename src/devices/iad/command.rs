//! `iad get|set` command bodies: `{"api": "<class>/<method>", "data": {...}}`
//! for a controller call, or `{"action": "reboot"}`.
//!
//! Three actions run more than one call, each in its own file:
//! `set_password` ([`super::password`]), `diagnose` ([`super::diagnose`])
//! and `upgrade` ([`super::upgrade`]); `sys_maintain/upload_permission` is
//! reachable only through `upgrade`.
//!
//! `get` runs only the read APIs of the controller document ([`READ_APIS`]),
//! so a `get` can never change the IAD; `set` runs any call. `auth/*` (the
//! agent's own session) and `sys_user/export` (it answers every account's
//! password MD5, which is what the login sends) are refused either way.

use crate::devices::DeviceError;
use serde_json::{Map, Value};

/// The controller call that reboots the IAD (seed 4.2.3).
pub const REBOOT_API: &str = "sys_maintain/sys_reboot";

/// The read APIs of the controller document (seed 4.1–4.9), the only
/// calls `get` runs. The `*_result` calls read a test's outcome;
/// `msglog_result` reads unless `clean` is `yes` (which clears the log).
pub const READ_APIS: &[&str] = &[
    "sys_info/oem",
    "sys_info/performance",
    "sys_info/interface",
    "sys_info/cdr",
    "sys_info/package",
    "sys_info/api",
    "sys_info/device_info",
    "sys_info/oem_web",
    "sys_maintain/backup_download",
    "sys_option/datetime_get",
    "sys_option/syslog_get",
    "sys_option/ssh_get",
    "sys_option/http_get",
    "sys_option/schedule_get",
    "sys_option/web_get",
    "sys_analysis/ping_result",
    "sys_analysis/tracert_result",
    "sys_analysis/dns_result",
    "sys_analysis/capture_result",
    "sys_analysis/record_result",
    "sys_analysis/msglog_result",
    "sys_security/acl_web_get",
    "sys_security/certs_get",
    "sys_provision/get",
    "sys_snmp/get",
    "sys_ocloudclient/get",
    "sys_ocloudclient/bind_get",
    "sys_ocloudclient/status",
];

/// Calls that change the IAD, with what they do (for a clear refusal).
const CHANGES: &[(&str, &str)] = &[
    ("sys_maintain/sys_reset", "restores factory settings and reboots"),
    ("sys_maintain/sys_reboot", "reboots the IAD"),
    ("sys_maintain/upload_permission", "puts the IAD in firmware-upload mode"),
    ("sys_maintain/backup_restore", "generates or restores a backup"),
    ("sys_maintain/backup_upload", "overwrites the stored backup"),
    ("sys_user/import", "replaces every web account"),
];

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
    if method == "get" {
        check_read(&api, obj.get("data"))?;
    }
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
    if a == "sys_maintain/upload_permission" {
        return Err(bad("sys_maintain/upload_permission alone can shut the IAD's core service down until an upload ends or someone restarts it by hand (seed 4.2.1): use {\"action\": \"upgrade\", \"url\", \"sha256\"}, which uploads at once".into()));
    }
    if a == "sys_user/export" {
        return Err(bad("sys_user/export answers the accounts' password MD5s (the login credential): refused".into()));
    }
    Ok(a.to_string())
}

/// `get` runs only documented reads; anything else names why and says to use `set`.
fn check_read(api: &str, data: Option<&Value>) -> Result<(), DeviceError> {
    if let Some((_, what)) = CHANGES.iter().find(|(a, _)| *a == api) {
        return Err(bad(format!("{api} is not a read: it {what}; use method set")));
    }
    if !READ_APIS.contains(&api) {
        return Err(bad(format!("{api} is not one of the IAD's read APIs, so get does not run it; use method set")));
    }
    let cleans = data.and_then(|d| d.get("clean")).and_then(Value::as_str).is_some_and(|c| c.eq_ignore_ascii_case("yes"));
    if api == "sys_analysis/msglog_result" && cleans {
        return Err(bad(format!("{api} with clean=yes clears the message log; use method set")));
    }
    Ok(())
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
        // Every documented read runs with get; changes run with set.
        for api in READ_APIS {
            assert!(parse("get", &json!({"api": api})).is_ok(), "{api}");
        }
        assert!(parse("get", &json!({"api": "sys_analysis/msglog_result", "data": {"slotnum": 0, "clean": "no"}})).is_ok());
        assert!(parse("set", &json!({"api": "sys_maintain/sys_reset"})).is_ok());
    }

    #[test]
    fn get_refusals_say_why() {
        let e = parse("get", &json!({"api": "sys_maintain/sys_reset"})).unwrap_err().to_string();
        assert!(e.contains("factory") && e.contains("set"), "{e}");
        let e = parse("get", &json!({"api": "sys_snmp/set"})).unwrap_err().to_string();
        assert!(e.contains("not one of the IAD's read APIs"), "{e}");
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
            ("get", json!({"api": "sys_maintain/sys_reset"})),
            ("get", json!({"api": "sys_snmp/set", "data": {"enabled": 1}})),
            ("get", json!({"api": "sys_analysis/ping_do", "data": {"host": "x"}})),
            ("get", json!({"api": "sys_analysis/msglog_result", "data": {"slotnum": 0, "clean": "yes"}})),
            ("set", json!({"api": "sys_user/export"})),
            ("set", json!({"api": "sys_maintain/upload_permission"})),
            ("get", json!({"action": "reboot"})),
            ("set", json!({"action": "format"})),
            ("delete", json!({"api": "sys_info/oem"})),
            ("get", json!("sys_info/oem")),
        ] {
            assert!(matches!(parse(m, &b), Err(DeviceError::BadRequest(_))), "{m} {b}");
        }
    }
}
