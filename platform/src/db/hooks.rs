//! Status-change callbacks (one per type: `device`, `peripheral`) and
//! message routes (topic → URL), with their success/failure counters.

use super::Sqlite;
use rusqlite::{params, OptionalExtension, Row};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    Callback,
    Route,
}

impl HookKind {
    pub(super) fn table(self) -> &'static str {
        match self {
            HookKind::Callback => "callbacks",
            HookKind::Route => "routes",
        }
    }
}

fn callback_json(r: &Row) -> rusqlite::Result<Value> {
    Ok(json!({
        "id": r.get::<_, i64>(0)?,
        "type": r.get::<_, String>(1)?,
        "url": r.get::<_, String>(2)?,
        "enabled": r.get::<_, i64>(3)? != 0,
        "createTime": r.get::<_, i64>(4)?,
        "updateTime": r.get::<_, i64>(5)?,
        "succCount": r.get::<_, i64>(6)?,
        "failedCount": r.get::<_, i64>(7)?,
    }))
}

fn route_json(r: &Row) -> rusqlite::Result<Value> {
    Ok(json!({
        "id": r.get::<_, i64>(0)?,
        "name": r.get::<_, String>(1)?,
        "topic": r.get::<_, String>(2)?,
        "url": r.get::<_, String>(3)?,
        "createTime": r.get::<_, i64>(4)?,
        "updateTime": r.get::<_, i64>(5)?,
        "succCount": r.get::<_, i64>(6)?,
        "failedCount": r.get::<_, i64>(7)?,
    }))
}

pub(super) const CB_COLS: &str = "id, type, url, enabled, create_time, update_time, succ_count, failed_count";
pub(super) const RT_COLS: &str = "id, name, topic, url, create_time, update_time, succ_count, failed_count";

/// A message route as the forwarder needs it.
#[derive(Clone, Debug)]
pub struct Route {
    pub id: i64,
    pub topic: String,
    pub url: String,
}

impl Sqlite {
    pub fn callbacks_list(&self) -> Result<Vec<Value>, String> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {CB_COLS} FROM callbacks ORDER BY id"))?;
            let v = st.query_map([], callback_json)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    /// Set the callback of a type (one per type; setting again replaces the URL).
    pub fn callback_set(&self, kind: &str, url: &str, enabled: bool, now: i64) -> Result<Value, String> {
        self.with(|c| {
            c.execute(
                "INSERT INTO callbacks (type, url, enabled, create_time, update_time) VALUES (?1, ?2, ?3, ?4, ?4) \
                 ON CONFLICT(type) DO UPDATE SET url = excluded.url, enabled = excluded.enabled, update_time = excluded.update_time",
                params![kind, url, enabled as i64, now],
            )?;
            c.query_row(&format!("SELECT {CB_COLS} FROM callbacks WHERE type = ?1"), params![kind], callback_json)
        })
    }

    pub fn callback_enable(&self, id: i64, enabled: bool, now: i64) -> Result<Option<Value>, String> {
        self.with(|c| {
            c.execute("UPDATE callbacks SET enabled = ?2, update_time = ?3 WHERE id = ?1", params![id, enabled as i64, now])?;
            c.query_row(&format!("SELECT {CB_COLS} FROM callbacks WHERE id = ?1"), params![id], callback_json).optional()
        })
    }

    /// The enabled callback of a type: (id, url).
    pub fn callback_target(&self, kind: &str) -> Result<Option<(i64, String)>, String> {
        self.with(|c| c.query_row("SELECT id, url FROM callbacks WHERE type = ?1 AND enabled = 1", params![kind], |r| Ok((r.get(0)?, r.get(1)?))).optional())
    }

    /// (succ, failed) of a type's callback.
    pub fn callback_stats(&self, kind: &str) -> Result<(i64, i64), String> {
        self.with(|c| {
            c.query_row("SELECT succ_count, failed_count FROM callbacks WHERE type = ?1", params![kind], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map(|o| o.unwrap_or((0, 0)))
        })
    }

    pub fn hook_count(&self, kind: HookKind, id: i64, ok: bool) -> Result<(), String> {
        let col = if ok { "succ_count" } else { "failed_count" };
        self.with(|c| c.execute(&format!("UPDATE {} SET {col} = {col} + 1 WHERE id = ?1", kind.table()), params![id]).map(|_| ()))
    }

    pub fn routes_list(&self) -> Result<Vec<Value>, String> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {RT_COLS} FROM routes ORDER BY id LIMIT 1000"))?;
            let v = st.query_map([], route_json)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    /// On a reader (the telemetry worker reloads it every few seconds and
    /// must not wait for the writer).
    pub fn routes(&self) -> Result<Vec<Route>, String> {
        self.read(|c| {
            let mut st = c.prepare("SELECT id, topic, url FROM routes ORDER BY id LIMIT 1000")?;
            let v = st.query_map([], |r| Ok(Route { id: r.get(0)?, topic: r.get(1)?, url: r.get(2)? }))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    pub fn route_add(&self, name: &str, topic: &str, url: &str, now: i64, max: i64) -> Result<Option<Value>, String> {
        self.with(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM routes", [], |r| r.get(0))?;
            if n >= max {
                return Ok(None);
            }
            c.execute("INSERT INTO routes (name, topic, url, create_time, update_time) VALUES (?1, ?2, ?3, ?4, ?4)", params![name, topic, url, now])?;
            let id = c.last_insert_rowid();
            c.query_row(&format!("SELECT {RT_COLS} FROM routes WHERE id = ?1"), params![id], route_json).map(Some)
        })
    }

    /// Update name/url (and topic when given); `None` when no such id.
    pub fn route_update(&self, id: i64, name: Option<&str>, topic: Option<&str>, url: Option<&str>, now: i64) -> Result<Option<Value>, String> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE routes SET name = COALESCE(?2, name), topic = COALESCE(?3, topic), url = COALESCE(?4, url), update_time = ?5 WHERE id = ?1",
                params![id, name, topic, url, now],
            )?;
            if n == 0 {
                return Ok(None);
            }
            c.query_row(&format!("SELECT {RT_COLS} FROM routes WHERE id = ?1"), params![id], route_json).map(Some)
        })
    }

    pub fn route_delete(&self, id: i64) -> Result<usize, String> {
        self.with(|c| c.execute("DELETE FROM routes WHERE id = ?1", params![id]))
    }
}
