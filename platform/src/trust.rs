//! What the platform believes (docs/PROTOCOL.md "What the platform
//! believes"): which topics are a device's, whose serial a message may
//! speak for, and the counts of what was dropped and why.
//!
//! - On a per-device topic (`{p}/sys/{sn}`, …, `{p}/resp/cmd/{sn}`,
//!   `{p}/state/{sn}`) the payload's `sn` must equal the topic's.
//! - A serial seen on its per-device topics (remembered in the database, so
//!   a restart keeps it) is no longer believed on the shared v1 topics,
//!   where anyone allowed to publish there could claim to be it.
//! - Answers: see `ingest::answer` and `db::commands` (only for a command
//!   that was sent to that serial).

use crate::ingest::valid_sn;
use crate::Shared;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What a device publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    State,
    Sys,
    Procs,
    Versions,
    Periph,
    Event,
    Answer,
}

/// A device topic: its kind and the serial it names (`None`: a shared v1 topic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceTopic<'a> {
    pub kind: Kind,
    pub sn: Option<&'a str>,
}

/// The part of the topic after `{p}/` → a device topic, or `None` (another
/// topic, e.g. one only a message route subscribes to).
pub fn classify(rest: &str) -> Option<DeviceTopic<'_>> {
    // The topic parts are dma-wire's (docs/PROTOCOL.md "Topics").
    use dma_wire::topics::{RESP, STATE};
    const KINDS: [(&str, Kind); 7] = [
        (STATE, Kind::State),
        ("sys", Kind::Sys),
        ("procs", Kind::Procs),
        ("versions", Kind::Versions),
        ("periph", Kind::Periph),
        ("event", Kind::Event),
        (RESP, Kind::Answer),
    ];
    for (name, kind) in KINDS {
        let Some(tail) = rest.strip_prefix(name) else { continue };
        if tail.is_empty() && kind != Kind::State {
            return Some(DeviceTopic { kind, sn: None });
        }
        if let Some(sn) = tail.strip_prefix('/').filter(|s| !s.contains('/')) {
            return Some(DeviceTopic { kind, sn: Some(sn) });
        }
    }
    None
}

/// Why a message was not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The topic's serial is not a valid serial, or the shared topic's payload has none.
    BadSerial,
    /// The payload's `sn` is not the topic's.
    SnMismatch,
    /// On a shared topic, for a serial seen on its per-device topics.
    SharedIgnored,
    /// An answer for a command id the platform does not have.
    AnswerUnknown,
    /// An answer for a command addressed to another serial.
    AnswerWrongDevice,
    /// An answer for a command never sent (no try published yet).
    AnswerNotSent,
}

impl Dropped {
    const ALL: [Dropped; 6] = [Dropped::BadSerial, Dropped::SnMismatch, Dropped::SharedIgnored, Dropped::AnswerUnknown, Dropped::AnswerWrongDevice, Dropped::AnswerNotSent];

    pub fn name(self) -> &'static str {
        match self {
            Dropped::BadSerial => "badSerial",
            Dropped::SnMismatch => "snMismatch",
            Dropped::SharedIgnored => "sharedIgnored",
            Dropped::AnswerUnknown => "answerUnknown",
            Dropped::AnswerWrongDevice => "answerWrongDevice",
            Dropped::AnswerNotSent => "answerNotSent",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Serials remembered in memory as per-device (beyond: asked of the database).
const CACHE_MAX: usize = 100_000;

/// Drop counters (since start) and the serials known to use per-device topics.
#[derive(Default)]
pub struct Trust {
    dropped: [AtomicU64; 6],
    per_device: Mutex<HashSet<String>>,
}

impl Trust {
    /// Count one dropped message and say so at debug (outside values escaped).
    pub fn count(&self, why: Dropped, topic: &str, sn: Option<&str>) {
        if let Some(c) = self.dropped.get(why.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        log::debug!("trust: dropped {topic:?} ({}), sn {:?}", why.name(), sn.unwrap_or(""));
    }

    /// `{"badSerial": n, "snMismatch": n, "sharedIgnored": n, "answerUnknown": n,
    /// "answerWrongDevice": n, "answerNotSent": n}`: messages dropped since
    /// start, by reason (for `broker figures` / an admin endpoint).
    pub fn figures(&self) -> Value {
        let mut m = Map::new();
        for d in Dropped::ALL {
            let n = self.dropped.get(d.index()).map_or(0, |c| c.load(Ordering::Relaxed));
            m.insert(d.name().into(), json!(n));
        }
        Value::Object(m)
    }

    /// Known (in memory) as a per-device serial.
    pub fn is_per_device_cached(&self, sn: &str) -> bool {
        self.cached(sn)
    }

    /// Remember serials just marked per-device (`ingest::telemetry_read`).
    pub fn remember_all(&self, sns: &[String]) {
        let mut set = self.per_device.lock().unwrap_or_else(|p| p.into_inner());
        for sn in sns {
            if set.len() >= CACHE_MAX {
                break;
            }
            set.insert(sn.clone());
        }
    }

    fn cached(&self, sn: &str) -> bool {
        self.per_device.lock().unwrap_or_else(|p| p.into_inner()).contains(sn)
    }

    fn remember(&self, sn: &str) {
        let mut set = self.per_device.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() < CACHE_MAX {
            set.insert(sn.to_string());
        }
    }
}

impl Shared {
    /// The serial a device message may speak for, or `None` when it is
    /// dropped (counted and logged here).
    /// `payload_sn`: the payload's `sn` when it is a string.
    pub fn believe(&self, topic: &str, dt: DeviceTopic, payload_sn: Option<&str>) -> Option<String> {
        match dt.sn {
            Some(t) => {
                if !valid_sn(t) {
                    self.trust.count(Dropped::BadSerial, topic, Some(t));
                    return None;
                }
                if payload_sn != Some(t) {
                    self.trust.count(Dropped::SnMismatch, topic, payload_sn);
                    return None;
                }
                // `state/{sn}` is the same in both layouts: it says nothing about the layout.
                if dt.kind != Kind::State {
                    self.mark_per_device(t);
                }
                Some(t.to_string())
            }
            None => {
                let Some(sn) = payload_sn.filter(|s| valid_sn(s)) else {
                    self.trust.count(Dropped::BadSerial, topic, payload_sn);
                    return None;
                };
                if self.per_device(sn) {
                    self.trust.count(Dropped::SharedIgnored, topic, Some(sn));
                    return None;
                }
                Some(sn.to_string())
            }
        }
    }

    /// Has `sn` been seen on its per-device topics (by any instance, ever)?
    pub fn per_device(&self, sn: &str) -> bool {
        if self.trust.cached(sn) {
            return true;
        }
        match self.db.device_per_device(sn) {
            Ok(true) => {
                self.trust.remember(sn);
                true
            }
            Ok(false) => false,
            Err(e) => {
                // Unknown: do not believe the shared topic rather than let a spoof through.
                log::error!("trust: {e}");
                true
            }
        }
    }

    fn mark_per_device(&self, sn: &str) {
        if self.trust.cached(sn) {
            return;
        }
        match self.db.device_mark_per_device(sn) {
            Ok(true) => {
                log::info!("device {sn} publishes on its per-device topics: its shared-topic messages are ignored from now on");
                self.trust.remember(sn);
            }
            Ok(false) => {}
            Err(e) => log::error!("trust: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_classified() {
        assert_eq!(classify("sys"), Some(DeviceTopic { kind: Kind::Sys, sn: None }));
        assert_eq!(classify("sys/A1"), Some(DeviceTopic { kind: Kind::Sys, sn: Some("A1") }));
        assert_eq!(classify("resp/cmd"), Some(DeviceTopic { kind: Kind::Answer, sn: None }));
        assert_eq!(classify("resp/cmd/A1"), Some(DeviceTopic { kind: Kind::Answer, sn: Some("A1") }));
        assert_eq!(classify("state/A1"), Some(DeviceTopic { kind: Kind::State, sn: Some("A1") }));
        assert_eq!(classify("state"), None);
        assert_eq!(classify("sys/A1/x"), None);
        assert_eq!(classify("cmd/A1"), None);
        assert_eq!(classify("system"), None);
        assert_eq!(classify("sys/"), Some(DeviceTopic { kind: Kind::Sys, sn: Some("") }), "an empty serial: dropped as bad");
        let t = Trust::default();
        t.count(Dropped::SnMismatch, "dma/sys/A\n[ERROR] x", Some("B"));
        t.count(Dropped::AnswerNotSent, "dma/resp/cmd/A", Some("A"));
        let f = t.figures();
        assert_eq!((f["snMismatch"].as_u64(), f["answerNotSent"].as_u64(), f["sharedIgnored"].as_u64()), (Some(1), Some(1), Some(0)), "{f}");
    }
}
