//! Telemetry written in batches (`pipeline.rs`): one transaction for many
//! devices' `sys`/`procs`/`versions`, their `event` touches, and the
//! serials first seen on per-device topics. SQLite: one prepared UPDATE
//! per row inside the transaction (one disk sync per batch); PostgreSQL
//! (`pg_batch.rs`): one multi-row statement per kind.

use super::devices::{ensure, Report};
use super::Sqlite;
use rusqlite::params;
use std::time::Duration;

/// Where a batch's write spent its time (`platform/ingest` shows the
/// sums): waiting for the writer connection, running the statements,
/// committing (SQLite: the WAL's sync; PostgreSQL: the commit's round trip).
#[derive(Clone, Copy, Debug, Default)]
pub struct TxTiming {
    pub lock: Duration,
    pub write: Duration,
    pub commit: Duration,
}

/// The last report of one kind from one device in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRow {
    pub sn: String,
    pub kind: Report,
    /// The JSON text with `revtime`.
    pub text: String,
    pub now: i64,
}

/// The UPDATE for one report kind (`?1` sn, `?2` text, `?3` receipt time);
/// `dur` as `device_report` computes it.
pub(super) fn report_sql(kind: Report) -> &'static str {
    match kind {
        Report::Sys => "UPDATE devices SET sys = ?2, dur = CASE WHEN sys_rev > 0 THEN ?3 - sys_rev ELSE dur END, sys_rev = ?3, active_time = ?3 WHERE sn = ?1",
        Report::Procs => "UPDATE devices SET procs = ?2, dur = CASE WHEN procs_rev > 0 AND sys_rev = 0 THEN ?3 - procs_rev ELSE dur END, procs_rev = ?3, active_time = ?3 WHERE sn = ?1",
        Report::Versions => "UPDATE devices SET versions = ?2, active_time = ?3 WHERE sn = ?1",
    }
}

/// A `state` message (`device_state`'s arguments).
#[derive(Clone, Debug)]
pub struct StateRow {
    pub sn: String,
    pub online: bool,
    pub boot_time: Option<i64>,
    pub ver: Option<String>,
    pub signed: Option<bool>,
    pub now: i64,
}

impl Sqlite {
    /// States in one transaction, each as `device_state` does, an online
    /// one also waking the device's waiting commands (`commands_wake`).
    /// Per row: (online flag changed, commands woken).
    pub fn devices_state_many(&self, rows: &[StateRow]) -> Result<Vec<(bool, usize)>, String> {
        self.tx(|c| {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                if !ensure(c, &r.sn)? {
                    out.push((false, 0));
                    continue;
                }
                if r.online {
                    let changed = c.prepare_cached("UPDATE devices SET online = 1, online_time = ?2 WHERE sn = ?1 AND online = 0")?.execute(params![r.sn, r.now])? == 1;
                    c.prepare_cached("UPDATE devices SET active_time = ?2, boot_time = COALESCE(?3, boot_time), ver = COALESCE(?4, ver), signed = ?5 WHERE sn = ?1")?
                        .execute(params![r.sn, r.now, r.boot_time, r.ver, r.signed.map(i64::from)])?;
                    let woken = c.prepare_cached("UPDATE commands SET next_at = ?2 WHERE sn = ?1 AND state = 0 AND next_at > ?2")?.execute(params![r.sn, r.now])?;
                    out.push((changed, woken));
                } else {
                    let changed = c.prepare_cached("UPDATE devices SET online = 0, offline_time = ?2 WHERE sn = ?1 AND online = 1")?.execute(params![r.sn, r.now])? == 1;
                    out.push((changed, 0));
                }
            }
            Ok(out)
        })
    }

    /// Write a batch in one transaction: the reports (a device without a
    /// row gets one while the table has room) and `touches` (sn, time: alive).
    /// Returns the rows written.
    pub fn devices_report_batch(&self, rows: &[ReportRow], touches: &[(String, i64)]) -> Result<(usize, TxTiming), String> {
        self.tx_timed(|c| {
            let mut n = 0;
            for r in rows {
                let mut st = c.prepare_cached(report_sql(r.kind))?;
                let mut done = st.execute(params![r.sn, r.text, r.now])?;
                if done == 0 && ensure(c, &r.sn)? {
                    done = st.execute(params![r.sn, r.text, r.now])?;
                }
                n += done;
            }
            let mut st = c.prepare_cached("UPDATE devices SET active_time = ?2 WHERE sn = ?1 AND active_time < ?2")?;
            for (sn, now) in touches {
                st.execute(params![sn, now])?;
            }
            Ok(n)
        })
    }

    /// Mark these serials as seen on their per-device topics (rows made for
    /// new devices while the table has room), in one transaction. Returns
    /// the serials marked.
    pub fn devices_mark_per_device_many(&self, sns: &[String]) -> Result<Vec<String>, String> {
        self.tx(|c| {
            let mut marked = Vec::with_capacity(sns.len());
            let mut st = c.prepare_cached("UPDATE devices SET per_device = 1 WHERE sn = ?1")?;
            for sn in sns {
                let mut done = st.execute(params![sn])?;
                if done == 0 && ensure(c, sn)? {
                    done = st.execute(params![sn])?;
                }
                if done == 1 {
                    marked.push(sn.clone());
                }
            }
            Ok(marked)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_writes_every_row_and_makes_missing_devices() {
        let db = Sqlite::open(":memory:").unwrap();
        let rows: Vec<ReportRow> = (0..50).map(|i| ReportRow { sn: format!("B{i}"), kind: Report::Sys, text: format!("{{\"n\":{i}}}"), now: 100 }).collect();
        assert_eq!(db.devices_report_batch(&rows, &[]).unwrap().0, 50);
        let later = vec![ReportRow { sn: "B7".into(), kind: Report::Sys, text: "{\"n\":70}".into(), now: 160 }];
        assert_eq!(db.devices_report_batch(&later, &[("B8".into(), 170)]).unwrap().0, 1);
        let (_, list) = db.devices_page(1, 100, Some("B7")).unwrap();
        assert_eq!((list[0].sys.as_str(), list[0].dur), ("{\"n\":70}", 60), "{list:?}");
        let (_, list) = db.devices_page(1, 100, Some("B8")).unwrap();
        assert_eq!(list[0].active_time, 170);
        assert_eq!(db.devices_mark_per_device_many(&["B1".into(), "NEW".into()]).unwrap(), vec!["B1".to_string(), "NEW".to_string()]);
        assert!(db.device_per_device("NEW").unwrap());
        assert_eq!(db.devices_count().unwrap().2, 51);
    }
}
