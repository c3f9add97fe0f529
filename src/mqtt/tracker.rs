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
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Shared completion flag of one publish.
#[derive(Debug, Default)]
struct Slot {
    done: Mutex<bool>,
    cv: Condvar,
}

/// Waits for the PUBACK of one QoS 1 publish.
#[derive(Debug, Clone)]
pub struct AckWaiter(Arc<Slot>);

impl AckWaiter {
    /// Wait up to `timeout`; true when the broker acknowledged.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut done) = self.0.done.lock() else { return false };
        while !*done {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.0.cv.wait_timeout(done, deadline - now) {
                Ok((g, _)) => done = g,
                Err(_) => return false,
            }
        }
        true
    }

    pub fn is_acked(&self) -> bool {
        self.0.done.lock().map(|g| *g).unwrap_or(false)
    }

    fn complete(&self) {
        if let Ok(mut g) = self.0.done.lock() {
            *g = true;
        }
        self.0.cv.notify_all();
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Tickets of queued publishes not yet seen leaving (None for QoS 0).
    queued: VecDeque<Option<AckWaiter>>,
    /// Publishes sent and waiting for their PUBACK, by pkid (a queue for
    /// the rare pkid collision).
    inflight: HashMap<u16, VecDeque<AckWaiter>>,
}

/// The shared tracker. Bounded: `queued` by the client's request channel
/// capacity, `inflight` by the session's inflight window.
#[derive(Debug, Clone, Default)]
pub struct AckTracker(Arc<Mutex<Inner>>);

impl AckTracker {
    /// Queue a publish through `send` while holding the lock, so ticket
    /// order matches request order. `send` returns false when the publish
    /// was not queued.
    pub fn publish_with<F: FnOnce() -> bool>(&self, qos1: bool, send: F) -> Option<Option<AckWaiter>> {
        let mut g = self.0.lock().ok()?;
        if !send() {
            return None;
        }
        let w = qos1.then(|| AckWaiter(Arc::new(Slot::default())));
        g.queued.push_back(w.clone());
        Some(w)
    }

    /// `Outgoing::Publish(pkid)` seen on the connection.
    pub fn on_outgoing(&self, pkid: u16) {
        let Ok(mut g) = self.0.lock() else { return };
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
        let Ok(mut g) = self.0.lock() else { return };
        if let Some(Some(w)) = g.queued.pop_front() {
            g.inflight.entry(pkid).or_default().push_back(w);
        }
    }

    /// `Incoming::PubAck(pkid)`.
    pub fn on_puback(&self, pkid: u16) {
        let Ok(mut g) = self.0.lock() else { return };
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
        self.0.lock().map(|g| (g.queued.len(), g.inflight.values().map(|q| q.len()).sum())).unwrap_or((0, 0))
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
}
