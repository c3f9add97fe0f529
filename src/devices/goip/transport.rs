//! One HTTP exchange with the GoIP: credentials in the query string, or,
//! with a secure session, `session`/`seq`/`auth` in the query and the POST
//! body sealed with the per-request key (seed §3). Answers are plain JSON.
//!
//! Errors never carry the password: URLs hold it, so every error text is
//! scrubbed before it leaves this module.

use super::crypt::{self, AuthOrder, CryptMode, Session};
use super::lenient::{self, get_int, get_text};
use crate::devices::http::{map_err, read_text};
use crate::devices::DeviceError;
use crate::util::url_encode;
use serde_json::Value;
use std::time::Duration;

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `username`/`password` (and `version`) in every query, or with
    /// `in_body` in a POST's JSON body (seed §6.3.1.2); GETs always use
    /// the query.
    Plain { in_body: bool },
    /// A secure session; bodies sealed with `mode`.
    Session { mode: CryptMode, order: AuthOrder, expires: u64 },
}

pub struct Transport {
    agent: ureq::Agent,
    base: String,
    user: String,
    pass: String,
    security: Security,
    session: Option<Session>,
    /// Handshakes done, for tests and diagnostics.
    pub handshakes: u64,
}

const JSON_TYPE: &str = "application/json;charset=utf-8";
// Every request asks for `Connection: close`: the GoIP's small embedded web
// server drops idle connections on its own, and a request on such a pooled
// connection would fail for no reason of the device's. At one call per poll
// interval, reconnecting costs nothing; and a device that hangs up without
// answering then shows as a transport error at once, not as a timeout.
/// Protocol version sent with every request (the seed's 1.1 API).
const VERSION: &str = "1.1";

impl Transport {
    pub fn new(base: &str, user: &str, pass: &str, timeout: Duration, security: Security) -> Transport {
        Transport {
            agent: crate::devices::http::agent(timeout),
            base: base.trim_end_matches('/').to_string(),
            user: user.into(),
            pass: pass.into(),
            security,
            session: None,
            handshakes: 0,
        }
    }

    /// GET (no body) or POST (JSON body) `resource` with `query`; returns the
    /// answer's JSON. With a session, an authentication failure renews the
    /// session once and repeats the request (the device refused it, so it
    /// did not act on it).
    pub fn call(&mut self, resource: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value, DeviceError> {
        let r = match self.security {
            Security::Plain { .. } => self.once(resource, query, body),
            Security::Session { .. } => match self.once(resource, query, body) {
                Err(DeviceError::Auth(_)) => {
                    self.session = None;
                    self.once(resource, query, body)
                }
                other => other,
            },
        };
        r.map_err(|e| self.scrub(e))
    }

    fn once(&mut self, resource: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value, DeviceError> {
        let mut q: Vec<(&str, String)> = vec![("version", VERSION.into())];
        q.extend(query.iter().cloned());
        let plain = body.map(|b| b.to_string().into_bytes());
        let payload = match self.security {
            Security::Plain { in_body: true } if body.is_some_and(Value::is_object) => {
                // Every URL parameter becomes a body attribute.
                let mut o = body.and_then(Value::as_object).cloned().unwrap_or_default();
                for (k, v) in q.drain(..) {
                    o.insert(k.to_string(), Value::String(v));
                }
                o.insert("username".into(), Value::String(self.user.clone()));
                o.insert("password".into(), Value::String(self.pass.clone()));
                Some(Value::Object(o).to_string().into_bytes())
            }
            Security::Plain { .. } => {
                q.push(("username", self.user.clone()));
                q.push(("password", self.pass.clone()));
                plain
            }
            Security::Session { mode, order, expires } => {
                let s = self.session_for_use(mode, expires)?;
                let seq = s.next_seq();
                let s = s.clone();
                let auth = crypt::request_auth(order, &self.user, &self.pass, &s.session, resource, seq);
                let key = crypt::body_key(&self.user, &self.pass, &s.initial_auth, &s.session, seq);
                q.push(("session", s.session.clone()));
                q.push(("seq", seq.to_string()));
                q.push(("auth", auth));
                q.push(("expires", expires.to_string()));
                match plain {
                    Some(p) => Some(crypt::seal(mode, &key, &p).map_err(DeviceError::Protocol)?),
                    None => None,
                }
            }
        };
        let url = if q.is_empty() { format!("{}{}", self.base, resource) } else { format!("{}{}?{}", self.base, resource, encode_query(&q)) };
        let resp = match payload {
            Some(p) => self.agent.post(&url).header("Connection", "close").header("Content-Type", JSON_TYPE).send(&p[..]),
            None => self.agent.get(&url).header("Connection", "close").call(),
        }
        .map_err(|e| map_err(resource, e))?;
        let (status, text) = read_text(resource, resp)?;
        answer(resource, status, &text)
    }

    /// The current session, after a handshake when there is none or it is
    /// about to expire.
    fn session_for_use(&mut self, mode: CryptMode, expires: u64) -> Result<&mut Session, DeviceError> {
        if self.session.as_ref().is_none_or(Session::is_stale) {
            self.session = None;
            let s = self.handshake(mode, expires)?;
            self.session = Some(s);
        }
        self.session.as_mut().ok_or_else(|| DeviceError::Auth("no session".into()))
    }

    /// `crypt_sess.json`; a device that does not know it (404) is asked at
    /// the seed's other spelling, `encrypt_sess.json`.
    fn handshake(&mut self, mode: CryptMode, expires: u64) -> Result<Session, DeviceError> {
        self.handshakes += 1;
        match self.handshake_at(crypt::SESSION_RESOURCE, mode, expires) {
            Err(DeviceError::Device { code: 404, .. }) => self.handshake_at(crypt::SESSION_RESOURCE_ALT, mode, expires),
            other => other,
        }
    }

    fn handshake_at(&mut self, resource: &str, mode: CryptMode, expires: u64) -> Result<Session, DeviceError> {
        let cnonce = crypt::cnonce();
        let auth = crypt::initial_auth(&self.user, &self.pass, &cnonce, resource);
        let q = [
            ("username", self.user.clone()),
            ("cnonce", cnonce),
            ("expires", expires.to_string()),
            ("auth", auth.clone()),
            ("crypt", mode.wire_name().to_string()),
        ];
        let url = format!("{}{}?{}", self.base, resource, encode_query(&q));
        let resp = self.agent.get(&url).header("Connection", "close").call().map_err(|e| map_err(resource, e))?;
        let (status, text) = read_text(resource, resp)?;
        let v = answer(resource, status, &text)?;
        let o = v.as_object().ok_or_else(|| DeviceError::Protocol("session answer is not an object".into()))?;
        let code = get_int(o, "code").ok_or_else(|| DeviceError::Protocol("session answer without code".into()))?;
        if code != 0 {
            let desc = get_text(o, "desc").or_else(|| get_text(o, "reason")).unwrap_or_default();
            return Err(DeviceError::Auth(format!("secure session refused (code {code}): {desc}")));
        }
        let session = get_text(o, "session").ok_or_else(|| DeviceError::Protocol("session answer without session".into()))?;
        let granted = get_int(o, "expires").filter(|&e| e > 0).map_or(expires, |e| e as u64);
        Ok(Session::new(session, auth, Duration::from_secs(granted)))
    }

    /// Replace the password (as given and URL-encoded) in error texts.
    fn scrub(&self, e: DeviceError) -> DeviceError {
        if self.pass.is_empty() {
            return e;
        }
        let clean = |m: String| m.replace(&url_encode(&self.pass), "***").replace(&self.pass, "***");
        match e {
            DeviceError::BadRequest(m) => DeviceError::BadRequest(clean(m)),
            DeviceError::Transport(m) => DeviceError::Transport(clean(m)),
            DeviceError::Timeout(m) => DeviceError::Timeout(clean(m)),
            DeviceError::Auth(m) => DeviceError::Auth(clean(m)),
            DeviceError::Protocol(m) => DeviceError::Protocol(clean(m)),
            DeviceError::Device { code, msg } => DeviceError::Device { code, msg: clean(msg) },
        }
    }
}

fn encode_query(q: &[(&str, String)]) -> String {
    q.iter().map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v))).collect::<Vec<_>>().join("&")
}

/// Map an HTTP answer: 401/403 and JSON codes 401/403 are authentication
/// failures; other HTTP errors are device errors; the body must be JSON.
fn answer(what: &str, status: u16, text: &str) -> Result<Value, DeviceError> {
    let parsed = lenient::parse_body(text.as_bytes());
    let reason = parsed.as_ref().ok().and_then(|v| v.as_object()).and_then(|o| get_text(o, "reason").or_else(|| get_text(o, "desc")));
    if status == 401 || status == 403 {
        return Err(DeviceError::Auth(format!("{what}: {}", reason.unwrap_or_else(|| format!("HTTP {status}")))));
    }
    if !(200..300).contains(&status) {
        return Err(DeviceError::Device { code: status as i64, msg: format!("{what}: HTTP {status}") });
    }
    let v = parsed.map_err(|e| DeviceError::Protocol(format!("{what}: {e}")))?;
    if let Some(code @ (401 | 403)) = v.as_object().and_then(|o| get_int(o, "code")) {
        return Err(DeviceError::Auth(format!("{what}: {}", reason.unwrap_or_else(|| format!("code {code}")))));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_mapping() {
        assert!(matches!(answer("r", 401, ""), Err(DeviceError::Auth(_))));
        assert!(matches!(answer("r", 200, r#"{"code":401,"reason":"Unauthorized"}"#), Err(DeviceError::Auth(_))));
        assert!(matches!(answer("r", 500, "oops"), Err(DeviceError::Device { code: 500, .. })));
        assert!(matches!(answer("r", 200, "<html>\0{"), Err(DeviceError::Protocol(_))));
        assert_eq!(answer("r", 200, "{\"code\":0}\0").unwrap()["code"], 0);
    }

    #[test]
    fn scrub_hides_password() {
        let t = Transport::new("http://x", "root", "s3cr&t", Duration::from_secs(1), Security::Plain { in_body: false });
        let e = t.scrub(DeviceError::Transport("GET http://x/?password=s3cr%26t failed; s3cr&t".into()));
        assert_eq!(e, DeviceError::Transport("GET http://x/?password=*** failed; ***".into()));
    }
}
