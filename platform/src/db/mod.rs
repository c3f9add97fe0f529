//! The platform's state in SQLite (one file, WAL): devices, peripherals,
//! commands, callbacks, message routes, login tokens. Several instances may
//! share the file on one machine; every change that must happen once
//! (a state transition, a command try) is a conditional UPDATE whose row
//! count says which instance won.

pub mod commands;
pub mod devices;
pub mod hooks;
pub mod sessions;

use rusqlite::Connection;
use std::sync::Mutex;
use std::time::Duration;

pub struct Db {
    conn: Mutex<Connection>,
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
    procs_rev INTEGER NOT NULL DEFAULT 0
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
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    expires INTEGER NOT NULL
);
";

impl Db {
    pub fn open(path: &str) -> Result<Db, String> {
        let conn = Connection::open(path).map_err(|e| format!("database {path}: {e}"))?;
        // Another instance may hold the write lock for a moment.
        conn.busy_timeout(Duration::from_secs(10)).map_err(|e| format!("database {path}: {e}"))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| format!("database {path}: {e}"))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| format!("database {path}: {e}"))?;
        conn.execute_batch(SCHEMA).map_err(|e| format!("database {path}: schema: {e}"))?;
        Ok(Db { conn: Mutex::new(conn) })
    }

    /// Run `f` on the connection (errors become strings for the caller).
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&c).map_err(|e| format!("database: {e}"))
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
