//! The S20 HTTP session: challenge + login right after one another (the
//! nonce lives 2000 ms), then every call with the header `Token: <sid>`.
//! The sid dies after 35 s without a call, so a session idle for longer
//! than [`SID_IDLE`] logs in again before calling rather than spending a
//! round trip on a refusal; a refusal still triggers one new login.

use super::auth::{login_hash, USERNAME};
use crate::devices::http::{agent, map_err, read_text};
use crate::devices::{DeviceConfig, DeviceError};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// Log in again before calling when the sid has been idle this long (the
/// device's limit is 35 s; the margin covers clock and transit).
pub const SID_IDLE: Duration = Duration::from_secs(30);

/// HTTP method of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
}

pub struct Session {
    base: String,
    password: String,
    http: ureq::Agent,
    sid: Option<(String, Instant)>,
}

impl Session {
    pub fn new(cfg: &DeviceConfig) -> Result<Session, String> {
        let base = cfg.address.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("s20 {}: address must start with http:// or https://", cfg.name));
        }
        if !cfg.username.is_empty() && cfg.username != USERNAME {
            return Err(format!("s20 {}: the S20 only knows the user {USERNAME}", cfg.name));
        }
        Ok(Session { base, password: cfg.password.clone(), http: agent(cfg.timeout), sid: None })
    }

    /// Call `path` and return the whole answer object (`code` 0 checked).
    pub fn call(&mut self, verb: Verb, path: &str, data: &Map<String, Value>) -> Result<Value, DeviceError> {
        let fresh = match &self.sid {
            Some((_, used)) if used.elapsed() < SID_IDLE => false,
            _ => {
                self.login()?;
                true
            }
        };
        match self.call_with_sid(verb, path, data) {
            Err(DeviceError::Auth(m)) if !fresh => {
                log::info!("s20: session refused ({m}), logging in again");
                self.login()?;
                self.call_with_sid(verb, path, data)
            }
            other => other,
        }
    }

    /// A call made without a session (`/ui/check_initialized`,
    /// `/ui/set_init`): an S20 after a factory reset cannot log in.
    pub fn call_open(&mut self, verb: Verb, path: &str, data: &Map<String, Value>) -> Result<Value, DeviceError> {
        self.send(verb, path, data, None)
    }

    /// The device password this session logs in with (for `/ui/set_init`).
    pub(super) fn password(&self) -> &str {
        &self.password
    }

    /// Log in with `password` from now on (after `/sys/set_admin_pwd`).
    pub(super) fn set_password(&mut self, password: &str) {
        self.password = password.to_string();
        self.sid = None;
    }

    pub fn forget_session(&mut self) {
        self.sid = None;
    }

    fn call_with_sid(&mut self, verb: Verb, path: &str, data: &Map<String, Value>) -> Result<Value, DeviceError> {
        let sid = self.sid.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
        let result = self.send(verb, path, data, Some(&sid));
        match &result {
            Ok(_) => self.sid = Some((sid, Instant::now())),
            Err(DeviceError::Auth(_)) => self.sid = None,
            Err(_) => {}
        }
        result
    }

    fn login(&mut self) -> Result<(), DeviceError> {
        self.sid = None;
        let ch = self.send(Verb::Get, "/ui/challenge", &Map::new(), None)?;
        let field = |k: &str| {
            result_of(&ch)
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| DeviceError::Protocol(format!("/ui/challenge: answer has no {k}")))
        };
        let (salt, nonce) = (field("salt")?, field("nonce")?);
        let mut body = Map::new();
        body.insert("username".into(), json!(USERNAME));
        body.insert("hash".into(), json!(login_hash(&self.password, &salt, &nonce)));
        let answer = match self.send(Verb::Post, "/ui/login", &body, None) {
            Ok(a) => a,
            Err(DeviceError::Device { code, msg }) => return Err(DeviceError::Auth(format!("login refused: {code} {msg}"))),
            Err(e) => return Err(e),
        };
        let sid = result_of(&answer)
            .get("sid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| DeviceError::Protocol("/ui/login: answer has no sid".into()))?;
        self.sid = Some((sid.to_string(), Instant::now()));
        log::debug!("s20: logged in");
        Ok(())
    }

    /// One HTTP round trip. GET sends `data` as the query, POST as JSON.
    fn send(&self, verb: Verb, path: &str, data: &Map<String, Value>, sid: Option<&str>) -> Result<Value, DeviceError> {
        let url = format!("{}{path}", self.base);
        let resp = match verb {
            Verb::Get => {
                let mut req = self.http.get(&url);
                if let Some(sid) = sid {
                    req = req.header("Token", sid);
                }
                for (k, v) in data {
                    req = req.query(k, query_value(v));
                }
                req.call()
            }
            Verb::Post => {
                let mut req = self.http.post(&url).content_type("application/json");
                if let Some(sid) = sid {
                    req = req.header("Token", sid);
                }
                req.send(Value::Object(data.clone()).to_string())
            }
        }
        .map_err(|e| map_err(path, e))?;
        let (status, text) = read_text(path, resp)?;
        parse_answer(path, status, &text)
    }
}

/// Query parameter text of a scalar (objects are refused before sending).
fn query_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The answer's fields: inside `result` (DEVICE-NOTES), or flat as the
/// seed's tables list them.
pub fn result_of(answer: &Value) -> &Value {
    answer.get("result").filter(|r| r.is_object()).unwrap_or(answer)
}

/// Check an answer: a JSON object with `code` 0. HTTP 401/403, or an error
/// that speaks of the token/sid, means the session is gone
/// ([`DeviceError::Auth`]); other non-zero codes are device errors.
pub fn parse_answer(path: &str, status: u16, text: &str) -> Result<Value, DeviceError> {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let err_msg = parsed.as_ref().and_then(|v| v.get("err_msg")).and_then(Value::as_str).unwrap_or("").to_string();
    if status == 401 || status == 403 {
        return Err(DeviceError::Auth(format!("{path}: HTTP {status} {err_msg}").trim_end().to_string()));
    }
    let v = match parsed {
        Some(v) => v,
        None if !(200..300).contains(&status) => {
            return Err(DeviceError::Device { code: i64::from(status), msg: format!("{path}: HTTP {status}") })
        }
        None => return Err(DeviceError::Protocol(format!("{path}: answer is not JSON"))),
    };
    if !v.is_object() {
        return Err(DeviceError::Protocol(format!("{path}: answer is not a JSON object")));
    }
    let code = v
        .get("code")
        .and_then(Value::as_i64)
        .ok_or_else(|| DeviceError::Protocol(format!("{path}: answer has no numeric code")))?;
    if code != 0 {
        if is_session_error(&err_msg) {
            return Err(DeviceError::Auth(format!("{path}: {code} {err_msg}")));
        }
        return Err(DeviceError::Device { code, msg: err_msg });
    }
    if !(200..300).contains(&status) {
        return Err(DeviceError::Device { code: i64::from(status), msg: format!("{path}: HTTP {status}") });
    }
    Ok(v)
}

fn is_session_error(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    ["token", "sid", "not login", "unauthorized", "access denied"].iter().any(|w| m.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let ok = parse_answer("/x", 200, r#"{"code":0,"result":{"a":1}}"#).expect("ok");
        assert_eq!(result_of(&ok)["a"], 1);
        let flat = parse_answer("/x", 200, r#"{"code":0,"a":2}"#).expect("ok");
        assert_eq!(result_of(&flat)["a"], 2);
        assert_eq!(parse_answer("/x", 200, r#"{"code":-1,"err_msg":"busy"}"#), Err(DeviceError::Device { code: -1, msg: "busy".into() }));
        assert!(matches!(parse_answer("/x", 401, r#"{"code":-1,"err_msg":"invalid token"}"#), Err(DeviceError::Auth(_))));
        assert!(matches!(parse_answer("/x", 200, r#"{"code":-1,"err_msg":"Token expired"}"#), Err(DeviceError::Auth(_))));
        assert!(matches!(parse_answer("/x", 200, "<html>"), Err(DeviceError::Protocol(_))));
        assert!(matches!(parse_answer("/x", 200, "[1]"), Err(DeviceError::Protocol(_))));
        assert!(matches!(parse_answer("/x", 500, "Internal Server Error"), Err(DeviceError::Device { code: 500, .. })));
    }
}
