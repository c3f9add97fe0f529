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
        let mut line = format!("{}", r.args());
        if let Ok(s) = SECRETS.read() {
            for secret in s.iter() {
                if line.contains(secret.as_str()) {
                    line = line.replace(secret.as_str(), "******");
                }
            }
        }
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

pub fn set_secrets(secrets: Vec<String>) {
    if let Ok(mut s) = SECRETS.write() {
        *s = secrets;
    }
}
