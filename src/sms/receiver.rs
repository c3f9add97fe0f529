//! The HTTP receiver of the GoIP's pushes (tiny_http, its own threads).
//!
//! Answers: 200 when every row is queued; 400 with the reasons when the
//! body or some rows are malformed (the good rows of the batch are queued
//! all the same); 403 for a source not allowed; 405 for other methods; 413
//! for a body over `max_body`; 429 over the request rate; 503 when the
//! event queue is full or the inbox is being read first — the GoIP then
//! keeps the SMS, and the reconciliation reads it from the inbox.

use super::ingest::{Ingest, Refused};
use super::limit::{self, TokenBucket};
use crate::devices::goip::lenient::RowError;
use crate::devices::goip::push::{parse_push, Push};
use serde_json::{json, Value};
use std::io::Read;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Worker threads taking requests.
const WORKERS: usize = 2;

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
}

pub struct Receiver {
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

struct Reply {
    code: u16,
    body: Value,
}

fn reply(code: u16, reason: &str) -> Reply {
    Reply { code, body: json!({"code": code, "reason": reason}) }
}

impl Receiver {
    pub fn start(s: Settings, ingest: Arc<Ingest>) -> Result<Receiver, String> {
        let server = Arc::new(tiny_http::Server::http(&s.listen).map_err(|e| format!("listen on {}: {e}", s.listen))?);
        let stop = Arc::new(AtomicBool::new(false));
        let bucket = Arc::new(TokenBucket::new(s.rate));
        let shared = Arc::new(s);
        let mut threads = Vec::new();
        for i in 0..WORKERS {
            let (server, stop, shared, bucket, ingest) = (server.clone(), stop.clone(), shared.clone(), bucket.clone(), ingest.clone());
            let t = std::thread::Builder::new()
                .name(format!("sms-rx{i}"))
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match server.recv_timeout(Duration::from_millis(200)) {
                            Ok(Some(req)) => serve(req, &shared, &bucket, &ingest),
                            Ok(None) => {}
                            Err(e) => {
                                log::warn!("sms receiver: {e}");
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
            threads.push(t);
        }
        Ok(Receiver { server, stop, threads })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server.unblock();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The device a request is for: `/goip/<name>`, else the GoIP at the
/// source address, else the first one.
fn which_device(s: &Settings, path: &str, src: Option<IpAddr>) -> Option<String> {
    let path = path.split('?').next().unwrap_or("");
    if let Some(name) = path.rsplit_once("/goip/").map(|(_, n)| crate::util::url_decode(n.trim_end_matches('/'))) {
        if let Some(d) = s.devices.iter().find(|d| d.name == name) {
            return Some(d.name.clone());
        }
    }
    src.and_then(|ip| s.devices.iter().find(|d| d.host == Some(ip))).or_else(|| s.devices.first()).map(|d| d.name.clone())
}

fn serve(mut req: tiny_http::Request, s: &Settings, bucket: &TokenBucket, ingest: &Ingest) {
    let src = req.remote_addr().map(|a| a.ip());
    let r = handle(&mut req, s, src, bucket, ingest);
    if r.code != 200 {
        log::info!("sms receiver: {} {} from {:?}: {} {}", req.method(), req.url(), src, r.code, r.body["reason"]);
    }
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json;charset=utf-8"[..]).ok();
    let mut resp = tiny_http::Response::from_string(r.body.to_string()).with_status_code(r.code);
    if let Some(h) = header {
        resp = resp.with_header(h);
    }
    if let Err(e) = req.respond(resp) {
        log::debug!("sms receiver: answer not sent: {e}");
    }
}

fn handle(req: &mut tiny_http::Request, s: &Settings, src: Option<IpAddr>, bucket: &TokenBucket, ingest: &Ingest) -> Reply {
    if !src.is_some_and(|ip| limit::is_allowed(&s.allowed, ip)) {
        return reply(403, "source address not allowed");
    }
    let Some(device) = which_device(s, req.url(), src) else {
        return reply(503, "no goip device configured");
    };
    if *req.method() != tiny_http::Method::Post {
        return reply(405, "POST only");
    }
    if !bucket.take() {
        ingest.refused(&device);
        return reply(429, "too many requests");
    }
    if req.body_length().is_some_and(|n| n > s.max_body) {
        ingest.refused(&device);
        return reply(413, "body too large");
    }
    let mut body = Vec::new();
    if let Err(e) = req.as_reader().take(s.max_body as u64 + 1).read_to_end(&mut body) {
        return reply(400, &format!("cannot read body: {e}"));
    }
    if body.len() > s.max_body {
        ingest.refused(&device);
        return reply(413, "body too large");
    }
    let push = match parse_push(&body) {
        Ok(p) => p,
        Err(e) => return reply(400, &e),
    };
    let (queued, bad) = match &push {
        Push::RecvSms(r) => (ingest.pushed_sms(&device, &r.sms), r.bad.clone()),
        Push::StatusReport(r) => {
            let mut bad = r.bad.clone();
            for t in &r.reports {
                bad.extend(t.bad_details.iter().cloned());
            }
            (ingest.reports(&device, &r.reports).map_err(Refused::Queue), bad)
        }
        Push::PortStatus(p) => (ingest.port_status(&device, p).map_err(Refused::Queue), Vec::new()),
        Push::DevStatus(d) => {
            let raw = crate::devices::goip::lenient::parse_body(&body).unwrap_or(Value::Null);
            (ingest.dev_status(&device, &raw, d).map_err(Refused::Queue), d.bad_ports.clone())
        }
    };
    match queued {
        Err(e) => reply(503, &e.to_string()),
        Ok(_) if !bad.is_empty() => Reply { code: 400, body: bad_rows(push.kind(), &bad) },
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
    fn device_from_path_or_source() {
        let s = Settings {
            listen: String::new(),
            max_body: 1,
            rate: 1,
            allowed: vec![],
            devices: vec![
                Known { name: "a".into(), host: Some("192.0.2.11".parse().unwrap()) },
                Known { name: "b".into(), host: Some("192.0.2.2".parse().unwrap()) },
            ],
        };
        assert_eq!(which_device(&s, "/goip/b?x=1", None).as_deref(), Some("b"));
        assert_eq!(which_device(&s, "/", Some("192.0.2.2".parse().unwrap())).as_deref(), Some("b"));
        assert_eq!(which_device(&s, "/goip/zz", None).as_deref(), Some("a"));
    }
}
