//! `sh`: run a shell command in its own process group, with a timeout
//! that kills the whole group and separately capped stdout and stderr.

use super::envelope::Outcome;
use base64::Engine as _;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command as Proc, Stdio};
use std::thread::JoinHandle;
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

/// Read up to `cap` bytes and drain (count, discard) the rest so the child
/// never blocks on a full pipe.
fn capture<R: Read + Send + 'static>(mut r: R, cap: usize) -> JoinHandle<(Vec<u8>, bool)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut truncated = false;
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    if n > room {
                        truncated = true;
                    }
                }
            }
        }
        (kept, truncated)
    })
}

/// Run `script` with `/bin/sh -c`.
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
    let out = child.stdout.take().map(|s| capture(s, cap));
    let err = child.stderr.take().map(|s| capture(s, cap));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = killpg(pgid, Signal::SIGKILL);
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Background children of the shell keep the pipes open: give them a
    // moment, then end the group so the readers finish.
    let join = |h: Option<JoinHandle<(Vec<u8>, bool)>>| -> (Vec<u8>, bool) {
        let Some(h) = h else { return (Vec::new(), false) };
        let until = Instant::now() + Duration::from_secs(2);
        while !h.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !h.is_finished() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        h.join().unwrap_or_default()
    };
    let (stdout, stdout_truncated) = join(out);
    let (stderr, stderr_truncated) = join(err);
    Ok(ShRun { stdout, stderr, stdout_truncated, stderr_truncated, code: status.code(), signal: status.signal(), timed_out })
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
    fn timeout_kills_the_group() {
        let t = Instant::now();
        let r = run("sleep 30 & sleep 30; echo never", Duration::from_millis(300), 100).unwrap();
        assert!(r.timed_out);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(r.stdout.is_empty());
    }
}
