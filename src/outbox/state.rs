//! The outbox's state machine, in the style of rumqttc's `MqttState`: it
//! is told what happened to the session (`on_connected`,
//! `on_disconnected`, `on_session_lost`) and to each publish
//! (`on_puback`, `on_lost`, `on_not_sent`), and `next` says what to publish
//! now. It never touches the network, a thread or the clock: the driver
//! (`driver.rs`) passes the time in and does the publishing.
//!
//! Invariant: an item of a [`Source`] is marked acknowledged in that source
//! only after the broker's PUBACK for a copy of it, and, for an ordered
//! source (the event queue's cursor), only once everything before it in
//! that source is acknowledged too. Everything not acknowledged is sent
//! again: after the broker lost the session, after a publish was refused
//! by the client's queue, or when no PUBACK came for [`OutboxState`]'s
//! `resend_after` while connected. Bounded: at most `window()` items of
//! each source are in flight.

use super::source::{Key, Source, Topic};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The outbox's own id of one publish. (rumqttc's blocking client does not
/// return the packet id; `mqtt::tracker` maps the pkid of each PUBACK to
/// the waiter of the publish it belongs to, and the driver maps that
/// waiter to this id.)
pub type PubId = u64;

/// What to publish now (always QoS 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub id: PubId,
    /// Index of the source in the slice given to [`OutboxState::next`].
    pub source: usize,
    pub key: Key,
    pub topic: Topic,
    pub retain: bool,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Flight {
    id: PubId,
    source: usize,
    key: Key,
    /// Sent at (or connected again at, whichever is later): the resend clock.
    since: Instant,
    acked: bool,
}

#[derive(Debug)]
pub struct OutboxState {
    connected: bool,
    /// In publish order.
    flights: VecDeque<Flight>,
    next_id: PubId,
    resend_after: Duration,
}

impl OutboxState {
    pub fn new(resend_after: Duration) -> OutboxState {
        OutboxState { connected: false, flights: VecDeque::new(), next_id: 1, resend_after }
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Items in flight (sent, no PUBACK yet, or acknowledged behind an unacknowledged one).
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// Does `id` still wait for its PUBACK here?
    pub fn holds(&self, id: PubId) -> bool {
        self.flights.iter().any(|f| f.id == id)
    }

    /// Connected (again). What is in flight stays: with the session kept,
    /// the client sends it again itself; its resend clock restarts.
    pub fn on_connected(&mut self, now: Instant) {
        self.connected = true;
        for f in &mut self.flights {
            f.since = now;
        }
    }

    pub fn on_disconnected(&mut self) {
        self.connected = false;
    }

    /// The broker came back without our session: nothing in flight will
    /// ever be acknowledged. All of it goes out again from the sources.
    pub fn on_session_lost(&mut self) {
        self.flights.clear();
    }

    /// One publish will never be acknowledged (lost with the session).
    pub fn on_lost(&mut self, id: PubId, sources: &[&mut dyn Source]) {
        self.forget(id, sources);
    }

    /// The client's request queue refused the publish: it goes again.
    pub fn on_not_sent(&mut self, id: PubId, sources: &[&mut dyn Source]) {
        self.forget(id, sources);
    }

    /// Forget a publish so its item is offered again. For an ordered
    /// source everything after it goes again too (its cursor restarts).
    fn forget(&mut self, id: PubId, sources: &[&mut dyn Source]) {
        let Some(f) = self.flights.iter().find(|f| f.id == id) else { return };
        let s = f.source;
        if sources.get(s).is_some_and(|src| src.ordered()) {
            self.flights.retain(|f| f.source != s);
        } else {
            self.flights.retain(|f| f.id != id);
        }
    }

    /// The PUBACK of `id`. Returns the items now marked acknowledged in
    /// their source (source index, key), and the errors of sources that
    /// could not record it (those items stay unacknowledged there).
    pub fn on_puback(&mut self, id: PubId, sources: &mut [&mut dyn Source]) -> (Vec<(usize, Key)>, Vec<String>) {
        let mut done = Vec::new();
        let mut errors = Vec::new();
        let Some(f) = self.flights.iter_mut().find(|f| f.id == id) else { return (done, errors) };
        f.acked = true;
        let s = f.source;
        let ordered = sources.get(s).is_some_and(|src| src.ordered());
        loop {
            // Ordered: the first of its source in flight; else exactly this one.
            let pos = if ordered { self.flights.iter().position(|f| f.source == s) } else { self.flights.iter().position(|f| f.id == id) };
            let Some(pos) = pos else { break };
            if !self.flights.get(pos).is_some_and(|f| f.acked) {
                break;
            }
            let Some(f) = self.flights.remove(pos) else { break };
            if let Some(src) = sources.get_mut(s) {
                match src.mark_acked(&f.key) {
                    Ok(()) => done.push((s, f.key)),
                    Err(e) => errors.push(e),
                }
            }
            if !ordered {
                break;
            }
        }
        (done, errors)
    }

    /// Time passed: publishes without a PUBACK for `resend_after` while
    /// connected are forgotten, so they go again. Returns how many.
    pub fn on_tick(&mut self, now: Instant, sources: &[&mut dyn Source]) -> usize {
        if !self.connected {
            return 0;
        }
        let late: Vec<PubId> =
            self.flights.iter().filter(|f| !f.acked && now.saturating_duration_since(f.since) >= self.resend_after).map(|f| f.id).collect();
        let before = self.flights.len();
        for id in &late {
            self.forget(*id, sources);
        }
        before - self.flights.len()
    }

    /// When `on_tick` next has something to do (None: nothing in flight, or offline).
    pub fn deadline(&self) -> Option<Instant> {
        if !self.connected {
            return None;
        }
        self.flights.iter().filter(|f| !f.acked).map(|f| f.since + self.resend_after).min()
    }

    /// The next publish, sources in priority order; None when offline or
    /// when every source is empty or has its window full.
    pub fn next(&mut self, sources: &mut [&mut dyn Source], now: Instant) -> Option<Publish> {
        if !self.connected {
            return None;
        }
        for (s, src) in sources.iter_mut().enumerate() {
            if self.flights.iter().filter(|f| f.source == s).count() >= src.window() {
                continue;
            }
            let last = self.flights.iter().rev().find(|f| f.source == s).map(|f| f.key.clone());
            let flights = &self.flights;
            let in_flight = |k: &Key| flights.iter().any(|f| f.source == s && &f.key == k);
            let Some(item) = src.next_unsent(last.as_ref(), &in_flight) else { continue };
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            self.flights.push_back(Flight { id, source: s, key: item.key.clone(), since: now, acked: false });
            return Some(Publish { id, source: s, key: item.key, topic: item.topic, retain: item.retain, payload: item.payload });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::source::Item;
    use super::*;

    /// A source in memory: ordered (a cursor, like the event queue) or not
    /// (a set of keys, like the journal's answers).
    struct Mem {
        ordered: bool,
        window: usize,
        items: Vec<(u64, bool)>,
    }

    impl Mem {
        fn new(ordered: bool, window: usize, n: u64) -> Mem {
            Mem { ordered, window, items: (0..n).map(|i| (i, false)).collect() }
        }
        fn acked(&self) -> Vec<u64> {
            self.items.iter().filter(|i| i.1).map(|i| i.0).collect()
        }
    }

    fn n(k: &Key) -> u64 {
        match k {
            Key::Event { at, .. } => *at,
            Key::Once(n) => *n,
            _ => u64::MAX,
        }
    }

    impl Source for Mem {
        fn ordered(&self) -> bool {
            self.ordered
        }
        fn window(&self) -> usize {
            self.window
        }
        fn next_unsent(&mut self, last: Option<&Key>, in_flight: &dyn Fn(&Key) -> bool) -> Option<Item> {
            let key = |i: u64| if self.ordered { Key::Event { at: i, end: i + 1 } } else { Key::Once(i) };
            let found = if self.ordered {
                let from = last.map(|k| n(k) + 1).unwrap_or_else(|| self.items.iter().find(|i| !i.1).map(|i| i.0).unwrap_or(u64::MAX));
                self.items.iter().find(|i| i.0 == from).map(|i| i.0)
            } else {
                self.items.iter().find(|i| !i.1 && !in_flight(&key(i.0))).map(|i| i.0)
            }?;
            Some(Item { key: key(found), topic: Topic::Event, retain: false, payload: found.to_string().into_bytes() })
        }
        fn mark_acked(&mut self, key: &Key) -> Result<(), String> {
            let k = n(key);
            self.items.iter_mut().filter(|i| i.0 == k).for_each(|i| i.1 = true);
            Ok(())
        }
    }

    fn drain(sm: &mut OutboxState, srcs: &mut [&mut dyn Source], now: Instant) -> Vec<Publish> {
        std::iter::from_fn(|| sm.next(srcs, now)).collect()
    }

    fn nums(p: &[Publish]) -> Vec<u64> {
        p.iter().map(|p| n(&p.key)).collect()
    }

    #[test]
    fn nothing_goes_out_offline_and_all_in_order_once_connected() {
        let t0 = Instant::now();
        let mut sm = OutboxState::new(Duration::from_secs(60));
        let mut ev = Mem::new(true, 16, 3);
        assert!(sm.next(&mut [&mut ev], t0).is_none(), "offline");
        sm.on_connected(t0);
        let sent = drain(&mut sm, &mut [&mut ev], t0);
        assert_eq!(nums(&sent), vec![0, 1, 2]);
        assert!(sent.iter().all(|p| p.topic == Topic::Event && p.source == 0));
        assert_eq!(sm.deadline(), Some(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn an_ordered_source_is_acknowledged_in_order_only() {
        let t0 = Instant::now();
        let mut sm = OutboxState::new(Duration::from_secs(60));
        let mut ev = Mem::new(true, 16, 3);
        sm.on_connected(t0);
        let sent = drain(&mut sm, &mut [&mut ev], t0);
        let (done, _) = sm.on_puback(sent[1].id, &mut [&mut ev]);
        assert!(done.is_empty(), "1 waits for 0");
        assert!(ev.acked().is_empty());
        let (done, _) = sm.on_puback(sent[0].id, &mut [&mut ev]);
        assert_eq!(done.len(), 2);
        assert_eq!(ev.acked(), vec![0, 1]);
        assert_eq!(sm.in_flight(), 1);
        // A PUBACK for something not (or no longer) in flight changes nothing.
        assert!(sm.on_puback(999, &mut [&mut ev]).0.is_empty());
    }

    #[test]
    fn unordered_acks_land_at_once_and_bounds_hold() {
        let t0 = Instant::now();
        let mut sm = OutboxState::new(Duration::from_secs(60));
        let mut ans = Mem::new(false, 4, 10);
        sm.on_connected(t0);
        let sent = drain(&mut sm, &mut [&mut ans], t0);
        assert_eq!(nums(&sent), vec![0, 1, 2, 3], "window of 4");
        sm.on_puback(sent[2].id, &mut [&mut ans]);
        assert_eq!(ans.acked(), vec![2]);
        let more = drain(&mut sm, &mut [&mut ans], t0);
        assert_eq!(nums(&more), vec![4], "one slot freed, the next unsent fills it");
        assert_eq!(sm.in_flight(), 4);
    }

    #[test]
    fn a_disconnect_keeps_what_is_in_flight_and_a_lost_session_sends_it_again() {
        let t0 = Instant::now();
        let mut sm = OutboxState::new(Duration::from_secs(60));
        let mut ev = Mem::new(true, 16, 2);
        let mut ans = Mem::new(false, 16, 1);
        sm.on_connected(t0);
        let sent = drain(&mut sm, &mut [&mut ans, &mut ev], t0);
        assert_eq!(sent.iter().map(|p| p.source).collect::<Vec<_>>(), vec![0, 1, 1], "answers first");
        sm.on_disconnected();
        assert!(sm.deadline().is_none(), "no resend clock offline");
        let t1 = t0 + Duration::from_secs(600);
        sm.on_connected(t1);
        assert!(drain(&mut sm, &mut [&mut ans, &mut ev], t1).is_empty(), "session kept: the client sends them again, not us");
        assert_eq!(sm.on_tick(t1, &[&mut ans, &mut ev]), 0, "the resend clock restarted at the connect");
        // The broker lost the session: everything goes again, in order.
        sm.on_session_lost();
        let again = drain(&mut sm, &mut [&mut ans, &mut ev], t1);
        assert_eq!(nums(&again), vec![0, 0, 1]);
        // The old copies' PUBACKs (ids no longer held) are ignored; the new ones count.
        assert!(sm.on_puback(sent[1].id, &mut [&mut ans, &mut ev]).0.is_empty());
        for p in &again {
            sm.on_puback(p.id, &mut [&mut ans, &mut ev]);
        }
        assert_eq!((ans.acked(), ev.acked()), (vec![0], vec![0, 1]));
        assert_eq!(sm.in_flight(), 0);
    }

    #[test]
    fn no_puback_for_the_resend_time_while_connected_sends_again() {
        let t0 = Instant::now();
        let mut sm = OutboxState::new(Duration::from_secs(60));
        let mut ev = Mem::new(true, 16, 3);
        let mut ans = Mem::new(false, 16, 2);
        sm.on_connected(t0);
        let sent = drain(&mut sm, &mut [&mut ans, &mut ev], t0);
        sm.on_puback(sent[1].id, &mut [&mut ans, &mut ev]); // answer 1
        let t1 = t0 + Duration::from_secs(61);
        // Answer 0 alone goes again; the event queue again from its cursor.
        assert_eq!(sm.on_tick(t1, &[&mut ans, &mut ev]), 4);
        let again = drain(&mut sm, &mut [&mut ans, &mut ev], t1);
        assert_eq!(again.iter().map(|p| (p.source, n(&p.key))).collect::<Vec<_>>(), vec![(0, 0), (1, 0), (1, 1), (1, 2)]);
    }

    #[test]
    fn a_refused_or_lost_publish_goes_again() {
        let t0 = Instant::now();
        let mut sm = OutboxState::new(Duration::from_secs(60));
        let mut ev = Mem::new(true, 16, 3);
        sm.on_connected(t0);
        let a = sm.next(&mut [&mut ev], t0).unwrap();
        let b = sm.next(&mut [&mut ev], t0).unwrap();
        // The client's queue was full for b: b goes again, a stays in flight.
        sm.on_not_sent(b.id, &[&mut ev]);
        // Ordered: forgetting b forgets its whole source (the cursor restarts).
        assert_eq!(sm.in_flight(), 0);
        let again = drain(&mut sm, &mut [&mut ev], t0);
        assert_eq!(nums(&again), vec![0, 1, 2]);
        sm.on_lost(again[2].id, &[&mut ev]);
        assert_eq!(nums(&drain(&mut sm, &mut [&mut ev], t0)), vec![0, 1, 2]);
        assert!(!sm.holds(a.id));
    }

    /// Answer first (reboot, upgrade): the answer is acknowledged in its
    /// source only on its PUBACK; the side effect waits for that.
    #[test]
    fn answer_first_is_acknowledged_only_by_its_puback() {
        let t0 = Instant::now();
        let mut sm = OutboxState::new(Duration::from_secs(60));
        let mut ans = Mem::new(false, 16, 0);
        sm.on_connected(t0);
        assert!(sm.next(&mut [&mut ans], t0).is_none());
        ans.items.push((7, false)); // the reboot's answer, journalled
        let p = sm.next(&mut [&mut ans], t0).expect("published at once");
        assert_eq!(p.key, Key::Once(7));
        assert!(ans.acked().is_empty(), "not before the PUBACK: no reboot yet");
        sm.on_disconnected();
        sm.on_session_lost();
        sm.on_connected(t0);
        let p2 = sm.next(&mut [&mut ans], t0).expect("again after the lost session");
        let (done, _) = sm.on_puback(p2.id, &mut [&mut ans]);
        assert_eq!(done, vec![(0, Key::Once(7))], "now the side effect may run");
        assert!(sm.next(&mut [&mut ans], t0).is_none());
    }
}
