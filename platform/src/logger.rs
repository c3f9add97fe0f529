//! A minimal stderr logger (level tag, target, message) for the binary.
//! Every message is one line: control characters in it (from a login
//! name, a topic, a device's message, …) are written escaped, so nothing
//! from outside can forge a log line.

use std::fmt::Write as _;

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level() && (m.target().starts_with("dma_platform") || m.level() <= log::Level::Warn)
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("{} [{}] {}", r.level(), r.target(), clean(&r.args().to_string()));
        }
    }

    fn flush(&self) {}
}

pub fn init(level: log::LevelFilter) {
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}

/// `s` with control characters (C0, DEL, C1, line/paragraph separators)
/// escaped as `\n`, `\r`, `\t` or `\u{…}`. Also for values logged
/// through another logger (the demo's, in-process).
pub fn clean(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::clean("plain"), "plain");
        assert_eq!(super::clean("a\n[ERROR] forged\r\x1b[31m\u{85}"), "a\\n[ERROR] forged\\r\\u{1b}[31m\\u{85}");
    }
}
