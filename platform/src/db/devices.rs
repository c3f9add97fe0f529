//! Devices (from `state`, `sys`, `procs`, `versions`) and their LAN
//! peripherals (from `periph`).

use super::Sqlite;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{json, Value};

/// Telemetry kinds kept as the JSON text of the last message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Report {
    Sys,
    Procs,
    Versions,
}

impl Report {
    pub fn column(self) -> &'static str {
        match self {
            Report::Sys => "sys",
            Report::Procs => "procs",
            Report::Versions => "versions",
        }
    }
}

/// Devices kept at most (a message from one more serial is dropped).
pub const MAX_DEVICES: i64 = 100_000;
/// LAN peripherals kept per device.
pub const MAX_PERIPHERALS: i64 = 64;

/// Make sure the device has a row; false when it has none and the table is full.
pub(super) fn ensure(c: &Connection, sn: &str) -> rusqlite::Result<bool> {
    // The row count is the trigger-kept `device_counts.total` (one row read;
    // COUNT(*) per new device is too slow at 100,000).
    c.prepare_cached(
        "INSERT INTO devices (sn) SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM devices WHERE sn = ?1) AND COALESCE((SELECT total FROM device_counts WHERE id = 1), 0) < ?2",
    )?
    .execute(params![sn, MAX_DEVICES])?;
    c.prepare_cached("SELECT COUNT(*) FROM devices WHERE sn = ?1")?.query_row(params![sn], |r| r.get::<_, i64>(0)).map(|n| n == 1)
}

/// (online, offline, total) of the devices, from the trigger-kept counts.
fn device_counts(c: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    c.prepare_cached("SELECT online, total FROM device_counts WHERE id = 1")?
        .query_row([], |r| {
            let (on, total): (i64, i64) = (r.get(0)?, r.get(1)?);
            Ok((on, total - on, total))
        })
        .optional()
        .map(|o| o.unwrap_or((0, 0, 0)))
}

/// A device as the API lists it. Its members are declared in the order the
/// JSON shows them (sorted, as the `Value` map it replaces did): a page is
/// serialized straight from these rows (`Reply::ok_ser`), not built as a
/// tree of maps and then copied into the answer's.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub active_time: i64,
    pub boot_time: i64,
    pub dur: i64,
    pub offline_time: i64,
    pub online: bool,
    pub online_time: i64,
    pub procs: String,
    pub signed: Option<bool>,
    pub sn: String,
    pub sys: String,
    pub versions: String,
}

/// A row of `DEVICE_COLS`.
pub(super) fn device_row(r: &Row) -> rusqlite::Result<Device> {
    Ok(Device {
        sn: r.get(0)?,
        online: r.get::<_, i64>(1)? != 0,
        online_time: r.get(2)?,
        offline_time: r.get(3)?,
        active_time: r.get(4)?,
        boot_time: r.get(5)?,
        dur: r.get(6)?,
        sys: r.get(7)?,
        procs: r.get(8)?,
        versions: r.get(9)?,
        signed: r.get::<_, Option<i64>>(10)?.map(|s| s != 0),
    })
}

/// `signed` (the birth's flag, NULL: unknown) is shown as true/false/null.
pub(super) const DEVICE_COLS: &str = "sn, online, online_time, offline_time, active_time, boot_time, dur, sys, procs, versions, signed";

fn periph_json(r: &Row) -> rusqlite::Result<Value> {
    Ok(json!({
        "sn": r.get::<_, String>(0)?,
        "nId": r.get::<_, String>(1)?,
        "gwId": r.get::<_, String>(2)?,
        "kind": r.get::<_, String>(3)?,
        "online": r.get::<_, i64>(4)? != 0,
        "activeTime": r.get::<_, i64>(5)?,
        "revTime": r.get::<_, i64>(6)?,
        "msg": r.get::<_, String>(7)?,
    }))
}

/// (online, offline, total)
fn counts(c: &Connection, table: &str) -> rusqlite::Result<(i64, i64, i64)> {
    c.query_row(&format!("SELECT COALESCE(SUM(online), 0), COUNT(*) FROM {table}"), [], |r| {
        let on: i64 = r.get(0)?;
        let total: i64 = r.get(1)?;
        Ok((on, total - on, total))
    })
}

impl Sqlite {
    /// A `state` message. Returns true when this call changed the device's
    /// online flag (the one instance that sees the change fires the callback).
    /// `signed` is the birth's flag (`None`: the birth does not say, v1).
    pub fn device_state(&self, sn: &str, online: bool, boot_time: Option<i64>, ver: Option<&str>, signed: Option<bool>, now: i64) -> Result<bool, String> {
        self.tx(|c| {
            if !ensure(c, sn)? {
                return Ok(false);
            }
            if online {
                let changed = c.execute("UPDATE devices SET online = 1, online_time = ?2 WHERE sn = ?1 AND online = 0", params![sn, now])? == 1;
                c.execute(
                    "UPDATE devices SET active_time = ?2, boot_time = COALESCE(?3, boot_time), ver = COALESCE(?4, ver), signed = ?5 WHERE sn = ?1",
                    params![sn, now, boot_time, ver, signed.map(i64::from)],
                )?;
                Ok(changed)
            } else {
                Ok(c.execute("UPDATE devices SET online = 0, offline_time = ?2 WHERE sn = ?1 AND online = 1", params![sn, now])? == 1)
            }
        })
    }

    /// A `sys`/`procs`/`versions` message, kept as JSON text (with `revtime`).
    /// `dur` is the device's reporting interval: seconds between its last two
    /// `sys` reports (or `procs`, for a device that sends no `sys`).
    pub fn device_report(&self, sn: &str, kind: Report, text: &str, now: i64) -> Result<(), String> {
        self.tx(|c| {
            if !ensure(c, sn)? {
                return Ok(());
            }
            match kind {
                Report::Sys => c.execute(
                    "UPDATE devices SET sys = ?2, dur = CASE WHEN sys_rev > 0 THEN ?3 - sys_rev ELSE dur END, sys_rev = ?3, active_time = ?3 WHERE sn = ?1",
                    params![sn, text, now],
                )?,
                Report::Procs => c.execute(
                    "UPDATE devices SET procs = ?2, dur = CASE WHEN procs_rev > 0 AND sys_rev = 0 THEN ?3 - procs_rev ELSE dur END, procs_rev = ?3, active_time = ?3 WHERE sn = ?1",
                    params![sn, text, now],
                )?,
                Report::Versions => c.execute("UPDATE devices SET versions = ?2, active_time = ?3 WHERE sn = ?1", params![sn, text, now])?,
            };
            Ok(())
        })
    }

    /// Any other message from a known device: it is alive.
    pub fn device_touch(&self, sn: &str, now: i64) -> Result<(), String> {
        self.with(|c| c.execute("UPDATE devices SET active_time = ?2 WHERE sn = ?1", params![sn, now]).map(|_| ()))
    }

    /// Has the device been seen on its per-device topics?
    pub fn device_per_device(&self, sn: &str) -> Result<bool, String> {
        self.read(|c| c.query_row("SELECT per_device FROM devices WHERE sn = ?1", params![sn], |r| r.get::<_, i64>(0)).optional().map(|o| o == Some(1)))
    }

    /// Remember that it has (a row is made for a new device); false when
    /// the device has no row and the table is full.
    pub fn device_mark_per_device(&self, sn: &str) -> Result<bool, String> {
        self.tx(|c| {
            if !ensure(c, sn)? {
                return Ok(false);
            }
            c.execute("UPDATE devices SET per_device = 1 WHERE sn = ?1", params![sn])?;
            Ok(true)
        })
    }

    pub fn device_online(&self, sn: &str) -> Result<bool, String> {
        self.with(|c| c.query_row("SELECT online FROM devices WHERE sn = ?1", params![sn], |r| r.get::<_, i64>(0)).optional().map(|o| o == Some(1)))
    }

    /// A page of the device list in serial order (or the one device `sn`).
    /// The page's first serial is found on the serial index alone (a
    /// covering scan: no table row is read for the rows skipped), and the
    /// total is the kept count: a page deep in 100,000 devices costs about
    /// what the first does.
    pub fn devices_page(&self, page: i64, limit: i64, sn: Option<&str>) -> Result<(i64, Vec<Device>), String> {
        self.read(|c| {
            if let Some(sn) = sn {
                let mut st = c.prepare_cached(&format!("SELECT {DEVICE_COLS} FROM devices WHERE sn = ?1"))?;
                let list = st.query_map(params![sn], device_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
                return Ok((list.len() as i64, list));
            }
            let total = device_counts(c)?.2;
            let mut st = c.prepare_cached(&format!(
                "SELECT {DEVICE_COLS} FROM devices WHERE sn >= (SELECT sn FROM devices ORDER BY sn LIMIT 1 OFFSET ?2) ORDER BY sn LIMIT ?1"
            ))?;
            let list = st.query_map(params![limit, (page - 1).saturating_mul(limit)], device_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((total, list))
        })
    }

    pub fn devices_count(&self) -> Result<(i64, i64, i64), String> {
        self.read(device_counts)
    }

    /// Devices whose last state is online: (sn, online since).
    pub fn devices_connected(&self) -> Result<Vec<(String, i64)>, String> {
        self.with(|c| {
            let mut st = c.prepare("SELECT sn, online_time FROM devices WHERE online = 1 ORDER BY sn LIMIT 10000")?;
            let v = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    /// A `periph` message. Returns true when its online flag changed (or it is new).
    #[allow(clippy::too_many_arguments)]
    pub fn periph_update(&self, sn: &str, nid: &str, gw_id: &str, kind: &str, online: bool, msg: &str, now: i64) -> Result<bool, String> {
        self.tx(|c| {
            if !ensure(c, sn)? {
                return Ok(false);
            }
            c.execute("UPDATE devices SET active_time = ?2 WHERE sn = ?1", params![sn, now])?;
            let inserted = c.execute(
                "INSERT OR IGNORE INTO peripherals (sn, nid, gw_id, kind, online, active_time, rev_time, msg) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7 WHERE (SELECT COUNT(*) FROM peripherals WHERE sn = ?1) < ?8",
                params![sn, nid, gw_id, kind, online as i64, if online { now } else { 0 }, msg, MAX_PERIPHERALS],
            )? == 1;
            if inserted {
                return Ok(true);
            }
            let changed = c.execute("UPDATE peripherals SET online = ?3 WHERE sn = ?1 AND nid = ?2 AND online != ?3", params![sn, nid, online as i64])? == 1;
            c.execute(
                "UPDATE peripherals SET gw_id = ?3, kind = ?4, rev_time = ?5, msg = ?6, active_time = CASE WHEN ?7 THEN ?5 ELSE active_time END WHERE sn = ?1 AND nid = ?2",
                params![sn, nid, gw_id, kind, now, msg, online],
            )?;
            Ok(changed)
        })
    }

    pub fn periph_page(&self, page: i64, limit: i64, sn: Option<&str>) -> Result<(i64, Vec<Value>), String> {
        self.read(|c| {
            let arg = sn.unwrap_or("").to_string();
            let filter = if sn.is_some() { "WHERE sn = ?1" } else { "WHERE ?1 = ?1" };
            let total: i64 = c.query_row(&format!("SELECT COUNT(*) FROM peripherals {filter}"), params![arg], |r| r.get(0))?;
            let mut st = c.prepare(&format!(
                "SELECT sn, nid, gw_id, kind, online, active_time, rev_time, msg FROM peripherals {filter} ORDER BY sn, nid LIMIT ?2 OFFSET ?3"
            ))?;
            let list = st.query_map(params![arg, limit, (page - 1) * limit], periph_json)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((total, list))
        })
    }

    pub fn periph_count(&self) -> Result<(i64, i64, i64), String> {
        self.read(|c| counts(c, "peripherals"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_once_and_peripherals_capped() {
        let db = Sqlite::open(":memory:").unwrap();
        assert!(db.device_state("A1", true, Some(5), Some("0.1.0"), Some(true), 10).unwrap(), "first birth is a change");
        assert!(!db.device_state("A1", true, None, None, None, 11).unwrap(), "a repeated birth is not");
        assert!(db.device_state("A1", false, None, None, None, 12).unwrap());
        assert!(!db.device_state("B2", false, None, None, None, 12).unwrap(), "a will of an unknown device changes nothing");
        for n in 0..(MAX_PERIPHERALS + 6) {
            db.periph_update("A1", &format!("p{n}"), "A1", "goip", true, "{}", 20).unwrap();
        }
        assert_eq!(db.periph_page(1, 1000, Some("A1")).unwrap().0, MAX_PERIPHERALS);
        assert_eq!(db.devices_count().unwrap(), (0, 2, 2));
        let (total, list) = db.devices_page(2, 1, None).unwrap();
        // The typed row serializes as the map it replaced did: the same members, in the same (sorted) order.
        let d = &list[0];
        let as_map = json!({"sn": d.sn, "online": d.online, "onlineTime": d.online_time, "offlineTime": d.offline_time, "activeTime": d.active_time,
            "bootTime": d.boot_time, "dur": d.dur, "sys": d.sys, "procs": d.procs, "versions": d.versions, "signed": d.signed});
        assert_eq!(serde_json::to_string(d).unwrap(), as_map.to_string());
        assert_eq!((total, list.len(), list[0].sn.as_str()), (2, 1, "B2"), "one a page: page 2 is the second serial");
        assert_eq!(db.devices_page(3, 1, None).unwrap().1.len(), 0, "past the end: empty");
    }
}
