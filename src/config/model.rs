//! The typed configuration: the `agent` section and the `device` sections,
//! validated, with defaults.

use crate::devices::{DeviceConfig, DeviceKind};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// When the device clock is trusted for judging a command's `expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockTrust {
    /// Trusted when the kernel says the clock is NTP-synchronised and it is
    /// not earlier than the agent's build time (default).
    Ntp,
    /// Always trusted (routers with an RTC).
    Always,
    /// Never: `expires` is ignored.
    Never,
}

impl ClockTrust {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockTrust::Ntp => "ntp",
            ClockTrust::Always => "always",
            ClockTrust::Never => "never",
        }
    }
}

/// Where the agent publishes what it sends (PROTOCOL.md, Topics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicLayout {
    /// v2: `{p}/sys/{sn}`, `{p}/resp/cmd/{sn}`, … (default): a broker ACL
    /// can pin each device to its own topics.
    Device,
    /// v1: `{p}/sys`, `{p}/resp/cmd`, … shared by the fleet (the seed's console).
    Shared,
}

impl TopicLayout {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicLayout::Device => "device",
            TopicLayout::Shared => "shared",
        }
    }
}

/// The `config agent` section.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Read by the init script (the service does not start when 0).
    pub enabled: bool,
    /// Read by the init script (`--log-level`).
    pub log_level: String,
    pub sn: String,
    pub gateway_id: String,
    pub client_id: String,
    pub broker_host: String,
    pub broker_port: u16,
    pub tls: bool,
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
    pub username: String,
    pub password: String,
    pub prefix: String,
    pub topic_layout: TopicLayout,
    /// Seconds a signed broker move has to get the agent online on the new
    /// broker before it goes back to the old one (commands/broker_trial.rs).
    pub broker_trial: u64,
    pub keepalive: u64,
    pub sys_interval: u64,
    pub procs_interval: u64,
    pub versions_interval: u64,
    pub periph_interval: u64,
    pub watch: Vec<String>,
    pub state_dir: String,
    pub max_running: usize,
    pub queue_size: usize,
    pub journal_size: usize,
    /// Bytes the journal file may take on flash (its compaction needs half that again).
    pub journal_bytes: u64,
    pub shell_enabled: bool,
    pub shell_output_cap: usize,
    pub shell_timeout: u64,
    pub shell_max_timeout: u64,
    pub startup_delay: u64,
    pub reconnect_min: u64,
    pub reconnect_max: u64,
    pub reboot_command: String,
    pub reboot_ack_timeout: u64,
    pub upgrade_command: String,
    pub upgrade_max_bytes: u64,
    pub upgrade_dir: String,
    pub upgrade_stall_timeout: u64,
    pub boot_id_file: String,
    pub clock_trust: ClockTrust,
    pub device_failures: u32,
    pub event_queue_bytes: u64,
    /// Public keys whose signed commands run (`list trusted_key 'kid:BASE64'`);
    /// empty: unsigned commands are accepted (migration mode).
    pub trusted_keys: Vec<crate::trust::TrustedKey>,
    /// Oldest `publishTime` of a signed command accepted on a trusted clock.
    pub command_max_age: u64,
}

/// The `config sms_receiver` section: the receiver of the GoIP's pushes,
/// the registration with each GoIP and the inbox reconciliation.
///
/// - `enabled` (`0`): run the receiver, registration and reconciliation
///   (the `sms` command works without it, but then reports nothing);
/// - `listen` (`127.0.0.1:8090`): address:port the receiver listens on;
/// - `url`: base URL the GoIP is told to push to (the router's address as
///   the GoIP sees it); `http://<listen>/` when empty. Each GoIP gets
///   `<url>/goip/<device>` so the receiver knows which one pushed;
/// - `list allow`: source addresses (or host names) allowed to push;
///   empty: the configured GoIP hosts (loopback only when a GoIP is on it);
/// - `max_body` (262144): largest push body in bytes (413 above);
/// - `rate` (50): pushes per second (token bucket, 429 above);
/// - `status_period` (60): seconds between the GoIP's `dev-status` pushes
///   (0 stops them);
/// - `reconcile_interval` (300): seconds between inbox reads (0: only at
///   start and after a refused push);
/// - `seen_size` (4096): SMS/report keys remembered to drop duplicates
///   (persisted; must exceed the SMS received between two inbox reads).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    pub enabled: bool,
    /// Address to listen on, e.g. `0.0.0.0:8090`.
    pub listen: String,
    /// URL the GoIP is told to push to (the router's LAN address as the
    /// GoIP sees it); derived from `listen` when empty.
    pub url: String,
    /// Source addresses allowed to push (empty: the configured GoIP hosts).
    pub allow: Vec<String>,
    pub max_body: usize,
    /// Requests per second accepted (token bucket).
    pub rate: u32,
    pub status_period: u64,
    pub reconcile_interval: u64,
    pub seen_size: usize,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            enabled: false,
            listen: "127.0.0.1:8090".into(),
            url: String::new(),
            allow: Vec::new(),
            max_body: 256 * 1024,
            rate: 50,
            status_period: 60,
            reconcile_interval: 300,
            seen_size: 4096,
        }
    }
}

/// Everything the agent reads from its UCI file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: String,
    pub agent: AgentConfig,
    pub receiver: ReceiverConfig,
    pub devices: Vec<DeviceConfig>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            enabled: true,
            log_level: "info".into(),
            sn: String::new(),
            gateway_id: String::new(),
            client_id: String::new(),
            broker_host: "127.0.0.1".into(),
            broker_port: 1883,
            tls: false,
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            username: String::new(),
            password: String::new(),
            prefix: "dma".into(),
            topic_layout: TopicLayout::Device,
            broker_trial: 120,
            keepalive: 60,
            sys_interval: 60,
            procs_interval: 60,
            versions_interval: 3600,
            periph_interval: 300,
            watch: Vec::new(),
            state_dir: "/etc/dma-agent".into(),
            max_running: 4,
            queue_size: 16,
            journal_size: 256,
            journal_bytes: 256 * 1024,
            shell_enabled: true,
            shell_output_cap: 64 * 1024,
            shell_timeout: 30,
            shell_max_timeout: 600,
            startup_delay: 0,
            reconnect_min: 1,
            reconnect_max: 300,
            reboot_command: String::new(),
            reboot_ack_timeout: 10,
            // empty: the router's own installer (apk or opkg), commands/upgrade/installer.rs
            upgrade_command: String::new(),
            upgrade_max_bytes: 8 * 1024 * 1024,
            upgrade_dir: "/tmp".into(),
            upgrade_stall_timeout: 60,
            boot_id_file: "/proc/sys/kernel/random/boot_id".into(),
            clock_trust: ClockTrust::Ntp,
            device_failures: 3,
            event_queue_bytes: 1024 * 1024,
            trusted_keys: Vec::new(),
            command_max_age: 86400,
        }
    }
}

/// Agent options that are secrets: masked wherever configuration is shown.
pub const AGENT_SECRETS: &[&str] = &["password"];

/// Agent options that cannot change without reconnecting to the broker
/// (the agent restarts itself to apply them).
pub const RESTART_KEYS: &[&str] = &[
    "sn", "gateway_id", "client_id", "broker_host", "broker_port", "tls", "ca_file", "cert_file", "key_file",
    "username", "password", "prefix", "topic_layout", "keepalive", "state_dir", "max_running", "queue_size", "journal_size",
    "journal_bytes", "boot_id_file", "event_queue_bytes",
];

pub const MASK: &str = "******";

/// The restart-only options whose values differ between `old` and `new`
/// (secrets compared by value, not by their mask).
pub fn restart_keys_changed(old: &AgentConfig, new: &AgentConfig) -> Vec<&'static str> {
    let (o, n) = (old.to_json_masked(), new.to_json_masked());
    RESTART_KEYS
        .iter()
        .copied()
        .filter(|k| if *k == "password" { old.password != new.password } else { o.get(*k) != n.get(*k) })
        .collect()
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "on" | "true" | "yes" | "enabled" => Ok(true),
        "0" | "off" | "false" | "no" | "disabled" => Ok(false),
        _ => Err(format!("'{v}' is not a boolean (use 1 or 0)")),
    }
}

fn parse_num<T: std::str::FromStr>(v: &str, min: u64, max: u64) -> Result<T, String> {
    let n: u64 = v.trim().parse().map_err(|_| format!("'{v}' is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("{n} is out of range {min}..={max}"));
    }
    v.trim().parse::<T>().map_err(|_| format!("'{v}' is out of range"))
}

fn check_topic_part(v: &str) -> Result<String, String> {
    if v.is_empty() || v.contains(['+', '#', '\0']) || v.len() > 128 {
        return Err(format!("'{v}' is not usable in an MQTT topic"));
    }
    Ok(v.to_string())
}

impl AgentConfig {
    /// Set one option from its UCI text. The error is the reason only; the
    /// caller adds file, line and option.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "enabled" => self.enabled = parse_bool(value)?,
            "log_level" => {
                if crate::logging::parse_level(value).is_none() {
                    return Err(format!("'{value}' must be error, warn, info, debug or trace"));
                }
                self.log_level = value.to_string()
            }
            "sn" => self.sn = if value.is_empty() { String::new() } else { check_topic_part(value)? },
            "gateway_id" => self.gateway_id = value.to_string(),
            "client_id" => self.client_id = value.to_string(),
            "broker_host" => {
                if value.is_empty() || value.contains(char::is_whitespace) {
                    return Err(format!("'{value}' is not a host name"));
                }
                self.broker_host = value.to_string()
            }
            "broker_port" => self.broker_port = parse_num(value, 1, 65535)?,
            "tls" => self.tls = parse_bool(value)?,
            "ca_file" => self.ca_file = value.to_string(),
            "cert_file" => self.cert_file = value.to_string(),
            "key_file" => self.key_file = value.to_string(),
            "username" => self.username = value.to_string(),
            "password" => self.password = value.to_string(),
            "prefix" => self.prefix = check_topic_part(value)?,
            "topic_layout" => {
                self.topic_layout = match value {
                    "device" => TopicLayout::Device,
                    "shared" => TopicLayout::Shared,
                    _ => return Err(format!("'{value}' must be device or shared")),
                }
            }
            "broker_trial" => self.broker_trial = parse_num(value, 5, 3600)?,
            "keepalive" => self.keepalive = parse_num(value, 5, 3600)?,
            "sys_interval" => self.sys_interval = parse_num(value, 0, 86400)?,
            "procs_interval" => self.procs_interval = parse_num(value, 0, 86400)?,
            "versions_interval" => self.versions_interval = parse_num(value, 0, 7 * 86400)?,
            "periph_interval" => self.periph_interval = parse_num(value, 1, 86400)?,
            "state_dir" => {
                if !value.starts_with('/') {
                    return Err(format!("'{value}' is not an absolute path"));
                }
                self.state_dir = value.to_string()
            }
            "max_running" => self.max_running = parse_num(value, 1, 64)?,
            "queue_size" => self.queue_size = parse_num(value, 0, 1024)?,
            "journal_size" => self.journal_size = parse_num(value, 16, 4096)?,
            "journal_bytes" => self.journal_bytes = parse_num(value, 16 * 1024, 16 * 1024 * 1024)?,
            "shell_enabled" => self.shell_enabled = parse_bool(value)?,
            "shell_output_cap" => self.shell_output_cap = parse_num(value, 256, 16 * 1024 * 1024)?,
            "shell_timeout" => self.shell_timeout = parse_num(value, 1, 86400)?,
            "shell_max_timeout" => self.shell_max_timeout = parse_num(value, 1, 86400)?,
            "startup_delay" => self.startup_delay = parse_num(value, 0, 3600)?,
            "reconnect_min" => self.reconnect_min = parse_num(value, 1, 3600)?,
            "reconnect_max" => self.reconnect_max = parse_num(value, 1, 86400)?,
            "reboot_command" => self.reboot_command = value.to_string(),
            "reboot_ack_timeout" => self.reboot_ack_timeout = parse_num(value, 1, 600)?,
            "upgrade_command" => {
                if !value.is_empty() && !value.contains("{file}") {
                    return Err("must contain {file} where the downloaded package goes (empty: apk or opkg, as the router has)".into());
                }
                self.upgrade_command = value.to_string()
            }
            "upgrade_max_bytes" => self.upgrade_max_bytes = parse_num(value, 1024, 256 * 1024 * 1024)?,
            "upgrade_dir" => {
                if !value.starts_with('/') {
                    return Err("must be an absolute path (default /tmp: RAM, not flash)".into());
                }
                self.upgrade_dir = value.to_string()
            }
            "upgrade_stall_timeout" => self.upgrade_stall_timeout = parse_num(value, 1, 3600)?,
            "boot_id_file" => self.boot_id_file = value.to_string(),
            "clock_trust" => {
                self.clock_trust = match value {
                    "ntp" => ClockTrust::Ntp,
                    "always" => ClockTrust::Always,
                    "never" => ClockTrust::Never,
                    _ => return Err(format!("'{value}' must be ntp, always or never")),
                }
            }
            "device_failures" => self.device_failures = parse_num(value, 1, 100)?,
            "event_queue_bytes" => self.event_queue_bytes = parse_num(value, 4096, 64 * 1024 * 1024)?,
            "command_max_age" => self.command_max_age = parse_num(value, 60, 365 * 86400)?,
            "trusted_key" => self.set_list(key, &[value.to_string()])?,
            _ => return Err("unknown option".into()),
        }
        Ok(())
    }

    /// Set a list option (`watch`, `trusted_key`) from its items.
    pub fn set_list(&mut self, key: &str, items: &[String]) -> Result<(), String> {
        match key {
            "watch" => self.watch = items.to_vec(),
            "trusted_key" => self.trusted_keys = crate::trust::keys::parse_list(items)?,
            _ => return Err("is not a list option".into()),
        }
        Ok(())
    }

    /// Checks across options, after all are set.
    pub fn finish(&mut self, default_sn: impl FnOnce() -> String) -> Result<(), (String, String)> {
        if self.sn.is_empty() {
            self.sn = default_sn();
        }
        if self.sn.is_empty() {
            return Err(("sn".into(), "no serial configured and no MAC address found".into()));
        }
        if self.gateway_id.is_empty() {
            self.gateway_id = self.sn.clone();
        }
        if self.client_id.is_empty() {
            self.client_id = self.sn.clone();
        }
        if self.shell_timeout > self.shell_max_timeout {
            return Err(("shell_timeout".into(), "must not exceed shell_max_timeout".into()));
        }
        if self.reconnect_min > self.reconnect_max {
            return Err(("reconnect_min".into(), "must not exceed reconnect_max".into()));
        }
        if self.cert_file.is_empty() != self.key_file.is_empty() {
            return Err(("cert_file".into(), "cert_file and key_file go together".into()));
        }
        Ok(())
    }

    /// The options as JSON, secrets masked (`check-config`, `agent get`).
    pub fn to_json_masked(&self) -> Value {
        self.to_json_masked_only(None)
    }

    /// [`AgentConfig::to_json_masked`], only the options named in `keys`
    /// (all with `None`): an `agent get` of a few keys builds just those.
    pub fn to_json_masked_only(&self, keys: Option<&[String]>) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: &dyn Fn() -> Value| {
            if keys.is_none_or(|ks| ks.iter().any(|x| x == k)) {
                m.insert(k.to_string(), v());
            }
        };
        put("enabled", &|| json!(self.enabled));
        put("log_level", &|| json!(self.log_level));
        put("sn", &|| json!(self.sn));
        put("gateway_id", &|| json!(self.gateway_id));
        put("client_id", &|| json!(self.client_id));
        put("broker_host", &|| json!(self.broker_host));
        put("broker_port", &|| json!(self.broker_port));
        put("tls", &|| json!(self.tls));
        put("ca_file", &|| json!(self.ca_file));
        put("cert_file", &|| json!(self.cert_file));
        put("key_file", &|| json!(self.key_file));
        put("username", &|| json!(self.username));
        put("password", &|| json!(if self.password.is_empty() { "" } else { MASK }));
        put("prefix", &|| json!(self.prefix));
        put("topic_layout", &|| json!(self.topic_layout.as_str()));
        put("broker_trial", &|| json!(self.broker_trial));
        put("keepalive", &|| json!(self.keepalive));
        put("sys_interval", &|| json!(self.sys_interval));
        put("procs_interval", &|| json!(self.procs_interval));
        put("versions_interval", &|| json!(self.versions_interval));
        put("periph_interval", &|| json!(self.periph_interval));
        put("watch", &|| json!(self.watch));
        put("state_dir", &|| json!(self.state_dir));
        put("max_running", &|| json!(self.max_running));
        put("queue_size", &|| json!(self.queue_size));
        put("journal_size", &|| json!(self.journal_size));
        put("journal_bytes", &|| json!(self.journal_bytes));
        put("shell_enabled", &|| json!(self.shell_enabled));
        put("shell_output_cap", &|| json!(self.shell_output_cap));
        put("shell_timeout", &|| json!(self.shell_timeout));
        put("shell_max_timeout", &|| json!(self.shell_max_timeout));
        put("startup_delay", &|| json!(self.startup_delay));
        put("reconnect_min", &|| json!(self.reconnect_min));
        put("reconnect_max", &|| json!(self.reconnect_max));
        put("reboot_command", &|| json!(self.reboot_command));
        put("reboot_ack_timeout", &|| json!(self.reboot_ack_timeout));
        put("upgrade_command", &|| json!(self.upgrade_command));
        put("upgrade_max_bytes", &|| json!(self.upgrade_max_bytes));
        put("upgrade_dir", &|| json!(self.upgrade_dir));
        put("upgrade_stall_timeout", &|| json!(self.upgrade_stall_timeout));
        put("boot_id_file", &|| json!(self.boot_id_file));
        put("clock_trust", &|| json!(self.clock_trust.as_str()));
        put("device_failures", &|| json!(self.device_failures));
        put("event_queue_bytes", &|| json!(self.event_queue_bytes));
        // Public keys: not secrets.
        put("trusted_key", &|| json!(self.trusted_keys.iter().map(|k| k.text()).collect::<Vec<_>>()));
        put("command_max_age", &|| json!(self.command_max_age));
        Value::Object(m)
    }
}

impl ReceiverConfig {
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "enabled" => self.enabled = parse_bool(value)?,
            "listen" => {
                value
                    .parse::<std::net::SocketAddr>()
                    .map_err(|_| format!("'{value}' is not an address:port"))?;
                self.listen = value.to_string()
            }
            "url" => {
                if !value.is_empty() && !value.starts_with("http://") {
                    return Err(format!("'{value}' is not an http:// URL"));
                }
                self.url = value.to_string()
            }
            "max_body" => self.max_body = parse_num(value, 1024, 16 * 1024 * 1024)?,
            "rate" => self.rate = parse_num(value, 1, 100_000)?,
            "status_period" => self.status_period = parse_num(value, 0, 86400)?,
            "reconcile_interval" => self.reconcile_interval = parse_num(value, 0, 86400)?,
            "seen_size" => self.seen_size = parse_num(value, 16, 1_000_000)?,
            _ => return Err("unknown option".into()),
        }
        Ok(())
    }

    /// The URL the GoIP should push to.
    pub fn push_url(&self) -> String {
        if !self.url.is_empty() {
            return self.url.clone();
        }
        format!("http://{}/", self.listen)
    }

    pub fn to_json(&self) -> Value {
        json!({"enabled": self.enabled, "listen": self.listen, "url": self.push_url(), "allow": self.allow,
               "max_body": self.max_body, "rate": self.rate, "status_period": self.status_period,
               "reconcile_interval": self.reconcile_interval, "seen_size": self.seen_size})
    }
}

/// Start a device config with defaults for its section name and kind.
pub fn device_defaults(name: &str, kind: DeviceKind) -> DeviceConfig {
    DeviceConfig {
        name: name.to_string(),
        kind,
        address: String::new(),
        username: String::new(),
        password: String::new(),
        poll_interval: Duration::from_secs(15),
        timeout: Duration::from_secs(5),
        enabled: true,
        options: BTreeMap::new(),
    }
}

/// Set one option of a device section.
pub fn set_device_option(d: &mut DeviceConfig, key: &str, value: &str) -> Result<(), String> {
    match key {
        "type" => {}
        "address" => {
            if !(value.starts_with("http://") || value.starts_with("https://")) {
                return Err(format!("'{value}' must start with http:// or https://"));
            }
            d.address = value.trim_end_matches('/').to_string()
        }
        "username" => d.username = value.to_string(),
        "password" => d.password = value.to_string(),
        // `nId` in periph messages: a literal, or `serial` for the device's own.
        "node_id" => {
            d.options.insert("node_id".into(), value.to_string());
        }
        // How long a LAN command may wait for its turn on the device (then
        // it is cancelled, never sent) and then for its result.
        "command_timeout" => {
            parse_num::<u64>(value, 1, 3600)?;
            d.options.insert("command_timeout".into(), value.trim().to_string());
        }
        "poll_interval" => d.poll_interval = Duration::from_secs(parse_num(value, 1, 86400)?),
        "timeout" => d.timeout = Duration::from_millis(parse_num::<u64>(value, 1, 300)? * 1000),
        "timeout_ms" => d.timeout = Duration::from_millis(parse_num(value, 50, 300_000)?),
        "enabled" => d.enabled = parse_bool(value)?,
        other => {
            if d.kind.extra_options().iter().any(|(k, _)| *k == other) {
                d.options.insert(other.to_string(), value.to_string());
            } else {
                return Err("unknown option".into());
            }
        }
    }
    Ok(())
}

/// A device section as JSON with secrets masked.
pub fn device_to_json_masked(d: &DeviceConfig) -> Value {
    let mut opts = Map::new();
    for (k, v) in &d.options {
        let secret = d.kind.extra_options().iter().any(|(n, s)| n == k && *s);
        opts.insert(k.clone(), json!(if secret && !v.is_empty() { MASK } else { v.as_str() }));
    }
    json!({
        "name": d.name, "type": d.kind.as_str(), "address": d.address, "username": d.username,
        "password": if d.password.is_empty() { "" } else { MASK },
        "poll_interval": d.poll_interval.as_secs(), "timeout_ms": d.timeout.as_millis() as u64,
        "enabled": d.enabled, "options": opts,
    })
}

impl Config {
    pub fn to_json_masked(&self) -> Value {
        json!({
            "agent": self.agent.to_json_masked(),
            "sms_receiver": self.receiver.to_json(),
            "devices": self.devices.iter().map(device_to_json_masked).collect::<Vec<_>>(),
        })
    }

    /// Every secret value in the configuration, so log lines and answers
    /// can be scrubbed of them as a last line of defence.
    pub fn secrets(&self) -> Vec<String> {
        let mut v = vec![self.agent.password.clone()];
        for d in &self.devices {
            v.push(d.password.clone());
            for (k, val) in &d.options {
                if d.kind.extra_options().iter().any(|(n, s)| n == k && *s) {
                    v.push(val.clone());
                }
            }
        }
        v.retain(|s| s.len() >= 4);
        v
    }
}
