//! PostgreSQL side of `batch.rs`: each report kind of a batch is one
//! multi-row `UPDATE … FROM unnest(…)`; the devices without a row get one
//! in one multi-row INSERT (while the kept count is under the bound) and
//! their rows written by a second multi-row UPDATE. States (births of a
//! fleet) the same way: a handful of statements per batch, not per device.

use super::batch::{ReportRow, StateRow, TxTiming};
use super::devices::Report;
use super::pg::{ensure_many, Pg};
use std::collections::{HashMap, HashSet};

/// Rows in a telemetry batch from which it is written in two halves at
/// once (`devices_report_batch`): in a burst the statements were
/// PostgreSQL's bottleneck, one backend busy while the other core waited.
const SPLIT_MIN: usize = 1000;

/// Which half of a split batch a serial's rows go to (any fixed split of
/// the serials keeps each device's rows in one half).
fn first_half(sn: &str) -> bool {
    sn.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 2 == 0
}

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

/// The rows in rounds, each naming a device at most once, a device's rows
/// in their order (a birth and then a will of one device in one batch).
fn rounds(rows: &[StateRow]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (k, r) in rows.iter().enumerate() {
        let round = seen.get(r.sn.as_str()).map_or(0, |n| n + 1);
        seen.insert(&r.sn, round);
        if out.len() <= round {
            out.push(Vec::new());
        }
        if let Some(v) = out.get_mut(round) {
            v.push(k);
        }
    }
    out
}

/// This transaction's multi-row statements find their rows through the
/// serial's index, one lookup per row. Given the arrays' real length, the
/// planner chose a hash join over a sequential scan of the whole devices
/// table for a batch of a few thousand rows (auto_explain at 50,000
/// devices: 1.0 s for 3,855 rows, 0.8 s of it the scan and its pruning),
/// which grows with the fleet, not the batch; 5,000 index lookups take
/// tens of milliseconds.
fn by_index(c: &mut postgres::Transaction) -> Result<(), postgres::Error> {
    c.batch_execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
}

/// The serials a multi-row statement returned (`RETURNING sn`), counted.
fn returned(rows: Vec<postgres::Row>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in rows {
        if let Ok(sn) = r.try_get::<_, String>(0) {
            *m.entry(sn).or_insert(0) += 1;
        }
    }
    m
}

impl Pg {
    pub fn devices_state_many(&self, rows: &[StateRow]) -> Result<Vec<(bool, usize)>, String> {
        self.tx(|c| {
            by_index(c)?;
            let sns: Vec<String> = rows.iter().map(|r| r.sn.clone()).collect();
            let known = ensure_many(c, &sns)?;
            let mut out = vec![(false, 0); rows.len()];
            for round in rounds(rows) {
                let (on, off): (Vec<usize>, Vec<usize>) = round.into_iter().filter(|k| rows.get(*k).is_some_and(|r| known.contains(&r.sn))).partition(|k| rows.get(*k).is_some_and(|r| r.online));
                let pick = |ks: &[usize]| -> Vec<&StateRow> { ks.iter().filter_map(|k| rows.get(*k)).collect() };
                let (on_rows, off_rows) = (pick(&on), pick(&off));
                let (mut changed, mut woken) = (HashMap::new(), HashMap::new());
                if !on_rows.is_empty() {
                    let sn: Vec<&str> = on_rows.iter().map(|r| r.sn.as_str()).collect();
                    let now: Vec<i64> = on_rows.iter().map(|r| r.now).collect();
                    let boot: Vec<Option<i64>> = on_rows.iter().map(|r| r.boot_time).collect();
                    let ver: Vec<Option<&str>> = on_rows.iter().map(|r| r.ver.as_deref()).collect();
                    let signed: Vec<Option<i64>> = on_rows.iter().map(|r| r.signed.map(i64::from)).collect();
                    changed = returned(c.query(
                        "UPDATE devices d SET online = 1, online_time = v.n FROM unnest($1::TEXT[], $2::BIGINT[]) AS v(sn, n) WHERE d.sn = v.sn AND d.online = 0 RETURNING d.sn",
                        &[&sn, &now],
                    )?);
                    c.execute(
                        "UPDATE devices d SET active_time = v.n, boot_time = COALESCE(v.b, d.boot_time), ver = COALESCE(v.ver, d.ver), signed = v.sg \
                         FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[]) AS v(sn, n, b, ver, sg) WHERE d.sn = v.sn",
                        &[&sn, &now, &boot, &ver, &signed],
                    )?;
                    woken = returned(c.query(
                        "UPDATE commands c SET next_at = v.n FROM unnest($1::TEXT[], $2::BIGINT[]) AS v(sn, n) WHERE c.sn = v.sn AND c.state = 0 AND c.next_at > v.n RETURNING c.sn",
                        &[&sn, &now],
                    )?);
                }
                if !off_rows.is_empty() {
                    let sn: Vec<&str> = off_rows.iter().map(|r| r.sn.as_str()).collect();
                    let now: Vec<i64> = off_rows.iter().map(|r| r.now).collect();
                    changed.extend(returned(c.query(
                        "UPDATE devices d SET online = 0, offline_time = v.n FROM unnest($1::TEXT[], $2::BIGINT[]) AS v(sn, n) WHERE d.sn = v.sn AND d.online = 1 RETURNING d.sn",
                        &[&sn, &now],
                    )?));
                }
                for k in on.iter().chain(off.iter()) {
                    if let (Some(r), Some(slot)) = (rows.get(*k), out.get_mut(*k)) {
                        *slot = (changed.contains_key(&r.sn), if r.online { woken.get(&r.sn).copied().unwrap_or(0) } else { 0 });
                    }
                }
            }
            Ok(out)
        })
    }

    /// A batch of `SPLIT_MIN` rows or more is written as two transactions
    /// at once on two connections, its devices split by serial: each
    /// device's rows are in one of them, so its reports stay in order from
    /// batch to batch, and each half keeps the serial order (rows are
    /// locked in one order by every transaction). A crash (or an error in
    /// one half) can leave one half written: telemetry only, which the
    /// next reports replace.
    pub fn devices_report_batch(&self, rows: &[ReportRow], touches: &[(String, i64)]) -> Result<(usize, TxTiming), String> {
        if rows.len() + touches.len() < SPLIT_MIN {
            return self.report_part(&rows.iter().collect::<Vec<_>>(), &touches.iter().collect::<Vec<_>>());
        }
        let (ra, rb): (Vec<_>, Vec<_>) = rows.iter().partition(|r| first_half(&r.sn));
        let (ta, tb): (Vec<_>, Vec<_>) = touches.iter().partition(|t| first_half(&t.0));
        std::thread::scope(|s| {
            let other = s.spawn(|| self.report_part(&rb, &tb));
            let a = self.report_part(&ra, &ta);
            let b = other.join().unwrap_or_else(|_| Err("postgres: the batch's second half failed".into()));
            let ((na, x), (nb, y)) = (a?, b?);
            Ok((na + nb, TxTiming { lock: x.lock.max(y.lock), write: x.write.max(y.write), commit: x.commit.max(y.commit) }))
        })
    }

    fn report_part(&self, rows: &[&ReportRow], touches: &[&(String, i64)]) -> Result<(usize, TxTiming), String> {
        if rows.is_empty() && touches.is_empty() {
            return Ok((0, TxTiming::default()));
        }
        self.tx_timed(|c| {
            by_index(c)?;
            let mut n = 0;
            for kind in [Report::Sys, Report::Procs, Report::Versions] {
                let of: Vec<&ReportRow> = rows.iter().copied().filter(|r| r.kind == kind).collect();
                if of.is_empty() {
                    continue;
                }
                let update = |c: &mut postgres::Transaction, of: &[&ReportRow]| -> Result<HashSet<String>, postgres::Error> {
                    let sns: Vec<&str> = of.iter().map(|r| r.sn.as_str()).collect();
                    let texts: Vec<&str> = of.iter().map(|r| r.text.as_str()).collect();
                    let nows: Vec<i64> = of.iter().map(|r| r.now).collect();
                    Ok(c.query(multi_sql(kind), &[&sns, &texts, &nows])?.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect())
                };
                let done = update(c, &of)?;
                n += done.len();
                // Devices without a row: made in one statement, then written.
                let missing: Vec<&ReportRow> = of.into_iter().filter(|r| !done.contains(&r.sn)).collect();
                if !missing.is_empty() {
                    let known = ensure_many(c, &missing.iter().map(|r| r.sn.clone()).collect::<Vec<_>>())?;
                    let now_known: Vec<&ReportRow> = missing.into_iter().filter(|r| known.contains(&r.sn)).collect();
                    if !now_known.is_empty() {
                        n += update(c, &now_known)?.len();
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
            let mut done: HashSet<String> =
                c.query("UPDATE devices SET per_device = 1 WHERE sn = ANY($1::TEXT[]) RETURNING sn", &[&sns])?.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect();
            let missing: Vec<String> = sns.iter().filter(|sn| !done.contains(*sn)).cloned().collect();
            if !missing.is_empty() {
                let known: Vec<String> = ensure_many(c, &missing)?.into_iter().collect();
                if !known.is_empty() {
                    done.extend(c.query("UPDATE devices SET per_device = 1 WHERE sn = ANY($1::TEXT[]) RETURNING sn", &[&known])?.iter().filter_map(|r| r.try_get::<_, String>(0).ok()));
                }
            }
            Ok(sns.into_iter().filter(|sn| done.contains(sn)).collect())
        })
    }
}
