//! What a console for a fleet asks of the database: devices found by
//! serial, online state and peripheral kind (paged, on indexes); the
//! devices' events (`{p}/event/{sn}`), kept bounded per device and
//! fleet-wide, newest first; a bulk command's progress by origin.

use super::Sqlite;
use rusqlite::{params, Row};
use serde_json::{json, Value};

/// Events kept per device, and in all.
pub const EVENTS_PER_DEVICE: i64 = 200;
pub const EVENTS_MAX: i64 = 200_000;
/// Failures listed in a progress answer at most.
pub const FAILURES_LISTED: i64 = 100;

/// A device search: every part optional.
#[derive(Clone, Debug, Default)]
pub struct DeviceFilter {
    /// Part of the serial.
    pub q: Option<String>,
    pub online: Option<bool>,
    /// Has a peripheral of this kind.
    pub kind: Option<String>,
}

/// One event as received.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub sn: String,
    pub eid: Option<i64>,
    pub kind: String,
    pub time: i64,
    pub rev_time: i64,
    /// The event's JSON text.
    pub body: String,
}

pub(super) const FILTER_SQL: &str = "(?1 IS NULL OR instr(sn, ?1) > 0) AND (?2 IS NULL OR online = ?2) \
     AND (?3 IS NULL OR EXISTS (SELECT 1 FROM peripherals p WHERE p.sn = devices.sn AND p.kind = ?3))";

fn event_json(r: &Row) -> rusqlite::Result<Value> {
    let body: String = r.get(6)?;
    Ok(json!({
        "id": r.get::<_, i64>(0)?, "sn": r.get::<_, String>(1)?, "eid": r.get::<_, Option<i64>>(2)?,
        "type": r.get::<_, String>(3)?, "time": r.get::<_, i64>(4)?, "revTime": r.get::<_, i64>(5)?,
        "event": serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body)),
    }))
}

impl Sqlite {
    pub fn devices_find(&self, page: i64, limit: i64, f: &DeviceFilter) -> Result<(i64, Vec<super::devices::Device>), String> {
        self.read(|c| {
            let online = f.online.map(i64::from);
            let total: i64 = c.query_row(&format!("SELECT COUNT(*) FROM devices WHERE {FILTER_SQL}"), params![f.q, online, f.kind], |r| r.get(0))?;
            let mut st = c.prepare_cached(&format!("SELECT {} FROM devices WHERE {FILTER_SQL} ORDER BY sn LIMIT ?4 OFFSET ?5", super::devices::DEVICE_COLS))?;
            let list = st.query_map(params![f.q, online, f.kind, limit, (page - 1) * limit], super::devices::device_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((total, list))
        })
    }

    /// Serials matching `f`, at most `max`, in serial order (a bulk command's targets).
    pub fn devices_select(&self, f: &DeviceFilter, max: i64) -> Result<Vec<String>, String> {
        self.with(|c| {
            let mut st = c.prepare_cached(&format!("SELECT sn FROM devices WHERE {FILTER_SQL} ORDER BY sn LIMIT ?4"))?;
            let v = st.query_map(params![f.q, f.online.map(i64::from), f.kind, max], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(v)
        })
    }

    /// Store events (a repeated `eid` of a device is dropped) in one
    /// transaction, then cut each device's and the fleet's to their bounds.
    pub fn events_insert(&self, events: &[NewEvent]) -> Result<usize, String> {
        self.tx(|c| {
            let mut n = 0;
            let mut ins = c.prepare_cached("INSERT OR IGNORE INTO events (sn, eid, type, time, rev_time, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
            for e in events {
                n += ins.execute(params![e.sn, e.eid, e.kind, e.time, e.rev_time, e.body])?;
            }
            let mut cut = c.prepare_cached("DELETE FROM events WHERE sn = ?1 AND id < (SELECT id FROM events WHERE sn = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)")?;
            let mut sns: Vec<&str> = events.iter().map(|e| e.sn.as_str()).collect();
            sns.sort_unstable();
            sns.dedup();
            for sn in sns {
                cut.execute(params![sn, EVENTS_PER_DEVICE - 1])?;
            }
            c.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1", params![EVENTS_MAX])?;
            Ok(n)
        })
    }

    /// Newest first; `sn`/`type` filter.
    pub fn events_page(&self, page: i64, limit: i64, sn: Option<&str>, kind: Option<&str>) -> Result<(i64, Vec<Value>), String> {
        self.read(|c| {
            let w = "(?1 IS NULL OR sn = ?1) AND (?2 IS NULL OR type = ?2)";
            let total: i64 = c.query_row(&format!("SELECT COUNT(*) FROM events WHERE {w}"), params![sn, kind], |r| r.get(0))?;
            let mut st = c.prepare_cached(&format!("SELECT id, sn, eid, type, time, rev_time, body FROM events WHERE {w} ORDER BY id DESC LIMIT ?3 OFFSET ?4"))?;
            let list = st.query_map(params![sn, kind, limit, (page - 1) * limit], event_json)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((total, list))
        })
    }

    /// Counts of `origin`'s commands by state (0..=3) and the failed ones (newest first).
    pub fn commands_progress(&self, origin: &str) -> Result<([i64; 4], Vec<Value>), String> {
        self.with(|c| {
            let mut by = [0i64; 4];
            let mut st = c.prepare_cached("SELECT state, COUNT(*) FROM commands WHERE origin = ?1 GROUP BY state")?;
            let rows = st.query_map(params![origin], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (s, n) = row?;
                if let Some(slot) = usize::try_from(s).ok().and_then(|s| by.get_mut(s)) {
                    *slot = n;
                }
            }
            let mut st = c.prepare_cached("SELECT id, sn, reason, try_times, failed_time FROM commands WHERE origin = ?1 AND state = 3 ORDER BY id DESC LIMIT ?2")?;
            let failed = st
                .query_map(params![origin, FAILURES_LISTED], |r| {
                    Ok(json!({"id": r.get::<_, i64>(0)?.to_string(), "sn": r.get::<_, String>(1)?, "reason": r.get::<_, String>(2)?, "tryTimes": r.get::<_, i64>(3)?, "failedTime": r.get::<_, i64>(4)?}))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((by, failed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_filter_events_bounded_and_progress() {
        let db = Sqlite::open(":memory:").unwrap();
        for i in 0..30 {
            db.device_state(&format!("R{i:03}"), i % 3 == 0, None, None, None, 10).unwrap();
        }
        db.periph_update("R005", "p1", "R005", "goip", true, "{}", 11).unwrap();
        let f = DeviceFilter { q: Some("R00".into()), ..Default::default() };
        assert_eq!(db.devices_find(1, 5, &f).unwrap().0, 10);
        let f = DeviceFilter { online: Some(true), ..Default::default() };
        assert_eq!(db.devices_find(1, 100, &f).unwrap().0, 10);
        let f = DeviceFilter { kind: Some("goip".into()), ..Default::default() };
        let (n, list) = db.devices_find(1, 100, &f).unwrap();
        assert_eq!((n, list[0].sn.as_str()), (1, "R005"));
        assert_eq!(db.devices_select(&DeviceFilter::default(), 7).unwrap().len(), 7);
        let ev = |eid: i64| NewEvent { sn: "R001".into(), eid: Some(eid), kind: "sms".into(), time: eid, rev_time: eid, body: format!("{{\"eid\":{eid},\"text\":\"hi\"}}") };
        let batch: Vec<NewEvent> = (0..EVENTS_PER_DEVICE + 20).map(ev).collect();
        db.events_insert(&batch).unwrap();
        assert_eq!(db.events_insert(&[ev(EVENTS_PER_DEVICE + 10), ev(EVENTS_PER_DEVICE + 19)]).unwrap(), 0, "a repeated eid is dropped");
        let (total, list) = db.events_page(1, 3, Some("R001"), None).unwrap();
        assert_eq!(total, EVENTS_PER_DEVICE, "bounded per device");
        assert_eq!(list[0]["eid"].as_i64(), Some(EVENTS_PER_DEVICE + 19), "newest first");
        assert_eq!(list[0]["event"]["text"], "hi");
        let (by, failed) = db.commands_progress("nobody").unwrap();
        assert_eq!((by, failed.len()), ([0; 4], 0));
    }
}
