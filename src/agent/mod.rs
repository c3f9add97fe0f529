//! The running agent: shared context, live state, start-up and shutdown,
//! signals.

pub mod apply;
pub mod birth;
pub mod clock;
pub mod context;
pub mod lock;
pub mod runtime;
pub mod state;
pub mod wake;

pub use context::Ctx;
pub use state::AgentState;
