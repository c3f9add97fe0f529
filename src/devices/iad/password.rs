//! `iad set {"action": "set_password", "password": "<new>"}`: rotate the
//! password of the account the agent logs in with, through
//! `sys_user/set` (seed 4.3.1: MD5 of the original and the new password,
//! the new one twice; the original user's login is invalidated).
//!
//! The agent computes the MD5s from its own password and the new one,
//! then logs in with the new one at once; the manager stores it in the
//! configuration file. A raw `sys_user/set` that touches the agent's own
//! account is refused (the agent would keep a password it cannot know:
//! the call carries only MD5s) and names this action instead.

use super::client::Session;
use crate::devices::DeviceError;
use crate::util::md5_hex;
use serde_json::{json, Map, Value};

pub const ACTION: &str = "set_password";
pub const API: &str = "sys_user/set";

/// The new password of the body: 4–32 printable characters (the seed's
/// account format).
pub fn new_password(body: &Value) -> Result<String, DeviceError> {
    let bad = |m: &str| DeviceError::BadRequest(m.to_string());
    let obj = body.as_object().ok_or_else(|| bad("body must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "action" | "password" | "device")) {
        return Err(bad(&format!("set_password takes only password, not {k:?}")));
    }
    match obj.get("password").and_then(Value::as_str) {
        Some(p) if (4..=32).contains(&p.chars().count()) && !p.chars().any(char::is_control) => Ok(p.to_string()),
        _ => Err(bad("set_password needs password: 4-32 printable characters")),
    }
}

/// A raw `sys_user/set` on the agent's own account: refused.
pub fn check_raw(api: &str, params: &Map<String, Value>, own: &str) -> Result<(), DeviceError> {
    let touches = ["username", "new_username"].iter().any(|k| params.get(*k).and_then(Value::as_str) == Some(own));
    if api == API && touches {
        return Err(DeviceError::BadRequest(format!(
            "sys_user/set on the agent's own account ({own}) would leave the agent with a password it cannot know; use {{\"action\": \"set_password\", \"password\": \"...\"}}"
        )));
    }
    Ok(())
}

/// Change the password, then log in with it. Ok carries `credential`;
/// a refused login afterwards is an error that says the change went through.
/// `accepted` is set once the IAD took the change.
pub fn rotate(session: &mut Session, new: &str, accepted: &mut bool) -> Result<Value, DeviceError> {
    let (user, old) = (session.username().to_string(), md5_hex(session.password().as_bytes()));
    let new_md5 = md5_hex(new.as_bytes());
    let params = json!({
        "username": user, "password": old, "new_username": user,
        "new_password": new_md5, "new_password_confirm": new_md5,
    });
    let Value::Object(params) = params else { return Err(DeviceError::Protocol("internal".into())) };
    let old_plain = session.password().to_string();
    let data = session.call(API, &params)?;
    *accepted = true;
    session.set_password(new);
    match session.call("sys_info/performance", &Map::new()) {
        Ok(_) => Ok(json!({"result": data, "credential": {"changed": true, "login": "ok"}})),
        Err(DeviceError::Auth(m)) => {
            // Answered success but refuses the new one: does the old still work?
            session.set_password(&old_plain);
            if session.call("sys_info/performance", &Map::new()).is_ok() {
                *accepted = false;
                return Err(DeviceError::Auth(format!(
                    "the IAD answered success to sys_user/set but refuses the new password at login ({m}) and still takes the old one: the agent keeps the old password"
                )));
            }
            session.set_password(new);
            Err(DeviceError::Auth(format!("the IAD accepted the new password but refuses it at login ({m}), and the old one too")))
        }
        Err(e) => Err(e.with_note("the IAD accepted the new password; the login with it could not be checked")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_raw_refusal() {
        assert_eq!(new_password(&json!({"action": "set_password", "password": "n3w-pass"})).unwrap(), "n3w-pass");
        for b in [json!({"action": "set_password"}), json!({"action": "set_password", "password": "abc"}), json!({"action": "set_password", "password": "abcd", "x": 1})] {
            assert!(new_password(&b).is_err(), "{b}");
        }
        let own = json!({"username": "admin", "new_username": "admin"});
        assert!(check_raw(API, own.as_object().unwrap(), "admin").is_err());
        let other = json!({"username": "viewer", "new_username": "viewer"});
        assert!(check_raw(API, other.as_object().unwrap(), "admin").is_ok());
    }
}
