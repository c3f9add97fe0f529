//! The PostgreSQL backend: the same tables and the same conditional
//! statements as the SQLite one, in PostgreSQL's dialect, for instances on
//! several machines sharing one database. One connection per instance
//! (re-opened when it breaks).

use super::commands::{Answer, Answered, Cmd, NewCommand, COLS, IN_PROGRESS, OK};
use super::devices::{Device, Report, DEVICE_COLS, MAX_DEVICES, MAX_PERIPHERALS};
use super::hooks::{HookKind, Route, CB_COLS, RT_COLS};
use crate::ids;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row};
use serde_json::{json, Value};
use std::sync::Mutex;

// `device_counts` is kept by triggers that run at commit (DEFERRED):
// the count endpoint, the device list's total and the table's bound read
// one row instead of counting 100,000 (a `COUNT(*)` per new device made
// 100,000 births never finish). Deferred, the counter row is locked only
// in the last step of a transaction, after every device row it touches:
// two transactions can wait for it in turn but never for each other in a
// cycle. Telemetry never sets `online`, so its UPDATEs fire nothing. The
// bound can be passed by the new devices of the transactions in flight
// (at most a batch each), not more.
//
// Bump `SCHEMA_VERSION` with any change here: a database that says it has
// this version is not sent the schema again (`ensure_schema`).
const SCHEMA: &str = "
SELECT pg_advisory_lock(7346201);
CREATE TABLE IF NOT EXISTS devices (
    sn TEXT PRIMARY KEY, online BIGINT NOT NULL DEFAULT 0, online_time BIGINT NOT NULL DEFAULT 0,
    offline_time BIGINT NOT NULL DEFAULT 0, active_time BIGINT NOT NULL DEFAULT 0, boot_time BIGINT NOT NULL DEFAULT -1,
    dur BIGINT NOT NULL DEFAULT 0, ver TEXT NOT NULL DEFAULT '', sys TEXT NOT NULL DEFAULT '', procs TEXT NOT NULL DEFAULT '',
    versions TEXT NOT NULL DEFAULT '', sys_rev BIGINT NOT NULL DEFAULT 0, procs_rev BIGINT NOT NULL DEFAULT 0);
ALTER TABLE devices ADD COLUMN IF NOT EXISTS per_device BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS signed BIGINT;
-- Half of each page left free: a telemetry UPDATE (no indexed column
-- changes) then writes its new row version on the same page (a HOT update),
-- with no new entries in the two indexes and no table growth between
-- vacuums. Measured on 50,000 devices: 5,000-row batches 30-40 ms instead
-- of 50-85 ms, every update HOT instead of 16 %. New pages only: an existing
-- table keeps its pages until it is rewritten (VACUUM FULL).
ALTER TABLE devices SET (fillfactor = 50);
CREATE TABLE IF NOT EXISTS peripherals (
    sn TEXT NOT NULL, nid TEXT NOT NULL, gw_id TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL DEFAULT '',
    online BIGINT NOT NULL DEFAULT 0, active_time BIGINT NOT NULL DEFAULT 0, rev_time BIGINT NOT NULL DEFAULT 0,
    msg TEXT NOT NULL DEFAULT '', PRIMARY KEY (sn, nid));
CREATE TABLE IF NOT EXISTS commands (
    id BIGINT PRIMARY KEY, sn TEXT NOT NULL, origin TEXT NOT NULL, command TEXT NOT NULL, method TEXT NOT NULL,
    body TEXT NOT NULL, detached BIGINT NOT NULL, publish_now BIGINT NOT NULL, max_retries BIGINT NOT NULL,
    expires BIGINT NOT NULL, create_time BIGINT NOT NULL, state BIGINT NOT NULL DEFAULT 0, try_times BIGINT NOT NULL DEFAULT 0,
    publish_time BIGINT NOT NULL DEFAULT 0, finish_time BIGINT NOT NULL DEFAULT 0, failed_time BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '', response TEXT, rev_time BIGINT NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS commands_pending ON commands (state, next_at);
CREATE INDEX IF NOT EXISTS commands_sn ON commands (sn, state);
CREATE TABLE IF NOT EXISTS command_seq (day BIGINT PRIMARY KEY, n BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS callbacks (
    id BIGSERIAL PRIMARY KEY, type TEXT NOT NULL UNIQUE, url TEXT NOT NULL, enabled BIGINT NOT NULL,
    create_time BIGINT NOT NULL, update_time BIGINT NOT NULL, succ_count BIGINT NOT NULL DEFAULT 0, failed_count BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS routes (
    id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, topic TEXT NOT NULL, url TEXT NOT NULL,
    create_time BIGINT NOT NULL, update_time BIGINT NOT NULL, succ_count BIGINT NOT NULL DEFAULT 0, failed_count BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (digest TEXT PRIMARY KEY, usr TEXT NOT NULL, expires BIGINT NOT NULL);
ALTER TABLE commands ADD COLUMN IF NOT EXISTS redacted BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS commands_unredacted ON commands (id) WHERE redacted = 0 AND state IN (2, 3);
CREATE INDEX IF NOT EXISTS devices_online ON devices (online, sn);
CREATE INDEX IF NOT EXISTS peripherals_kind ON peripherals (kind, sn);
CREATE INDEX IF NOT EXISTS commands_origin ON commands (origin, state);
CREATE TABLE IF NOT EXISTS events (
    id BIGSERIAL PRIMARY KEY, sn TEXT NOT NULL, eid BIGINT, type TEXT NOT NULL, time BIGINT NOT NULL,
    rev_time BIGINT NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS events_eid ON events (sn, eid);
CREATE INDEX IF NOT EXISTS events_sn ON events (sn, id);
CREATE INDEX IF NOT EXISTS events_type ON events (type, id);
CREATE TABLE IF NOT EXISTS device_counts (id BIGINT PRIMARY KEY CHECK (id = 1), total BIGINT NOT NULL, online BIGINT NOT NULL);
CREATE OR REPLACE FUNCTION device_counts_f() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE device_counts SET total = total + 1, online = online + NEW.online WHERE id = 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE device_counts SET total = total - 1, online = online - OLD.online WHERE id = 1;
    ELSE
        UPDATE device_counts SET online = online + NEW.online - OLD.online WHERE id = 1;
    END IF;
    RETURN NULL;
END $f$;
DO $d$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'device_counts_upd') THEN
        LOCK TABLE devices IN SHARE ROW EXCLUSIVE MODE;
        DELETE FROM device_counts;
        INSERT INTO device_counts (id, total, online) SELECT 1, COUNT(*), COALESCE(SUM(online), 0) FROM devices;
        CREATE CONSTRAINT TRIGGER device_counts_ins AFTER INSERT OR DELETE ON devices DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION device_counts_f();
        CREATE CONSTRAINT TRIGGER device_counts_upd AFTER UPDATE OF online ON devices DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (OLD.online IS DISTINCT FROM NEW.online) EXECUTE FUNCTION device_counts_f();
    END IF;
END $d$;
-- The serials alone, in their own narrow table: a deep page of the device
-- list is found by walking this table's index (`devices_page`). The devices
-- table is rewritten thousands of times a second by telemetry (its index
-- entries lead to many dead row versions, each checked); these rows are
-- written once, when a device is first seen.
CREATE TABLE IF NOT EXISTS device_order (sn TEXT PRIMARY KEY);
CREATE OR REPLACE FUNCTION device_order_f() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO device_order (sn) VALUES (NEW.sn) ON CONFLICT DO NOTHING;
    ELSE
        DELETE FROM device_order WHERE sn = OLD.sn;
    END IF;
    RETURN NULL;
END $f$;
DO $d$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'device_order_t') THEN
        LOCK TABLE devices IN SHARE ROW EXCLUSIVE MODE;
        INSERT INTO device_order (sn) SELECT sn FROM devices ON CONFLICT DO NOTHING;
        CREATE TRIGGER device_order_t AFTER INSERT OR DELETE ON devices FOR EACH ROW EXECUTE FUNCTION device_order_f();
    END IF;
END $d$;
CREATE TABLE IF NOT EXISTS platform_schema (version BIGINT NOT NULL);
DELETE FROM platform_schema;
INSERT INTO platform_schema (version) VALUES (1);
SELECT pg_advisory_unlock(7346201);
";

/// The schema's version, written by `SCHEMA` itself (its last INSERT).
const SCHEMA_VERSION: i64 = 1;

/// Make the schema unless the database already has this version. The
/// schema runs as one implicit transaction whose `CREATE INDEX IF NOT
/// EXISTS` and `ALTER TABLE` lock whole tables even when there is nothing
/// to do: sent on every start, it held up (and could deadlock with) the
/// work of the other instances sharing the database.
fn ensure_schema(c: &mut Client) -> Result<(), String> {
    let has = |c: &mut Client| -> R<bool> {
        if !c.query_one("SELECT to_regclass('platform_schema') IS NOT NULL", &[])?.try_get::<_, bool>(0)? {
            return Ok(false);
        }
        Ok(c.query_opt("SELECT version FROM platform_schema", &[])?.map(|r| r.try_get::<_, i64>(0)).transpose()? == Some(SCHEMA_VERSION))
    };
    if has(c).map_err(|e| format!("postgres: schema version: {e}"))? {
        return Ok(());
    }
    c.batch_execute(SCHEMA).map_err(|e| format!("postgres: schema: {e}"))
}


type P<'a> = &'a (dyn ToSql + Sync);
type R<T> = Result<T, postgres::Error>;

/// Connections per instance: the ingest workers (two for a large
/// telemetry batch, `pg_batch.rs`), the scheduler and the API handlers
/// each get one while they work, so a telemetry batch does not hold up an
/// answer (one connection serialised them all).
const CONNECTIONS: usize = 6;

pub struct Pg {
    url: String,
    clients: Vec<Mutex<Option<Client>>>,
    next: std::sync::atomic::AtomicUsize,
}

fn connect(url: &str) -> Result<Client, String> {
    Client::connect(url, NoTls).map_err(|e| format!("postgres: {e}"))
}

fn i(r: &Row, k: usize) -> R<i64> {
    r.try_get(k)
}

fn s(r: &Row, k: usize) -> R<String> {
    r.try_get(k)
}

pub(super) fn device_row(r: &Row) -> R<Device> {
    Ok(Device {
        sn: s(r, 0)?,
        online: i(r, 1)? != 0,
        online_time: i(r, 2)?,
        offline_time: i(r, 3)?,
        active_time: i(r, 4)?,
        boot_time: i(r, 5)?,
        dur: i(r, 6)?,
        sys: s(r, 7)?,
        procs: s(r, 8)?,
        versions: s(r, 9)?,
        signed: r.try_get::<_, Option<i64>>(10)?.map(|s| s != 0),
    })
}

fn periph_json(r: &Row) -> R<Value> {
    Ok(json!({
        "sn": s(r, 0)?, "nId": s(r, 1)?, "gwId": s(r, 2)?, "kind": s(r, 3)?, "online": i(r, 4)? != 0,
        "activeTime": i(r, 5)?, "revTime": i(r, 6)?, "msg": s(r, 7)?,
    }))
}

fn callback_json(r: &Row) -> R<Value> {
    Ok(json!({
        "id": i(r, 0)?, "type": s(r, 1)?, "url": s(r, 2)?, "enabled": i(r, 3)? != 0, "createTime": i(r, 4)?,
        "updateTime": i(r, 5)?, "succCount": i(r, 6)?, "failedCount": i(r, 7)?,
    }))
}

fn route_json(r: &Row) -> R<Value> {
    Ok(json!({
        "id": i(r, 0)?, "name": s(r, 1)?, "topic": s(r, 2)?, "url": s(r, 3)?, "createTime": i(r, 4)?,
        "updateTime": i(r, 5)?, "succCount": i(r, 6)?, "failedCount": i(r, 7)?,
    }))
}

fn cmd(r: &Row) -> R<Cmd> {
    Ok(Cmd {
        id: i(r, 0)? as u64,
        spec: NewCommand {
            sn: s(r, 1)?,
            origin: s(r, 2)?,
            command: s(r, 3)?,
            method: s(r, 4)?,
            body: s(r, 5)?,
            detached: i(r, 6)? != 0,
            publish_now: i(r, 7)? != 0,
            max_retries: i(r, 8)?,
            expires: i(r, 9)?,
        },
        create_time: i(r, 10)?,
        state: i(r, 11)?,
        try_times: i(r, 12)?,
        publish_time: i(r, 13)?,
        finish_time: i(r, 14)?,
        failed_time: i(r, 15)?,
        next_at: i(r, 16)?,
        reason: s(r, 17)?,
        response: r.try_get(18)?,
        rev_time: i(r, 19)?,
    })
}

fn all<T>(rows: Vec<Row>, f: impl Fn(&Row) -> R<T>) -> R<Vec<T>> {
    rows.iter().map(f).collect()
}

fn counts(c: &mut impl GenericClient, table: &str) -> R<(i64, i64, i64)> {
    let r = c.query_one(&format!("SELECT COALESCE(SUM(online), 0)::BIGINT, COUNT(*) FROM {table}"), &[])?;
    let (on, total) = (i(&r, 0)?, i(&r, 1)?);
    Ok((on, total - on, total))
}

/// Make sure the device has a row; false when it has none and the table is full.
pub(super) fn ensure(c: &mut impl GenericClient, sn: &str) -> R<bool> {
    Ok(!ensure_many(c, &[sn.to_string()])?.is_empty())
}

/// Make sure these devices have rows (new ones while the kept count is
/// under the bound), in two statements whatever their number: returns
/// those that have a row.
pub(super) fn ensure_many(c: &mut impl GenericClient, sns: &[String]) -> R<std::collections::HashSet<String>> {
    if sns.is_empty() {
        return Ok(Default::default());
    }
    c.execute(
        "INSERT INTO devices (sn) SELECT v.sn FROM (SELECT DISTINCT sn FROM unnest($1::TEXT[]) AS u(sn)) v          WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.sn = v.sn)          LIMIT GREATEST(0, $2 - COALESCE((SELECT total FROM device_counts WHERE id = 1), 0)) ON CONFLICT DO NOTHING",
        &[&sns, &MAX_DEVICES],
    )?;
    c.query("SELECT sn FROM devices WHERE sn = ANY($1::TEXT[])", &[&sns])?.iter().map(|r| r.try_get::<_, String>(0)).collect()
}

/// (online, offline, total) of the devices, from the trigger-kept counts.
fn device_counts(c: &mut impl GenericClient) -> R<(i64, i64, i64)> {
    Ok(match c.query_opt("SELECT online, total FROM device_counts WHERE id = 1", &[])? {
        Some(r) => {
            let (on, total) = (i(&r, 0)?, i(&r, 1)?);
            (on, total - on, total)
        }
        None => (0, 0, 0),
    })
}

fn get_cmd(c: &mut impl GenericClient, id: u64, lock: bool) -> R<Option<Cmd>> {
    let sql = format!("SELECT {COLS} FROM commands WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    c.query_opt(&sql, &[&(id as i64)])?.map(|r| cmd(&r)).transpose()
}

/// An answer to write: (command id, response, reason).
type AnswerRow<'a> = (i64, &'a str, &'a str);

/// One answer inside a transaction (`command_answer`).
fn answer_in(c: &mut postgres::Transaction, a: &Answer, now: i64, retry_delay: i64) -> R<Answered> {
    let Answer { id, sn, ok, reason, response } = *a;
    let idv = id as i64;
    let Some(cmd) = get_cmd(c, id, true)? else { return Ok(Answered::Unknown) };
    if let Some(ignored) = super::commands::not_believed(&cmd, sn) {
        return Ok(ignored);
    }
    if ok {
        c.execute("UPDATE commands SET state = 2, finish_time = $2, response = $3, rev_time = $2, reason = '', next_at = 0 WHERE id = $1", &[&idv, &now, &response])?;
        return Ok(Answered::Done(OK));
    }
    let live = cmd.expiry().is_none_or(|e| now < e);
    if cmd.state == IN_PROGRESS && cmd.try_times < cmd.spec.max_retries && live {
        c.execute(
            "UPDATE commands SET response = $2, rev_time = $3, reason = $4, next_at = $5 WHERE id = $1",
            &[&idv, &response, &now, &reason, &now.saturating_add(retry_delay)],
        )?;
        return Ok(Answered::Retry);
    }
    c.execute(
        "UPDATE commands SET failed_time = CASE WHEN state = 3 THEN failed_time ELSE $3 END, reason = CASE WHEN state = 3 THEN reason ELSE $4 END, \
         state = 3, response = $2, rev_time = $3, next_at = 0 WHERE id = $1",
        &[&idv, &response, &now, &reason],
    )?;
    Ok(Answered::Done(super::commands::FAILED))
}

impl Pg {
    pub fn open(url: &str) -> Result<Pg, String> {
        let mut c = connect(url)?;
        ensure_schema(&mut c)?;
        // One connection opened (and the schema made) now; the others when
        // first needed, without the schema: its ALTER TABLEs take exclusive
        // locks, and a connection opened under load (a burst's second
        // writer) deadlocked with an answer's UPDATE of `commands`.
        let mut clients = vec![Mutex::new(Some(c))];
        clients.extend((1..CONNECTIONS).map(|_| Mutex::new(None)));
        Ok(Pg { url: url.to_string(), clients, next: std::sync::atomic::AtomicUsize::new(0) })
    }

    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Client) -> R<T>) -> Result<T, String> {
        // A free connection if there is one, else wait for one in turn.
        let mut g = match self.clients.iter().find_map(|m| m.try_lock().ok()) {
            Some(g) => g,
            None => {
                let k = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.clients.len().max(1);
                match self.clients.get(k) {
                    Some(m) => m.lock().unwrap_or_else(|p| p.into_inner()),
                    None => return Err("postgres: no connection".into()),
                }
            }
        };
        if g.as_ref().is_none_or(|c| c.is_closed()) {
            *g = Some(connect(&self.url)?);
        }
        let Some(c) = g.as_mut() else { return Err("postgres: no connection".into()) };
        f(c).map_err(|e| format!("postgres: {e}"))
    }

    /// Like `tx`, saying where the time went (`lock`: waiting for a connection).
    pub(super) fn tx_timed<T>(&self, f: impl FnOnce(&mut postgres::Transaction) -> R<T>) -> Result<(T, super::batch::TxTiming), String> {
        let t0 = std::time::Instant::now();
        self.with(|c| {
            let t1 = std::time::Instant::now();
            let mut tx = c.transaction()?;
            let v = f(&mut tx)?;
            let t2 = std::time::Instant::now();
            tx.commit()?;
            Ok((v, super::batch::TxTiming { lock: t1 - t0, write: t2 - t1, commit: t2.elapsed() }))
        })
    }

    pub(super) fn tx<T>(&self, f: impl FnOnce(&mut postgres::Transaction) -> R<T>) -> Result<T, String> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let v = f(&mut tx)?;
            tx.commit()?;
            Ok(v)
        })
    }

    fn exec(&self, sql: &str, p: &[P]) -> Result<usize, String> {
        self.with(|c| c.execute(sql, p).map(|n| n as usize))
    }

    pub fn session_add(&self, digest: &str, user: &str, expires: i64, now: i64) -> Result<(), String> {
        self.with(|c| {
            c.execute("DELETE FROM sessions WHERE expires <= $1", &[&now])?;
            c.execute("INSERT INTO sessions (digest, usr, expires) VALUES ($1, $2, $3)", &[&digest, &user, &expires])?;
            Ok(())
        })
    }

    pub fn session_user(&self, digest: &str, now: i64) -> Result<Option<String>, String> {
        self.with(|c| c.query_opt("SELECT usr FROM sessions WHERE digest = $1 AND expires > $2", &[&digest, &now])?.map(|r| s(&r, 0)).transpose())
    }

    pub fn commands_unredacted(&self, limit: i64) -> Result<Vec<(u64, String)>, String> {
        self.with(|c| {
            let rows = c.query("SELECT id, body FROM commands WHERE state IN (2, 3) AND redacted = 0 ORDER BY id LIMIT $1", &[&limit])?;
            rows.iter().map(|r| Ok((i(r, 0)? as u64, s(r, 1)?))).collect()
        })
    }

    /// As the SQLite one: a pass's commands in one transaction (the masked
    /// bodies in one multi-row statement, the others flagged in another).
    pub fn commands_redact(&self, rows: &[(u64, Option<String>)]) -> Result<usize, String> {
        let (mut ids, mut bodies, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        for (id, body) in rows {
            match body {
                Some(b) => {
                    ids.push(*id as i64);
                    bodies.push(b.as_str());
                }
                None => plain.push(*id as i64),
            }
        }
        self.tx(|c| {
            let mut n = c.execute(
                "UPDATE commands c SET body = v.body, redacted = 1 FROM unnest($1::BIGINT[], $2::TEXT[]) AS v(id, body) WHERE c.id = v.id AND c.state IN (2, 3)",
                &[&ids, &bodies],
            )?;
            n += c.execute("UPDATE commands SET redacted = 1 WHERE id = ANY($1::BIGINT[]) AND state IN (2, 3)", &[&plain])?;
            Ok(n as usize)
        })
    }

    pub fn session_delete(&self, digest: &str) -> Result<usize, String> {
        self.exec("DELETE FROM sessions WHERE digest = $1", &[&digest])
    }

    pub fn device_state(&self, sn: &str, online: bool, boot_time: Option<i64>, ver: Option<&str>, signed: Option<bool>, now: i64) -> Result<bool, String> {
        let signed = signed.map(i64::from);
        self.tx(|c| {
            if !ensure(c, sn)? {
                return Ok(false);
            }
            if online {
                let changed = c.execute("UPDATE devices SET online = 1, online_time = $2 WHERE sn = $1 AND online = 0", &[&sn, &now])? == 1;
                c.execute(
                    "UPDATE devices SET active_time = $2, boot_time = COALESCE($3::BIGINT, boot_time), ver = COALESCE($4::TEXT, ver), signed = $5::BIGINT WHERE sn = $1",
                    &[&sn, &now, &boot_time, &ver, &signed],
                )?;
                Ok(changed)
            } else {
                Ok(c.execute("UPDATE devices SET online = 0, offline_time = $2 WHERE sn = $1 AND online = 1", &[&sn, &now])? == 1)
            }
        })
    }

    pub fn device_report(&self, sn: &str, kind: Report, text: &str, now: i64) -> Result<(), String> {
        self.tx(|c| {
            if !ensure(c, sn)? {
                return Ok(());
            }
            let sql = match kind {
                Report::Sys => "UPDATE devices SET sys = $2, dur = CASE WHEN sys_rev > 0 THEN $3 - sys_rev ELSE dur END, sys_rev = $3, active_time = $3 WHERE sn = $1",
                Report::Procs => "UPDATE devices SET procs = $2, dur = CASE WHEN procs_rev > 0 AND sys_rev = 0 THEN $3 - procs_rev ELSE dur END, procs_rev = $3, active_time = $3 WHERE sn = $1",
                Report::Versions => "UPDATE devices SET versions = $2, active_time = $3 WHERE sn = $1",
            };
            c.execute(sql, &[&sn, &text, &now])?;
            Ok(())
        })
    }

    pub fn device_touch(&self, sn: &str, now: i64) -> Result<(), String> {
        self.exec("UPDATE devices SET active_time = $2 WHERE sn = $1", &[&sn, &now]).map(|_| ())
    }

    pub fn device_per_device(&self, sn: &str) -> Result<bool, String> {
        self.with(|c| Ok(c.query_opt("SELECT per_device FROM devices WHERE sn = $1", &[&sn])?.map(|r| i(&r, 0)).transpose()? == Some(1)))
    }

    pub fn device_mark_per_device(&self, sn: &str) -> Result<bool, String> {
        self.tx(|c| {
            if !ensure(c, sn)? {
                return Ok(false);
            }
            c.execute("UPDATE devices SET per_device = 1 WHERE sn = $1", &[&sn])?;
            Ok(true)
        })
    }

    pub fn device_online(&self, sn: &str) -> Result<bool, String> {
        self.with(|c| Ok(c.query_opt("SELECT online FROM devices WHERE sn = $1", &[&sn])?.map(|r| i(&r, 0)).transpose()? == Some(1)))
    }

    /// As the SQLite one: the page's first serial found on the serial index
    /// alone, the total from the kept counts.
    pub fn devices_page(&self, page: i64, limit: i64, sn: Option<&str>) -> Result<(i64, Vec<Device>), String> {
        self.with(|c| {
            if let Some(sn) = sn {
                let list = all(c.query(&format!("SELECT {DEVICE_COLS} FROM devices WHERE sn = $1"), &[&sn])?, device_row)?;
                return Ok((list.len() as i64, list));
            }
            let total = device_counts(c)?.2;
            let rows = c.query(
                &format!("SELECT {DEVICE_COLS} FROM devices WHERE sn >= (SELECT sn FROM device_order ORDER BY sn LIMIT 1 OFFSET $2) ORDER BY sn LIMIT $1"),
                &[&limit, &(page - 1).saturating_mul(limit)],
            )?;
            Ok((total, all(rows, device_row)?))
        })
    }

    pub fn devices_count(&self) -> Result<(i64, i64, i64), String> {
        self.with(device_counts)
    }

    pub fn devices_connected(&self) -> Result<Vec<(String, i64)>, String> {
        self.with(|c| all(c.query("SELECT sn, online_time FROM devices WHERE online = 1 ORDER BY sn LIMIT 10000", &[])?, |r| Ok((s(r, 0)?, i(r, 1)?))))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn periph_update(&self, sn: &str, nid: &str, gw_id: &str, kind: &str, online: bool, msg: &str, now: i64) -> Result<bool, String> {
        let on = online as i64;
        self.tx(|c| {
            if !ensure(c, sn)? {
                return Ok(false);
            }
            c.execute("UPDATE devices SET active_time = $2 WHERE sn = $1", &[&sn, &now])?;
            let active = if online { now } else { 0 };
            let inserted = c.execute(
                "INSERT INTO peripherals (sn, nid, gw_id, kind, online, active_time, rev_time, msg) \
                 SELECT $1::TEXT, $2::TEXT, $3::TEXT, $4::TEXT, $5::BIGINT, $6::BIGINT, $7::BIGINT, $8::TEXT \
                 WHERE (SELECT COUNT(*) FROM peripherals WHERE sn = $1::TEXT) < $9 ON CONFLICT DO NOTHING",
                &[&sn, &nid, &gw_id, &kind, &on, &active, &now, &msg, &MAX_PERIPHERALS],
            )? == 1;
            if inserted {
                return Ok(true);
            }
            let changed = c.execute("UPDATE peripherals SET online = $3 WHERE sn = $1 AND nid = $2 AND online != $3", &[&sn, &nid, &on])? == 1;
            c.execute(
                "UPDATE peripherals SET gw_id = $3, kind = $4, rev_time = $5, msg = $6, active_time = CASE WHEN $7 = 1 THEN $5 ELSE active_time END WHERE sn = $1 AND nid = $2",
                &[&sn, &nid, &gw_id, &kind, &now, &msg, &on],
            )?;
            Ok(changed)
        })
    }

    pub fn periph_page(&self, page: i64, limit: i64, sn: Option<&str>) -> Result<(i64, Vec<Value>), String> {
        self.with(|c| {
            let w = "($1::TEXT IS NULL OR sn = $1::TEXT)";
            let total = i(&c.query_one(&format!("SELECT COUNT(*) FROM peripherals WHERE {w}"), &[&sn])?, 0)?;
            let rows = c.query(
                &format!("SELECT sn, nid, gw_id, kind, online, active_time, rev_time, msg FROM peripherals WHERE {w} ORDER BY sn, nid LIMIT $2 OFFSET $3"),
                &[&sn, &limit, &((page - 1) * limit)],
            )?;
            Ok((total, all(rows, periph_json)?))
        })
    }

    pub fn periph_count(&self) -> Result<(i64, i64, i64), String> {
        self.with(|c| counts(c, "peripherals"))
    }

    /// New commands in one transaction of three statements whatever their
    /// number: the day's sequence moved on by all of them at once, then one
    /// multi-row INSERT (a round trip per command made 10,000 take 7–12 s).
    pub fn commands_create(&self, cmds: &[NewCommand], now: i64, max_pending: i64) -> Result<Vec<(u64, String)>, String> {
        let r = self.tx(|c| {
            let pending = i(&c.query_one("SELECT COUNT(*) FROM commands WHERE state IN (0, 1)", &[])?, 0)?;
            let k = cmds.len() as i64;
            if k == 0 {
                return Ok(Some(Vec::new()));
            }
            if pending + k > max_pending {
                return Ok(None);
            }
            let day = crate::time::yyyymmdd(now) as i64;
            let last = i(&c.query_one("INSERT INTO command_seq (day, n) VALUES ($1, $2) ON CONFLICT (day) DO UPDATE SET n = command_seq.n + $2 RETURNING n", &[&day, &k])?, 0)?;
            let mut out = Vec::with_capacity(cmds.len());
            let mut ids = Vec::with_capacity(cmds.len());
            for (j, n) in cmds.iter().enumerate() {
                let seq = last - k + 1 + j as i64;
                let Some(id) = u64::try_from(seq).ok().and_then(|s| ids::make(day as u64, s)) else { return Ok(None) };
                ids.push(id as i64);
                out.push((id, n.sn.clone()));
            }
            let sns: Vec<&str> = cmds.iter().map(|n| n.sn.as_str()).collect();
            let origins: Vec<&str> = cmds.iter().map(|n| n.origin.as_str()).collect();
            let commands: Vec<&str> = cmds.iter().map(|n| n.command.as_str()).collect();
            let methods: Vec<&str> = cmds.iter().map(|n| n.method.as_str()).collect();
            let bodies: Vec<&str> = cmds.iter().map(|n| n.body.as_str()).collect();
            let detached: Vec<i64> = cmds.iter().map(|n| n.detached as i64).collect();
            let now_pub: Vec<i64> = cmds.iter().map(|n| n.publish_now as i64).collect();
            let retries: Vec<i64> = cmds.iter().map(|n| n.max_retries).collect();
            let expires: Vec<i64> = cmds.iter().map(|n| n.expires).collect();
            c.execute(
                "INSERT INTO commands (id, sn, origin, command, method, body, detached, publish_now, max_retries, expires, create_time, next_at) \
                 SELECT v.id, v.sn, v.origin, v.command, v.method, v.body, v.detached, v.publish_now, v.max_retries, v.expires, $11::BIGINT, $11::BIGINT \
                 FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::BIGINT[]) \
                 AS v(id, sn, origin, command, method, body, detached, publish_now, max_retries, expires)",
                &[&ids, &sns, &origins, &commands, &methods, &bodies, &detached, &now_pub, &retries, &expires, &now],
            )?;
            Ok(Some(out))
        })?;
        r.ok_or_else(|| format!("too many pending commands (limit {max_pending}) or the day's sequence is exhausted"))
    }

    pub fn command(&self, id: u64) -> Result<Option<Cmd>, String> {
        self.with(|c| get_cmd(c, id, false))
    }

    pub fn command_last_answered(&self, origin: &str) -> Result<Option<Cmd>, String> {
        self.with(|c| {
            c.query_opt(&format!("SELECT {COLS} FROM commands WHERE origin = $1 AND response IS NOT NULL ORDER BY rev_time DESC, id DESC LIMIT 1"), &[&origin])?
                .map(|r| cmd(&r))
                .transpose()
        })
    }

    pub fn commands_page(&self, page: i64, limit: i64, origin: Option<&str>, sn: Option<&str>) -> Result<(i64, Vec<Cmd>), String> {
        self.with(|c| {
            // Only the filters given, so the planner can use their index.
            let w = match (origin.is_some(), sn.is_some()) {
                (true, true) => "origin = $1::TEXT AND sn = $2::TEXT",
                (true, false) => "origin = $1::TEXT AND $2::TEXT IS NULL",
                (false, true) => "$1::TEXT IS NULL AND sn = $2::TEXT",
                (false, false) => "$1::TEXT IS NULL AND $2::TEXT IS NULL",
            };
            let total = i(&c.query_one(&format!("SELECT COUNT(*) FROM commands WHERE {w}"), &[&origin, &sn])?, 0)?;
            let rows = c.query(&format!("SELECT {COLS} FROM commands WHERE {w} ORDER BY id DESC LIMIT $3 OFFSET $4"), &[&origin, &sn, &limit, &((page - 1) * limit)])?;
            Ok((total, all(rows, cmd)?))
        })
    }

    pub fn commands_due(&self, now: i64, limit: i64) -> Result<Vec<Cmd>, String> {
        self.with(|c| all(c.query(&format!("SELECT {COLS} FROM commands WHERE state IN (0, 1) AND next_at <= $1 ORDER BY next_at, id LIMIT $2"), &[&now, &limit])?, cmd))
    }

    pub fn command_claim_try(&self, cmd: &Cmd, now: i64, answer_timeout: i64) -> Result<bool, String> {
        self.exec(
            "UPDATE commands SET state = 1, try_times = try_times + 1, publish_time = $2, next_at = $3 WHERE id = $1 AND state = $4 AND try_times = $5 AND next_at = $6",
            &[&(cmd.id as i64), &now, &now.saturating_add(answer_timeout), &cmd.state, &cmd.try_times, &cmd.next_at],
        )
        .map(|n| n == 1)
    }

    pub fn command_park_offline(&self, cmd: &Cmd, until: i64) -> Result<bool, String> {
        self.exec(
            "UPDATE commands SET next_at = $2 WHERE id = $1 AND state = $3 AND next_at = $4 \
             AND NOT EXISTS (SELECT 1 FROM devices WHERE devices.sn = commands.sn AND devices.online = 1)",
            &[&(cmd.id as i64), &until, &cmd.state, &cmd.next_at],
        )
        .map(|n| n == 1)
    }

    pub fn command_defer(&self, cmd: &Cmd, until: i64) -> Result<bool, String> {
        self.exec("UPDATE commands SET next_at = $2 WHERE id = $1 AND state = $3 AND next_at = $4", &[&(cmd.id as i64), &until, &cmd.state, &cmd.next_at]).map(|n| n == 1)
    }

    pub fn command_fail(&self, cmd: &Cmd, now: i64, reason: &str) -> Result<bool, String> {
        self.exec(
            "UPDATE commands SET state = 3, failed_time = $2, reason = $3, next_at = 0 WHERE id = $1 AND state = $4 AND next_at = $5",
            &[&(cmd.id as i64), &now, &reason, &cmd.state, &cmd.next_at],
        )
        .map(|n| n == 1)
    }

    pub fn commands_wake(&self, sn: &str, now: i64) -> Result<usize, String> {
        self.exec("UPDATE commands SET next_at = $2 WHERE sn = $1 AND state = 0 AND next_at > $2", &[&sn, &now])
    }

    pub fn command_answer(&self, a: &Answer, now: i64, retry_delay: i64) -> Result<Answered, String> {
        self.tx(|c| answer_in(c, a, now, retry_delay))
    }

    /// The answers of a batch: their commands read and locked in one
    /// statement (in id order: two instances lock in the same order), the
    /// same rule as `answer_in` decided for each, then one multi-row UPDATE
    /// per outcome. A batch naming a command twice goes one by one.
    pub fn commands_answer_many(&self, answers: &[Answer], now: i64, retry_delay: i64) -> Result<Vec<Answered>, String> {
        let mut ids: Vec<i64> = answers.iter().map(|a| a.id as i64).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != answers.len() {
            return self.tx(|c| answers.iter().map(|a| answer_in(c, a, now, retry_delay)).collect());
        }
        self.tx(|c| {
            let rows = c.query(&format!("SELECT {COLS} FROM commands WHERE id = ANY($1::BIGINT[]) ORDER BY id FOR UPDATE"), &[&ids])?;
            let cmds: std::collections::HashMap<u64, Cmd> = all(rows, cmd)?.into_iter().map(|c| (c.id, c)).collect();
            // (id, response, reason) of the answers of each outcome.
            let (mut ok, mut retry, mut fail): (Vec<AnswerRow>, Vec<AnswerRow>, Vec<AnswerRow>) = Default::default();
            let mut out = Vec::with_capacity(answers.len());
            for a in answers {
                let Some(cm) = cmds.get(&a.id) else {
                    out.push(Answered::Unknown);
                    continue;
                };
                if let Some(ignored) = super::commands::not_believed(cm, a.sn) {
                    out.push(ignored);
                    continue;
                }
                let row = (a.id as i64, a.response, a.reason);
                if a.ok {
                    ok.push(row);
                    out.push(Answered::Done(OK));
                } else if cm.state == IN_PROGRESS && cm.try_times < cm.spec.max_retries && cm.expiry().is_none_or(|e| now < e) {
                    retry.push(row);
                    out.push(Answered::Retry);
                } else {
                    fail.push(row);
                    out.push(Answered::Done(super::commands::FAILED));
                }
            }
            let cols = |v: &[AnswerRow]| -> (Vec<i64>, Vec<String>, Vec<String>) {
                (v.iter().map(|r| r.0).collect(), v.iter().map(|r| r.1.to_string()).collect(), v.iter().map(|r| r.2.to_string()).collect())
            };
            let batches = [
                (ok, "UPDATE commands c SET state = 2, finish_time = $4, response = v.r, rev_time = $4, reason = '', next_at = 0"),
                (retry, "UPDATE commands c SET response = v.r, rev_time = $4, reason = v.m, next_at = $5"),
                (
                    fail,
                    "UPDATE commands c SET failed_time = CASE WHEN c.state = 3 THEN c.failed_time ELSE $4 END, \
                     reason = CASE WHEN c.state = 3 THEN c.reason ELSE v.m END, state = 3, response = v.r, rev_time = $4, next_at = 0",
                ),
            ];
            let next = now.saturating_add(retry_delay);
            for (rows, set) in batches {
                if rows.is_empty() {
                    continue;
                }
                let (idv, resp, reason) = cols(&rows);
                let sql = format!("{set} FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[]) AS v(id, r, m) WHERE c.id = v.id AND $5::BIGINT = $5::BIGINT");
                c.execute(&sql, &[&idv, &resp, &reason, &now, &next])?;
            }
            Ok(out)
        })
    }

    pub fn commands_claim_many(&self, cmds: &[Cmd], now: i64, answer_timeout: i64) -> Result<Vec<bool>, String> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = cmds.iter().map(|c| c.id as i64).collect();
        let states: Vec<i64> = cmds.iter().map(|c| c.state).collect();
        let tries: Vec<i64> = cmds.iter().map(|c| c.try_times).collect();
        let nexts: Vec<i64> = cmds.iter().map(|c| c.next_at).collect();
        let until = now.saturating_add(answer_timeout);
        let won: std::collections::HashSet<i64> = self.with(|c| {
            c.query(
                "UPDATE commands c SET state = 1, try_times = c.try_times + 1, publish_time = $5, next_at = $6 \
                 FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) AS v(id, st, tt, na) \
                 WHERE c.id = v.id AND c.state = v.st AND c.try_times = v.tt AND c.next_at = v.na RETURNING c.id",
                &[&ids, &states, &tries, &nexts, &now, &until],
            )?
            .iter()
            .map(|r| i(r, 0))
            .collect()
        })?;
        Ok(ids.iter().map(|id| won.contains(id)).collect())
    }

    pub fn commands_prune(&self, keep: i64) -> Result<usize, String> {
        self.with(|c| {
            let total = i(&c.query_one("SELECT COUNT(*) FROM commands", &[])?, 0)?;
            if total <= keep {
                return Ok(0);
            }
            c.execute("DELETE FROM commands WHERE id IN (SELECT id FROM commands WHERE state IN (2, 3) ORDER BY id LIMIT $1)", &[&(total - keep)]).map(|n| n as usize)
        })
    }

    pub fn callbacks_list(&self) -> Result<Vec<Value>, String> {
        self.with(|c| all(c.query(&format!("SELECT {CB_COLS} FROM callbacks ORDER BY id"), &[])?, callback_json))
    }

    pub fn callback_set(&self, kind: &str, url: &str, enabled: bool, now: i64) -> Result<Value, String> {
        self.with(|c| {
            let r = c.query_one(
                &format!(
                    "INSERT INTO callbacks (type, url, enabled, create_time, update_time) VALUES ($1, $2, $3, $4, $4) \
                     ON CONFLICT (type) DO UPDATE SET url = excluded.url, enabled = excluded.enabled, update_time = excluded.update_time RETURNING {CB_COLS}"
                ),
                &[&kind, &url, &(enabled as i64), &now],
            )?;
            callback_json(&r)
        })
    }

    pub fn callback_enable(&self, id: i64, enabled: bool, now: i64) -> Result<Option<Value>, String> {
        self.with(|c| {
            c.query_opt(&format!("UPDATE callbacks SET enabled = $2, update_time = $3 WHERE id = $1 RETURNING {CB_COLS}"), &[&id, &(enabled as i64), &now])?
                .map(|r| callback_json(&r))
                .transpose()
        })
    }

    pub fn callback_target(&self, kind: &str) -> Result<Option<(i64, String)>, String> {
        self.with(|c| c.query_opt("SELECT id, url FROM callbacks WHERE type = $1 AND enabled = 1", &[&kind])?.map(|r| Ok((i(&r, 0)?, s(&r, 1)?))).transpose())
    }

    pub fn callback_stats(&self, kind: &str) -> Result<(i64, i64), String> {
        self.with(|c| Ok(c.query_opt("SELECT succ_count, failed_count FROM callbacks WHERE type = $1", &[&kind])?.map(|r| Ok((i(&r, 0)?, i(&r, 1)?))).transpose()?.unwrap_or((0, 0))))
    }

    pub fn hook_count(&self, kind: HookKind, id: i64, ok: bool) -> Result<(), String> {
        let col = if ok { "succ_count" } else { "failed_count" };
        self.exec(&format!("UPDATE {} SET {col} = {col} + 1 WHERE id = $1", kind.table()), &[&id]).map(|_| ())
    }

    pub fn routes_list(&self) -> Result<Vec<Value>, String> {
        self.with(|c| all(c.query(&format!("SELECT {RT_COLS} FROM routes ORDER BY id LIMIT 1000"), &[])?, route_json))
    }

    pub fn routes(&self) -> Result<Vec<Route>, String> {
        self.with(|c| all(c.query("SELECT id, topic, url FROM routes ORDER BY id LIMIT 1000", &[])?, |r| Ok(Route { id: i(r, 0)?, topic: s(r, 1)?, url: s(r, 2)? })))
    }

    pub fn route_add(&self, name: &str, topic: &str, url: &str, now: i64, max: i64) -> Result<Option<Value>, String> {
        self.tx(|c| {
            // One writer at a time for the count check.
            c.execute("LOCK TABLE routes IN SHARE ROW EXCLUSIVE MODE", &[])?;
            if i(&c.query_one("SELECT COUNT(*) FROM routes", &[])?, 0)? >= max {
                return Ok(None);
            }
            let r = c.query_one(
                &format!("INSERT INTO routes (name, topic, url, create_time, update_time) VALUES ($1, $2, $3, $4, $4) RETURNING {RT_COLS}"),
                &[&name, &topic, &url, &now],
            )?;
            route_json(&r).map(Some)
        })
    }

    pub fn route_update(&self, id: i64, name: Option<&str>, topic: Option<&str>, url: Option<&str>, now: i64) -> Result<Option<Value>, String> {
        self.with(|c| {
            c.query_opt(
                &format!(
                    "UPDATE routes SET name = COALESCE($2::TEXT, name), topic = COALESCE($3::TEXT, topic), url = COALESCE($4::TEXT, url), update_time = $5 \
                     WHERE id = $1 RETURNING {RT_COLS}"
                ),
                &[&id, &name, &topic, &url, &now],
            )?
            .map(|r| route_json(&r))
            .transpose()
        })
    }

    pub fn route_delete(&self, id: i64) -> Result<usize, String> {
        self.exec("DELETE FROM routes WHERE id = $1", &[&id])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_writes_the_version_it_is_checked_for() {
        assert!(SCHEMA.contains(&format!("INSERT INTO platform_schema (version) VALUES ({SCHEMA_VERSION});")), "SCHEMA and SCHEMA_VERSION disagree");
        let (head, tail) = SCHEMA.split_once("INSERT INTO platform_schema").unwrap_or_default();
        assert!(head.contains("CREATE TABLE IF NOT EXISTS devices") && tail.trim_end().ends_with("pg_advisory_unlock(7346201);"), "the version is written last, under the lock");
    }
}
