//! Refusals of commands for reasons of trust, counted by reason (shown
//! by `agent get` as `state.refused`). The counters belong to the running
//! agent (`Ctx::refusals`), not to the process.

use serde_json::{Map, Value};
// AtomicUsize, not AtomicU64: 32-bit MIPS has no 64-bit atomics.
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unsigned,
    Malformed,
    UnknownKey,
    BadSignature,
    WrongSerial,
    Stale,
    Replayed,
    /// `agent set` of a trust setting in an unsigned command.
    SignatureRequired,
}

const ALL: [Reason; 8] = [
    Reason::Unsigned,
    Reason::Malformed,
    Reason::UnknownKey,
    Reason::BadSignature,
    Reason::WrongSerial,
    Reason::Stale,
    Reason::Replayed,
    Reason::SignatureRequired,
];

impl Reason {
    /// The key in `agent get` → `state.refused`.
    pub fn key(self) -> &'static str {
        match self {
            Reason::Unsigned => "unsigned",
            Reason::Malformed => "malformed",
            Reason::UnknownKey => "unknownKey",
            Reason::BadSignature => "badSignature",
            Reason::WrongSerial => "wrongSerial",
            Reason::Stale => "stale",
            Reason::Replayed => "replayed",
            Reason::SignatureRequired => "signatureRequired",
        }
    }

    fn slot(self) -> usize {
        ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The refusals since start, one counter per reason.
#[derive(Default)]
pub struct Refusals([AtomicUsize; 8]);

impl Refusals {
    /// Count one refusal.
    pub fn count(&self, r: Reason) {
        if let Some(c) = self.0.get(r.slot()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `{"unsigned": n, "badSignature": n, ...}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (r, c) in ALL.iter().zip(self.0.iter()) {
            m.insert(r.key().into(), Value::from(c.load(Ordering::Relaxed)));
        }
        Value::Object(m)
    }
}
