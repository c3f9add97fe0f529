//! The outbox: the one owner of every publish that must be acknowledged —
//! command answers (from the journal), events (from the durable queue),
//! answers held in memory (refusals, answers published again) and the
//! birth of a version on trial, whose PUBACK commits an upgrade.
//!
//! `state.rs` is the state machine (no network, no clock, no threads),
//! `source.rs` the stores it publishes from, `driver.rs` the one thread
//! that runs it. Everything else talks to the outbox through [`Outbox`]:
//! the session reports connects and disconnects, the stores' writers nudge
//! it, answer-first commands wait on it. It waits by wake-up only.

pub mod driver;
pub mod source;
pub mod state;

use crate::commands::journal::Journal;
use dma_wire::Answer;
use source::Lane;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What happened since the driver last looked (flags: bounded however
/// often they are set).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Wake {
    /// The session's latest state, when it changed.
    pub link: Option<bool>,
    /// The broker came back without our session.
    pub lost: bool,
    /// A publish of ours was acknowledged or lost.
    pub rung: bool,
    /// A store has something new.
    pub nudged: bool,
    pub stop: bool,
}

#[derive(Default)]
struct Inbox {
    wake: Wake,
    /// Bumped each time answers were marked acknowledged.
    acks: u64,
}

/// The shared handle (in `Ctx`).
#[derive(Default)]
pub struct Outbox {
    inbox: Mutex<Inbox>,
    cv: Condvar,
    acked: Condvar,
    lane: Mutex<Lane>,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox::default()
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn post(&self, f: impl FnOnce(&mut Wake)) {
        f(&mut self.inbox().wake);
        self.cv.notify_all();
    }

    /// The session is up (`session_present`: the broker kept our session).
    pub fn on_connected(&self, session_present: bool) {
        self.post(|w| {
            w.link = Some(true);
            w.lost |= !session_present;
        })
    }

    pub fn on_disconnected(&self) {
        self.post(|w| w.link = Some(false))
    }

    /// A publish of ours settled (the tracker's bell).
    pub fn ring(&self) {
        self.post(|w| w.rung = true)
    }

    /// The journal or the event queue has something new to publish.
    pub fn nudge(&self) {
        self.post(|w| w.nudged = true)
    }

    /// Take an answer if there is room at once, quietly (the caller has
    /// another way: the journal's copy, or [`Outbox::send_waiting`]).
    /// Called with the journal locked, so the journal's copy is never
    /// picked in between.
    pub fn try_send(&self, journal_key: Option<&str>, answer: &Answer) -> bool {
        let payload = crate::mqtt::fit::answer_payload(answer);
        let taken = self.lane.lock().unwrap_or_else(|p| p.into_inner()).push(journal_key.map(str::to_string), &payload);
        if taken {
            self.nudge();
        }
        taken
    }

    /// Publish an answer that is not (or no longer) waiting in the journal:
    /// a refusal (`journal_key` None) or a stored answer sent again (its
    /// PUBACK is then recorded in the journal). Never blocks. False when
    /// the outbox has no room (counted and logged): the caller leaves the
    /// command unacknowledged and the broker delivers it again.
    pub fn send(&self, journal_key: Option<&str>, answer: &Answer) -> bool {
        self.send_waiting(journal_key, answer, Duration::ZERO, &|| false)
    }

    /// [`Outbox::send`], waiting up to `timeout` for room while `online()`
    /// (a burst of refusals drains at the broker's pace). Woken as answers
    /// are acknowledged; no polling.
    pub fn send_waiting(&self, journal_key: Option<&str>, answer: &Answer, timeout: Duration, online: &dyn Fn() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let payload = crate::mqtt::fit::answer_payload(answer);
        loop {
            let seen = self.inbox().acks;
            let mut lane = self.lane.lock().unwrap_or_else(|p| p.into_inner());
            if lane.push(journal_key.map(str::to_string), &payload) {
                drop(lane);
                self.nudge();
                return true;
            }
            drop(lane);
            let now = Instant::now();
            if now >= deadline || !online() {
                break;
            }
            let g = self.inbox();
            if g.acks == seen {
                let _ = self.acked.wait_timeout(g, deadline - now);
            }
        }
        let mut lane = self.lane.lock().unwrap_or_else(|p| p.into_inner());
        lane.shed += 1;
        let shed = lane.shed;
        drop(lane);
        log::warn!("outbox full ({} answers waiting): answer not taken ({shed} so far); the command stays unacknowledged", source::LANE_MAX);
        false
    }

    /// Answers refused for want of room since start.
    pub fn shed(&self) -> u64 {
        self.lane.lock().map(|l| l.shed).unwrap_or(0)
    }

    /// Ask the driver to finish: what is unsent goes out (if connected)
    /// and what is in flight gets a moment for its PUBACK.
    pub fn stop(&self) {
        self.post(|w| w.stop = true)
    }

    /// Wait (bounded) until the journal records the broker's PUBACK for the
    /// answer of `key` (answer first: the effect waits for it). Woken by
    /// the driver; no polling.
    pub fn wait_acked(&self, journal: &Mutex<Journal>, key: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.inbox().acks;
            // (The journal is never locked while the inbox is.)
            if journal.lock().ok().and_then(|j| j.get(key).map(|e| e.acked)).unwrap_or(false) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let g = self.inbox();
            if g.acks == seen {
                let _ = self.acked.wait_timeout(g, deadline - now);
            }
        }
    }

    /// The driver marked answers acknowledged.
    pub(crate) fn answers_acked(&self) {
        let mut g = self.inbox();
        g.acks = g.acks.wrapping_add(1);
        drop(g);
        self.acked.notify_all();
    }

    /// The driver's wait: until something is posted or `deadline` passes.
    /// Takes what was posted.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Wake {
        let mut g = self.inbox();
        while g.wake == Wake::default() {
            match deadline {
                None => g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    g = self.cv.wait_timeout(g, d - now).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
                }
            }
        }
        std::mem::take(&mut g.wake)
    }

    pub(crate) fn lane(&self) -> &Mutex<Lane> {
        &self.lane
    }
}
