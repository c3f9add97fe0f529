//! Correlates QoS 1 publishes with the broker's PUBACKs.
//!
//! rumqttc's blocking client does not return a packet id from `publish`.
//! Its event loop, however, handles requests strictly in the order they
//! were queued and reports each with `Outgoing::Publish(pkid)` (pkid 0 for
//! QoS 0). So every publish pushes a ticket onto a FIFO while holding the
//! lock that also serialises the queueing; the connection thread pops a
//! ticket per `Outgoing::Publish` and files it under its pkid until
//! `Incoming::PubAck(pkid)` arrives. After a reconnect rumqttc resends
//! unacknowledged publishes under their old pkid: an outgoing pkid that is
//! already filed is such a replay and pops nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const PENDING: u8 = 0;
const ACKED: u8 = 1;
/// The session was lost with the publish not acknowledged: it will never
/// be; the owner must send it again.
const LOST: u8 = 2;

/// Rung once when a publish settles (acknowledged or lost): how the
/// outbox learns of a PUBACK without watching.
pub type Bell = Arc<dyn Fn() + Send + Sync>;

/// Shared completion state of one publish.
#[derive(Default)]
struct Slot {
    state: Mutex<u8>,
    cv: Condvar,
    /// Threads in [`AckWaiter::wait`]; changed only with `state` locked.
    /// Most publishes have none, and a notify is a syscall even then.
    waiters: AtomicUsize,
    bell: Option<Bell>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("state", &self.state).field("bell", &self.bell.is_some()).finish()
    }
}

/// Waits for the PUBACK of one QoS 1 publish.
#[derive(Debug, Clone)]
pub struct AckWaiter(Arc<Slot>);

impl AckWaiter {
    /// Wait up to `timeout`; true only when the broker acknowledged (a
    /// timeout or a lost session is false).
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut st) = self.0.state.lock() else { return false };
        while *st == PENDING {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.0.waiters.fetch_add(1, Ordering::Relaxed);
            let woke = self.0.cv.wait_timeout(st, deadline - now);
            self.0.waiters.fetch_sub(1, Ordering::Relaxed);
            match woke {
                Ok((g, _)) => st = g,
                Err(_) => return false,
            }
        }
        *st == ACKED
    }

    pub fn is_acked(&self) -> bool {
        self.0.state.lock().map(|g| *g == ACKED).unwrap_or(false)
    }

    /// The broker lost the session before acknowledging: send it again.
    pub fn is_lost(&self) -> bool {
        self.0.state.lock().map(|g| *g == LOST).unwrap_or(false)
    }

    fn settle(&self, to: u8) {
        let (mut changed, mut waiters) = (false, true);
        if let Ok(mut g) = self.0.state.lock() {
            if *g == PENDING {
                *g = to;
                changed = true;
            }
            // Read under the lock: a waiter counts itself before it sleeps.
            waiters = self.0.waiters.load(Ordering::Relaxed) > 0;
        }
        if waiters {
            self.0.cv.notify_all();
        }
        if let (true, Some(bell)) = (changed, &self.0.bell) {
            bell();
        }
    }

    fn complete(&self) {
        self.settle(ACKED)
    }
}

#[derive(Default)]
struct Inner {
    /// Tickets of queued publishes not yet seen leaving (None for QoS 0).
    queued: VecDeque<Option<AckWaiter>>,
    /// Publishes sent and waiting for their PUBACK, by pkid (a queue for
    /// the rare pkid collision).
    inflight: HashMap<u16, VecDeque<AckWaiter>>,
    /// Bumped whenever a request left the client's queue (room for
    /// another) or the connection dropped.
    room_seq: u64,
    /// Rung once at the next such moment (the outbox's, after its publish
    /// was refused by the full queue).
    room_bell: Option<Bell>,
    /// Threads in [`AckTracker::wait_room`]: `on_room` runs for every
    /// request sent, and a notify is a syscall even with nobody waiting.
    room_waiters: usize,
}

/// The shared tracker. Bounded: `queued` by the client's request channel
/// capacity, `inflight` by the session's inflight window.
#[derive(Clone, Default)]
pub struct AckTracker {
    inner: Arc<Mutex<Inner>>,
    room: Arc<Condvar>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("queued", &self.queued.len()).field("inflight", &self.inflight.len()).field("room_seq", &self.room_seq).finish()
    }
}

impl std::fmt::Debug for AckTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AckTracker").field(&self.inner).finish()
    }
}

impl AckTracker {
    /// Queue a publish through `send` while holding the lock, so ticket
    /// order matches request order. `send` returns false when the publish
    /// was not queued.
    pub fn publish_with<F: FnOnce() -> bool>(&self, qos1: bool, send: F) -> Option<Option<AckWaiter>> {
        self.publish_with_bell(qos1, None, send)
    }

    /// [`AckTracker::publish_with`], the waiter ringing `bell` when it settles.
    pub fn publish_with_bell<F: FnOnce() -> bool>(&self, qos1: bool, bell: Option<Bell>, send: F) -> Option<Option<AckWaiter>> {
        let mut g = self.inner.lock().ok()?;
        if !send() {
            return None;
        }
        let w = qos1.then(|| AckWaiter(Arc::new(Slot { bell, ..Slot::default() })));
        g.queued.push_back(w.clone());
        Some(w)
    }

    /// A request left the client's queue, or the connection dropped: wake
    /// whoever waits for room (or for the news that it will not come).
    pub fn on_room(&self) {
        let (bell, waiters) = match self.inner.lock() {
            Ok(mut g) => {
                g.room_seq = g.room_seq.wrapping_add(1);
                (g.room_bell.take(), g.room_waiters > 0)
            }
            Err(_) => (None, true),
        };
        if waiters {
            self.room.notify_all();
        }
        if let Some(b) = bell {
            b();
        }
    }

    /// The current room count (read it before trying to queue).
    pub fn room_seq(&self) -> u64 {
        self.inner.lock().map(|g| g.room_seq).unwrap_or(0)
    }

    /// Wait, at most `timeout`, for room after `seen` (see [`AckTracker::room_seq`]).
    pub fn wait_room(&self, seen: u64, timeout: Duration) {
        let Ok(mut g) = self.inner.lock() else { return };
        if g.room_seq == seen {
            g.room_waiters = g.room_waiters.saturating_add(1);
            if let Ok((mut g, _)) = self.room.wait_timeout(g, timeout) {
                g.room_waiters = g.room_waiters.saturating_sub(1);
            }
        }
    }

    /// Ring `bell` once there is room after `seen` (at once if there was).
    pub fn want_room(&self, seen: u64, bell: Bell) {
        let now = match self.inner.lock() {
            Ok(mut g) if g.room_seq == seen => {
                g.room_bell = Some(bell);
                return;
            }
            _ => bell,
        };
        now();
    }

    /// `Outgoing::Publish(pkid)` seen on the connection.
    pub fn on_outgoing(&self, pkid: u16) {
        let Ok(mut g) = self.inner.lock() else { return };
        if pkid != 0 && g.inflight.get(&pkid).map(|q| !q.is_empty()).unwrap_or(false) {
            return; // a replay after reconnect
        }
        if let Some(t) = g.queued.pop_front() {
            if let (Some(w), true) = (t, pkid != 0) {
                g.inflight.entry(pkid).or_default().push_back(w);
            }
        }
    }

    /// `Outgoing::AwaitAck(pkid)`: the publish was held back because its
    /// pkid is still in flight; it goes out once that one is acked.
    pub fn on_collision(&self, pkid: u16) {
        let Ok(mut g) = self.inner.lock() else { return };
        if let Some(Some(w)) = g.queued.pop_front() {
            g.inflight.entry(pkid).or_default().push_back(w);
        }
    }

    /// `Incoming::PubAck(pkid)`.
    pub fn on_puback(&self, pkid: u16) {
        let Ok(mut g) = self.inner.lock() else { return };
        let mut empty = false;
        if let Some(q) = g.inflight.get_mut(&pkid) {
            if let Some(w) = q.pop_front() {
                w.complete();
            }
            empty = q.is_empty();
        }
        if empty {
            g.inflight.remove(&pkid);
        }
    }

    pub fn pending(&self) -> (usize, usize) {
        self.inner.lock().map(|g| (g.queued.len(), g.inflight.values().map(|q| q.len()).sum())).unwrap_or((0, 0))
    }

    /// A QoS 1 publish put at the front of rumqttc's pending list (it goes
    /// out before everything queued): its ticket goes first too. (A ticket,
    /// not a gap: should it be in flight at the next disconnect, its replay
    /// must be recognised as one.)
    pub fn push_front_qos1(&self) -> AckWaiter {
        let w = AckWaiter(Arc::new(Slot::default()));
        if let Ok(mut g) = self.inner.lock() {
            g.queued.push_front(Some(w.clone()));
        }
        w
    }

    /// After a connection error rumqttc has moved every queued request into
    /// its `pending` list (replays with their pkid first, then the never
    /// sent ones with pkid 0, in order). Drop the never-sent publishes
    /// `stale` says are not worth sending late (periodic reports), with
    /// their tickets, which lie in the same order at the front of `queued`.
    /// Returns how many tickets the pending list still holds. Idempotent:
    /// running it again on the same list changes nothing.
    pub fn filter_pending(&self, pending: &mut VecDeque<rumqttc::Request>, stale: impl Fn(&rumqttc::Publish) -> bool) -> usize {
        let Ok(mut g) = self.inner.lock() else { return 0 };
        let mut kept_tickets = VecDeque::new();
        let mut out = VecDeque::with_capacity(pending.len());
        for r in pending.drain(..) {
            match r {
                rumqttc::Request::Publish(p) if p.pkid == 0 => {
                    let ticket = g.queued.pop_front().flatten();
                    if stale(&p) {
                        if let Some(w) = ticket {
                            w.settle(LOST);
                        }
                    } else {
                        kept_tickets.push_back(ticket);
                        out.push_back(rumqttc::Request::Publish(p));
                    }
                }
                other => out.push_back(other),
            }
        }
        *pending = out;
        let n = kept_tickets.len();
        while let Some(t) = kept_tickets.pop_back() {
            g.queued.push_front(t);
        }
        n
    }

    /// The broker came back without our session (`session present: 0`):
    /// rumqttc dropped its pending list (`in_pending` tickets at the front of
    /// `queued`) and nothing in flight will ever be acknowledged. Those
    /// waiters become lost (their owners send again) and the pkid map is
    /// emptied, so a new publish reusing a pkid is never taken for a replay
    /// and its PUBACK never completes an old waiter.
    pub fn session_lost(&self, in_pending: usize) {
        let Ok(mut g) = self.inner.lock() else { return };
        for _ in 0..in_pending {
            if let Some(Some(w)) = g.queued.pop_front() {
                w.settle(LOST);
            }
        }
        for (_, q) in g.inflight.drain() {
            for w in q {
                w.settle(LOST);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_follow_order_and_replays_pop_nothing() {
        let t = AckTracker::default();
        let a = t.publish_with(true, || true).unwrap().unwrap();
        let q0 = t.publish_with(false, || true).unwrap();
        assert!(q0.is_none());
        let b = t.publish_with(true, || true).unwrap().unwrap();
        assert!(t.publish_with(true, || false).is_none(), "not queued, no ticket");
        t.on_outgoing(1);
        t.on_outgoing(0);
        t.on_outgoing(2);
        t.on_outgoing(1); // replay
        t.on_puback(2);
        assert!(b.is_acked() && !a.is_acked());
        t.on_puback(1);
        assert!(a.wait(Duration::from_millis(1)));
        assert_eq!(t.pending(), (0, 0));
    }

    /// The notify is skipped when nobody waits: a thread that waits is
    /// still woken at once (not at its timeout) by a PUBACK or by room.
    #[test]
    fn a_waiting_thread_is_woken_by_the_ack_and_by_room() {
        let t = AckTracker::default();
        let a = t.publish_with(true, || true).unwrap().unwrap();
        t.on_outgoing(7);
        let w = std::thread::spawn(move || {
            let s = Instant::now();
            (a.wait(Duration::from_secs(20)), s.elapsed())
        });
        std::thread::sleep(Duration::from_millis(200));
        t.on_puback(7);
        let (acked, took) = w.join().unwrap();
        assert!(acked && took < Duration::from_secs(10), "woken by the PUBACK after {took:?}");

        let seen = t.room_seq();
        let t2 = t.clone();
        let w = std::thread::spawn(move || {
            let s = Instant::now();
            t2.wait_room(seen, Duration::from_secs(20));
            s.elapsed()
        });
        std::thread::sleep(Duration::from_millis(200));
        t.on_room();
        let took = w.join().unwrap();
        assert!(took < Duration::from_secs(10), "woken by room after {took:?}");
        assert_eq!(t.inner.lock().unwrap().room_waiters, 0, "the waiter counted itself out");
    }

    fn publish(qos: rumqttc::QoS, topic: &str) -> rumqttc::Request {
        rumqttc::Request::Publish(rumqttc::Publish::new(topic, qos, vec![]))
    }

    #[test]
    fn stale_reports_leave_the_pending_list_with_their_tickets() {
        use rumqttc::QoS::*;
        let t = AckTracker::default();
        let _sys = t.publish_with(false, || true).unwrap();
        let ans = t.publish_with(true, || true).unwrap().unwrap();
        let _procs = t.publish_with(false, || true).unwrap();
        let ev = t.publish_with(true, || true).unwrap().unwrap();
        let mut replay = rumqttc::Publish::new("dma/event", AtLeastOnce, vec![]);
        replay.pkid = 9;
        let mut pending: VecDeque<rumqttc::Request> = VecDeque::from(vec![
            rumqttc::Request::Publish(replay),
            publish(AtMostOnce, "dma/sys"),
            publish(AtLeastOnce, "dma/resp/cmd"),
            publish(AtMostOnce, "dma/procs"),
            publish(AtLeastOnce, "dma/event"),
        ]);
        let stale = |p: &rumqttc::Publish| p.qos == AtMostOnce;
        assert_eq!(t.filter_pending(&mut pending, stale), 2);
        assert_eq!(pending.len(), 3);
        assert_eq!(t.filter_pending(&mut pending, stale), 2, "idempotent");
        assert_eq!(t.pending().0, 2);
        // They go out in order and their acks land on the right waiters.
        t.on_outgoing(3);
        t.on_outgoing(4);
        t.on_puback(4);
        assert!(ev.is_acked() && !ans.is_acked());
    }

    #[test]
    fn a_lost_session_loses_waiters_and_forgets_pkids() {
        let t = AckTracker::default();
        let old = t.publish_with(true, || true).unwrap().unwrap();
        t.on_outgoing(1);
        let unsent = t.publish_with(true, || true).unwrap().unwrap();
        t.session_lost(1);
        assert!(old.is_lost() && unsent.is_lost());
        assert!(!old.wait(Duration::from_millis(1)), "lost is not delivered");
        // A new publish under the same pkid is not a replay of the old one.
        let new = t.publish_with(true, || true).unwrap().unwrap();
        t.on_outgoing(1);
        t.on_puback(1);
        assert!(new.is_acked() && !old.is_acked());
    }
}
