//! Login throttling, per user name and per source address (IPv4 address,
//! IPv6 /64). The first `FREE` failures cost nothing; each one after that
//! doubles the wait before the next try is even looked at (2 s, 4 s, …, at
//! most `MAX_DELAY`), answered 429 with `Retry-After`. Failures are
//! forgotten one per `DECAY` without a new one, so nobody is locked out for
//! good; a successful login clears its user's count. Both tables are capped
//! (`CAP` entries; the stalest goes first), so a flood of names or addresses
//! cannot grow memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const FREE: u32 = 3;
pub const MAX_DELAY: Duration = Duration::from_secs(900);
pub const DECAY: Duration = Duration::from_secs(600);
pub const CAP: usize = 10_000;
/// User names longer than this are throttled under their first bytes.
const NAME_MAX: usize = 128;

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Instant,
}

impl Entry {
    /// The count after decay at `now`.
    fn decayed(&self, now: Instant) -> u32 {
        let steps = now.saturating_duration_since(self.last).as_secs() / DECAY.as_secs().max(1);
        self.failures.saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX))
    }
}

struct Table<K> {
    map: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn wait(&self, k: &K, now: Instant) -> Option<Duration> {
        self.map.get(k).map(|e| e.blocked_until.saturating_duration_since(now)).filter(|d| !d.is_zero())
    }

    fn fail(&mut self, k: &K, now: Instant) {
        if !self.map.contains_key(k) && self.map.len() >= CAP {
            self.map.retain(|_, e| e.decayed(now) > 0 || e.blocked_until > now);
            if self.map.len() >= CAP {
                if let Some(stale) = self.map.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| k.clone()) {
                    self.map.remove(&stale);
                }
            }
        }
        let e = self.map.entry(k.clone()).or_insert(Entry { failures: 0, last: now, blocked_until: now });
        e.failures = e.decayed(now).saturating_add(1);
        e.last = now;
        e.blocked_until = now + delay(e.failures);
    }
}

/// The wait after `failures` failures in a row.
pub fn delay(failures: u32) -> Duration {
    match failures.checked_sub(FREE) {
        None | Some(0) => Duration::ZERO,
        Some(n) => Duration::from_secs(1u64.checked_shl(n.min(20)).unwrap_or(u64::MAX)).min(MAX_DELAY),
    }
}

pub struct Throttle {
    inner: Mutex<(Table<String>, Table<IpAddr>)>,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle { inner: Mutex::new((Table { map: HashMap::new() }, Table { map: HashMap::new() })) }
    }
}

/// An IPv6 client owns at least a /64: it is one source.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

fn name(user: &str) -> String {
    user.chars().take(NAME_MAX).collect()
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Table<String>, Table<IpAddr>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long this user / address must still wait (`None`: may try now).
    pub fn wait(&self, user: &str, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let g = self.lock();
        g.0.wait(&name(user), now).max(g.1.wait(&source(ip), now))
    }

    pub fn failed(&self, user: &str, ip: IpAddr) {
        let now = Instant::now();
        let mut g = self.lock();
        g.0.fail(&name(user), now);
        g.1.fail(&source(ip), now);
    }

    /// A good password: the user's count starts again (the address keeps
    /// its own, which decays).
    pub fn succeeded(&self, user: &str) {
        self.lock().0.map.remove(&name(user));
    }

    /// Entries held (user table, address table).
    pub fn len(&self) -> (usize, usize) {
        let g = self.lock();
        (g.0.map.len(), g.1.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        assert_eq!(delay(1), Duration::ZERO);
        assert_eq!(delay(FREE), Duration::ZERO);
        assert_eq!(delay(FREE + 1), Duration::from_secs(2));
        assert_eq!(delay(FREE + 2), Duration::from_secs(4));
        assert_eq!(delay(1000), MAX_DELAY);
    }

    #[test]
    fn throttles_per_user_and_address_and_resets_on_success() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..FREE {
            assert!(t.wait("admin", ip).is_none());
            t.failed("admin", ip);
        }
        assert!(t.wait("admin", ip).is_none());
        t.failed("admin", ip);
        assert!(t.wait("admin", ip).is_some());
        // Another address, same user: still waits; another user, same address too.
        assert!(t.wait("admin", "192.0.2.2".parse().unwrap()).is_some());
        assert!(t.wait("other", ip).is_some());
        // One /64 is one source.
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..=FREE {
            t.failed("x", a);
        }
        assert!(t.wait("y", "2001:db8::ffff".parse().unwrap()).is_some());
        t.succeeded("admin");
        assert!(t.wait("admin", "192.0.2.3".parse().unwrap()).is_none());
    }

    #[test]
    fn tables_are_capped() {
        let t = Throttle::default();
        for i in 0..(CAP + 50) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(i).unwrap()));
            t.failed(&format!("user{i}"), ip);
        }
        let (u, a) = t.len();
        assert!(u <= CAP && a <= CAP, "{u} {a}");
    }
}
