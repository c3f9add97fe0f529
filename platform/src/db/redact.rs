//! Finished commands' bodies with their secrets masked for good
//! (`crate::redact`). A command's body keeps its real values while the
//! command may still be sent (every try publishes the stored body); once
//! it is ok or failed it is never sent again, and the `redacted` flag says
//! its body has been masked.

use super::Sqlite;
use rusqlite::{params, Connection};

/// Add the `redacted` column to a database made before it existed.
pub fn migrate(c: &Connection) -> rusqlite::Result<()> {
    let has: bool = c.prepare("SELECT 1 FROM pragma_table_info('commands') WHERE name = 'redacted'")?.exists([])?;
    if !has {
        c.execute_batch("ALTER TABLE commands ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0")?;
    }
    c.execute_batch("CREATE INDEX IF NOT EXISTS commands_unredacted ON commands (id) WHERE redacted = 0 AND state IN (2, 3)")
}

impl Sqlite {
    /// Finished commands whose body has not been masked yet: (id, body).
    pub fn commands_unredacted(&self, limit: i64) -> Result<Vec<(u64, String)>, String> {
        self.read(|c| {
            let mut st = c.prepare("SELECT id, body FROM commands WHERE state IN (2, 3) AND redacted = 0 ORDER BY id LIMIT ?1")?;
            let v = st.query_map(params![limit], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    /// Mark these finished commands redacted, in one transaction (one
    /// disk sync for the lot: after a 10,000-target command, one sync per
    /// command held the writer for thousands of syncs in a row, and the
    /// telemetry waited behind them). A new body replaces the stored one;
    /// `None`: nothing to mask, the body stays. Returns the rows marked.
    pub fn commands_redact(&self, rows: &[(u64, Option<String>)]) -> Result<usize, String> {
        self.tx(|c| {
            let mut n = 0;
            for (id, body) in rows {
                n += match body {
                    Some(b) => c.prepare_cached("UPDATE commands SET body = ?2, redacted = 1 WHERE id = ?1 AND state IN (2, 3)")?.execute(params![*id as i64, b])?,
                    None => c.prepare_cached("UPDATE commands SET redacted = 1 WHERE id = ?1 AND state IN (2, 3)")?.execute(params![*id as i64])?,
                };
            }
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::commands::NewCommand;
    use super::*;

    #[test]
    fn a_pass_marks_finished_commands_in_one_go_and_leaves_the_rest() {
        let db = Sqlite::open(":memory:").unwrap();
        let new = |sn: &str| NewCommand {
            sn: sn.into(),
            origin: "t".into(),
            command: "sh".into(),
            method: "post".into(),
            body: format!("{{\"cmd\":\"{sn}\"}}"),
            detached: false,
            publish_now: true,
            max_retries: 1,
            expires: 0,
        };
        let ids: Vec<u64> = db.commands_create(&[new("R1"), new("R2"), new("R3")], 100, 1000).unwrap().into_iter().map(|c| c.0).collect();
        // The first two finished (ok, failed); the third still pending.
        db.with(|c| c.execute_batch(&format!("UPDATE commands SET state = 2 WHERE id = {}; UPDATE commands SET state = 3 WHERE id = {};", ids[0], ids[1]))).unwrap();
        let todo = db.commands_unredacted(10).unwrap();
        assert_eq!(todo.iter().map(|t| t.0).collect::<Vec<_>>(), vec![ids[0], ids[1]]);
        let rows = vec![(ids[0], Some("{\"cmd\":\"***\"}".to_string())), (ids[1], None), (ids[2], Some("x".into()))];
        assert_eq!(db.commands_redact(&rows).unwrap(), 2, "the pending command is not touched");
        assert!(db.commands_unredacted(10).unwrap().is_empty());
        let body = |id: u64| db.with(|c| c.query_row("SELECT body FROM commands WHERE id = ?1", [id as i64], |r| r.get::<_, String>(0))).unwrap();
        assert_eq!(body(ids[0]), "{\"cmd\":\"***\"}", "a masked body replaces the stored one");
        assert_eq!(body(ids[1]), "{\"cmd\":\"R2\"}", "nothing to mask: the body stays");
        assert_eq!(body(ids[2]), "{\"cmd\":\"R3\"}", "a command that may still be sent keeps its body");
    }
}
