//! The open connections, at most `cap`. When a new one arrives at the cap,
//! the connection that has been idle longest (not inside a request) is
//! closed to make room, so idle or slow clients cannot lock others out;
//! when every connection is inside a request, the new one is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// One connection's state, shared with its task.
pub struct Conn {
    /// Requests being handled on it now.
    busy: AtomicU32,
    /// Last activity, ms since the registry started.
    last: AtomicU64,
    /// Told to close (evicted).
    pub kill: Notify,
}

pub struct Conns {
    cap: usize,
    start: Instant,
    inner: Mutex<(u64, HashMap<u64, Arc<Conn>>)>,
}

/// Removes its connection from the registry when the task ends.
pub struct Slot {
    conns: Arc<Conns>,
    id: u64,
    pub conn: Arc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.lock().1.remove(&self.id);
    }
}

/// Marks a connection busy while a request is handled.
pub struct Busy(Arc<Conn>, u64);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.last.store(self.1, Ordering::Relaxed);
    }
}

impl Conns {
    pub fn new(cap: usize) -> Arc<Conns> {
        Arc::new(Conns { cap, start: Instant::now(), inner: Mutex::new((0, HashMap::new())) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<u64, Arc<Conn>>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn len(&self) -> usize {
        self.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A slot for a new connection (evicting the longest-idle one at the
    /// cap), or `None` when every connection is busy.
    pub fn admit(self: &Arc<Self>) -> Option<Slot> {
        let now = self.now_ms();
        let mut g = self.lock();
        if g.1.len() >= self.cap {
            let victim = g.1.iter().filter(|(_, c)| c.busy.load(Ordering::Relaxed) == 0).min_by_key(|(_, c)| c.last.load(Ordering::Relaxed)).map(|(id, _)| *id);
            let old = g.1.remove(&victim?)?;
            old.kill.notify_one();
        }
        g.0 = g.0.wrapping_add(1);
        let id = g.0;
        let conn = Arc::new(Conn { busy: AtomicU32::new(0), last: AtomicU64::new(now), kill: Notify::new() });
        g.1.insert(id, conn.clone());
        Some(Slot { conns: self.clone(), id, conn })
    }

    /// Mark `c` busy until the guard drops.
    pub fn busy(&self, c: &Arc<Conn>) -> Busy {
        c.busy.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        c.last.store(now, Ordering::Relaxed);
        Busy(c.clone(), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_longest_idle_and_refuses_when_all_are_busy() {
        let c = Conns::new(2);
        let a = c.admit().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = c.admit().unwrap();
        let _busy_b = c.busy(&b.conn);
        let third = c.admit().unwrap();
        assert_eq!(c.len(), 2);
        // `a` was evicted: its notify holds a permit.
        assert!(futures_ready(&a.conn.kill));
        let _busy_3 = c.busy(&third.conn);
        assert!(c.admit().is_none(), "all busy: refused");
        drop(third);
        assert_eq!(c.len(), 1);
    }

    fn futures_ready(n: &Notify) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async { tokio::time::timeout(std::time::Duration::from_millis(50), n.notified()).await.is_ok() })
    }
}
