//! The checks of a command payload before the v1 rules, in the order of
//! docs/PROTOCOL.md ("What the agent checks, in this order"): signed or
//! not, envelope shape, key, signature, serial, publishTime, age, replay
//! guard. Runs on the dispatcher thread (a verification is ~50 µs).

use super::refusals::Reason;
use super::replay::{ReplayGuard, Verdict};
use super::verify::{self, Envelope};
use super::TrustedKey;
use crate::commands::envelope::{self, ParseError};
use serde_json::Value;

/// How far ahead of a trusted clock a `publishTime` may be.
pub const FUTURE_SKEW: u64 = 300;

/// What the gate knows of this agent.
pub struct Policy<'a> {
    pub keys: &'a [TrustedKey],
    pub sn: &'a str,
    pub max_age: u64,
    /// Now, when the clock is trusted.
    pub trusted_now: Option<u64>,
}

/// A signed command that passed every check up to the replay guard.
#[derive(Debug)]
pub struct Admitted {
    pub kid: String,
    /// The inner command: the signed bytes, parsed by the envelope rules
    /// (kept as bytes so the id is echoed exactly as signed).
    pub inner: Vec<u8>,
    pub publish_time: u64,
    /// The journal key of its id (None: the id is invalid; v1 parsing refuses it).
    pub id_key: Option<String>,
    /// Its id is in the guard's set (a redelivery), with the
    /// `publishTime` recorded for it.
    pub seen: Option<u64>,
}

/// A refused command: why, and the head of its answer (msg set).
#[derive(Debug)]
pub struct Refusal {
    pub reason: Reason,
    pub head: ParseError,
}

// Boxed: the refusal is the rare path and is larger than the answer.
// Counted by the caller (`Ctx::refusals`), which owns the counters.
fn refuse(reason: Reason, bytes: &[u8], msg: String) -> Box<Refusal> {
    let mut head = envelope::parse_head(bytes);
    head.msg = msg;
    Box::new(Refusal { reason, head })
}

/// The inner bytes of a malformed envelope, when they can be had: only
/// for the answer's id and names.
fn inner_of(payload: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let b = v.get("signed")?.get("cmd")?.as_str()?;
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok()
}

/// `Ok(None)`: an unsigned command, accepted because no key is configured.
pub fn admit(payload: &[u8], p: &Policy, guard: &ReplayGuard) -> Result<Option<Admitted>, Box<Refusal>> {
    let signed = match verify::envelope(payload) {
        Err(m) => {
            let inner = inner_of(payload);
            return Err(refuse(Reason::Malformed, inner.as_deref().unwrap_or(payload), format!("malformed signed command: {m}; not run")));
        }
        Ok(Envelope::Plain) if p.keys.is_empty() => return Ok(None),
        Ok(Envelope::Plain) => {
            return Err(refuse(Reason::Unsigned, payload, "unsigned: this router runs only commands signed by one of its trusted keys; not run".into()))
        }
        Ok(Envelope::Signed(s)) => s,
    };
    let inner = signed.cmd.as_slice();
    verify::verify(&signed, p.keys).map_err(|(r, m)| refuse(r, inner, m))?;
    let obj = match serde_json::from_slice::<Value>(inner) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Err(refuse(Reason::Malformed, inner, "malformed signed command: the signed command is not a JSON object; not run".into())),
    };
    match obj.get("sn").and_then(Value::as_str) {
        Some(sn) if sn == p.sn => {}
        Some(other) => {
            let other: String = other.chars().take(64).collect();
            return Err(refuse(Reason::WrongSerial, inner, format!("wrong serial: signed for '{other}', this router is '{}'; not run", p.sn)));
        }
        None => return Err(refuse(Reason::WrongSerial, inner, format!("wrong serial: the signed command names no sn (this router is '{}'); not run", p.sn))),
    }
    let Some(pt) = obj.get("publishTime").and_then(Value::as_u64).filter(|t| *t > 0) else {
        return Err(refuse(Reason::Malformed, inner, "malformed signed command: publishTime (unix seconds) is required; not run".into()));
    };
    if let Some(now) = p.trusted_now {
        if pt.saturating_add(p.max_age) < now {
            return Err(refuse(Reason::Stale, inner, format!("stale: signed {}s ago, more than command_max_age {}s; not run", now - pt, p.max_age)));
        }
        if pt > now.saturating_add(FUTURE_SKEW) {
            return Err(refuse(Reason::Stale, inner, format!("stale: signed {}s in the future (clock skew over {FUTURE_SKEW}s); not run", pt - now)));
        }
    }
    let id_key = dma_wire::command::head(inner).id.key();
    let mut seen = None;
    if let Some(k) = &id_key {
        match guard.check(&signed.kid, k, pt) {
            Verdict::Replayed { floor } => {
                return Err(refuse(Reason::Replayed, inner, format!("replayed: signed at {pt}, not after this key's replay floor {floor}; not run")))
            }
            Verdict::Seen { recorded } => seen = Some(recorded),
            Verdict::New => {}
        }
    }
    Ok(Some(Admitted { kid: signed.kid, inner: inner.to_vec(), publish_time: pt, id_key, seen }))
}
