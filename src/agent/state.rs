//! Live state shown by `agent get`: connection, recent errors, counters.

use serde_json::{json, Value};
use std::collections::VecDeque;

/// How many recent errors are kept.
const MAX_ERRORS: usize = 16;

#[derive(Debug, Default)]
pub struct AgentState {
    /// Since when the broker connection is up (None: down). The one
    /// "connected" the agent shows; the session's own flag is the
    /// publisher's, the outbox keeps its state machine's.
    pub connected_since: Option<u64>,
    pub connects: u64,
    pub started: u64,
    pub commands_received: u64,
    pub commands_rejected: u64,
    /// The engine's load (kept by the engine as it schedules).
    pub commands_running: usize,
    pub commands_queued: usize,
    pub commands_done: u64,
    /// Why the latest connection attempt failed (secret-free; a broker
    /// trial's rollback quotes it).
    pub last_broker_error: Option<String>,
    last_errors: VecDeque<(u64, String)>,
}

impl AgentState {
    pub fn new() -> AgentState {
        AgentState { started: crate::util::unix_now(), ..Default::default() }
    }

    pub fn error(&mut self, msg: impl Into<String>) {
        if self.last_errors.len() == MAX_ERRORS {
            self.last_errors.pop_front();
        }
        self.last_errors.push_back((crate::util::unix_now(), msg.into()));
    }

    pub fn to_json(&self) -> Value {
        json!({
            "connected": self.connected_since.is_some(),
            "connectedSince": self.connected_since,
            "connects": self.connects,
            "started": self.started,
            "commandsReceived": self.commands_received,
            "commandsRejected": self.commands_rejected,
            "lastErrors": self.last_errors.iter().map(|(t, m)| json!({"time": t, "msg": m})).collect::<Vec<_>>(),
        })
    }
}
