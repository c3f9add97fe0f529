//! The message routes, matched in memory: the list is read from the
//! database once and kept until a route is added, changed or deleted
//! through this instance (`invalidate`), or for `TTL` (another instance
//! sharing the database may have changed it).

use crate::db::hooks::Route;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct RouteCache {
    held: RwLock<Option<(Instant, Arc<Vec<Route>>)>>,
}

impl RouteCache {
    /// The routes, from memory when fresh, else loaded with `load`.
    pub fn get(&self, load: impl FnOnce() -> Result<Vec<Route>, String>) -> Result<Arc<Vec<Route>>, String> {
        if let Some((at, list)) = self.held.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if at.elapsed() < TTL {
                return Ok(list.clone());
            }
        }
        let list = Arc::new(load()?);
        *self.held.write().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// Forget the list: the next message reads it again.
    pub fn invalidate(&self) {
        *self.held.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_once_until_invalidated() {
        let c = RouteCache::default();
        let mut loads = 0;
        for _ in 0..3 {
            let l = c.get(|| {
                loads += 1;
                Ok(vec![Route { id: 1, topic: "a/#".into(), url: "http://127.0.0.1/".into() }])
            });
            assert_eq!(l.unwrap().len(), 1);
        }
        assert_eq!(loads, 1);
        c.invalidate();
        let l = c.get(|| Ok(vec![])).unwrap();
        assert!(l.is_empty(), "reloaded after invalidate");
    }
}
