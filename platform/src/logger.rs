//! A minimal stderr logger (level tag, target, message) for the binary.

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level() && (m.target().starts_with("dma_platform") || m.level() <= log::Level::Warn)
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("{} [{}] {}", r.level(), r.target(), r.args());
        }
    }

    fn flush(&self) {}
}

pub fn init(level: log::LevelFilter) {
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}
