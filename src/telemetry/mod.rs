//! Periodic reports: `sys`, `procs`, `versions` (and `periph` through the
//! device manager), each on its own interval and on demand.

pub mod procs;
pub mod sys;
pub mod versions;

use crate::agent::Ctx;
use serde_json::{json, Value};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportRequest {
    Sys,
    Procs,
    Versions,
    Periph,
    All,
    /// Re-read intervals (after `agent set` or SIGHUP).
    Reschedule,
    /// A (re)connect: fresh `sys`/`procs` now where their interval is on
    /// (0 means on demand only), `versions` (sent on every connect) and
    /// each LAN device's `periph`.
    Connected,
    Stop,
}

impl ReportRequest {
    pub fn parse(s: &str) -> Option<ReportRequest> {
        Some(match s {
            "sys" => ReportRequest::Sys,
            "procs" => ReportRequest::Procs,
            "versions" => ReportRequest::Versions,
            "periph" => ReportRequest::Periph,
            "all" => ReportRequest::All,
            _ => return None,
        })
    }
}

fn envelope(sn: &str, d: Value) -> Value {
    json!({"sn": sn, "time": crate::util::unix_now(), "d": d})
}

/// The reporter thread.
pub struct Reporter {
    ctx: Arc<Ctx>,
    sys: sys::SysSampler,
    procs: procs::ProcSampler,
    last_versions: Option<Value>,
}

impl Reporter {
    pub fn new(ctx: Arc<Ctx>) -> Reporter {
        Reporter { ctx, sys: Default::default(), procs: Default::default(), last_versions: None }
    }

    pub fn publish_sys(&mut self) {
        let cfg = self.ctx.config();
        let d = self.sys.sample(&cfg.agent.state_dir);
        let p = &self.ctx.publisher;
        let _ = p.publish_json(&p.topics.sys, false, false, &envelope(&p.sn, d));
    }

    pub fn publish_procs(&mut self) {
        let cfg = self.ctx.config();
        let d = self.procs.sample(&cfg.agent.watch);
        let p = &self.ctx.publisher;
        let _ = p.publish_json(&p.topics.procs, false, false, &envelope(&p.sn, d));
    }

    /// Publish versions; with `only_if_changed`, skip when nothing changed.
    pub fn publish_versions(&mut self, only_if_changed: bool) {
        let d = versions::sample(&self.ctx.devices.firmware());
        if only_if_changed && self.last_versions.as_ref() == Some(&d) {
            return;
        }
        let p = &self.ctx.publisher;
        if p.publish_json(&p.topics.versions, true, false, &envelope(&p.sn, d.clone())).is_ok() {
            self.last_versions = Some(d);
        }
    }

    /// Run until a `Stop` request.
    pub fn run(mut self, rx: Receiver<ReportRequest>) {
        let secs = |s: u64| if s == 0 { None } else { Some(Duration::from_secs(s)) };
        let mut next_sys = Instant::now();
        let mut next_procs = Instant::now();
        let mut next_versions = Instant::now() + Duration::from_secs(3600);
        let mut next_change_check = Instant::now() + Duration::from_secs(10);
        loop {
            let cfg = self.ctx.config();
            let (si, pi, vi) = (secs(cfg.agent.sys_interval), secs(cfg.agent.procs_interval), secs(cfg.agent.versions_interval));
            let now = Instant::now();
            if si.is_some() && now >= next_sys {
                self.publish_sys();
                next_sys = now + si.unwrap_or_default();
            }
            if pi.is_some() && now >= next_procs {
                self.publish_procs();
                next_procs = now + pi.unwrap_or_default();
            }
            if let Some(v) = vi {
                if now >= next_versions {
                    self.publish_versions(false);
                    next_versions = now + v;
                }
            }
            if now >= next_change_check {
                // LAN firmware learned or changed: publish at once.
                self.publish_versions(true);
                next_change_check = now + Duration::from_secs(10);
            }
            let mut due = next_change_check;
            if si.is_some() {
                due = due.min(next_sys);
            }
            if pi.is_some() {
                due = due.min(next_procs);
            }
            if vi.is_some() {
                due = due.min(next_versions);
            }
            match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(ReportRequest::Sys) => self.publish_sys(),
                Ok(ReportRequest::Procs) => self.publish_procs(),
                Ok(ReportRequest::Versions) => self.publish_versions(false),
                Ok(ReportRequest::Periph) => self.ctx.devices.republish_all(),
                Ok(ReportRequest::All) => {
                    self.publish_sys();
                    self.publish_procs();
                    self.publish_versions(false);
                    self.ctx.devices.republish_all();
                }
                Ok(ReportRequest::Reschedule) => {
                    next_sys = Instant::now();
                    next_procs = Instant::now();
                }
                Ok(ReportRequest::Connected) => {
                    next_sys = Instant::now();
                    next_procs = Instant::now();
                    self.publish_versions(false);
                    self.ctx.devices.republish_all();
                }
                Ok(ReportRequest::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}
