//! The `vpn get|set` command body:
//! `{"controler": "User", "action": "AddUserCloud", "params": {...}, "commit": bool}`.
//!
//! - `controler` may also be spelt `controller`; names are 1–64 of `[A-Za-z0-9_]`.
//! - `params` is an object of identifier keys; values are flattened to
//!   form strings (see [`api::flatten`]); the client's own fields
//!   (`controler`, `action`, `timestamp`, `sinfor_apitoken`) are refused.
//! - `get` only runs actions whose name says they read — it starts with
//!   `Get`, `ExGet`, `Query`, `List` or `Search` ([`api::Call::is_query`]) —
//!   and never commits, so a `get` can never change the console; `set` runs
//!   any action and, unless the body says `"commit": false`, the "take
//!   effect now" call follows a successful change (the seed: a change not
//!   followed by it is void). Every answer says `"committed"`; a failed
//!   commit is an error, never an ok.
//! - `User/AddUserCloud` and `User/UpdateUserCloud` take only the fields
//!   the seed lists for them (a `password` is refused here, before the
//!   console refuses it: the field is `passwd`).
//!
//! The actions operators use, all reachable this way:
//!
//! | action | method | params |
//! |---|---|---|
//! | `User/ExGetUserInfo` | get | `username` |
//! | `User/GetSearchData` (list users) | get | `search`?, `parent_group`?, `start`?, `limit`? |
//! | `Group/GetGroupInfo` | get | `group_name` |
//! | `State/GetOnlineUserCloud` (online users) | get | — |
//! | `User/AddUserCloud`, `User/UpdateUserCloud` | set | seed fields |
//! | `User/DelUserByNameCloud` | set | `names`: `["u1","u2"]` or `"u1,u2"` |
//! | `User/ExtSetUserEnable` (enable/disable) | set | `username` + `enable` 1/0 (vendor client), or `names` + `is_enable` |
//! | `State/KillOnlineUserCloud` (kick) | set | `names` |
//! | `Updater/UpdaterCloud`, `Updater/DataSyncCloud` (take effect now) | set | — |

use super::api::{self, Call};
use super::super::DeviceError;
use serde_json::Value;

/// A validated command.
#[derive(Debug, Clone, PartialEq)]
pub struct VpnCommand {
    pub call: Call,
    pub params: Vec<(String, String)>,
    pub commit: bool,
}

impl VpnCommand {
    pub fn parse(method: &str, body: &Value) -> Result<VpnCommand, DeviceError> {
        let bad = |m: String| DeviceError::BadRequest(m);
        let obj = body.as_object().ok_or_else(|| bad("vpn body must be an object".into()))?;
        let text = |key: &str| obj.get(key).and_then(Value::as_str);
        let controler = text("controler").or_else(|| text("controller")).ok_or_else(|| bad("vpn needs \"controler\"".into()))?;
        let action = text("action").ok_or_else(|| bad("vpn needs \"action\"".into()))?;
        let call = Call::new(controler, action).map_err(bad)?;
        let commit = match obj.get("commit") {
            None | Some(Value::Null) => method == "set",
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("\"commit\" must be true or false".into())),
        };
        let params = match obj.get("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(m)) => {
                let mut v = Vec::with_capacity(m.len());
                for (k, val) in m {
                    if !api::is_identifier(k) || api::RESERVED.contains(&k.as_str()) {
                        return Err(bad(format!("bad parameter name {k:?}")));
                    }
                    v.push((k.clone(), api::flatten(val)));
                }
                v
            }
            Some(_) => return Err(bad("\"params\" must be an object".into())),
        };
        check_fields(&call, &params).map_err(bad)?;
        match method {
            "get" if commit => Err(bad("vpn get cannot commit; use set".into())),
            "get" if !call.is_query() => Err(bad(format!("vpn get only runs query actions; {call} needs set"))),
            "get" | "set" => Ok(VpnCommand { call, params, commit }),
            other => Err(bad(format!("vpn takes get or set, not {other:?}"))),
        }
    }
}

/// The fields of add/update/delete/enable (seed, and the vendor's own
/// client); other actions are not checked (no source lists theirs).
fn check_fields(call: &Call, params: &[(String, String)]) -> Result<(), String> {
    let allowed: &[&str] = match (call.controler.as_str(), call.action.as_str()) {
        (api::USER, api::ADD_USER) => api::ADD_USER_FIELDS,
        (api::USER, api::UPDATE_USER) => api::UPDATE_USER_FIELDS,
        (api::USER, api::DELETE_USERS) => api::DELETE_USERS_FIELDS,
        (api::USER, api::SET_ENABLE) => api::SET_ENABLE_FIELDS,
        _ => return Ok(()),
    };
    match params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) if k == "password" => Err(format!("{call} has no field password; the console's field is passwd")),
        Some((k, _)) => Err(format!("{call} takes only {}; not {k:?}", allowed.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_validates() {
        let c = VpnCommand::parse(
            "set",
            &json!({"controler": "User", "action": "KillOnlineUserCloud", "params": {"names": ["a"], "x": 1}, "commit": true}),
        )
        .unwrap();
        assert_eq!(c.call.to_string(), "User/KillOnlineUserCloud");
        assert_eq!(c.params, vec![("names".to_string(), r#"["a"]"#.to_string()), ("x".to_string(), "1".to_string())]);
        assert!(c.commit);
        let q = VpnCommand::parse("get", &json!({"controller": "User", "action": "ExGetUserInfo", "params": {"username": "u"}})).unwrap();
        assert!(!q.commit);
        // A set commits unless told not to.
        assert!(VpnCommand::parse("set", &json!({"controler": "User", "action": "DelUserByNameCloud", "params": {"names": "a"}})).unwrap().commit);
        assert!(!VpnCommand::parse("set", &json!({"controler": "User", "action": "DelUserByNameCloud", "params": {"names": "a"}, "commit": false})).unwrap().commit);
        // The vendor client's fields.
        for (action, params) in [
            ("AddUserCloud", json!({"name": "a", "parent_group": "/", "delay_flush": 0})),
            ("UpdateUserCloud", json!({"old_name": "a", "new_name": "a", "parent_group": "/", "delay_flush": 0})),
            ("DelUserByNameCloud", json!({"names": ["a"], "delay_flush": 0})),
            ("ExtSetUserEnable", json!({"username": "a", "enable": 0})),
        ] {
            assert!(VpnCommand::parse("set", &json!({"controler": "User", "action": action, "params": params})).is_ok(), "{action}");
        }
        for action in ["GetSearchData", "ExGetUserInfo"] {
            assert!(VpnCommand::parse("get", &json!({"controler": "User", "action": action})).is_ok(), "{action}");
        }
        assert!(VpnCommand::parse("get", &json!({"controler": "State", "action": "GetOnlineUserCloud"})).is_ok());
        let e = VpnCommand::parse("set", &json!({"controler": "User", "action": "AddUserCloud", "params": {"password": "x"}}));
        assert!(e.unwrap_err().to_string().contains("passwd"));
        for (m, b) in [
            ("get", json!({"controler": "User", "action": "AddUserCloud"})),
            ("get", json!({"controler": "User", "action": "ExGetUserInfo", "commit": true})),
            ("", json!({"controler": "User", "action": "ExGetUserInfo"})),
            ("set", json!({"controler": "User/../x", "action": "A"})),
            ("set", json!({"controler": "User", "action": "A", "params": {"timestamp": "1"}})),
            ("set", json!({"controler": "User", "action": "A", "params": {"a=b&c": "1"}})),
            ("set", json!({"controler": "User", "action": "A", "params": [1]})),
            ("set", json!({"controler": "User", "action": "A", "commit": "yes"})),
            ("set", json!({"controler": "User", "action": "AddUserCloud", "params": {"name": "a", "parent_group": "/", "password": "x"}})),
            ("set", json!({"controler": "User", "action": "UpdateUserCloud", "params": {"old_name": "a", "mail": "x"}})),
            ("set", json!({"controler": "User", "action": "DelUserByNameCloud", "params": {"names": "a", "force": 1}})),
            ("set", json!({"controler": "User", "action": "ExtSetUserEnable", "params": {"username": "a", "state": 1}})),
            ("get", json!({"controler": "State", "action": "KillOnlineUserCloud", "params": {"names": "a"}})),
            ("get", json!({"controler": "User", "action": "ExtSetUserEnable", "params": {"names": "a", "is_enable": 0}})),
            ("set", json!("x")),
        ] {
            assert!(matches!(VpnCommand::parse(m, &b), Err(DeviceError::BadRequest(_))), "{m} {b}");
        }
    }
}
