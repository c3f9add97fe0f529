//! Configuration: the UCI file at `/etc/config/dma-agent` (or `--config`).

pub mod device_store;
pub mod model;
pub mod uci;

pub use model::{AgentConfig, ClockTrust, Config, ReceiverConfig};
use crate::durable::write_atomic;

use crate::devices::DeviceKind;
use std::fmt;
use std::path::Path;
use uci::{Section, UciValue};

pub const DEFAULT_PATH: &str = "/etc/config/dma-agent";

/// A configuration error naming the file, the line and the option.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub option: String,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.option.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.msg)
        } else {
            write!(f, "{}:{}: option '{}': {}", self.file, self.line, self.option, self.msg)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Read and validate the configuration file.
pub fn load(path: &str) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.into(),
        line: 0,
        option: String::new(),
        msg: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Validate configuration text; `path` names it in errors.
pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
    let err = |line: usize, option: &str, msg: String| ConfigError { file: path.into(), line, option: option.into(), msg };
    let sections = uci::parse(text).map_err(|e| err(e.line, "", e.msg))?;
    let mut agent = AgentConfig::default();
    let mut agent_line = 0;
    let mut receiver = ReceiverConfig::default();
    let mut devices = Vec::new();
    let mut seen_agent = false;
    for (idx, sec) in sections.iter().enumerate() {
        match sec.stype.as_str() {
            "agent" => {
                if seen_agent {
                    return Err(err(sec.line, "", "more than one agent section".into()));
                }
                seen_agent = true;
                agent_line = sec.line;
                for o in &sec.options {
                    match (&o.value, o.name.as_str()) {
                        (UciValue::List(items), name) => agent.set_list(name, items).map_err(|m| err(o.line, name, m))?,
                        (UciValue::Single(v), "watch") => agent.watch = vec![v.clone()],
                        (UciValue::Single(v), name) => agent.set(name, v).map_err(|m| err(o.line, name, m))?,
                    }
                }
            }
            "sms_receiver" => {
                for o in &sec.options {
                    match (&o.value, o.name.as_str()) {
                        (UciValue::List(items), "allow") => receiver.allow = items.clone(),
                        (UciValue::Single(v), "allow") => receiver.allow = vec![v.clone()],
                        (UciValue::Single(v), name) => receiver.set(name, v).map_err(|m| err(o.line, name, m))?,
                        (UciValue::List(_), name) => return Err(err(o.line, name, "is not a list option".into())),
                    }
                }
            }
            "device" => devices.push(parse_device(path, idx, sec)?),
            other => return Err(err(sec.line, "", format!("unknown section type '{other}'"))),
        }
    }
    agent.finish(default_sn).map_err(|(o, m)| err(agent_line, &o, m))?;
    let mut names = std::collections::BTreeSet::new();
    for d in &devices {
        if !names.insert(d.name.clone()) {
            return Err(err(0, "", format!("two devices are named '{}'", d.name)));
        }
    }
    Ok(Config { path: path.to_string(), agent, receiver, devices })
}

fn parse_device(path: &str, idx: usize, sec: &Section) -> Result<crate::devices::DeviceConfig, ConfigError> {
    let err = |line: usize, option: &str, msg: String| ConfigError { file: path.into(), line, option: option.into(), msg };
    let kind_opt = sec.get("type").ok_or_else(|| err(sec.line, "type", "device section without a type".into()))?;
    let kind = match &kind_opt.value {
        UciValue::Single(t) => DeviceKind::parse(t)
            .ok_or_else(|| err(kind_opt.line, "type", format!("'{t}' is not one of iad, s20, goip, vpn")))?,
        UciValue::List(_) => return Err(err(kind_opt.line, "type", "is not a list option".into())),
    };
    let name = sec.name.clone().unwrap_or_else(|| format!("{}{}", kind.as_str(), idx));
    let mut d = model::device_defaults(&name, kind);
    for o in &sec.options {
        match &o.value {
            UciValue::Single(v) => model::set_device_option(&mut d, &o.name, v).map_err(|m| err(o.line, &o.name, m))?,
            UciValue::List(_) => return Err(err(o.line, &o.name, "is not a list option".into())),
        }
    }
    if d.address.is_empty() && d.enabled {
        return Err(err(sec.line, "address", "an enabled device needs an address".into()));
    }
    Ok(d)
}

/// The router's primary MAC as 12 upper-case hex digits: the first of the
/// usual LAN/WAN interfaces that has a non-zero address.
pub fn default_sn() -> String {
    let mut names: Vec<String> = ["br-lan", "eth0", "lan", "wan", "eth1"].iter().map(|s| s.to_string()).collect();
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        let mut rest: Vec<String> = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        rest.sort();
        names.extend(rest);
    }
    for n in names {
        if n == "lo" {
            continue;
        }
        if let Ok(mac) = std::fs::read_to_string(format!("/sys/class/net/{n}/address")) {
            let hex: String = mac.trim().chars().filter(|c| c.is_ascii_hexdigit()).collect::<String>().to_uppercase();
            if hex.len() == 12 && hex != "000000000000" {
                return hex;
            }
        }
    }
    String::new()
}

/// Apply `updates` to the agent section of the file at `path`, atomically:
/// write a temp file beside it, fsync, rename, fsync the directory.
/// Comments and unrelated sections are kept. Returns the new, validated
/// configuration; the file is left untouched when it cannot be read whole,
/// does not parse, or the result does not validate. `applied` runs with
/// the new configuration while the write lock is still held, so concurrent
/// updates are also applied in the order they were written.
pub fn update_agent_section(
    path: &str,
    lock: &crate::durable::WriteLock,
    updates: &[(String, Option<UciValue>)],
    applied: impl FnOnce(&Config),
) -> Result<Config, ConfigError> {
    let _guard = lock.hold();
    // Never rewrite a file we could not read whole: an empty or partial
    // text would silently drop the rest of the configuration.
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.into(),
        line: 0,
        option: String::new(),
        msg: format!("cannot read, not rewritten: {e}"),
    })?;
    let sections = uci::parse(&text).map_err(|e| ConfigError { file: path.into(), line: e.line, option: String::new(), msg: e.msg })?;
    let name = sections.iter().find(|s| s.stype == "agent").and_then(|s| s.name.clone());
    let name = name.as_deref().or(if sections.iter().any(|s| s.stype == "agent") { None } else { Some("agent") });
    let new_text = uci::edit_section(&text, "agent", name, updates)
        .map_err(|e| ConfigError { file: path.into(), line: e.line, option: String::new(), msg: e.msg })?;
    let cfg = parse(path, &new_text)?;
    write_atomic(Path::new(path), new_text.as_bytes()).map_err(|e| ConfigError {
        file: path.into(),
        line: 0,
        option: String::new(),
        msg: format!("cannot write: {e}"),
    })?;
    applied(&cfg);
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_full_file() {
        let text = "config agent 'agent'\n\toption sn 'AABBCCDDEEFF'\n\toption broker_port '8883'\n\toption tls '1'\n\toption password 's3cret!'\n\tlist watch 'dnsmasq'\n\tlist watch 'uhttpd'\n\nconfig sms_receiver\n\toption enabled '1'\n\toption listen '127.0.0.1:9000'\n\tlist allow '127.0.0.1'\n";
        let c = parse("/etc/config/dma-agent", text).unwrap();
        assert_eq!(c.agent.sn, "AABBCCDDEEFF");
        assert_eq!(c.agent.gateway_id, "AABBCCDDEEFF");
        assert_eq!(c.agent.broker_port, 8883);
        assert!(c.agent.tls);
        assert_eq!(c.agent.watch, vec!["dnsmasq", "uhttpd"]);
        assert!(c.receiver.enabled);
        assert_eq!(c.receiver.push_url(), "http://127.0.0.1:9000/");
        let shown = c.to_json_masked().to_string();
        assert!(!shown.contains("s3cret!"), "password must be masked");
        assert!(shown.contains(model::MASK));
        assert_eq!(c.secrets(), vec!["s3cret!".to_string()]);
        // Only the keys asked for, masked the same; a key that is no option gives nothing.
        let only = c.agent.to_json_masked_only(Some(&["password".into(), "sn".into(), "nope".into()]));
        assert_eq!(only, serde_json::json!({"password": model::MASK, "sn": "AABBCCDDEEFF"}));
        let all = c.agent.to_json_masked_only(None);
        assert_eq!(all, c.agent.to_json_masked());
        assert_eq!(all.as_object().map(|m| m.len()), Some(46), "every option");
    }

    #[test]
    fn errors_name_file_line_and_option() {
        let e = parse("/x", "config agent\n\toption sn 'A'\n\toption broker_port 'abc'\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line, e.option.as_str()), ("/x", 3, "broker_port"));
        assert_eq!(e.to_string(), "/x:3: option 'broker_port': 'abc' is not a whole number");
        let e = parse("/x", "config agent\n\toption sn 'A'\n\toption colour 'red'\n").unwrap_err();
        assert_eq!((e.line, e.option.as_str(), e.msg.as_str()), (3, "colour", "unknown option"));
        let e = parse("/x", "config agent\n\toption sn 'A'\nconfig device 'd'\n\toption type 'fax'\n").unwrap_err();
        assert_eq!((e.line, e.option.as_str()), (4, "type"));
        let e = parse("/x", "config agent\n\toption sn 'A'\nconfig device 'd'\n\toption type 'iad'\n").unwrap_err();
        assert_eq!(e.option, "address");
        let e = parse("/x", "config nonsense\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    /// The shipped sample parses, and so does it with every example
    /// section uncommented (placeholders filled in).
    #[test]
    fn shipped_sample_is_valid() {
        let sample = include_str!("../../openwrt/dma-agent/files/dma-agent.config");
        let c = parse("sample", sample).unwrap();
        assert_eq!(c.agent.broker_host, "127.0.0.1");
        assert!(c.devices.is_empty());
        let opened: String = sample
            .lines()
            .map(|l| l.strip_prefix("# config").map(|r| format!("config{r}")).or_else(|| l.strip_prefix("#\t").map(|r| format!("\t{r}"))).unwrap_or_else(|| l.to_string()))
            .map(|l| l.replace("LAN-DEVICE-IP", "127.0.0.1").replace("LAN-ROUTER-IP", "127.0.0.1"))
            .collect::<Vec<_>>()
            .join("\n");
        let c = parse("sample-opened", &opened).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.devices.len(), 4);
        assert!(c.receiver.enabled);
    }

    #[test]
    fn update_is_atomic_and_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("dma-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("dma-agent");
        let orig = "# keep me\nconfig agent 'agent'\n\toption sn 'A1'\n\nconfig device 'gw'\n\toption type 'goip'\n\toption address 'http://127.0.0.1:1'\n";
        std::fs::write(&p, orig).unwrap();
        let ps = p.to_string_lossy().into_owned();
        let c = update_agent_section(&ps, &Default::default(), &[("sys_interval".into(), Some(UciValue::Single("15".into())))], |_| {}).unwrap();
        assert_eq!(c.agent.sys_interval, 15);
        let now = std::fs::read_to_string(&p).unwrap();
        assert!(now.starts_with("# keep me\n"));
        assert!(now.contains("config device 'gw'"));
        // An invalid value leaves the file untouched.
        let bad = update_agent_section(&ps, &Default::default(), &[("sys_interval".into(), Some(UciValue::Single("soon".into())))], |_| {});
        assert!(bad.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), now);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_cannot_be_read_whole_or_parsed_is_not_rewritten() {
        let dir = std::env::temp_dir().join(format!("dma-cfg-unread-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let set = [("sys_interval".to_string(), Some(UciValue::Single("15".into())))];
        // Missing: refused, nothing created.
        let p = dir.join("missing");
        let e = update_agent_section(&p.to_string_lossy(), &Default::default(), &set, |_| {}).unwrap_err();
        assert!(e.msg.contains("cannot read"), "{e}");
        assert!(!p.exists());
        // Not UTF-8 (a torn or foreign file): refused, bytes untouched.
        let p = dir.join("binary");
        let bytes = b"config agent 'agent'\n\toption sn 'A1'\n\xff\xfe\n".to_vec();
        std::fs::write(&p, &bytes).unwrap();
        assert!(update_agent_section(&p.to_string_lossy(), &Default::default(), &set, |_| {}).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), bytes);
        // Does not parse: refused, untouched.
        let p = dir.join("broken");
        std::fs::write(&p, "config agent 'agent'\n\toption sn 'A1\n").unwrap();
        let e = update_agent_section(&p.to_string_lossy(), &Default::default(), &set, |_| {}).unwrap_err();
        assert!(e.line > 0, "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "config agent 'agent'\n\toption sn 'A1\n");
        // A directory where the file should be (read error): refused.
        let p = dir.join("adir");
        std::fs::create_dir_all(&p).unwrap();
        assert!(update_agent_section(&p.to_string_lossy(), &Default::default(), &set, |_| {}).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_updates_are_serialised_and_none_is_lost() {
        let dir = std::env::temp_dir().join(format!("dma-cfg-conc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("dma-agent");
        std::fs::write(&p, "config agent 'agent'\n\toption sn 'A1'\n").unwrap();
        let ps = p.to_string_lossy().into_owned();
        let keys = ["sys_interval", "procs_interval", "versions_interval", "periph_interval", "keepalive", "shell_timeout", "device_failures", "reconnect_min"];
        let lock = std::sync::Arc::new(crate::durable::WriteLock::default());
        let threads: Vec<_> = keys
            .iter()
            .map(|k| {
                let (ps, k, lock) = (ps.clone(), k.to_string(), lock.clone());
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        update_agent_section(&ps, &lock, &[(k.clone(), Some(UciValue::Single("7".into())))], |_| {}).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every thread's option is in the file: no update overwrote another's.
        let c = load(&ps).unwrap();
        assert_eq!((c.agent.sys_interval, c.agent.procs_interval, c.agent.versions_interval, c.agent.periph_interval), (7, 7, 7, 7));
        assert_eq!((c.agent.keepalive, c.agent.shell_timeout, c.agent.device_failures, c.agent.reconnect_min), (7, 7, 7, 7));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
