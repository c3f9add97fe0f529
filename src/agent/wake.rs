//! The main loop's wake-up: a pipe it sleeps on in `poll(2)`. Signal
//! handlers and commands that ask for a restart write a byte to it, so the
//! loop needs no timer of its own (one wake-up a minute as a safety net).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// Write end of the pipe, for the signal handler (the one thing it can
/// reach): -1 when there is none (no waiter, or pipe2 failed).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// Wake the main loop. Async-signal-safe (an atomic load and write(2)); a
/// full pipe just drops the byte, the loop is awake anyway.
pub fn wake() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) of one byte from a valid buffer.
        unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
    }
}

/// The pipe, owned by the main loop: both ends are closed when it goes
/// (an agent restarted in-process, the demo, does not leak them).
pub struct Waiter {
    ends: Option<(OwnedFd, OwnedFd)>,
}

impl Waiter {
    pub fn new() -> Waiter {
        let ends = crate::util::wake_pipe().ok();
        if let Some((_, w)) = &ends {
            WAKE_FD.store(w.as_raw_fd(), Ordering::SeqCst);
        }
        Waiter { ends }
    }

    /// Sleep until [`wake`] is called or `max` passes.
    pub fn wait(&self, max: Duration) {
        let Some((read, _)) = &self.ends else {
            std::thread::sleep(max.min(Duration::from_millis(100)));
            return;
        };
        let fd = read.as_raw_fd();
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd on a descriptor we own; then drain the
        // non-blocking pipe into a valid buffer.
        unsafe {
            libc::poll(&mut p, 1, max.as_millis().min(i32::MAX as u128) as i32);
            let mut buf = [0u8; 16];
            while libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // The handler must not write to a descriptor that is closed (and
        // perhaps reused) from here on.
        if let Some((_, w)) = &self.ends {
            let _ = WAKE_FD.compare_exchange(w.as_raw_fd(), -1, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
}

impl Default for Waiter {
    fn default() -> Self {
        Waiter::new()
    }
}
