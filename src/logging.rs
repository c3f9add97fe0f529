//! A small `log` backend: one line per event with a level tag, on stderr,
//! or, under procd (the init script sets `DMA_AGENT_LOG=syslog`), to syslog
//! (/dev/log) with the line's own priority: procd tags everything an
//! instance writes to stderr `daemon.err`, so `info` lines would read as
//! errors in logread. Secret values from the configuration are scrubbed
//! from every line as a last line of defence.

use log::{LevelFilter, Metadata, Record};
use std::io::Write;
use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());
/// When set, records of other crates (e.g. an embedded broker's) are dropped.
static OWN_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Log only this crate's records (the demo embeds a chatty broker).
pub fn own_records_only() {
    OWN_ONLY.store(true, std::sync::atomic::Ordering::SeqCst);
}

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level() && (!OWN_ONLY.load(std::sync::atomic::Ordering::Relaxed) || m.target().starts_with("dma_agent"))
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = scrub(&format!("{}", r.args()));
        let tag = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        if SYSLOG.load(std::sync::atomic::Ordering::Relaxed) && syslog::send(r.level(), &line) {
            return;
        }
        // One write per line (stderr is unbuffered: `writeln!` made four
        // syscalls of it, on every command's path).
        let _ = std::io::stderr().lock().write_all(format!("{tag}: {line}\n").as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;
/// Lines go to syslog (falling back to stderr when /dev/log is away).
static SYSLOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s {
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        "off" => LevelFilter::Off,
        _ => return None,
    })
}

/// Install the logger. Library crates' chatter (rustls, rumqttc) is kept
/// at warn unless the agent runs at trace.
/// `secrets`: those of the configuration the agent starts with (the
/// caller parsed it once, for the logger and the runtime alike).
pub fn init(level: LevelFilter, secrets: Vec<String>) {
    set_secrets(secrets);
    if std::env::var("DMA_AGENT_LOG").is_ok_and(|v| v == "syslog") {
        SYSLOG.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Syslog over the /dev/log datagram socket, facility daemon.
mod syslog {
    use std::os::unix::net::UnixDatagram;
    use std::sync::Mutex;

    const PATH: &str = "/dev/log";
    /// Longest line sent; longer ones are cut (syslogd's own limit is ~1 KiB).
    const MAX_LINE: usize = 1024;
    static SOCK: Mutex<Option<UnixDatagram>> = Mutex::new(None);

    /// RFC 3164 priority: facility daemon (3) * 8 + severity.
    pub fn priority(level: log::Level) -> u8 {
        24 + match level {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        }
    }

    /// `<PRI>dma-agent[PID]: line`, cut at a character boundary.
    pub fn datagram(level: log::Level, line: &str) -> String {
        let mut end = line.len().min(MAX_LINE);
        while !line.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        format!("<{}>dma-agent[{}]: {}", priority(level), std::process::id(), line.get(..end).unwrap_or(""))
    }

    /// Sends one line; false when syslog cannot be reached (the caller
    /// writes to stderr). Reconnects once (syslogd restarted).
    pub fn send(level: log::Level, line: &str) -> bool {
        let msg = datagram(level, line);
        let Ok(mut sock) = SOCK.lock() else { return false };
        for _ in 0..2 {
            if sock.is_none() {
                *sock = UnixDatagram::unbound().ok().filter(|s| s.connect(PATH).is_ok());
            }
            match sock.as_ref() {
                Some(s) if s.send(msg.as_bytes()).is_ok() => return true,
                Some(_) => *sock = None,
                None => return false,
            }
        }
        false
    }
}

/// Most secret values remembered; the oldest are forgotten beyond it.
const MAX_SECRETS: usize = 64;

pub fn set_secrets(secrets: Vec<String>) {
    if let Ok(mut s) = SECRETS.write() {
        s.clear();
    }
    add_secrets(secrets);
}

/// Learn secret values (a password changed by `agent set` or SIGHUP): they
/// are scrubbed from every line from now on. Old values are kept too — a
/// password that was just replaced is still worth hiding.
pub fn add_secrets(secrets: Vec<String>) {
    let Ok(mut s) = SECRETS.write() else { return };
    for v in secrets {
        if v.len() < 4 {
            continue;
        }
        s.retain(|x| *x != v);
        s.push(v);
    }
    while s.len() > MAX_SECRETS {
        s.remove(0);
    }
}

/// `line` with every known secret replaced by the mask. Longer secrets
/// first, so one that contains another is hidden whole.
pub fn scrub(line: &str) -> String {
    let mut out = line.to_string();
    if let Ok(s) = SECRETS.read() {
        let mut by_len: Vec<&String> = s.iter().collect();
        by_len.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for secret in by_len {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "******");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_carry_the_level_as_priority() {
        assert_eq!(syslog::priority(log::Level::Error), 27);
        assert_eq!(syslog::priority(log::Level::Warn), 28);
        assert_eq!(syslog::priority(log::Level::Info), 30);
        assert_eq!(syslog::priority(log::Level::Trace), 31);
        let d = syslog::datagram(log::Level::Info, "connected");
        assert_eq!(d, format!("<30>dma-agent[{}]: connected", std::process::id()));
        let long = "é".repeat(1000);
        let d = syslog::datagram(log::Level::Warn, &long);
        assert!(d.ends_with('é') && d.len() < 1100, "cut at a char boundary: {}", d.len());
    }

    #[test]
    fn learns_new_secrets_and_keeps_old_ones() {
        set_secrets(vec!["first-secret".into()]);
        add_secrets(vec!["second-secret".into(), "ab".into()]);
        assert_eq!(scrub("a first-secret b second-secret c ab"), "a ****** b ****** c ab");
        add_secrets(vec!["second-secret-longer".into()]);
        assert_eq!(scrub("x second-secret-longer"), "x ******");
        for i in 0..200 {
            add_secrets(vec![format!("bulk-{i:04}")]);
        }
        assert!(SECRETS.read().unwrap().len() <= MAX_SECRETS, "bounded");
        assert_eq!(scrub("bulk-0199"), "******");
    }
}
