//! PostgreSQL side of `batch.rs`: each report kind of a batch is one
//! multi-row `UPDATE … FROM unnest(…)`; the few devices without a row get
//! one (one by one, while the table has room) and their row written after.

use super::batch::{report_sql, ReportRow, StateRow};
use super::devices::Report;
use super::pg::{ensure, Pg};
use std::collections::HashSet;

fn multi_sql(kind: Report) -> &'static str {
    match kind {
        Report::Sys => "UPDATE devices d SET sys = v.t, dur = CASE WHEN d.sys_rev > 0 THEN v.n - d.sys_rev ELSE d.dur END, sys_rev = v.n, active_time = v.n \
                        FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[]) AS v(sn, t, n) WHERE d.sn = v.sn RETURNING d.sn",
        Report::Procs => "UPDATE devices d SET procs = v.t, dur = CASE WHEN d.procs_rev > 0 AND d.sys_rev = 0 THEN v.n - d.procs_rev ELSE d.dur END, procs_rev = v.n, active_time = v.n \
                          FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[]) AS v(sn, t, n) WHERE d.sn = v.sn RETURNING d.sn",
        Report::Versions => "UPDATE devices d SET versions = v.t, active_time = v.n \
                             FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[]) AS v(sn, t, n) WHERE d.sn = v.sn RETURNING d.sn",
    }
}

/// `?N` placeholders as PostgreSQL's `$N`.
fn dollars(sql: &str) -> String {
    sql.replace('?', "$")
}

impl Pg {
    pub fn devices_state_many(&self, rows: &[StateRow]) -> Result<Vec<(bool, usize)>, String> {
        self.tx(|c| {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                if !ensure(c, &r.sn)? {
                    out.push((false, 0));
                    continue;
                }
                if r.online {
                    let changed = c.execute("UPDATE devices SET online = 1, online_time = $2 WHERE sn = $1 AND online = 0", &[&r.sn, &r.now])? == 1;
                    c.execute(
                        "UPDATE devices SET active_time = $2, boot_time = COALESCE($3::BIGINT, boot_time), ver = COALESCE($4::TEXT, ver), signed = $5::BIGINT WHERE sn = $1",
                        &[&r.sn, &r.now, &r.boot_time, &r.ver, &r.signed.map(i64::from)],
                    )?;
                    let woken = c.execute("UPDATE commands SET next_at = $2 WHERE sn = $1 AND state = 0 AND next_at > $2", &[&r.sn, &r.now])? as usize;
                    out.push((changed, woken));
                } else {
                    let changed = c.execute("UPDATE devices SET online = 0, offline_time = $2 WHERE sn = $1 AND online = 1", &[&r.sn, &r.now])? == 1;
                    out.push((changed, 0));
                }
            }
            Ok(out)
        })
    }

    pub fn devices_report_batch(&self, rows: &[ReportRow], touches: &[(String, i64)]) -> Result<usize, String> {
        self.tx(|c| {
            let mut n = 0;
            for kind in [Report::Sys, Report::Procs, Report::Versions] {
                let of: Vec<&ReportRow> = rows.iter().filter(|r| r.kind == kind).collect();
                if of.is_empty() {
                    continue;
                }
                let sns: Vec<String> = of.iter().map(|r| r.sn.clone()).collect();
                let texts: Vec<String> = of.iter().map(|r| r.text.clone()).collect();
                let nows: Vec<i64> = of.iter().map(|r| r.now).collect();
                let done: HashSet<String> = c.query(multi_sql(kind), &[&sns, &texts, &nows])?.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect();
                n += done.len();
                for r in of.iter().filter(|r| !done.contains(&r.sn)) {
                    if ensure(c, &r.sn)? {
                        n += c.execute(&dollars(report_sql(kind)), &[&r.sn, &r.text, &r.now])? as usize;
                    }
                }
            }
            if !touches.is_empty() {
                let sns: Vec<String> = touches.iter().map(|t| t.0.clone()).collect();
                let nows: Vec<i64> = touches.iter().map(|t| t.1).collect();
                c.execute(
                    "UPDATE devices d SET active_time = v.n FROM unnest($1::TEXT[], $2::BIGINT[]) AS v(sn, n) WHERE d.sn = v.sn AND d.active_time < v.n",
                    &[&sns, &nows],
                )?;
            }
            Ok(n)
        })
    }

    pub fn devices_mark_per_device_many(&self, sns: &[String]) -> Result<Vec<String>, String> {
        self.tx(|c| {
            let sns: Vec<String> = sns.to_vec();
            let done: HashSet<String> =
                c.query("UPDATE devices SET per_device = 1 WHERE sn = ANY($1::TEXT[]) RETURNING sn", &[&sns])?.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect();
            let mut marked: Vec<String> = Vec::with_capacity(sns.len());
            for sn in &sns {
                if done.contains(sn) {
                    marked.push(sn.clone());
                } else if ensure(c, sn)? && c.execute("UPDATE devices SET per_device = 1 WHERE sn = $1", &[sn])? == 1 {
                    marked.push(sn.clone());
                }
            }
            Ok(marked)
        })
    }
}
