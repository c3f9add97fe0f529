//! The upgrade's two flags for the running process, owned by the context
//! (`Ctx::upgrade`) instead of being process-wide: whether this version is
//! on trial (its birth PUBACK commits the transaction, `txn.rs`) and
//! whether an upgrade command is running (one at a time: a `detached` one
//! could otherwise run beside another and share its file names).

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct Flags {
    on_trial: AtomicBool,
    running: AtomicBool,
}

impl Flags {
    pub fn on_trial(&self) -> bool {
        self.on_trial.load(Ordering::SeqCst)
    }

    pub(super) fn set_on_trial(&self) {
        self.on_trial.store(true, Ordering::SeqCst);
    }

    /// Ends the trial; true when it was on (only the first caller commits).
    pub(super) fn end_trial(&self) -> bool {
        self.on_trial.swap(false, Ordering::SeqCst)
    }

    /// Claim the one running upgrade; released when the guard drops.
    pub(super) fn claim(&self) -> Option<Running<'_>> {
        (!self.running.swap(true, Ordering::SeqCst)).then_some(Running(&self.running))
    }
}

pub(super) struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
