//! The simulated S20's state: login challenges, sessions, Thread network,
//! links and settings.

use super::S20SimConfig;
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

pub struct Thread {
    pub enabled: bool,
    pub started: Instant,
    pub name: String,
    pub channel: i64,
    pub panid: u64,
    pub ext_panid: String,
    pub network_key: String,
    pub passphrase: String,
    pub tx_power: i64,
    pub commissioner: bool,
    pub bbr: bool,
}

impl Thread {
    /// The network a fresh S20 forms.
    fn factory() -> Thread {
        Thread {
            enabled: true,
            started: Instant::now(),
            name: "OpenThread-5938".into(),
            channel: 15,
            panid: 0x5938,
            ext_panid: "dead00beef00cafe".into(),
            network_key: "00112233445566778899aabbccddeeff".into(),
            passphrase: "goodlife".into(),
            tx_power: 20,
            commissioner: false,
            bbr: true,
        }
    }
}

/// Settings answered by the `get_*` calls without a dedicated model.
fn factory_settings() -> BTreeMap<String, Map<String, Value>> {
    let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
    BTreeMap::from([
        ("/eth/get_config".to_string(), obj(json!({"protocol": "dhcp", "ipv4": {"ip": "", "netmask": "", "gateway": ""}}))),
        ("/wifi/get_reconn_to_saved_wifi".to_string(), obj(json!({"enable": false}))),
        ("/wan_failover/get_config".to_string(), obj(json!({"eth": {"check": false, "priority": 1}, "wifi": {"check": false, "priority": 2}}))),
    ])
}

pub struct State {
    pub cfg: S20SimConfig,
    /// The web password; `None` after a factory reset, until `/ui/set_init`.
    pub password: Option<String>,
    /// `lang` of the last `/ui/set_init`.
    pub lang: String,
    pub resets: usize,
    /// Outstanding challenges: nonce → issued.
    pub challenges: Vec<(String, Instant)>,
    /// sid → last use.
    pub sessions: HashMap<String, Instant>,
    pub login_count: usize,
    pub requests: u64,
    pub booted: Instant,
    pub thread: Thread,
    pub forced_role: Option<i64>,
    pub wifi_ssid: Option<String>,
    pub timezone: i64,
    pub sntp: String,
    /// Bodies of `set` calls without a dedicated model, by the `get` path that answers them.
    pub stored: BTreeMap<String, Map<String, Value>>,
    /// Joiners, saved Wi-Fi, upgrades (see `extra`).
    pub extra: Extra,
    /// `(method, path)` of the requests answered with success (at most 256 distinct).
    pub reached: std::collections::BTreeSet<(String, String)>,
    seq: u64,
}

/// State of the endpoints in `extra`.
#[derive(Debug, Default)]
pub struct Extra {
    pub joining: Option<Instant>,
    pub joiners: Vec<Value>,
    pub saved_wifi: Vec<Value>,
    /// Started, and the version it installs.
    pub upgrade: Option<(Instant, String)>,
    pub online_version: String,
    pub certificates: u32,
}

impl State {
    pub fn new(cfg: S20SimConfig) -> State {
        State {
            password: Some(cfg.password.clone()),
            lang: "en".into(),
            resets: 0,
            cfg,
            challenges: Vec::new(),
            sessions: HashMap::new(),
            login_count: 0,
            requests: 0,
            booted: Instant::now(),
            thread: Thread::factory(),
            forced_role: None,
            wifi_ssid: None,
            timezone: 8,
            sntp: "pool.ntp.org".into(),
            stored: factory_settings(),
            extra: Extra { online_version: "1.3.0-release2".into(), ..Extra::default() },
            reached: Default::default(),
            seq: 0,
        }
    }

    /// Something unguessable enough for a simulator: MD5 of a counter and the clock.
    pub fn random_hex(&mut self) -> String {
        self.seq += 1;
        crate::wire::fresh_hex("s20", self.seq)
    }

    /// A nonce shaped like the seed's (base64 of 24 hex digits).
    pub fn new_challenge(&mut self) -> String {
        let hex = self.random_hex();
        let nonce = BASE64_STANDARD.encode(&hex.as_bytes()[..24]);
        self.challenges.retain(|(_, t)| t.elapsed() < self.cfg.nonce_ttl * 5);
        self.challenges.push((nonce.clone(), Instant::now()));
        nonce
    }

    /// True (and the sid renewed) when `sid` is live.
    pub fn check_sid(&mut self, sid: &str) -> bool {
        let idle = self.cfg.sid_idle;
        self.sessions.retain(|_, used| used.elapsed() < idle);
        match self.sessions.get_mut(sid) {
            Some(used) => {
                *used = Instant::now();
                true
            }
            None => false,
        }
    }

    pub fn set_thread(&mut self, on: bool) {
        if on && !self.thread.enabled {
            self.thread.started = Instant::now();
        }
        self.thread.enabled = on;
    }

    /// RCP state: disabled, detached while attaching, then leader.
    pub fn role(&self) -> i64 {
        match self.forced_role {
            Some(r) => r,
            None if !self.thread.enabled => 0,
            None if self.thread.started.elapsed() < self.cfg.attach_time => 1,
            None => 4,
        }
    }

    /// `/sys/reset` "Restore factory settings": the device forgets its
    /// password (uninitialised until `/ui/set_init`), settings and Thread
    /// network, and restarts.
    pub fn factory_reset(&mut self) {
        self.resets += 1;
        self.password = None;
        self.stored = factory_settings();
        self.extra = Extra { online_version: self.extra.online_version.clone(), ..Extra::default() };
        self.thread = Thread::factory();
        self.wifi_ssid = None;
        self.timezone = 8;
        self.sntp = "pool.ntp.org".into();
        self.restart();
    }

    pub fn initialized(&self) -> bool {
        self.password.is_some()
    }

    pub fn restart(&mut self) {
        self.sessions.clear();
        self.challenges.clear();
        self.booted = Instant::now();
        self.thread.started = Instant::now();
    }
}
