//! Commands and their state machine (the seed's `state`):
//! 0 ready (not sent yet) → 1 in progress (sent, `tryTimes` counts the
//! sends) → 2 ok | 3 failed. `next_at` is when the scheduler looks at a
//! command again; every move is a conditional UPDATE so that of several
//! instances exactly one makes it.

use super::Sqlite;
use crate::ids;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{json, Value};

pub const READY: i64 = 0;
pub const IN_PROGRESS: i64 = 1;
pub const OK: i64 = 2;
pub const FAILED: i64 = 3;

/// A command for one device, as the API accepted it.
#[derive(Clone, Debug)]
pub struct NewCommand {
    pub sn: String,
    pub origin: String,
    pub command: String,
    pub method: String,
    /// JSON text of the body object.
    pub body: String,
    pub detached: bool,
    pub publish_now: bool,
    pub max_retries: i64,
    /// s after creation; 0: never expires.
    pub expires: i64,
}

/// A stored command: what the API accepted, and where it stands.
#[derive(Clone, Debug)]
pub struct Cmd {
    pub id: u64,
    pub spec: NewCommand,
    pub create_time: i64,
    pub state: i64,
    pub try_times: i64,
    pub publish_time: i64,
    pub finish_time: i64,
    pub failed_time: i64,
    pub next_at: i64,
    pub reason: String,
    pub response: Option<String>,
    pub rev_time: i64,
}

impl Cmd {
    /// When it expires (`None`: never).
    pub fn expiry(&self) -> Option<i64> {
        (self.spec.expires > 0).then(|| self.create_time.saturating_add(self.spec.expires))
    }

    /// The seed's status object.
    pub fn status_json(&self) -> Value {
        json!({
            "id": self.id,
            "sn": self.spec.sn,
            "from": self.spec.origin,
            "command": self.spec.command,
            "method": self.spec.method,
            "d": serde_json::from_str::<Value>(&self.spec.body).unwrap_or(Value::Null),
            "detached": self.spec.detached as i64,
            "publishNow": self.spec.publish_now,
            "maxRetries": self.spec.max_retries,
            "expires": self.spec.expires,
            "createTime": self.create_time,
            "state": self.state,
            "tryTimes": self.try_times,
            "publishTime": self.publish_time,
            "finishTime": self.finish_time,
            "failedTime": self.failed_time,
            "reason": self.reason,
        })
    }
}

pub(super) const COLS: &str = "id, sn, origin, command, method, body, detached, publish_now, max_retries, expires, create_time, state, try_times, \
                    publish_time, finish_time, failed_time, next_at, reason, response, rev_time";

fn row(r: &Row) -> rusqlite::Result<Cmd> {
    Ok(Cmd {
        id: r.get::<_, i64>(0)? as u64,
        spec: NewCommand {
            sn: r.get(1)?,
            origin: r.get(2)?,
            command: r.get(3)?,
            method: r.get(4)?,
            body: r.get(5)?,
            detached: r.get::<_, i64>(6)? != 0,
            publish_now: r.get::<_, i64>(7)? != 0,
            max_retries: r.get(8)?,
            expires: r.get(9)?,
        },
        create_time: r.get(10)?,
        state: r.get(11)?,
        try_times: r.get(12)?,
        publish_time: r.get(13)?,
        finish_time: r.get(14)?,
        failed_time: r.get(15)?,
        next_at: r.get(16)?,
        reason: r.get(17)?,
        response: r.get(18)?,
        rev_time: r.get(19)?,
    })
}

fn next_id(c: &Connection, now: i64) -> rusqlite::Result<u64> {
    let day = crate::time::yyyymmdd(now);
    let n: i64 = c.query_row(
        "INSERT INTO command_seq (day, n) VALUES (?1, 1) ON CONFLICT(day) DO UPDATE SET n = n + 1 RETURNING n",
        params![day as i64],
        |r| r.get(0),
    )?;
    ids::make(day, n as u64).ok_or(rusqlite::Error::IntegralValueOutOfRange(1, n))
}

fn get(c: &Connection, id: u64) -> rusqlite::Result<Option<Cmd>> {
    c.query_row(&format!("SELECT {COLS} FROM commands WHERE id = ?1"), params![id as i64], row).optional()
}

/// A device's answer on `resp/cmd`.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    pub id: u64,
    pub sn: &'a str,
    /// The answer's top-level `status` was ok.
    pub ok: bool,
    /// Its `d.msg`.
    pub reason: &'a str,
    /// The answer's JSON text (with `revtime`).
    pub response: &'a str,
}

/// What an answer did to its command.
#[derive(Debug, PartialEq, Eq)]
pub enum Answered {
    /// No such command.
    Unknown,
    /// The command is addressed to another serial: ignored.
    WrongDevice,
    /// The command was never sent (no try published): ignored, so a forged
    /// answer cannot finish a command held back (`publishNow` false).
    NotSent,
    Done(i64),
    Retry,
}

/// Whether an answer from `sn` may change `cmd` (docs/PROTOCOL.md, "What
/// the platform believes"), the same rule for both backends: `None` when
/// it may, else what the answer amounts to without changing anything.
pub(crate) fn not_believed(cmd: &Cmd, sn: &str) -> Option<Answered> {
    if cmd.spec.sn != sn {
        return Some(Answered::WrongDevice);
    }
    // The try is claimed (try_times + 1) before it is published, so a real answer always finds >= 1.
    if cmd.try_times < 1 {
        return Some(Answered::NotSent);
    }
    if cmd.state == OK {
        // A repeated answer (the agent re-publishes a stored one): keep the first.
        return Some(Answered::Done(OK));
    }
    None
}

/// One answer inside a transaction (`command_answer`).
fn answer_in(c: &Connection, a: &Answer, now: i64, retry_delay: i64) -> rusqlite::Result<Answered> {
    let Answer { id, sn, ok, reason, response } = *a;
    let Some(cmd) = get(c, id)? else { return Ok(Answered::Unknown) };
    if let Some(ignored) = not_believed(&cmd, sn) {
        return Ok(ignored);
    }
    if ok {
        c.execute(
            "UPDATE commands SET state = 2, finish_time = ?2, response = ?3, rev_time = ?2, reason = '', next_at = 0 WHERE id = ?1",
            params![id as i64, now, response],
        )?;
        return Ok(Answered::Done(OK));
    }
    let live = cmd.expiry().is_none_or(|e| now < e);
    if cmd.state == IN_PROGRESS && cmd.try_times < cmd.spec.max_retries && live {
        c.execute(
            "UPDATE commands SET response = ?2, rev_time = ?3, reason = ?4, next_at = ?5 WHERE id = ?1",
            params![id as i64, response, now, reason, now.saturating_add(retry_delay)],
        )?;
        return Ok(Answered::Retry);
    }
    c.execute(
        "UPDATE commands SET state = 3, failed_time = CASE WHEN state = 3 THEN failed_time ELSE ?3 END, response = ?2, rev_time = ?3, \
         reason = CASE WHEN state = 3 THEN reason ELSE ?4 END, next_at = 0 WHERE id = ?1",
        params![id as i64, response, now, reason],
    )?;
    Ok(Answered::Done(FAILED))
}

impl Sqlite {
    /// Store new commands, one id each, in one transaction; `Err` names the
    /// limit when too many are pending.
    pub fn commands_create(&self, cmds: &[NewCommand], now: i64, max_pending: i64) -> Result<Vec<(u64, String)>, String> {
        self.tx(|c| {
            let pending: i64 = c.query_row("SELECT COUNT(*) FROM commands WHERE state IN (0, 1)", [], |r| r.get(0))?;
            if pending + cmds.len() as i64 > max_pending {
                return Err(rusqlite::Error::InvalidParameterName(format!("too many pending commands (limit {max_pending})")));
            }
            let mut out = Vec::with_capacity(cmds.len());
            for n in cmds {
                let id = next_id(c, now)?;
                c.execute(
                    "INSERT INTO commands (id, sn, origin, command, method, body, detached, publish_now, max_retries, expires, create_time, next_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
                    params![id as i64, n.sn, n.origin, n.command, n.method, n.body, n.detached as i64, n.publish_now as i64, n.max_retries, n.expires, now],
                )?;
                out.push((id, n.sn.clone()));
            }
            Ok(out)
        })
    }

    pub fn command(&self, id: u64) -> Result<Option<Cmd>, String> {
        self.with(|c| get(c, id))
    }

    /// The latest answered command from `origin`.
    pub fn command_last_answered(&self, origin: &str) -> Result<Option<Cmd>, String> {
        self.with(|c| {
            c.query_row(&format!("SELECT {COLS} FROM commands WHERE origin = ?1 AND response IS NOT NULL ORDER BY rev_time DESC, id DESC LIMIT 1"), params![origin], row)
                .optional()
        })
    }

    /// Newest first; `from`/`sn` filter. The WHERE names only the filters
    /// given, so SQLite uses the `sn`/`origin` index (`?1 IS NULL OR …`
    /// made it scan the whole table on every call).
    pub fn commands_page(&self, page: i64, limit: i64, origin: Option<&str>, sn: Option<&str>) -> Result<(i64, Vec<Cmd>), String> {
        self.read(|c| {
            let w = match (origin.is_some(), sn.is_some()) {
                (true, true) => "origin = ?1 AND sn = ?2",
                (true, false) => "origin = ?1 AND ?2 IS NULL",
                (false, true) => "?1 IS NULL AND sn = ?2",
                (false, false) => "?1 IS NULL AND ?2 IS NULL",
            };
            let total: i64 = c.prepare_cached(&format!("SELECT COUNT(*) FROM commands WHERE {w}"))?.query_row(params![origin, sn], |r| r.get(0))?;
            let mut st = c.prepare_cached(&format!("SELECT {COLS} FROM commands WHERE {w} ORDER BY id DESC LIMIT ?3 OFFSET ?4"))?;
            let list = st.query_map(params![origin, sn, limit, (page - 1).saturating_mul(limit)], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((total, list))
        })
    }

    /// Commands the scheduler should look at now.
    pub fn commands_due(&self, now: i64, limit: i64) -> Result<Vec<Cmd>, String> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {COLS} FROM commands WHERE state IN (0, 1) AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2"))?;
            let v = st.query_map(params![now, limit], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    /// Claim the next try of `cmd` (as read): true when this caller won and must publish.
    pub fn command_claim_try(&self, cmd: &Cmd, now: i64, answer_timeout: i64) -> Result<bool, String> {
        self.with(|c| {
            c.execute(
                "UPDATE commands SET state = 1, try_times = try_times + 1, publish_time = ?2, next_at = ?3 \
                 WHERE id = ?1 AND state = ?4 AND try_times = ?5 AND next_at = ?6",
                params![cmd.id as i64, now, now.saturating_add(answer_timeout), cmd.state, cmd.try_times, cmd.next_at],
            )
            .map(|n| n == 1)
        })
    }

    /// Park a command until `until` unless its device is online now
    /// (checked in the same statement, so a birth in between is not missed).
    pub fn command_park_offline(&self, cmd: &Cmd, until: i64) -> Result<bool, String> {
        self.with(|c| {
            c.execute(
                "UPDATE commands SET next_at = ?2 WHERE id = ?1 AND state = ?3 AND next_at = ?4 \
                 AND NOT EXISTS (SELECT 1 FROM devices WHERE devices.sn = commands.sn AND devices.online = 1)",
                params![cmd.id as i64, until, cmd.state, cmd.next_at],
            )
            .map(|n| n == 1)
        })
    }

    /// Look again at `until`.
    pub fn command_defer(&self, cmd: &Cmd, until: i64) -> Result<bool, String> {
        self.with(|c| {
            c.execute("UPDATE commands SET next_at = ?2 WHERE id = ?1 AND state = ?3 AND next_at = ?4", params![cmd.id as i64, until, cmd.state, cmd.next_at])
                .map(|n| n == 1)
        })
    }

    pub fn command_fail(&self, cmd: &Cmd, now: i64, reason: &str) -> Result<bool, String> {
        self.with(|c| {
            c.execute(
                "UPDATE commands SET state = 3, failed_time = ?2, reason = ?3, next_at = 0 WHERE id = ?1 AND state = ?4 AND next_at = ?5",
                params![cmd.id as i64, now, reason, cmd.state, cmd.next_at],
            )
            .map(|n| n == 1)
        })
    }

    /// A device came online: its waiting commands are due now.
    pub fn commands_wake(&self, sn: &str, now: i64) -> Result<usize, String> {
        self.with(|c| c.execute("UPDATE commands SET next_at = ?2 WHERE sn = ?1 AND state = 0 AND next_at > ?2", params![sn, now]))
    }

    /// An answer on `resp/cmd`.
    pub fn command_answer(&self, a: &Answer, now: i64, retry_delay: i64) -> Result<Answered, String> {
        self.tx(|c| answer_in(c, a, now, retry_delay))
    }

    /// Many answers in one transaction (the control queue's group commit).
    pub fn commands_answer_many(&self, answers: &[Answer], now: i64, retry_delay: i64) -> Result<Vec<Answered>, String> {
        self.tx(|c| answers.iter().map(|a| answer_in(c, a, now, retry_delay)).collect())
    }

    /// Claim the next try of many commands in one transaction (as `command_claim_try`).
    pub fn commands_claim_many(&self, cmds: &[Cmd], now: i64, answer_timeout: i64) -> Result<Vec<bool>, String> {
        self.tx(|c| {
            let mut st = c.prepare_cached(
                "UPDATE commands SET state = 1, try_times = try_times + 1, publish_time = ?2, next_at = ?3 \
                 WHERE id = ?1 AND state = ?4 AND try_times = ?5 AND next_at = ?6",
            )?;
            cmds.iter().map(|cmd| st.execute(params![cmd.id as i64, now, now.saturating_add(answer_timeout), cmd.state, cmd.try_times, cmd.next_at]).map(|n| n == 1)).collect()
        })
    }

    /// Keep at most `keep` commands: the oldest finished ones go first.
    pub fn commands_prune(&self, keep: i64) -> Result<usize, String> {
        self.with(|c| {
            let total: i64 = c.query_row("SELECT COUNT(*) FROM commands", [], |r| r.get(0))?;
            if total <= keep {
                return Ok(0);
            }
            c.execute("DELETE FROM commands WHERE id IN (SELECT id FROM commands WHERE state IN (2, 3) ORDER BY id LIMIT ?1)", params![total - keep])
        })
    }
}
