//! Inbox reconciliation: read `goip_get_sms.html` from the last id taken
//! (persisted per device in `<state>/sms/cursor-<device>.json`; from 1
//! again when the GoIP's `ssrc` changes), so SMS whose push never reached
//! the agent (it was down, or the push was refused) are published once.

use super::ingest::Ingest;
use crate::devices::goip::api::SmsPage;
use crate::devices::goip::GoipClient;
use crate::devices::DeviceError;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Pages read in one pass at most (bounds one pass; the next continues).
const MAX_PAGES: usize = 1000;
/// Consecutive unreadable SMS skipped at most (more: the device itself is
/// unreadable, and nothing is skipped).
const MAX_SKIP: u64 = 3;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cursor {
    pub ssrc: Option<String>,
    /// The next inbox id to read (everything before it is taken).
    pub next: u64,
}

fn path(dir: &Path, device: &str) -> PathBuf {
    let safe: String = device.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    dir.join(format!("cursor-{safe}.json"))
}

impl Cursor {
    pub fn load(dir: &Path, device: &str) -> Cursor {
        let v: Value = std::fs::read(path(dir, device)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
        Cursor {
            ssrc: v.get("ssrc").and_then(Value::as_str).map(String::from),
            next: v.get("next").and_then(Value::as_u64).unwrap_or(1).max(1),
        }
    }
    pub fn save(&self, dir: &Path, device: &str) -> std::io::Result<()> {
        crate::durable::write_atomic(&path(dir, device), json!({"ssrc": self.ssrc, "next": self.next}).to_string().as_bytes())
    }
}

/// What a pass found.
#[derive(Debug, Clone, PartialEq)]
pub struct PassResult {
    /// Events queued.
    pub queued: usize,
    /// The GoIP restarted (new ssrc): it must be pointed at the receiver again.
    pub restarted: bool,
    /// The device may take pushes again.
    pub caught_up: bool,
}

/// One pass over the inbox of `device`. Stops early (without moving the
/// cursor past what was not queued) when the event queue is full.
pub fn pass(client: &mut GoipClient, ingest: &Ingest, dir: &Path, device: &str) -> Result<PassResult, String> {
    let mut cur = Cursor::load(dir, device);
    let mut res = PassResult { queued: 0, restarted: false, caught_up: false };
    for _ in 0..MAX_PAGES {
        let refusals = ingest.refusals();
        let page = match client.get_sms(cur.ssrc.as_deref(), cur.next) {
            Ok(p) => p,
            Err(DeviceError::Protocol(why)) => match isolate(client, ingest, dir, device, &mut cur, &why)? {
                Some(p) => p,
                None => continue,
            },
            Err(e) => return Err(e.to_string()),
        };
        let start = if page.ssrc_changed {
            log::info!("sms: goip {device} inbox renumbered (ssrc changed); reading from 1");
            res.restarted = true;
            1
        } else {
            cur.next
        };
        for b in &page.bad {
            log::warn!("sms: goip {device} inbox row {} unreadable ({}): published raw", b.index, b.reason);
        }
        res.queued += ingest.inbox_sms(device, &page.sms, &page.bad).map_err(|e| format!("queue: {e}"))?;
        let next = u64::try_from(page.next_sms).unwrap_or(start).max(start);
        let moved = next != cur.next || cur.ssrc.as_deref() != Some(page.ssrc.as_str());
        cur = Cursor { ssrc: Some(page.ssrc.clone()), next };
        if moved {
            cur.save(dir, device).map_err(|e| format!("cursor: {e}"))?;
        }
        let empty = page.sms.is_empty() && page.bad.is_empty();
        if empty || next <= start {
            res.caught_up = ingest.caught_up(device, refusals);
            if res.caught_up {
                return Ok(res);
            }
        }
    }
    Ok(res)
}

/// A page could not be read (`why`): read the SMS at the cursor alone. If
/// it alone cannot be read either, but the device answers for an SMS after
/// it, the ones in between are published as unreadable (with the reason)
/// and skipped, so one SMS never blocks the inbox. Returns the one-SMS
/// page, or `None` after a skip (the caller reads on from the cursor).
fn isolate(client: &mut GoipClient, ingest: &Ingest, dir: &Path, device: &str, cur: &mut Cursor, why: &str) -> Result<Option<SmsPage>, String> {
    let reason = match client.get_sms_n(cur.ssrc.as_deref(), cur.next, 1) {
        Ok(p) => return Ok(Some(p)),
        Err(DeviceError::Protocol(r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    for k in 1..=MAX_SKIP {
        let Some(probe) = cur.next.checked_add(k) else { break };
        match client.get_sms_n(cur.ssrc.as_deref(), probe, 1) {
            Ok(p) if !p.ssrc_changed => {
                for id in cur.next..probe {
                    log::warn!("sms: goip {device} inbox SMS {id} unreadable ({reason}): published as unreadable, skipped");
                    ingest.inbox_unreadable(device, cur.ssrc.as_deref(), id, &reason).map_err(|e| format!("queue: {e}"))?;
                }
                cur.next = probe;
                cur.save(dir, device).map_err(|e| format!("cursor: {e}"))?;
                return Ok(None);
            }
            Ok(_) => break,
            Err(DeviceError::Protocol(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("inbox unreadable from SMS {}: {why}", cur.next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let d = std::env::temp_dir().join(format!("dma-cursor-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(Cursor::load(&d, "g/1"), Cursor { ssrc: None, next: 1 });
        let c = Cursor { ssrc: Some("abc".into()), next: 42 };
        c.save(&d, "g/1").unwrap();
        assert_eq!(Cursor::load(&d, "g/1"), c);
        let _ = std::fs::remove_dir_all(&d);
    }
}
