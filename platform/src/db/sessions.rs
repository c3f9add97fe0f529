//! Login tokens (their digests) with an expiry; shared by all instances.

use super::Sqlite;
use rusqlite::{params, OptionalExtension};

impl Sqlite {
    pub fn session_add(&self, digest: &str, user: &str, expires: i64, now: i64) -> Result<(), String> {
        self.with(|c| {
            c.execute("DELETE FROM sessions WHERE expires <= ?1", params![now])?;
            c.execute("INSERT INTO sessions (digest, user, expires) VALUES (?1, ?2, ?3)", params![digest, user, expires])?;
            Ok(())
        })
    }

    /// The user of a live token. On a reader connection: every API call
    /// asks this first, and must not wait for a telemetry batch being
    /// written (a logout is committed before it is answered, so a reader
    /// sees it at once).
    pub fn session_user(&self, digest: &str, now: i64) -> Result<Option<String>, String> {
        self.read(|c| c.query_row("SELECT user FROM sessions WHERE digest = ?1 AND expires > ?2", params![digest, now], |r| r.get(0)).optional())
    }

    /// Logout: the token stops working at once, on every instance.
    pub fn session_delete(&self, digest: &str) -> Result<usize, String> {
        self.with(|c| c.execute("DELETE FROM sessions WHERE digest = ?1", params![digest]))
    }
}
