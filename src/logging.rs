//! A small `log` backend: one line per event on stderr with a level tag
//! (procd hands stderr to logd). Secret values from the configuration are
//! scrubbed from every line as a last line of defence.

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
        let _ = writeln!(std::io::stderr().lock(), "{tag}: {line}");
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

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
pub fn init(level: LevelFilter, config_path: &str) {
    if let Ok(c) = crate::config::load(config_path) {
        set_secrets(c.secrets());
    }
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
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
