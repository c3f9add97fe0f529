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
/// upgrade), in journal order — except those the lane holds (whole, where
/// the journal may hold them cut).
pub struct Answers<'a> {
    pub journal: &'a Mutex<Journal>,
    pub lane: &'a Mutex<Lane>,
}

impl Source for Answers<'_> {
    fn window(&self) -> usize {
        8
    }
    fn next_unsent(&mut self, _last: Option<&Key>, in_flight: &dyn Fn(&Key) -> bool) -> Option<Item> {
        let j = self.journal.lock().ok()?;
        // (journal, then lane: the only place both are held)
        let lane = self.lane.lock().ok()?;
        let (key, a) = j.next_unacked_answer(&|k| lane.holds(k) || in_flight(&Key::Answer(k.to_string())))?;
        Some(Item { key: Key::Answer(key), topic: Topic::Resp, retain: false, payload: crate::mqtt::fit::answer_payload(&a) })
    }
    fn mark_acked(&mut self, key: &Key) -> Result<(), String> {
        let Key::Answer(k) = key else { return Ok(()) };
        let mut j = self.journal.lock().map_err(|_| "journal unavailable".to_string())?;
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

    /// Does it hold an answer of the journal's `key`?
    pub fn holds(&self, key: &str) -> bool {
        self.items.iter().any(|(_, k, _)| k.as_deref() == Some(key))
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

#[cfg(test)]
mod tests {
    use super::super::state::OutboxState;
    use super::*;
    use std::time::{Duration, Instant};

    /// A final answer handed to the lane is published once, whole: the
    /// journal's copy is skipped while the lane holds it, and marked
    /// acknowledged by the lane's PUBACK.
    #[test]
    fn an_answer_in_the_lane_is_not_sent_again_from_the_journal() {
        let d = std::env::temp_dir().join(format!("dma-outbox-lane-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let journal = Mutex::new(Journal::open(&d, 16, 1 << 20, "b").unwrap());
        let lane = Mutex::new(Lane::default());
        {
            let mut j = journal.lock().unwrap();
            j.begin("n:1", "h", "sh").unwrap();
            j.finish("n:1", crate::commands::journal::State::Succeeded, &dma_wire::Answer::parse(br#"{"id":1,"sn":"S","status":"ok","d":{"exestatus":"ok"}}"#).unwrap()).unwrap();
            assert!(lane.lock().unwrap().push(Some("n:1".into()), b"{\"id\":1}"));
        }
        let t0 = Instant::now();
        let mut sm = OutboxState::new(Duration::from_secs(60));
        sm.on_connected(t0);
        let mut answers = Answers { journal: &journal, lane: &lane };
        let mut ls = LaneSource { lane: &lane, journal: &journal };
        let mut srcs: [&mut dyn Source; 2] = [&mut answers, &mut ls];
        let sent: Vec<_> = std::iter::from_fn(|| sm.next(&mut srcs, t0)).collect();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].key, Key::Once(1));
        sm.on_puback(sent[0].id, &mut srcs);
        assert!(journal.lock().unwrap().get("n:1").unwrap().acked);
        assert!(sm.next(&mut srcs, t0).is_none());
        let _ = std::fs::remove_dir_all(&d);
    }
}
