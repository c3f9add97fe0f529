//! `sh`: run a shell command in its own process group, with a timeout
//! that kills the whole group and separately capped stdout and stderr.

use super::envelope::Outcome;
use base64::Engine as _;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

/// Limits for one run.
#[derive(Debug, Clone, Copy)]
pub struct ShLimits {
    pub cap: usize,
    pub default_timeout: u64,
    pub max_timeout: u64,
}

/// What a finished run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ShRun {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
}

/// After the shell ends (or is killed), how long output may still arrive:
/// background children of the script may write a little more, but one
/// that left the process group (`setsid`, a daemon) and keeps the pipe
/// open must not hold the answer — the pipes are closed after this.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// One captured stream: up to `cap` bytes kept, the rest counted as cut.
struct Stream {
    fd: Option<std::os::fd::OwnedFd>,
    kept: Vec<u8>,
    truncated: bool,
}

impl Stream {
    fn new(fd: Option<std::os::fd::OwnedFd>) -> Stream {
        Stream { fd, kept: Vec::new(), truncated: false }
    }

    /// Read what is there now (the fd is non-blocking); drop the fd at EOF.
    fn read_ready(&mut self, cap: usize) {
        let Some(fd) = &self.fd else { return };
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => {
                    self.fd = None;
                    return;
                }
                Ok(n) => {
                    let chunk = buf.get(..n).unwrap_or_default();
                    let room = cap.saturating_sub(self.kept.len());
                    self.kept.extend_from_slice(chunk.get(..n.min(room)).unwrap_or_default());
                    if n > room {
                        self.truncated = true;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    self.fd = None;
                    return;
                }
            }
        }
    }
}

fn nonblocking(fd: &std::os::fd::OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    fcntl(fd, FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK)).map_err(std::io::Error::from)?;
    Ok(())
}

/// Wait until one of the streams has data (or EOF), at most `wait`.
fn poll_streams(streams: &[&Stream], wait: Duration) {
    let mut fds: Vec<libc::pollfd> = streams
        .iter()
        .filter_map(|s| s.fd.as_ref())
        .map(|fd| libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(fd), events: libc::POLLIN, revents: 0 })
        .collect();
    if fds.is_empty() {
        std::thread::sleep(wait);
        return;
    }
    let ms = wait.as_millis().min(1000) as libc::c_int;
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the duration of the call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}

/// Run `script` with `/bin/sh -c`. The script runs in its own process
/// group; on timeout the whole group is killed. Output is read on this
/// thread with a deadline, so nothing the script leaves behind (a child
/// that escaped the group and holds stdout open) can delay the result by
/// more than [`DRAIN_GRACE`].
pub fn run(script: &str, timeout: Duration, cap: usize) -> std::io::Result<ShRun> {
    let mut child = Proc::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pgid = Pid::from_raw(child.id() as i32);
    let mut out = Stream::new(child.stdout.take().map(std::os::fd::OwnedFd::from));
    let mut err = Stream::new(child.stderr.take().map(std::os::fd::OwnedFd::from));
    for s in [&out, &err] {
        if let Some(fd) = &s.fd {
            nonblocking(fd)?;
        }
    }
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let mut status = None;
    let mut drain_until: Option<Instant> = None;
    loop {
        out.read_ready(cap);
        err.read_ready(cap);
        if status.is_none() {
            if let Some(st) = child.try_wait()? {
                status = Some(st);
                drain_until = Some(Instant::now() + DRAIN_GRACE);
            } else if Instant::now() >= deadline {
                timed_out = true;
                let _ = killpg(pgid, Signal::SIGKILL);
                status = Some(child.wait()?);
                drain_until = Some(Instant::now() + DRAIN_GRACE);
            }
        }
        let streams_open = out.fd.is_some() || err.fd.is_some();
        if let Some(until) = drain_until {
            if !streams_open {
                break;
            }
            if Instant::now() >= until {
                // Whatever still holds the pipes is not waited for. Kill
                // what is left of the group (not the escaped ones: they
                // are no longer ours to find) and close our ends.
                let _ = killpg(pgid, Signal::SIGKILL);
                out.read_ready(cap);
                err.read_ready(cap);
                break;
            }
        }
        let next = match drain_until {
            Some(until) => until,
            None => deadline,
        };
        // Poll in short steps: the shell's exit is noticed by try_wait.
        poll_streams(&[&out, &err], next.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)));
    }
    let Some(status) = status else { return Err(std::io::Error::other("no exit status")) };
    Ok(ShRun {
        stdout: out.kept,
        stderr: err.kept,
        stdout_truncated: out.truncated,
        stderr_truncated: err.truncated,
        code: status.code(),
        signal: status.signal(),
        timed_out,
    })
}

/// The `sh` command handler.
pub fn handle(body: &Value, enabled: bool, limits: ShLimits) -> Outcome {
    if !enabled {
        return Outcome::err("disabled: the sh command is turned off in this agent's configuration");
    }
    let Some(script) = body.get("shcmd").and_then(|v| v.as_str()) else {
        return Outcome::err("bad body: shcmd (a string) is required");
    };
    if script.trim().is_empty() {
        return Outcome::err("bad body: shcmd is empty");
    }
    let timeout = match body.get("timeout") {
        None | Some(Value::Null) => limits.default_timeout,
        Some(v) => match v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(t) if t > 0 => t.min(limits.max_timeout),
            _ => return Outcome::err("bad body: timeout must be a positive number of seconds"),
        },
    };
    let r = match run(script, Duration::from_secs(timeout), limits.cap) {
        Ok(r) => r,
        Err(e) => return Outcome::err(format!("cannot start /bin/sh: {e}")),
    };
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let code = r.code.unwrap_or(-1);
    let msg = if r.timed_out {
        format!("timed out after {timeout} s; process group killed")
    } else if let Some(sig) = r.signal {
        format!("killed by signal {sig}")
    } else if code != 0 {
        format!("exit code {code}")
    } else {
        String::new()
    };
    let ok = !r.timed_out && r.code == Some(0);
    let mut o = if ok { Outcome::ok(json!(b64(&r.stdout))) } else { Outcome::failed(msg, json!(b64(&r.stdout))) };
    o = o
        .with("stderr", json!(b64(&r.stderr)))
        .with("code", json!(code))
        .with("timedOut", json!(r.timed_out))
        .with("timeout", json!(timeout))
        .with("stdoutTruncated", json!(r.stdout_truncated))
        .with("stderrTruncated", json!(r.stderr_truncated))
        .with("cap", json!(limits.cap));
    if let Some(sig) = r.signal {
        o = o.with("signal", json!(sig));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_separately_and_caps() {
        let r = run("printf out; printf err >&2; exit 3", Duration::from_secs(5), 100).unwrap();
        assert_eq!((r.stdout.as_slice(), r.stderr.as_slice(), r.code), (&b"out"[..], &b"err"[..], Some(3)));
        let r = run("head -c 100000 /dev/zero", Duration::from_secs(5), 1000).unwrap();
        assert_eq!(r.stdout.len(), 1000);
        assert!(r.stdout_truncated && !r.stderr_truncated);
    }

    #[test]
    fn a_child_that_left_the_group_cannot_hold_the_result() {
        let kill_escaped = |out: &[u8]| {
            let text = String::from_utf8_lossy(out);
            let pid: i32 = text.lines().find_map(|l| l.strip_prefix("pid ")).and_then(|p| p.trim().parse().ok()).expect("pid printed");
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        };
        // No timeout hit: the shell exits at once, the escaped child keeps stdout.
        let t = Instant::now();
        let r = run("echo before; setsid sleep 100000 & echo pid $!; echo after", Duration::from_secs(20), 100).unwrap();
        kill_escaped(&r.stdout);
        assert!(!r.timed_out);
        assert_eq!(r.code, Some(0));
        let text = String::from_utf8_lossy(&r.stdout).into_owned();
        assert!(text.starts_with("before\npid ") && text.ends_with("after\n"), "{text}");
        assert!(t.elapsed() < DRAIN_GRACE + Duration::from_secs(3), "{:?}", t.elapsed());
        // Timeout hit while the escaped child holds stdout.
        let t = Instant::now();
        let r = run("setsid sleep 100000 & echo pid $!; sleep 1000", Duration::from_secs(1), 100).unwrap();
        kill_escaped(&r.stdout);
        assert!(r.timed_out);
        assert!(t.elapsed() < Duration::from_secs(1) + DRAIN_GRACE + Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn timeout_kills_the_group() {
        let t = Instant::now();
        let r = run("sleep 30 & sleep 30; echo never", Duration::from_millis(300), 100).unwrap();
        assert!(r.timed_out);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(r.stdout.is_empty());
    }
}
