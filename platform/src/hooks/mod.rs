//! Outgoing HTTP POSTs: device/peripheral status-change callbacks and
//! message routes. A bounded queue feeds two worker threads; each POST is
//! tried up to `hooks.tries` times (backoff 0.5 s, 1 s, …) and counted as
//! one success or one failure on its callback/route. A full queue drops the
//! POST and counts a failure. The queue lives in memory: POSTs not yet made
//! when the platform stops are lost (the counters say so).
//!
//! Every POST goes through `url.rs`'s policy on the addresses resolved at
//! send time (no proxy, no redirects followed); a route never forwards a
//! command topic, and secrets in what it forwards are masked.

pub mod topic;
pub mod url;

use crate::db::hooks::HookKind;
use crate::Shared;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Post {
    pub kind: HookKind,
    pub id: i64,
    pub url: String,
    pub body: Vec<u8>,
    /// For routes: the MQTT topic, sent as `X-MQTT-Topic`.
    pub topic: Option<String>,
}

pub struct Queue {
    tx: SyncSender<Post>,
}

impl Queue {
    pub fn new(cap: usize) -> (Queue, Receiver<Post>) {
        let (tx, rx) = sync_channel(cap);
        (Queue { tx }, rx)
    }
}

impl Shared {
    /// Queue a POST; a full queue counts a failure at once.
    pub fn post(&self, p: Post) {
        if let Err(TrySendError::Full(p) | TrySendError::Disconnected(p)) = self.hooks.tx.try_send(p) {
            log::warn!("hook queue full: dropping a POST to {}", p.url);
            let _ = self.db.hook_count(p.kind, p.id, false);
        }
    }

    /// Status-change callback of `kind` (`device`/`peripheral`), if one is enabled.
    pub fn callback(&self, kind: &str, body: serde_json::Value) {
        match self.db.callback_target(kind) {
            Ok(Some((id, url))) => self.post(Post { kind: HookKind::Callback, id, url, body: body.to_string().into_bytes(), topic: None }),
            Ok(None) => {}
            Err(e) => log::error!("callback {kind}: {e}"),
        }
    }
}

/// What a route may forward: never a command (`{p}/cmd/…`), and the
/// message with its secrets masked.
fn forwardable(p: &Post, prefix: &str) -> Result<Vec<u8>, String> {
    if p.topic.as_deref().is_some_and(|t| topic::is_cmd(t, prefix)) {
        return Err("a command topic is never forwarded".into());
    }
    if p.kind == HookKind::Route {
        if let Some(masked) = std::str::from_utf8(&p.body).ok().and_then(crate::secrets::mask_text) {
            return Ok(masked.into_bytes());
        }
    }
    Ok(p.body.clone())
}

fn deliver(agent: &ureq::Agent, p: &Post, tries: u32, prefix: &str) -> Result<(), String> {
    let body = forwardable(p, prefix)?;
    url::parse(&p.url)?;
    let mut last = String::new();
    for i in 0..tries {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(500u64.saturating_mul(1 << (i - 1).min(6))));
        }
        let mut req = agent.post(&p.url).header("Content-Type", "application/json");
        if let Some(t) = &p.topic {
            req = req.header("X-MQTT-Topic", t);
        }
        match req.send(&body[..]) {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

pub fn start_worker(shared: Arc<Shared>, rx: Receiver<Post>) -> Result<(), String> {
    let rx = Arc::new(Mutex::new(rx));
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(shared.cfg.hooks.timeout_ms)))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .build();
    let guard = url::Guard { allow: shared.cfg.hooks.allow_list()? };
    let agent = ureq::Agent::with_parts(config, ureq::unversioned::transport::DefaultConnector::default(), guard);
    for n in 0..2 {
        let (shared, rx, agent) = (shared.clone(), rx.clone(), agent.clone());
        std::thread::Builder::new()
            .name(format!("hooks-{n}"))
            .spawn(move || loop {
                let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok(p) = next else { return };
                let r = deliver(&agent, &p, shared.cfg.hooks.tries, &shared.cfg.broker.prefix);
                if let Err(e) = &r {
                    log::warn!("POST {} failed: {e}", p.url);
                }
                if let Err(e) = shared.db.hook_count(p.kind, p.id, r.is_ok()) {
                    log::error!("hook counter: {e}");
                }
            })
            .map_err(|e| format!("hook thread: {e}"))?;
    }
    Ok(())
}
