//! The platform's state: devices, peripherals, commands, callbacks, message
//! routes, login tokens. In SQLite by default (one file, WAL; several
//! instances on one machine may share it), or in PostgreSQL (`database`:
//! `postgres://…`) for instances on several machines (`pg.rs`). Every
//! change that must happen once (a state transition, a command try) is a
//! conditional UPDATE whose row count says which instance won; the two
//! backends run the same statements in their own dialects.

pub mod batch;
pub mod commands;
pub mod devices;
pub mod fleet;
pub mod hooks;
pub mod pg;
pub mod pg_batch;
pub mod pg_fleet;
pub mod redact;
pub mod sessions;

use batch::{ReportRow, StateRow, TxTiming};
use commands::{Answer, Answered, Cmd, NewCommand};
use devices::Report;
use fleet::{DeviceFilter, NewEvent};
use hooks::{HookKind, Route};
use rusqlite::Connection;
use serde_json::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The SQLite backend.
pub struct Sqlite {
    conn: Mutex<Connection>,
    /// Read-only connections for the API's reads and the login check (WAL:
    /// they see the last commit while a telemetry batch is being written,
    /// instead of waiting for it; several, so concurrent requests do not
    /// queue behind one). Empty for an in-memory database (another
    /// connection would see an empty one).
    readers: Vec<Mutex<Connection>>,
    /// The reader tried first when all are busy (round robin).
    next_reader: std::sync::atomic::AtomicUsize,
}

/// Read-only connections per instance.
const READERS: usize = 3;

pub enum Db {
    Sqlite(Sqlite),
    Pg(pg::Pg),
}

impl Db {
    /// `postgres://…` or `postgresql://…`: PostgreSQL; anything else: a SQLite file.
    pub fn open(database: &str) -> Result<Db, String> {
        if database.starts_with("postgres://") || database.starts_with("postgresql://") {
            Ok(Db::Pg(pg::Pg::open(database)?))
        } else {
            Ok(Db::Sqlite(Sqlite::open(database)?))
        }
    }
}

/// One method on `Db` per backend method, forwarding to the backend.
macro_rules! dispatch {
    ($( pub fn $name:ident(&self $(, $arg:ident : $ty:ty)* ) -> $ret:ty; )*) => {
        impl Db {
            $( #[allow(clippy::too_many_arguments)]
            pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                match self {
                    Db::Sqlite(b) => b.$name($($arg),*),
                    Db::Pg(b) => b.$name($($arg),*),
                }
            } )*
        }
    };
}

dispatch! {
    pub fn session_add(&self, digest: &str, user: &str, expires: i64, now: i64) -> Result<(), String>;
    pub fn session_user(&self, digest: &str, now: i64) -> Result<Option<String>, String>;
    pub fn device_state(&self, sn: &str, online: bool, boot_time: Option<i64>, ver: Option<&str>, signed: Option<bool>, now: i64) -> Result<bool, String>;
    pub fn device_per_device(&self, sn: &str) -> Result<bool, String>;
    pub fn device_mark_per_device(&self, sn: &str) -> Result<bool, String>;
    pub fn session_delete(&self, digest: &str) -> Result<usize, String>;
    pub fn commands_unredacted(&self, limit: i64) -> Result<Vec<(u64, String)>, String>;
    pub fn commands_redact(&self, rows: &[(u64, Option<String>)]) -> Result<usize, String>;
    pub fn device_report(&self, sn: &str, kind: Report, text: &str, now: i64) -> Result<(), String>;
    pub fn device_touch(&self, sn: &str, now: i64) -> Result<(), String>;
    pub fn devices_report_batch(&self, rows: &[ReportRow], touches: &[(String, i64)]) -> Result<(usize, TxTiming), String>;
    pub fn devices_mark_per_device_many(&self, sns: &[String]) -> Result<Vec<String>, String>;
    pub fn devices_state_many(&self, rows: &[StateRow]) -> Result<Vec<(bool, usize)>, String>;
    pub fn device_online(&self, sn: &str) -> Result<bool, String>;
    pub fn devices_page(&self, page: i64, limit: i64, sn: Option<&str>) -> Result<(i64, Vec<devices::Device>), String>;
    pub fn devices_count(&self) -> Result<(i64, i64, i64), String>;
    pub fn devices_find(&self, page: i64, limit: i64, f: &DeviceFilter) -> Result<(i64, Vec<devices::Device>), String>;
    pub fn devices_select(&self, f: &DeviceFilter, max: i64) -> Result<Vec<String>, String>;
    pub fn events_insert(&self, events: &[NewEvent]) -> Result<usize, String>;
    pub fn events_page(&self, page: i64, limit: i64, sn: Option<&str>, kind: Option<&str>) -> Result<(i64, Vec<Value>), String>;
    pub fn commands_progress(&self, origin: &str) -> Result<([i64; 4], Vec<Value>), String>;
    pub fn devices_connected(&self) -> Result<Vec<(String, i64)>, String>;
    pub fn periph_update(&self, sn: &str, nid: &str, gw_id: &str, kind: &str, online: bool, msg: &str, now: i64) -> Result<bool, String>;
    pub fn periph_page(&self, page: i64, limit: i64, sn: Option<&str>) -> Result<(i64, Vec<Value>), String>;
    pub fn periph_count(&self) -> Result<(i64, i64, i64), String>;
    pub fn commands_create(&self, cmds: &[NewCommand], now: i64, max_pending: i64) -> Result<Vec<(u64, String)>, String>;
    pub fn command(&self, id: u64) -> Result<Option<Cmd>, String>;
    pub fn command_last_answered(&self, origin: &str) -> Result<Option<Cmd>, String>;
    pub fn commands_page(&self, page: i64, limit: i64, origin: Option<&str>, sn: Option<&str>) -> Result<(i64, Vec<Cmd>), String>;
    pub fn commands_due(&self, now: i64, limit: i64) -> Result<Vec<Cmd>, String>;
    pub fn command_claim_try(&self, cmd: &Cmd, now: i64, answer_timeout: i64) -> Result<bool, String>;
    pub fn command_park_offline(&self, cmd: &Cmd, until: i64) -> Result<bool, String>;
    pub fn command_defer(&self, cmd: &Cmd, until: i64) -> Result<bool, String>;
    pub fn command_fail(&self, cmd: &Cmd, now: i64, reason: &str) -> Result<bool, String>;
    pub fn commands_wake(&self, sn: &str, now: i64) -> Result<usize, String>;
    pub fn command_answer(&self, a: &Answer, now: i64, retry_delay: i64) -> Result<Answered, String>;
    pub fn commands_answer_many(&self, answers: &[Answer], now: i64, retry_delay: i64) -> Result<Vec<Answered>, String>;
    pub fn commands_claim_many(&self, cmds: &[Cmd], now: i64, answer_timeout: i64) -> Result<Vec<bool>, String>;
    pub fn commands_prune(&self, keep: i64) -> Result<usize, String>;
    pub fn callbacks_list(&self) -> Result<Vec<Value>, String>;
    pub fn callback_set(&self, kind: &str, url: &str, enabled: bool, now: i64) -> Result<Value, String>;
    pub fn callback_enable(&self, id: i64, enabled: bool, now: i64) -> Result<Option<Value>, String>;
    pub fn callback_target(&self, kind: &str) -> Result<Option<(i64, String)>, String>;
    pub fn callback_stats(&self, kind: &str) -> Result<(i64, i64), String>;
    pub fn hook_count(&self, kind: HookKind, id: i64, ok: bool) -> Result<(), String>;
    pub fn routes_list(&self) -> Result<Vec<Value>, String>;
    pub fn routes(&self) -> Result<Vec<Route>, String>;
    pub fn route_add(&self, name: &str, topic: &str, url: &str, now: i64, max: i64) -> Result<Option<Value>, String>;
    pub fn route_update(&self, id: i64, name: Option<&str>, topic: Option<&str>, url: Option<&str>, now: i64) -> Result<Option<Value>, String>;
    pub fn route_delete(&self, id: i64) -> Result<usize, String>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    sn TEXT PRIMARY KEY,
    online INTEGER NOT NULL DEFAULT 0,
    online_time INTEGER NOT NULL DEFAULT 0,
    offline_time INTEGER NOT NULL DEFAULT 0,
    active_time INTEGER NOT NULL DEFAULT 0,
    boot_time INTEGER NOT NULL DEFAULT -1,
    dur INTEGER NOT NULL DEFAULT 0,
    ver TEXT NOT NULL DEFAULT '',
    sys TEXT NOT NULL DEFAULT '',
    procs TEXT NOT NULL DEFAULT '',
    versions TEXT NOT NULL DEFAULT '',
    sys_rev INTEGER NOT NULL DEFAULT 0,
    procs_rev INTEGER NOT NULL DEFAULT 0,
    per_device INTEGER NOT NULL DEFAULT 0,
    signed INTEGER
);
CREATE TABLE IF NOT EXISTS peripherals (
    sn TEXT NOT NULL,
    nid TEXT NOT NULL,
    gw_id TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT '',
    online INTEGER NOT NULL DEFAULT 0,
    active_time INTEGER NOT NULL DEFAULT 0,
    rev_time INTEGER NOT NULL DEFAULT 0,
    msg TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sn, nid)
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    sn TEXT NOT NULL,
    origin TEXT NOT NULL,
    command TEXT NOT NULL,
    method TEXT NOT NULL,
    body TEXT NOT NULL,
    detached INTEGER NOT NULL,
    publish_now INTEGER NOT NULL,
    max_retries INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    try_times INTEGER NOT NULL DEFAULT 0,
    publish_time INTEGER NOT NULL DEFAULT 0,
    finish_time INTEGER NOT NULL DEFAULT 0,
    failed_time INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    response TEXT,
    rev_time INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS commands_pending ON commands (state, next_at);
CREATE INDEX IF NOT EXISTS commands_sn ON commands (sn, state);
CREATE TABLE IF NOT EXISTS command_seq (day INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS callbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    succ_count INTEGER NOT NULL DEFAULT 0,
    failed_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS routes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    topic TEXT NOT NULL,
    url TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    succ_count INTEGER NOT NULL DEFAULT 0,
    failed_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS devices_online ON devices (online, sn);
CREATE INDEX IF NOT EXISTS peripherals_kind ON peripherals (kind, sn);
CREATE INDEX IF NOT EXISTS commands_origin ON commands (origin, state);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sn TEXT NOT NULL,
    eid INTEGER,
    type TEXT NOT NULL,
    time INTEGER NOT NULL,
    rev_time INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_eid ON events (sn, eid);
CREATE INDEX IF NOT EXISTS events_sn ON events (sn, id);
CREATE INDEX IF NOT EXISTS events_type ON events (type, id);
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    expires INTEGER NOT NULL
);
";

/// The device counts kept by triggers in the database (so every instance
/// sharing the file sees the same): the count endpoint, the device list's
/// total and the table's bound read one row instead of counting 100,000.
/// Telemetry never sets `online`, so its UPDATEs fire nothing. Made (and
/// filled from a count, once) inside one write transaction at open.
const COUNTS: &str = "
CREATE TABLE IF NOT EXISTS device_counts (id INTEGER PRIMARY KEY CHECK (id = 1), total INTEGER NOT NULL, online INTEGER NOT NULL);
INSERT OR IGNORE INTO device_counts (id, total, online) SELECT 1, COUNT(*), COALESCE(SUM(online), 0) FROM devices;
CREATE TRIGGER IF NOT EXISTS device_counts_ins AFTER INSERT ON devices BEGIN
    UPDATE device_counts SET total = total + 1, online = online + NEW.online WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS device_counts_del AFTER DELETE ON devices BEGIN
    UPDATE device_counts SET total = total - 1, online = online - OLD.online WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS device_counts_upd AFTER UPDATE OF online ON devices WHEN OLD.online != NEW.online BEGIN
    UPDATE device_counts SET online = online + NEW.online - OLD.online WHERE id = 1; END;
";

/// Columns added since the first schema: added to an older database file.
const ADDED_COLUMNS: [(&str, &str, &str); 2] = [
    // Seen on its per-device topics (docs/PROTOCOL.md "What the platform believes").
    ("devices", "per_device", "INTEGER NOT NULL DEFAULT 0"),
    // The birth's `signed`: 1, 0, NULL (not said).
    ("devices", "signed", "INTEGER"),
];

fn migrate(c: &Connection) -> rusqlite::Result<()> {
    for (table, col, decl) in ADDED_COLUMNS {
        let have: i64 = c.query_row(&format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"), [col], |r| r.get(0))?;
        if have == 0 {
            c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {col} {decl}"))?;
        }
    }
    Ok(())
}

impl Sqlite {
    pub fn open(path: &str) -> Result<Sqlite, String> {
        let conn = Connection::open(path).map_err(|e| format!("database {path}: {e}"))?;
        // Another instance may hold the write lock for a moment.
        conn.busy_timeout(Duration::from_secs(10)).map_err(|e| format!("database {path}: {e}"))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| format!("database {path}: {e}"))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| format!("database {path}: {e}"))?;
        conn.execute_batch(SCHEMA).map_err(|e| format!("database {path}: schema: {e}"))?;
        migrate(&conn).map_err(|e| format!("database {path}: schema: {e}"))?;
        redact::migrate(&conn).map_err(|e| format!("database {path}: schema: {e}"))?;
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {COUNTS} COMMIT;")).map_err(|e| format!("database {path}: schema: {e}"))?;
        let mut readers = Vec::new();
        if path != ":memory:" && !path.is_empty() {
            for _ in 0..READERS {
                let r = Connection::open(path).map_err(|e| format!("database {path}: {e}"))?;
                r.busy_timeout(Duration::from_secs(10)).map_err(|e| format!("database {path}: {e}"))?;
                r.pragma_update(None, "query_only", "ON").map_err(|e| format!("database {path}: {e}"))?;
                readers.push(Mutex::new(r));
            }
        }
        Ok(Sqlite { conn: Mutex::new(conn), readers, next_reader: std::sync::atomic::AtomicUsize::new(0) })
    }

    /// Run `f` on the connection (errors become strings for the caller).
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&c).map_err(|e| format!("database: {e}"))
    }

    /// A read-only query on a reader connection: a free one, else the next
    /// in turn (else, in memory, as `with`).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        if self.readers.is_empty() {
            return self.with(f);
        }
        let c = match self.readers.iter().find_map(|m| m.try_lock().ok()) {
            Some(c) => c,
            None => {
                let k = self.next_reader.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.readers.len();
                match self.readers.get(k) {
                    Some(m) => m.lock().unwrap_or_else(|p| p.into_inner()),
                    None => return self.with(f),
                }
            }
        };
        f(&c).map_err(|e| format!("database: {e}"))
    }

    /// Like `tx`, saying where the time went.
    pub fn tx_timed<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T>) -> Result<(T, TxTiming), String> {
        let t0 = Instant::now();
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let t1 = Instant::now();
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| format!("database: {e}"))?;
        let v = f(&tx).map_err(|e| format!("database: {e}"))?;
        let t2 = Instant::now();
        tx.commit().map_err(|e| format!("database: {e}"))?;
        Ok((v, TxTiming { lock: t1 - t0, write: t2 - t1, commit: t2.elapsed() }))
    }

    /// Like `with`, inside one transaction.
    pub fn tx<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T>) -> Result<T, String> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| format!("database: {e}"))?;
        let v = f(&tx).map_err(|e| format!("database: {e}"))?;
        tx.commit().map_err(|e| format!("database: {e}"))?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_database_gets_the_new_columns() {
        let path = std::env::temp_dir().join(format!("dma-migrate-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let old = Connection::open(&path).unwrap();
        old.execute_batch("CREATE TABLE devices (sn TEXT PRIMARY KEY, online INTEGER NOT NULL DEFAULT 0); INSERT INTO devices (sn) VALUES ('OLD1');").unwrap();
        drop(old);
        let db = Sqlite::open(path.to_str().unwrap()).unwrap();
        assert_eq!(db.devices_count().unwrap(), (0, 1, 1), "the kept counts are filled from the rows there");
        db.with(|c| c.execute_batch("INSERT INTO devices (sn, online) VALUES ('NEW1', 1); UPDATE devices SET online = 1 WHERE sn = 'OLD1'; UPDATE devices SET online = 0 WHERE sn = 'OLD1';")).unwrap();
        assert_eq!(db.devices_count().unwrap(), (1, 1, 2), "kept by the triggers");
        assert!(!db.device_per_device("OLD1").unwrap());
        assert!(db.device_mark_per_device("OLD1").unwrap());
        assert!(db.device_per_device("OLD1").unwrap());
        drop(db);
        // Opening again changes nothing (the columns and counts are there).
        let db = Sqlite::open(path.to_str().unwrap()).unwrap();
        assert!(db.device_per_device("OLD1").unwrap());
        assert_eq!(db.devices_count().unwrap(), (1, 1, 2));
        drop(db);
        let _ = std::fs::remove_file(&path);
    }
}
