//! PostgreSQL side of `fleet.rs`: the same searches, events and progress.

use super::devices::DEVICE_COLS;
use super::fleet::{DeviceFilter, NewEvent, EVENTS_MAX, EVENTS_PER_DEVICE, FAILURES_LISTED};
use super::devices::Device;
use super::pg::{device_row, Pg};
use serde_json::{json, Value};

const FILTER: &str = "($1::TEXT IS NULL OR strpos(sn, $1::TEXT) > 0) AND ($2::BIGINT IS NULL OR online = $2::BIGINT) \
     AND ($3::TEXT IS NULL OR EXISTS (SELECT 1 FROM peripherals p WHERE p.sn = devices.sn AND p.kind = $3::TEXT))";

impl Pg {
    pub fn devices_find(&self, page: i64, limit: i64, f: &DeviceFilter) -> Result<(i64, Vec<Device>), String> {
        let online = f.online.map(i64::from);
        self.with(|c| {
            let total: i64 = c.query_one(&format!("SELECT COUNT(*) FROM devices WHERE {FILTER}"), &[&f.q, &online, &f.kind])?.try_get(0)?;
            let rows = c.query(&format!("SELECT {DEVICE_COLS} FROM devices WHERE {FILTER} ORDER BY sn LIMIT $4 OFFSET $5"), &[&f.q, &online, &f.kind, &limit, &((page - 1) * limit)])?;
            Ok((total, rows.iter().map(device_row).collect::<Result<Vec<_>, _>>()?))
        })
    }

    pub fn devices_select(&self, f: &DeviceFilter, max: i64) -> Result<Vec<String>, String> {
        let online = f.online.map(i64::from);
        self.with(|c| c.query(&format!("SELECT sn FROM devices WHERE {FILTER} ORDER BY sn LIMIT $4"), &[&f.q, &online, &f.kind, &max])?.iter().map(|r| r.try_get(0)).collect())
    }

    pub fn events_insert(&self, events: &[NewEvent]) -> Result<usize, String> {
        self.tx(|c| {
            let mut n = 0;
            for e in events {
                n += c.execute(
                    "INSERT INTO events (sn, eid, type, time, rev_time, body) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[&e.sn, &e.eid, &e.kind, &e.time, &e.rev_time, &e.body],
                )? as usize;
            }
            let mut sns: Vec<&str> = events.iter().map(|e| e.sn.as_str()).collect();
            sns.sort_unstable();
            sns.dedup();
            for sn in sns {
                c.execute(
                    "DELETE FROM events WHERE sn = $1 AND id < (SELECT id FROM events WHERE sn = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
                    &[&sn, &(EVENTS_PER_DEVICE - 1)],
                )?;
            }
            c.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - $1", &[&EVENTS_MAX])?;
            Ok(n)
        })
    }

    pub fn events_page(&self, page: i64, limit: i64, sn: Option<&str>, kind: Option<&str>) -> Result<(i64, Vec<Value>), String> {
        self.with(|c| {
            let w = "($1::TEXT IS NULL OR sn = $1::TEXT) AND ($2::TEXT IS NULL OR type = $2::TEXT)";
            let total: i64 = c.query_one(&format!("SELECT COUNT(*) FROM events WHERE {w}"), &[&sn, &kind])?.try_get(0)?;
            let rows = c.query(&format!("SELECT id, sn, eid, type, time, rev_time, body FROM events WHERE {w} ORDER BY id DESC LIMIT $3 OFFSET $4"), &[&sn, &kind, &limit, &((page - 1) * limit)])?;
            let mut list = Vec::with_capacity(rows.len());
            for r in &rows {
                let body: String = r.try_get(6)?;
                list.push(json!({
                    "id": r.try_get::<_, i64>(0)?, "sn": r.try_get::<_, String>(1)?, "eid": r.try_get::<_, Option<i64>>(2)?,
                    "type": r.try_get::<_, String>(3)?, "time": r.try_get::<_, i64>(4)?, "revTime": r.try_get::<_, i64>(5)?,
                    "event": serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body)),
                }));
            }
            Ok((total, list))
        })
    }

    pub fn commands_progress(&self, origin: &str) -> Result<([i64; 4], Vec<Value>), String> {
        self.with(|c| {
            let mut by = [0i64; 4];
            for r in c.query("SELECT state, COUNT(*) FROM commands WHERE origin = $1 GROUP BY state", &[&origin])? {
                let (s, n): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
                if let Some(slot) = usize::try_from(s).ok().and_then(|s| by.get_mut(s)) {
                    *slot = n;
                }
            }
            let rows = c.query("SELECT id, sn, reason, try_times, failed_time FROM commands WHERE origin = $1 AND state = 3 ORDER BY id DESC LIMIT $2", &[&origin, &FAILURES_LISTED])?;
            let mut failed = Vec::with_capacity(rows.len());
            for r in &rows {
                failed.push(json!({"id": r.try_get::<_, i64>(0)?.to_string(), "sn": r.try_get::<_, String>(1)?, "reason": r.try_get::<_, String>(2)?,
                    "tryTimes": r.try_get::<_, i64>(3)?, "failedTime": r.try_get::<_, i64>(4)?}));
            }
            Ok((by, failed))
        })
    }
}
