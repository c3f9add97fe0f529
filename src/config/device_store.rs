//! Writing a device section's options back to the UCI file: a password the
//! device accepted from a `<kind> set` (credential rotation) is stored so
//! that the agent still logs in after a restart.
//!
//! Same rules as [`super::update_agent_section`]: the file is rewritten
//! atomically under the one write lock, comments and other sections kept,
//! never rewritten when it cannot be read whole or the result does not
//! validate. The new value is registered with the log scrubber first.

use super::uci::{self, UciValue};
use super::{parse, ConfigError};
use crate::durable::write_atomic;
use std::path::Path;

/// Set `updates` on the device section named `device` (its UCI name, or
/// the `<type><index>` name an anonymous section gets). An anonymous
/// section is given that name in the file (`config device '<name>'`): the
/// same device, now addressable.
/// Returns the new, validated configuration; `applied` runs with it while
/// the write lock is still held (as for the agent section).
pub fn update_device_section(
    path: &str,
    lock: &crate::durable::WriteLock,
    device: &str,
    updates: &[(String, Option<UciValue>)],
    applied: impl FnOnce(&super::Config),
) -> Result<super::Config, ConfigError> {
    let err = |line: usize, msg: String| ConfigError { file: path.into(), line, option: String::new(), msg };
    let secrets: Vec<String> = updates
        .iter()
        .filter(|(k, _)| k == "password" || k.contains("secret"))
        .filter_map(|(_, v)| match v {
            Some(UciValue::Single(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    crate::logging::add_secrets(secrets);
    let _guard = lock.hold();
    let text = std::fs::read_to_string(path).map_err(|e| err(0, format!("cannot read, not rewritten: {e}")))?;
    let sections = uci::parse(&text).map_err(|e| err(e.line, e.msg))?;
    let found = sections.iter().enumerate().find(|(idx, s)| {
        s.stype == "device"
            && match &s.name {
                Some(n) => n == device,
                None => match s.get("type").map(|o| &o.value) {
                    Some(UciValue::Single(t)) => format!("{t}{idx}") == device,
                    _ => false,
                },
            }
    });
    let (_, sec) = found.ok_or_else(|| err(0, format!("no device section named '{device}'")))?;
    let text = match sec.name {
        Some(_) => text,
        None => name_anonymous(&text, sec.line, device).ok_or_else(|| {
            err(sec.line, format!("the section of device '{device}' is anonymous and its header is not a plain 'config device' line"))
        })?,
    };
    let new_text = uci::edit_section(&text, "device", Some(device), updates).map_err(|e| err(e.line, e.msg))?;
    let cfg = parse(path, &new_text)?;
    if !cfg.devices.iter().any(|d| d.name == device) {
        return Err(err(0, format!("device '{device}' would be lost by the edit; not written")));
    }
    write_atomic(Path::new(path), new_text.as_bytes()).map_err(|e| err(0, format!("cannot write: {e}")))?;
    applied(&cfg);
    Ok(cfg)
}

/// `text` with the anonymous `config device` header on 1-based `line`
/// named `name`; `None` when that line is not just the header.
fn name_anonymous(text: &str, line: usize, name: &str) -> Option<String> {
    let idx = line.checked_sub(1)?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header = lines.get(idx)?;
    let words: Vec<&str> = header.split_whitespace().collect();
    if words.len() != 2 || words.first() != Some(&"config") || !matches!(words.get(1), Some(&"device" | &"'device'" | &"\"device\"")) {
        return None;
    }
    let indent: String = header.chars().take_while(|c| c.is_whitespace()).collect();
    *lines.get_mut(idx)? = format!("{indent}config device {}", uci::quote(name));
    let mut out = lines.join("\n");
    out.push('\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# devices\nconfig agent 'agent'\n\toption sn 'X1'\n\toption broker_host '127.0.0.1'\n\nconfig device 's20a'\n\toption type 's20'\n\toption address 'http://127.0.0.1:1'\n\toption password 'old-pass'\n\nconfig device\n\toption type 'iad'\n\toption address 'http://127.0.0.1:2'\n\toption username 'admin'\n\toption password 'admin'\n";

    fn pw(v: &str) -> Vec<(String, Option<UciValue>)> {
        vec![("password".into(), Some(UciValue::Single(v.into())))]
    }

    #[test]
    fn stores_a_password_in_a_named_and_an_anonymous_section() {
        let dir = std::env::temp_dir().join(format!("dma-devstore-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("dma-agent");
        std::fs::write(&path, FILE).unwrap();
        let p = path.to_str().unwrap();
        update_device_section(p, &Default::default(), "s20a", &pw("new-pass-1"), |_| {}).unwrap();
        update_device_section(p, &Default::default(), "iad2", &pw("it's new"), |_| {}).unwrap();
        let cfg = super::super::load(p).unwrap();
        let s20 = cfg.devices.iter().find(|d| d.name == "s20a").unwrap();
        let iad = cfg.devices.iter().find(|d| d.name == "iad2").unwrap();
        assert_eq!((s20.password.as_str(), iad.password.as_str()), ("new-pass-1", "it's new"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# devices\n") && text.contains("config device 'iad2'"), "{text}");
        assert!(update_device_section(p, &Default::default(), "nope", &pw("x"), |_| {}).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "a refused edit leaves the file alone");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
