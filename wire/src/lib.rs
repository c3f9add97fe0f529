//! The wire contract of docs/PROTOCOL.md as types, one definition for the
//! agent, `ctl` and the platform: topic names in both layouts, the
//! command envelope (plain and signed), the answer envelope, event and
//! report envelopes, the command names, and command ids that are echoed
//! byte for byte whatever their size or type.
//!
//! Depends on serde and serde_json only (it is linked into the router
//! binary).

pub mod answer;
pub mod command;
pub mod id;
pub mod names;
pub mod report;
pub mod time;
pub mod topics;

pub use answer::{Answer, Status};
pub use command::{Command, Head, Refused};
pub use id::Id;
pub use topics::{Layout, Topics};
