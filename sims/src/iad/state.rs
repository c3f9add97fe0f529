//! The simulated IAD's state: sessions, ports, call records, settings.

use super::IadSimConfig;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Type of an analogue port as `dahdi_scan` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// Phone side: the IAD feeds a handset.
    Fxs,
    /// Line side: the IAD is fed by a PSTN line.
    Fxo,
}

#[derive(Debug, Clone)]
pub struct Port {
    pub kind: PortKind,
    pub in_use: bool,
    pub offhook: bool,
    pub line_connected: bool,
    pub sip_registered: Option<bool>,
}

pub struct State {
    pub cfg: IadSimConfig,
    /// token → last use.
    pub tokens: HashMap<String, Instant>,
    pub login_count: usize,
    pub reboot_count: usize,
    pub reset_count: usize,
    pub booted: Instant,
    pub ports: Vec<Port>,
    pub cdr: Vec<Value>,
    /// Stored `*_set` bodies by `class/prefix`, answered by `*_get`.
    pub settings: BTreeMap<String, Map<String, Value>>,
    pub calls: HashMap<String, usize>,
    /// Web accounts: username → lower-case hex MD5 of the password (as
    /// `sys_user/export` shows them), seeded with the configured one.
    pub accounts: BTreeMap<String, String>,
    /// Fault: `sys_user/set` answers 200 but changes nothing.
    pub ignore_password_change: bool,
    /// Network tests by name (seed 4.5) and their result files.
    pub diag: BTreeMap<String, super::diag::Run>,
    /// `upload_permission` granted, not yet used.
    pub upload_permission: bool,
    /// The core service is down (low memory mode, seed 4.2.1).
    pub core_down: bool,
    /// Away (rebooting after an upgrade) until then.
    pub down_until: Option<Instant>,
    pub upgrade_log: Vec<String>,
    seq: u64,
}

impl State {
    pub fn new(cfg: IadSimConfig) -> State {
        let ports = cfg
            .ports
            .iter()
            .enumerate()
            .map(|(i, &kind)| Port {
                kind,
                in_use: false,
                offhook: false,
                line_connected: false,
                // As in the seed: the account of port 6 is refused.
                sip_registered: (i == 5).then_some(false),
            })
            .collect();
        let mut s = State {
            cfg,
            tokens: HashMap::new(),
            login_count: 0,
            reboot_count: 0,
            reset_count: 0,
            booted: Instant::now(),
            ports,
            cdr: Vec::new(),
            settings: default_settings(),
            calls: HashMap::new(),
            accounts: BTreeMap::new(),
            ignore_password_change: false,
            diag: BTreeMap::new(),
            upload_permission: false,
            core_down: false,
            down_until: None,
            upgrade_log: Vec::new(),
            seq: 0,
        };
        let md5 = crate::wire::md5_hex(&s.cfg.password);
        s.accounts.insert(s.cfg.username.clone(), md5);
        s.push_cdr("8001", "13800000000", "ANSWERED", 42);
        s
    }

    pub fn port_mut(&mut self, port: usize) -> Option<&mut Port> {
        port.checked_sub(1).and_then(|i| self.ports.get_mut(i))
    }

    pub fn uptime(&self) -> u64 {
        self.booted.elapsed().as_secs() + 380
    }

    /// A fresh 32-hex token.
    pub fn new_token(&mut self) -> String {
        self.seq += 1;
        let t = crate::wire::fresh_hex("iad", self.seq);
        self.tokens.insert(t.clone(), Instant::now());
        t
    }

    /// True (and the token renewed) when `token` is live.
    pub fn check_token(&mut self, token: &str) -> bool {
        let ttl = self.cfg.token_ttl;
        self.tokens.retain(|_, used| used.elapsed() < ttl);
        match self.tokens.get_mut(token) {
            Some(used) => {
                *used = Instant::now();
                true
            }
            None => false,
        }
    }

    /// `sys_maintain/sys_reset`: "reset overlay, flush disc buffers, and
    /// reboot" (4.2.4): every setting back to its default, then a reboot.
    /// The seed does not say what the web accounts become; the simulator
    /// keeps the configured ones so that a test can log in again.
    pub fn factory_reset(&mut self) {
        self.reset_count += 1;
        self.settings = default_settings();
        self.reboot();
    }

    pub fn reboot(&mut self) {
        self.reboot_count += 1;
        self.booted = Instant::now();
        self.tokens.clear();
        for p in &mut self.ports {
            p.in_use = false;
            p.offhook = false;
        }
    }

    pub fn push_cdr(&mut self, from: &str, to: &str, disposition: &str, billsec: u32) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.cdr.push(json!({
            "slotnum": 0, "source_tpl": "", "source": "", "callerid": from, "from": from,
            "from_channel": "DAHDI/5-1", "to": to, "to_channel": "SIP/6reg-00000001",
            "disposition": disposition,
            "start": (now - u64::from(billsec) - 5).to_string(),
            "answer": (now - u64::from(billsec)).to_string(),
            "end": now.to_string(),
            "billsec": billsec.to_string(),
        }));
    }
}

/// What each `*_get` answers before any `*_set`: the DEF column of the
/// matching `*_set` table in the seed (4.4–4.9). "unoccupied" and "null"
/// there are empty strings (the `*_get` examples show `""` for them).
pub fn default_settings() -> BTreeMap<String, Map<String, Value>> {
    let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
    BTreeMap::from([
        // 4.4.1. The seed also says ntp_server_list cannot be empty while
        // ntp_enable is on, yet gives both defaults; the simulator keeps both.
        ("sys_option/datetime_".to_string(), obj(json!({"timezone": "UTC", "ntp_enable": 1, "ntp_server_list": ""}))),
        ("sys_option/syslog_".to_string(), obj(json!({"log_ip": "", "log_port": 0, "conloglevel": 0}))),
        ("sys_option/ssh_".to_string(), obj(json!({"enable": 1, "port": 3505}))),
        ("sys_option/http_".to_string(), obj(json!({"mode": 0, "http_port": 80, "https_port": 443, "https_pem": 0}))),
        ("sys_option/schedule_".to_string(), obj(json!({"reboot": 0, "reboot_hour": 0, "reboot_dayofweek": 0}))),
        // 4.4.11: i18n_user has no default ("–"); the value is the one the
        // web_get example and sys_info/oem_web show.
        ("sys_option/web_".to_string(), obj(json!({"session_user": 600, "i18n_user": "zh en fr pt th ru"}))),
        ("sys_security/acl_web_".to_string(), obj(json!({"addresses": []}))),
        (
            "sys_security/certs_".to_string(),
            obj(json!({"certs_iad1": "", "certs_iad2": "", "certs_iad3": "", "certs_iad4": "", "certs_calist": ""})),
        ),
        (
            "sys_provision/".to_string(),
            obj(json!({"auto_switch": "no", "auto_hour": 0, "auto_dayofweek": 0, "auto_target": "all", "upgrade_type": "tftp",
                "upgrade_dhcp": "yes", "upgrade_user": "", "upgrade_pass": "", "firmware_url": "", "firmware_pre": "",
                "firmware_post": "", "config_url": "", "config_pre": "", "config_post": "", "config_filename": ""})),
        ),
        ("sys_snmp/".to_string(), obj(json!({"enabled": 0, "ip": "", "port": 161, "versions": "v2c"}))),
        ("sys_ocloudclient/".to_string(), obj(json!({"disabled": 0, "server_addr": "openvox.cloud", "server_port": 7000}))),
    ])
}
