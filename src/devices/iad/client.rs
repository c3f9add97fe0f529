//! The IAD controller session: `POST /controller/<class>/<method>` with a
//! JSON body carrying the login token, and the `{"uri","msg","code","data"}`
//! envelope every answer comes in.

use crate::devices::http::{agent, map_err, read_text};
use crate::devices::{DeviceConfig, DeviceError};
use serde_json::{Map, Value};

/// The controller's success code.
const CODE_OK: i64 = 200;

/// One logged-in (or not yet logged-in) connection to an IAD.
pub struct Session {
    base: String,
    username: String,
    password: String,
    http: ureq::Agent,
    /// Reused for every call until the device says it is no longer valid.
    token: Option<String>,
}

impl Session {
    pub fn new(cfg: &DeviceConfig) -> Result<Session, String> {
        let base = cfg.address.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("iad {}: address must start with http:// or https://", cfg.name));
        }
        if cfg.username.is_empty() {
            return Err(format!("iad {}: username is required", cfg.name));
        }
        Ok(Session {
            base,
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            http: agent(cfg.timeout),
            token: None,
        })
    }

    /// Call `api` (`class/method`) with `params`; returns the answer's `data`.
    ///
    /// Logs in first when there is no token. When the device answers that the
    /// token is invalid or expired, logs in again once and repeats the call.
    pub fn call(&mut self, api: &str, params: &Map<String, Value>) -> Result<Value, DeviceError> {
        let fresh = self.token.is_none();
        if fresh {
            self.login()?;
        }
        match self.call_with_token(api, params) {
            Err(DeviceError::Device { code, msg }) if !fresh && is_token_error(code, &msg) => {
                log::info!("iad: token no longer valid ({code} {msg}), logging in again");
                self.token = None;
                self.login()?;
                self.call_with_token(api, params).map_err(|e| match e {
                    DeviceError::Device { code, msg } if is_token_error(code, &msg) => {
                        DeviceError::Auth(format!("{api}: token refused right after login ({code} {msg})"))
                    }
                    other => other,
                })
            }
            Err(DeviceError::Device { code, msg }) if is_token_error(code, &msg) => {
                self.token = None;
                Err(DeviceError::Auth(format!("{api}: token refused right after login ({code} {msg})")))
            }
            other => other,
        }
    }

    /// The account the agent logs in with.
    pub fn username(&self) -> &str {
        &self.username
    }
    /// The password the agent logs in with (for the "original password").
    pub(super) fn password(&self) -> &str {
        &self.password
    }
    /// Log in with `password` from now on (after a change the IAD accepted).
    pub(super) fn set_password(&mut self, password: &str) {
        self.password = password.to_string();
        self.token = None;
    }
    /// The device's base URL (`http://host:port`, no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }
    /// The HTTP agent (bounded timeouts) for calls outside `/controller/`.
    pub fn http(&self) -> &ureq::Agent {
        &self.http
    }

    /// Forget the token (the next call logs in), e.g. after a reboot.
    pub fn forget_token(&mut self) {
        self.token = None;
    }

    fn call_with_token(&self, api: &str, params: &Map<String, Value>) -> Result<Value, DeviceError> {
        let mut body = params.clone();
        let token = self.token.clone().unwrap_or_default();
        body.insert("token".into(), Value::String(token));
        self.post(api, &Value::Object(body))
    }

    fn login(&mut self) -> Result<(), DeviceError> {
        let body = serde_json::json!({
            "username": self.username,
            "password": crate::util::md5_hex(self.password.as_bytes()),
        });
        let data = match self.post("auth/login", &body) {
            Ok(d) => d,
            Err(DeviceError::Device { code, msg }) => {
                return Err(DeviceError::Auth(format!("login refused for user {}: {code} {msg}", self.username)))
            }
            Err(e) => return Err(e),
        };
        let token = data
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| DeviceError::Protocol("auth/login: answer has no data.token".into()))?;
        self.token = Some(token.to_string());
        log::debug!("iad: logged in as {}", self.username);
        Ok(())
    }

    /// One HTTP round trip; unwraps the envelope.
    fn post(&self, api: &str, body: &Value) -> Result<Value, DeviceError> {
        let url = format!("{}/controller/{api}", self.base);
        let resp = self
            .http
            .post(&url)
            .content_type("application/json")
            .send(body.to_string())
            .map_err(|e| map_err(api, e))?;
        let (status, text) = read_text(api, resp)?;
        parse_answer(api, status, &text)
    }
}

/// Unwrap `{"uri","msg","code","data"}`: `data` on code 200, else a device
/// error. An HTTP error status without a readable envelope is a device
/// error carrying the HTTP status.
pub fn parse_answer(api: &str, status: u16, text: &str) -> Result<Value, DeviceError> {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) if !(200..300).contains(&status) => {
            return Err(DeviceError::Device { code: i64::from(status), msg: format!("{api}: HTTP {status}") })
        }
        Err(e) => return Err(DeviceError::Protocol(format!("{api}: answer is not JSON ({e})"))),
    };
    let obj = v.as_object().ok_or_else(|| DeviceError::Protocol(format!("{api}: answer is not a JSON object")))?;
    let code = match obj.get("code") {
        Some(Value::Number(n)) => n.as_i64(),
        // Seen in the seed as a string ("200") in a few answers.
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| DeviceError::Protocol(format!("{api}: answer has no numeric code")))?;
    if code != CODE_OK {
        let msg = obj.get("msg").and_then(Value::as_str).unwrap_or("").to_string();
        return Err(DeviceError::Device { code, msg });
    }
    Ok(obj.get("data").cloned().unwrap_or(Value::Null))
}

/// True when an error answer means "log in again". The controller answers
/// 401/403 for a missing, unknown or expired token; some firmware only
/// says so in `msg`.
pub fn is_token_error(code: i64, msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    code == 401 || (code == 403 && !m.contains("permission")) || m.contains("token") || m.contains("not login")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope() {
        let ok = parse_answer("a/b", 200, r#"{"uri":"a/b","msg":"","code":200,"data":{"x":1}}"#);
        assert_eq!(ok, Ok(serde_json::json!({"x": 1})));
        let err = parse_answer("a/b", 200, r#"{"uri":"a/b","msg":"bad slot","code":400,"data":[]}"#);
        assert_eq!(err, Err(DeviceError::Device { code: 400, msg: "bad slot".into() }));
        assert!(matches!(parse_answer("a/b", 200, "<html>"), Err(DeviceError::Protocol(_))));
        assert!(matches!(parse_answer("a/b", 200, r#"{"msg":""}"#), Err(DeviceError::Protocol(_))));
        assert!(matches!(parse_answer("a/b", 500, "oops"), Err(DeviceError::Device { code: 500, .. })));
    }

    #[test]
    fn token_errors() {
        assert!(is_token_error(401, ""));
        assert!(is_token_error(400, "Token expired"));
        assert!(!is_token_error(400, "invalid slotnum"));
    }
}
