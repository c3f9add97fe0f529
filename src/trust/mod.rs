//! Signed commands (docs/PROTOCOL.md, "Signed commands (v2)"): the
//! trusted public keys, the check of the signed envelope, the persisted
//! replay guard, the gate that applies the checks in the documented
//! order, and the refusal counters.

pub mod gate;
pub mod keys;
pub mod refusals;
pub mod replay;
pub mod verify;

pub use keys::TrustedKey;
