//! What the outbox publishes from: one small trait for every store of
//! messages that must reach the broker, and its implementations — the
//! journal's answers, the durable event queue, the answers kept in memory
//! (refusals and answers published again), and the birth of a version on
//! trial. Storage stays storage: none of them knows the network.

use crate::commands::journal::Journal;
use crate::events::EventQueue;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Which of one source's items a publish carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A journalled answer, by command key.
    Answer(String),
    /// An event: its logical position in the queue and the next one's.
    Event { at: u64, end: u64 },
    /// An answer kept in memory, by sequence number.
    Once(u64),
    /// The birth message of a version on trial.
    Trial,
}

/// The topic a publish goes to (the driver knows the names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Resp,
    Event,
    State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: Key,
    pub topic: Topic,
    pub retain: bool,
    pub payload: Vec<u8>,
}

/// A store of messages that leave it only on the broker's PUBACK.
pub trait Source {
    /// Acknowledgements are recorded in publish order (a cursor), not one by one.
    fn ordered(&self) -> bool {
        false
    }
    /// Most items of this source in flight at once.
    fn window(&self) -> usize;
    /// The next item to publish: for an ordered source the one after
    /// `last` (the newest of its items in flight; None: from its cursor),
    /// for the others the first unacknowledged one `in_flight` says is not
    /// on its way already.
    fn next_unsent(&mut self, last: Option<&Key>, in_flight: &dyn Fn(&Key) -> bool) -> Option<Item>;
    /// The broker acknowledged `key` (for an ordered source, everything up to it).
    fn mark_acked(&mut self, key: &Key) -> Result<(), String>;
}

/// The journal's answers not yet acknowledged: those of finished commands,
/// and those a command stored before its effect (answer first: reboot,
/// upgrade), in journal order.
pub struct Answers<'a>(pub &'a Mutex<Journal>);

impl Source for Answers<'_> {
    fn window(&self) -> usize {
        8
    }
    fn next_unsent(&mut self, _last: Option<&Key>, in_flight: &dyn Fn(&Key) -> bool) -> Option<Item> {
        let j = self.0.lock().ok()?;
        let (key, a) = j.next_unacked_answer(&|k| in_flight(&Key::Answer(k.to_string())))?;
        Some(Item { key: Key::Answer(key), topic: Topic::Resp, retain: false, payload: a.to_string().into_bytes() })
    }
    fn mark_acked(&mut self, key: &Key) -> Result<(), String> {
        let Key::Answer(k) = key else { return Ok(()) };
        let mut j = self.0.lock().map_err(|_| "journal unavailable".to_string())?;
        j.mark_acked(k).map_err(|e| e.to_string())
    }
}

/// The durable event queue, from its cursor.
pub struct Events<'a>(pub &'a EventQueue);

impl Source for Events<'_> {
    fn ordered(&self) -> bool {
        true
    }
    fn window(&self) -> usize {
        16
    }
    fn next_unsent(&mut self, last: Option<&Key>, _in_flight: &dyn Fn(&Key) -> bool) -> Option<Item> {
        let from = match last {
            Some(Key::Event { end, .. }) => Some(*end),
            _ => None,
        };
        match self.0.next_after(from) {
            Ok(Some((at, payload, end))) => Some(Item { key: Key::Event { at, end }, topic: Topic::Event, retain: false, payload }),
            Ok(None) => None,
            Err(e) => {
                log::error!("event queue read: {e}");
                None
            }
        }
    }
    fn mark_acked(&mut self, key: &Key) -> Result<(), String> {
        let Key::Event { end, .. } = key else { return Ok(()) };
        self.0.ack_through(*end).map_err(|e| format!("event queue cursor: {e}"))
    }
}

/// Answers the outbox holds in memory: refusals (never journalled) and
/// stored answers published again for a redelivered command. Bounded;
/// what does not fit is refused to the caller, counted and logged.
#[derive(Default)]
pub struct Lane {
    items: VecDeque<(u64, Option<String>, Vec<u8>)>,
    bytes: usize,
    seq: u64,
    /// Answers refused for want of room since start.
    pub shed: u64,
}

/// Most answers held in memory, and their bytes together.
pub const LANE_MAX: usize = 256;
pub const LANE_BYTES: usize = 1024 * 1024;

impl Lane {
    /// Take an answer; false when the lane is full (the caller counts it).
    pub fn push(&mut self, journal_key: Option<String>, payload: &[u8]) -> bool {
        if self.items.len() >= LANE_MAX || self.bytes + payload.len() > LANE_BYTES {
            return false;
        }
        self.seq += 1;
        self.bytes += payload.len();
        self.items.push_back((self.seq, journal_key, payload.to_vec()));
        true
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The lane as a source; an acknowledged answer that has a journal key is
/// marked acknowledged in the journal too.
pub struct LaneSource<'a> {
    pub lane: &'a Mutex<Lane>,
    pub journal: &'a Mutex<Journal>,
}

impl Source for LaneSource<'_> {
    fn window(&self) -> usize {
        8
    }
    fn next_unsent(&mut self, _last: Option<&Key>, in_flight: &dyn Fn(&Key) -> bool) -> Option<Item> {
        let l = self.lane.lock().ok()?;
        let (n, _, p) = l.items.iter().find(|(n, _, _)| !in_flight(&Key::Once(*n)))?;
        Some(Item { key: Key::Once(*n), topic: Topic::Resp, retain: false, payload: p.clone() })
    }
    fn mark_acked(&mut self, key: &Key) -> Result<(), String> {
        let Key::Once(n) = key else { return Ok(()) };
        let mut l = self.lane.lock().map_err(|_| "outbox lane unavailable".to_string())?;
        let Some(pos) = l.items.iter().position(|(m, _, _)| m == n) else { return Ok(()) };
        let Some((_, jk, p)) = l.items.remove(pos) else { return Ok(()) };
        l.bytes = l.bytes.saturating_sub(p.len());
        drop(l);
        match jk {
            Some(k) => self.journal.lock().map_err(|_| "journal unavailable".to_string())?.mark_acked(&k).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// The birth message of a new version on trial (`commands/upgrade/txn.rs`):
/// its PUBACK commits the upgrade.
pub struct TrialBirth<'a> {
    pub active: &'a dyn Fn() -> bool,
    pub birth: &'a dyn Fn() -> Vec<u8>,
    pub confirmed: &'a dyn Fn(),
}

impl Source for TrialBirth<'_> {
    fn window(&self) -> usize {
        1
    }
    fn next_unsent(&mut self, _last: Option<&Key>, in_flight: &dyn Fn(&Key) -> bool) -> Option<Item> {
        if !(self.active)() || in_flight(&Key::Trial) {
            return None;
        }
        Some(Item { key: Key::Trial, topic: Topic::State, retain: true, payload: (self.birth)() })
    }
    fn mark_acked(&mut self, _key: &Key) -> Result<(), String> {
        (self.confirmed)();
        Ok(())
    }
}
