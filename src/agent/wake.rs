//! The main loop's wake-up: a pipe it sleeps on in `poll(2)`. Signal
//! handlers and commands that ask for a restart write a byte to it, so the
//! loop needs no timer of its own (one wake-up a minute as a safety net).

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// Write end of the pipe (-1: none yet, or pipe2 failed).
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

/// The read end, owned by the main loop.
pub struct Waiter {
    read: libc::c_int,
}

impl Waiter {
    pub fn new() -> Waiter {
        let mut fds = [-1; 2];
        // SAFETY: fds is a valid array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == 0 {
            WAKE_FD.store(fds[1], Ordering::SeqCst);
        }
        Waiter { read: fds[0] }
    }

    /// Sleep until [`wake`] is called or `max` passes.
    pub fn wait(&self, max: Duration) {
        if self.read < 0 {
            std::thread::sleep(max.min(Duration::from_millis(100)));
            return;
        }
        let mut p = libc::pollfd { fd: self.read, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; then drain the non-blocking pipe.
        unsafe {
            libc::poll(&mut p, 1, max.as_millis().min(i32::MAX as u128) as i32);
            let mut buf = [0u8; 16];
            while libc::read(self.read, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
        }
    }
}

impl Default for Waiter {
    fn default() -> Self {
        Waiter::new()
    }
}
