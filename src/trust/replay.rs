//! The replay guard: per key id, a floor (a `publishTime`) and the set of
//! `(id, publishTime)` accepted above it, at most [`MAX_IDS`] entries per
//! key, kept in `replay.json` in the state dir and written (temp file,
//! fsync, rename, fsync of the directory) before the command is journalled.
//!
//! - an id in the set is a redelivery: the journal decides (the engine
//!   refuses it `replayed` when the journal no longer knows it);
//! - else a `publishTime` at or below the floor is refused `replayed`;
//! - else the id is recorded; past [`MAX_IDS`] the entry with the oldest
//!   `publishTime` is dropped and the floor rises to it; on a trusted
//!   clock entries older than `command_max_age` go and the floor rises to
//!   now − `command_max_age`.
//!
//! A fresh guard (no file: first start) has the floor at this agent's build
//! time. A file that cannot be read or parsed is never a reason to forget:
//! it is copied aside (`replay.json.bad`) and replaced by a guard whose
//! floor, for every key, is the latest time that can be vouched for: the
//! build time, the bad file's modification time (its last write, after the
//! last command it recorded) and, on a trusted clock, now. Commands signed
//! after that run; every one signed before is refused `replayed`.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Ids kept per key.
pub const MAX_IDS: usize = 512;
/// Key ids kept (keys removed from the configuration stay guarded).
pub const MAX_KIDS: usize = 16;
const FILE: &str = "replay.json";
/// A bigger file is not ours (16 keys × 512 ids of ≤ 130 bytes fit).
const MAX_FILE: u64 = 2 * 1024 * 1024;
const VERSION: u64 = 1;

#[derive(Debug, Clone, Default, PartialEq)]
struct KeyGuard {
    floor: u64,
    /// (journal key of the id, publishTime), in arrival order.
    ids: Vec<(String, u64)>,
}

impl KeyGuard {
    fn newest(&self) -> u64 {
        self.ids.iter().map(|(_, t)| *t).max().unwrap_or(0).max(self.floor)
    }
}

/// The file's content. Read and written through serde_json's `Value`
/// (no derived code: its code is in the binary anyway).
struct Stored {
    floor: u64,
    keys: BTreeMap<String, KeyGuard>,
}

/// What the guard says of a signed command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen and above the floor.
    New,
    /// The id is in the set (recorded with this `publishTime`): a
    /// redelivery, the journal decides.
    Seen { recorded: u64 },
    /// At or below the floor.
    Replayed { floor: u64 },
}

#[derive(Debug)]
pub struct ReplayGuard {
    path: PathBuf,
    floor_all: u64,
    keys: BTreeMap<String, KeyGuard>,
    /// Why the guard had to be rebuilt at start, if it had.
    pub recovered: Option<String>,
}

impl ReplayGuard {
    /// Open the guard in `dir`. `trusted_now`: the time, when the clock is trusted.
    pub fn open(dir: &Path, trusted_now: Option<u64>) -> ReplayGuard {
        let path = dir.join(FILE);
        let fresh = |floor| ReplayGuard { path: path.clone(), floor_all: floor, keys: BTreeMap::new(), recovered: None };
        let read = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return fresh(crate::agent::clock::build_epoch()),
            Err(e) => Err(e.to_string()),
            Ok(m) if m.len() > MAX_FILE => Err(format!("{} bytes, more than {MAX_FILE}", m.len())),
            Ok(_) => match std::fs::read(&path) {
                Ok(b) => parse(&b).map_err(|e| (e, Some(b))),
                Err(e) => Err((e.to_string(), None)),
            }
            .map_err(|(why, bytes)| {
                // The evidence, when it could be read (not std::fs::copy: its code is big).
                if let Some(b) = bytes {
                    let _ = std::fs::write(dir.join(format!("{FILE}.bad")), b);
                }
                why
            }),
        };
        match read {
            Ok(s) => ReplayGuard { path, floor_all: s.floor, keys: s.keys, recovered: None },
            Err(why) => {
                let mtime = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let floor = crate::agent::clock::build_epoch().max(mtime).max(trusted_now.unwrap_or(0));
                let mut g = fresh(floor);
                let msg = format!("replay guard {} unreadable ({why}); rebuilt with floor {floor}: commands signed before are refused", path.display());
                if let Err(e) = g.save() {
                    // The bad file stays: the next start rebuilds the same floor.
                    log::error!("replay guard: cannot write {}: {e}", path.display());
                }
                log::error!("{msg}");
                g.recovered = Some(msg);
                g
            }
        }
    }

    /// The floor of `kid`.
    pub fn floor(&self, kid: &str) -> u64 {
        self.keys.get(kid).map(|k| k.floor).unwrap_or(0).max(self.floor_all)
    }

    pub fn check(&self, kid: &str, id_key: &str, publish_time: u64) -> Verdict {
        if let Some((_, t)) = self.keys.get(kid).and_then(|k| k.ids.iter().find(|(i, _)| i == id_key)) {
            return Verdict::Seen { recorded: *t };
        }
        let floor = self.floor(kid);
        if publish_time <= floor {
            return Verdict::Replayed { floor };
        }
        Verdict::New
    }

    /// Record an accepted command, durably (an id already in the set
    /// keeps the newest `publishTime`). On error nothing changed.
    pub fn record(&mut self, kid: &str, id_key: &str, publish_time: u64, trusted_now: Option<u64>, max_age: u64) -> std::io::Result<()> {
        let before = (self.floor_all, self.keys.clone());
        let k = self.keys.entry(kid.to_string()).or_default();
        match k.ids.iter_mut().find(|(i, _)| i == id_key) {
            Some(e) => e.1 = e.1.max(publish_time),
            None => k.ids.push((id_key.to_string(), publish_time)),
        }
        if let Some(now) = trusted_now {
            let cutoff = now.saturating_sub(max_age);
            k.ids.retain(|(_, t)| *t >= cutoff);
            k.floor = k.floor.max(cutoff);
        }
        while k.ids.len() > MAX_IDS {
            let Some((pos, t)) = k.ids.iter().enumerate().min_by_key(|(_, (_, t))| *t).map(|(p, (_, t))| (p, *t)) else { break };
            k.ids.remove(pos);
            k.floor = k.floor.max(t);
        }
        while self.keys.len() > MAX_KIDS {
            let Some((old, newest)) = self.keys.iter().filter(|(n, _)| n.as_str() != kid).min_by_key(|(_, g)| g.newest()).map(|(n, g)| (n.clone(), g.newest())) else { break };
            self.keys.remove(&old);
            self.floor_all = self.floor_all.max(newest);
        }
        let saved = self.save();
        if saved.is_err() {
            (self.floor_all, self.keys) = before;
        }
        saved
    }

    fn save(&self) -> std::io::Result<()> {
        let keys: serde_json::Map<String, Value> =
            self.keys.iter().map(|(k, g)| (k.clone(), json!({"floor": g.floor, "ids": g.ids.iter().map(|(i, t)| json!([i, t])).collect::<Vec<_>>()}))).collect();
        let text = serde_json::to_vec(&json!({"v": VERSION, "floor": self.floor_all, "keys": keys})).map_err(std::io::Error::other)?;
        crate::durable::write_atomic(&self.path, &text)
    }
}

fn parse(bytes: &[u8]) -> Result<Stored, String> {
    let bad = |what: &str| format!("not a replay guard: {what}");
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    match v.get("v").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(other) => return Err(format!("format version {other} (this agent reads {VERSION})")),
        None => return Err(bad("no version")),
    }
    let floor = v.get("floor").and_then(Value::as_u64).ok_or_else(|| bad("no floor"))?;
    let Some(Value::Object(ks)) = v.get("keys") else { return Err(bad("no keys")) };
    if ks.len() > MAX_KIDS {
        return Err("more entries than a guard keeps".into());
    }
    let mut keys = BTreeMap::new();
    for (kid, g) in ks {
        let kfloor = g.get("floor").and_then(Value::as_u64).ok_or_else(|| bad("a key without floor"))?;
        let Some(Value::Array(list)) = g.get("ids") else { return Err(bad("a key without ids")) };
        if list.len() > MAX_IDS {
            return Err("more entries than a guard keeps".into());
        }
        let mut ids = Vec::with_capacity(list.len());
        for e in list {
            match (e.get(0).and_then(Value::as_str), e.get(1).and_then(Value::as_u64)) {
                (Some(i), Some(t)) => ids.push((i.to_string(), t)),
                _ => return Err(bad("an id entry is not [id, publishTime]")),
            }
        }
        keys.insert(kid.clone(), KeyGuard { floor: kfloor, ids });
    }
    Ok(Stored { floor, keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dma-replay-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const T0: u64 = 4_000_000_000; // after any build time

    #[test]
    fn fresh_guard_floor_is_the_build_time() {
        let g = ReplayGuard::open(&dir("fresh"), None);
        assert_eq!(g.check("k1", "n:1", crate::agent::clock::build_epoch()), Verdict::Replayed { floor: crate::agent::clock::build_epoch() });
        assert_eq!(g.check("k1", "n:1", T0), Verdict::New);
        assert!(g.recovered.is_none());
    }

    #[test]
    fn floor_rises_when_the_set_is_full_and_persists() {
        let d = dir("full");
        let mut g = ReplayGuard::open(&d, None);
        for i in 0..(MAX_IDS as u64 + 10) {
            g.record("k1", &format!("n:{i}"), T0 + i, None, 86400).unwrap();
        }
        assert_eq!(g.keys["k1"].ids.len(), MAX_IDS);
        assert_eq!(g.floor("k1"), T0 + 9, "the 10 oldest were dropped, the floor is the newest of them");
        assert_eq!(g.check("k1", "n:3", T0 + 3), Verdict::Replayed { floor: T0 + 9 }, "evicted id: refused by the floor");
        assert_eq!(g.check("k1", "n:100", T0 + 100), Verdict::Seen { recorded: T0 + 100 });
        assert_eq!(g.check("k2", "n:3", T0 + 3), Verdict::New, "floors are per key");
        // A restart (or power cut after the write) keeps all of it.
        let g2 = ReplayGuard::open(&d, None);
        assert_eq!(g2.floor("k1"), T0 + 9);
        assert_eq!(g2.check("k1", "n:100", T0 + 100), Verdict::Seen { recorded: T0 + 100 });
        // A retry signed anew keeps its newer time.
        let mut g2 = g2;
        g2.record("k1", "n:100", T0 + 2000, None, 86400).unwrap();
        assert_eq!(g2.check("k1", "n:100", T0 + 100), Verdict::Seen { recorded: T0 + 2000 });
        assert_eq!(g2.check("k1", "n:999", T0 + 5), Verdict::Replayed { floor: T0 + 9 });
    }

    #[test]
    fn trusted_clock_drops_old_entries_and_raises_the_floor() {
        let mut g = ReplayGuard::open(&dir("age"), None);
        g.record("k1", "n:1", T0, None, 100).unwrap();
        g.record("k1", "n:2", T0 + 500, Some(T0 + 550), 100).unwrap();
        assert_eq!(g.floor("k1"), T0 + 450);
        assert_eq!(g.check("k1", "n:1", T0), Verdict::Replayed { floor: T0 + 450 });
        assert_eq!(g.keys["k1"].ids.len(), 1);
    }

    #[test]
    fn a_corrupt_file_neither_bricks_nor_opens_replay() {
        let d = dir("corrupt");
        let mut g = ReplayGuard::open(&d, None);
        g.record("k1", "n:1", T0, None, 86400).unwrap();
        std::fs::write(d.join(FILE), b"{\"v\":1,\"floor\":0,\"ke").unwrap();
        let mtime = std::fs::metadata(d.join(FILE)).unwrap().modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let g = ReplayGuard::open(&d, None);
        assert!(g.recovered.as_deref().unwrap().contains("unreadable"));
        assert!(d.join("replay.json.bad").exists(), "the evidence is kept");
        assert_eq!(g.floor("k1"), mtime.max(crate::agent::clock::build_epoch()));
        assert!(matches!(g.check("k1", "n:7", mtime), Verdict::Replayed { .. }), "signed before the loss: refused");
        assert_eq!(g.check("k1", "n:7", T0), Verdict::New, "signed after: runs");
        // The rebuilt guard is on disk: a restart does not forget the floor.
        let g2 = ReplayGuard::open(&d, None);
        assert!(g2.recovered.is_none());
        assert_eq!(g2.floor("other"), g.floor("k1"));
        // A trusted clock lifts the floor to now; an unknown version is corrupt too.
        std::fs::write(d.join(FILE), br#"{"v":9,"floor":0,"keys":{}}"#).unwrap();
        let g3 = ReplayGuard::open(&d, Some(T0 + 77));
        assert_eq!(g3.floor("k9"), T0 + 77);
    }

    #[test]
    fn keys_beyond_the_bound_raise_the_common_floor() {
        let mut g = ReplayGuard::open(&dir("kids"), None);
        for i in 0..(MAX_KIDS as u64 + 1) {
            g.record(&format!("k{i}"), "n:1", T0 + i, None, 86400).unwrap();
        }
        assert_eq!(g.keys.len(), MAX_KIDS);
        assert_eq!(g.floor("k0"), T0, "the dropped key's ids are under the common floor");
    }
}
