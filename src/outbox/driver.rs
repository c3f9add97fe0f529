//! The outbox's thread: runs the state machine (`state.rs`) over the
//! sources (`source.rs`) and publishes what it says, through the session's
//! publisher. It sleeps until the session, a store or a PUBACK wakes it;
//! a timed wait only where a deadline is real: the resend of a publish
//! with no PUBACK after [`RESEND_AFTER`], the bounded drain at stop,
//! [`ROOM_RETRY`] as a safety net after the client's full request queue
//! refused a publish (the session rings as soon as there is room), and the
//! event queue's cursor, written at most a second after it moved
//! (`EventQueue::cursor_due`: a group commit; only while it is behind).

use super::source::{Answers, Events, Key, LaneSource, Source, Topic, TrialBirth};
use super::state::{OutboxState, PubId};
use super::Outbox;
use crate::commands::journal::Journal;
use crate::events::EventQueue;
use crate::mqtt::tracker::Bell;
use crate::mqtt::{AckWaiter, Publisher};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A publish with no PUBACK this long while connected is sent again.
pub const RESEND_AFTER: Duration = Duration::from_secs(60);
/// A wait longer than this is a sleep: the thread gives back its unused stack first.
const IDLE: Duration = Duration::from_secs(1);

/// At a clean stop, how long publishes in flight may wait for their PUBACK
/// (so a restart does not send them again).
const STOP_DRAIN: Duration = Duration::from_secs(2);
/// After the client's request queue refused a publish (full while a burst
/// leaves), the session rings when a request left it; this is only the
/// longest wait should that ring not come.
const ROOM_RETRY: Duration = Duration::from_secs(1);

/// What the driver needs of the agent (implemented by `agent/runtime.rs`):
/// the outbox itself depends on no part of the agent.
pub trait Host: Send + Sync + 'static {
    fn outbox(&self) -> &Outbox;
    fn publisher(&self) -> &Publisher;
    fn journal(&self) -> &Mutex<Journal>;
    fn events(&self) -> &EventQueue;
    /// A new version is on trial: its birth goes out and its PUBACK commits.
    fn on_trial(&self) -> bool;
    fn trial_confirmed(&self);
    /// The birth message.
    fn birth(&self) -> Vec<u8>;
}

/// Start the thread.
pub fn start(host: Arc<dyn Host>) -> std::io::Result<JoinHandle<()>> {
    crate::stack::spawn("outbox".into(), move || run(host))
}

fn run(host: Arc<dyn Host>) {
    let h = &*host;
    let ob = h.outbox();
    let p = h.publisher();
    let bell: Bell = {
        let host = host.clone();
        Arc::new(move || host.outbox().ring())
    };
    let active = || h.on_trial();
    let confirmed = || h.trial_confirmed();
    let birth = || h.birth();
    let mut sm = OutboxState::new(RESEND_AFTER);
    let mut waiters: Vec<(PubId, AckWaiter)> = Vec::new();
    let mut blocked = false;
    let mut stop_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let cursor_due = h.events().cursor_due();
        let deadline = [sm.deadline(), blocked.then(|| now + ROOM_RETRY), stop_at, cursor_due].into_iter().flatten().min();
        if deadline.is_none_or(|d| d > now + IDLE) {
            // A long sleep: what a deep publish touched of the stack goes back.
            crate::stack::release_unused();
        }
        let w = ob.wait(deadline);
        let now = Instant::now();
        if cursor_due.is_some_and(|t| t <= now) {
            flush_cursor(h.events());
        }
        let mut trial = TrialBirth { active: &active, birth: &birth, confirmed: &confirmed };
        let mut answers = Answers { journal: h.journal(), lane: ob.lane() };
        let mut lane = LaneSource { lane: ob.lane(), journal: h.journal() };
        let mut events = Events(h.events());
        // Priority order: the trial's birth, answers, events.
        let mut srcs: [&mut dyn Source; 4] = [&mut trial, &mut answers, &mut lane, &mut events];
        if w.lost {
            log::info!("the broker lost our session: publishing again what it never acknowledged");
            sm.on_session_lost();
            waiters.clear();
        }
        match w.link {
            Some(true) => sm.on_connected(now),
            Some(false) => sm.on_disconnected(),
            None => {}
        }
        let mut answered = false;
        waiters.retain(|(id, w)| {
            if w.is_acked() {
                let (done, errors) = sm.on_puback(*id, &mut srcs);
                answered |= done.iter().any(|(_, k)| matches!(k, Key::Answer(_) | Key::Once(_)));
                for e in errors {
                    log::error!("outbox: {e}");
                }
                false
            } else if w.is_lost() {
                sm.on_lost(*id, &srcs);
                false
            } else {
                true
            }
        });
        let late = sm.on_tick(now, &srcs);
        if late > 0 {
            log::warn!("outbox: no PUBACK for {} s; publishing {late} message(s) again", RESEND_AFTER.as_secs());
        }
        waiters.retain(|(id, _)| sm.holds(*id));
        if answered {
            ob.answers_acked();
        }
        if w.stop && stop_at.is_none() {
            stop_at = Some(now + STOP_DRAIN);
            if sm.in_flight() > 0 {
                log::info!("stopping: waiting up to {} s for the PUBACK of {} message(s) in flight", STOP_DRAIN.as_secs(), sm.in_flight());
            }
        }
        blocked = false;
        while let Some(pb) = sm.next(&mut srcs, now) {
            let t = &p.topics;
            let topic = match pb.topic {
                Topic::Resp => &t.resp,
                Topic::Event => &t.event,
                Topic::State => &t.state,
            };
            let seen = p.tracker().room_seq();
            match p.publish_rung(topic, pb.retain, pb.payload, bell.clone()) {
                Ok(w) => waiters.push((pb.id, w)),
                Err(_) => {
                    // Full (a burst, or the connection just dropped): again
                    // once a request left the queue.
                    sm.on_not_sent(pb.id, &srcs);
                    p.tracker().want_room(seen, bell.clone());
                    blocked = true;
                    break;
                }
            }
        }
        if let Some(t) = stop_at {
            if sm.in_flight() == 0 || Instant::now() >= t {
                // What was acknowledged is not sent again after the restart.
                flush_cursor(h.events());
                return;
            }
        }
    }
}

fn flush_cursor(q: &EventQueue) {
    if let Err(e) = q.flush_cursor() {
        log::error!("outbox: event queue cursor: {e}");
    }
}
