//! The HTTP receiver of the GoIP's pushes, on the bounded server of
//! `crate::httpd` (fixed threads, deadlines, size caps, allow list before
//! a byte is read).
//!
//! Answers: 200 when every row is queued (an SMS row that cannot be read
//! is queued raw, and listed in the answer's `raw`); 400 with the reasons
//! when the body, or a status/report row, is malformed (the good rows of
//! the batch are queued all the same); 403 for a source not allowed (from the server, before
//! reading); 403 for a push without the token of a GoIP this agent
//! registered (counted: `agent get` state `sms.pushRefusedToken`); 405 for other methods; 413 for a body over `max_body`; 429
//! over the request rate; 408/411/414/431 from the server for slow or
//! malformed requests; 503 when the event queue is full or the inbox is
//! being read first — the GoIP then keeps the SMS, and the reconciliation
//! reads it from the inbox.

use super::ingest::{Ingest, Refused};
use super::limit::{self, TokenBucket};
use crate::devices::goip::lenient::RowError;
use crate::devices::goip::push::{parse_push, Push};
use crate::httpd::{Limits, Request, Response, Server};
use serde_json::{json, Value};
use std::net::IpAddr;
// AtomicUsize, not AtomicU64: 32-bit MIPS has no 64-bit atomics.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One GoIP the receiver knows: its name and host address.
#[derive(Debug, Clone)]
pub struct Known {
    pub name: String,
    pub host: Option<IpAddr>,
}

pub struct Settings {
    pub listen: String,
    pub max_body: usize,
    pub rate: u32,
    pub allowed: Vec<IpAddr>,
    pub devices: Vec<Known>,
    /// The push token of each GoIP (sms/tokens.rs).
    pub tokens: super::tokens::Tokens,
    /// Pushes refused for a missing or wrong token, since start (`Link::stats`).
    pub refused_token: Arc<AtomicUsize>,
}

pub struct Receiver {
    server: Server,
}

fn reply(code: u16, reason: &str) -> Response {
    Response::reason(code, reason)
}

impl Receiver {
    pub fn start(s: Settings, ingest: Arc<Ingest>) -> Result<Receiver, String> {
        let limits = Limits::with_max_body(s.max_body);
        let bucket = TokenBucket::new(s.rate);
        let allowed = s.allowed.clone();
        let shared = Arc::new(s);
        let (shared2, ingest2) = (shared.clone(), ingest.clone());
        let server = Server::start(
            &shared.listen.clone(),
            "sms-rx",
            limits,
            move |ip| limit::is_allowed(&allowed, ip),
            move |req, peer| {
                let r = handle(req, &shared, Some(peer.ip()), &bucket, &ingest);
                if r.status != 200 {
                    log::info!("sms receiver: {} {} from {peer}: {} {}", req.method, req.target, r.status, String::from_utf8_lossy(&r.body));
                }
                r
            },
            // A push the server refused or lost (too large, too slow, cut
            // off, malformed, busy): the GoIP keeps what it held, so its SMS
            // must now come through the inbox, in order.
            move |peer, target, _status| {
                if let Some(device) = which_device(&shared2, target.unwrap_or(""), Some(peer.ip())) {
                    ingest2.refused(&device);
                }
            },
        )?;
        Ok(Receiver { server })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }
}

/// The device a request is from: the GoIP whose token the path carries
/// (`/goip/<name>/<token>`), whatever the name says; None without a
/// token this agent issued.
fn which_device(s: &Settings, path: &str, _src: Option<IpAddr>) -> Option<String> {
    let token = super::tokens::from_path(path)?;
    super::tokens::owner(&s.tokens, token).map(String::from)
}

fn handle(req: &Request, s: &Settings, src: Option<IpAddr>, bucket: &TokenBucket, ingest: &Ingest) -> Response {
    if !src.is_some_and(|ip| limit::is_allowed(&s.allowed, ip)) {
        return reply(403, "source address not allowed");
    }
    let Some(device) = which_device(s, &req.target, src) else {
        s.refused_token.fetch_add(1, Ordering::Relaxed);
        return reply(403, "push token missing or wrong");
    };
    if req.method != "POST" {
        return reply(405, "POST only");
    }
    if !bucket.take() {
        ingest.refused(&device);
        return reply(429, "too many requests");
    }
    let body = &req.body;
    if body.len() > s.max_body {
        ingest.refused(&device);
        return reply(413, "body too large");
    }
    let push = match parse_push(body) {
        Ok(p) => p,
        Err(e) => return reply(400, &e),
    };
    let (queued, bad) = match &push {
        Push::RecvSms(r) => {
            // Unreadable rows are published raw: every row is taken.
            return match ingest.pushed_sms(&device, &r.sms, &r.bad) {
                Err(e) => reply(503, &e.to_string()),
                Ok(_) if !r.bad.is_empty() => {
                    let raw: Vec<Value> = r.bad.iter().map(|b| json!({"index": b.index, "reason": b.reason})).collect();
                    Response::json(200, &json!({"code": 200, "reason": format!("OK; {} unreadable row(s) published raw", raw.len()), "raw": raw}))
                }
                Ok(_) => reply(200, "OK"),
            };
        }
        Push::StatusReport(r) => {
            let mut bad = r.bad.clone();
            for t in &r.reports {
                bad.extend(t.bad_details.iter().cloned());
            }
            (ingest.reports(&device, &r.reports).map_err(Refused::Queue), bad)
        }
        Push::PortStatus(p) => (ingest.port_status(&device, p).map_err(Refused::Queue), Vec::new()),
        Push::DevStatus(d) => {
            let raw = crate::devices::goip::lenient::parse_body(body).unwrap_or(Value::Null);
            (ingest.dev_status(&device, &raw, d).map_err(Refused::Queue), d.bad_ports.clone())
        }
    };
    match queued {
        Err(e) => reply(503, &e.to_string()),
        Ok(_) if !bad.is_empty() => Response::json(400, &bad_rows(push.kind(), &bad)),
        Ok(_) => reply(200, "OK"),
    }
}

fn bad_rows(kind: &str, bad: &[RowError]) -> Value {
    let errors: Vec<Value> = bad.iter().map(|b| json!({"index": b.index, "reason": b.reason})).collect();
    json!({"code": 400, "reason": format!("{kind}: {} malformed row(s); the others were taken", bad.len()), "errors": errors})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_from_the_token_only() {
        let mut tokens = super::super::tokens::Tokens::new();
        tokens.insert("a".into(), "1".repeat(48));
        tokens.insert("b".into(), "2".repeat(48));
        let s = Settings {
            listen: String::new(),
            max_body: 1,
            rate: 1,
            allowed: vec![],
            devices: vec![Known { name: "a".into(), host: Some("192.0.2.11".parse().unwrap()) }, Known { name: "b".into(), host: Some("192.0.2.2".parse().unwrap()) }],
            tokens,
            refused_token: Default::default(),
        };
        let b_ip = Some("192.0.2.2".parse().unwrap());
        assert_eq!(which_device(&s, &format!("/goip/b/{}?x=1", "2".repeat(48)), None).as_deref(), Some("b"));
        assert_eq!(which_device(&s, &format!("/goip/b/{}", "1".repeat(48)), b_ip).as_deref(), Some("a"), "the token decides, not path or source");
        assert_eq!(which_device(&s, "/goip/b", b_ip), None, "no token: not b for its address");
        assert_eq!(which_device(&s, "/", b_ip), None);
    }
}
