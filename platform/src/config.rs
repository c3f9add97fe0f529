//! The platform's configuration: one JSON file (`dma-platform --config FILE`).
//! Every field has a default except `users`. Passwords are stored as argon2
//! PHC strings (`dma-platform hash-password`), never in clear.

use serde::Deserialize;

#[derive(Deserialize, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// REST API and console, e.g. `127.0.0.1:8080` (port 0: any free port).
    pub listen: String,
    /// SQLite file.
    pub database: String,
    pub broker: BrokerConfig,
    pub users: Vec<User>,
    /// Login token lifetime, s.
    pub token_ttl: i64,
    /// A try that got no answer within this many s is sent again (same id)
    /// while tries are left.
    pub answer_timeout: i64,
    /// Delay before a try answered `err` is sent again, s.
    pub retry_delay: i64,
    /// Commands kept (the oldest finished ones are removed beyond this).
    pub command_history: i64,
    pub hooks: HookConfig,
    /// Threads running the API's handlers (database calls); network I/O
    /// is on two more (`http/server.rs`).
    pub http_threads: usize,
    /// EMQX's REST API for `monitor/brokers*` (else `$SYS` topics).
    pub emqx: Option<EmqxConfig>,
    /// Ed25519 key every command is signed with (docs/PROTOCOL.md "Signed
    /// commands"); none: commands go out unsigned (v1), with a warning at start.
    pub signing_key: Option<SigningKeyConfig>,
    /// Ingest queues and batching (`pipeline.rs`).
    pub ingest: IngestConfig,
}

#[derive(Deserialize, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Telemetry (`sys`, `procs`, `versions`, `event`) waiting at most;
    /// beyond, a message is shed and counted (`GET platform/ingest`).
    pub queue: usize,
    /// State changes and command answers waiting at most; beyond, the
    /// broker connection waits (back-pressure: nothing of these is shed).
    pub control_queue: usize,
    /// Telemetry messages written in one transaction at most.
    pub batch_max: usize,
    /// How long a batch may wait for more messages after its first, ms
    /// (fewer disk syncs under light load; the lag it adds at most).
    pub batch_linger_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> IngestConfig {
        IngestConfig { queue: 50_000, control_queue: 20_000, batch_max: 5_000, batch_linger_ms: 50 }
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// PEM PKCS#8 private key (`dma-platform keygen --out FILE`).
    pub file: String,
    /// Its key id, as the agents' `trusted_key 'kid:BASE64'` names it.
    #[serde(default = "default_kid")]
    pub kid: String,
}

fn default_kid() -> String {
    "k1".into()
}

#[derive(Deserialize, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: String,
    pub password: String,
    /// Topic prefix `{p}`.
    pub prefix: String,
    /// Several instances: the MQTT shared-subscription group
    /// (`$share/<group>/…`); empty for a single instance.
    pub share_group: String,
    pub keepalive: u64,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub user: String,
    /// argon2 PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    /// `view`, `operator`, `admin` (the highest counts; none: `view`).
    /// The seed's name `privileges` is accepted too.
    #[serde(default, alias = "privileges")]
    pub roles: Vec<String>,
}

impl User {
    pub fn role(&self) -> crate::roles::Role {
        crate::roles::Role::of(&self.roles).unwrap_or(crate::roles::Role::View)
    }
}

#[derive(Deserialize, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct HookConfig {
    /// Tries per callback / route POST.
    pub tries: u32,
    pub timeout_ms: u64,
    /// Posts waiting at most (beyond: dropped and counted as failed).
    pub queue: usize,
    /// Internal addresses callbacks and routes may still reach: CIDRs
    /// (`10.0.0.0/8`, `::1/128`), addresses, or `host:port`.
    pub allow: Vec<String>,
}

impl HookConfig {
    pub fn allow_list(&self) -> Result<Vec<crate::hooks::url::Allow>, String> {
        self.allow.iter().map(|a| crate::hooks::url::Allow::parse(a)).collect()
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EmqxConfig {
    /// e.g. `http://127.0.0.1:18083` (EMQX 5 dashboard/API listener).
    pub url: String,
    pub api_key: String,
    pub api_secret: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:8080".into(),
            database: "dma-platform.db".into(),
            broker: BrokerConfig::default(),
            users: Vec::new(),
            token_ttl: 86_400,
            answer_timeout: 60,
            retry_delay: 1,
            command_history: 100_000,
            hooks: HookConfig::default(),
            http_threads: 4,
            emqx: None,
            signing_key: None,
            ingest: IngestConfig::default(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "dma-platform".into(),
            username: String::new(),
            password: String::new(),
            prefix: "dma".into(),
            share_group: String::new(),
            keepalive: 30,
        }
    }
}

impl Default for HookConfig {
    fn default() -> HookConfig {
        HookConfig { tries: 3, timeout_ms: 5000, queue: 1000, allow: Vec::new() }
    }
}

impl Config {
    pub fn load(path: &str) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let cfg: Config = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        cfg.validate().map_err(|e| format!("{path}: {e}"))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.users.is_empty() {
            return Err("no users: add at least one {\"user\", \"password_hash\"}".into());
        }
        for u in &self.users {
            if u.user.is_empty() {
                return Err("a user without a name".into());
            }
            crate::roles::Role::of(&u.roles).map_err(|e| format!("user {}: {e}", u.user))?;
            argon2::PasswordHash::new(&u.password_hash).map_err(|e| format!("user {}: password_hash is not a PHC string ({e}); use `dma-platform hash-password`", u.user))?;
        }
        let p = &self.broker.prefix;
        if p.is_empty() || p.contains(['+', '#']) || p.starts_with('$') {
            return Err(format!("broker.prefix '{p}' is not a plain topic prefix"));
        }
        if self.broker.share_group.contains(['/', '+', '#']) {
            return Err("broker.share_group must not contain / + #".into());
        }
        if self.token_ttl <= 0 || self.answer_timeout <= 0 || self.retry_delay < 0 || self.command_history <= 0 {
            return Err("token_ttl, answer_timeout, command_history must be > 0 and retry_delay >= 0".into());
        }
        if self.http_threads == 0 || self.http_threads > 64 || self.hooks.queue == 0 || self.hooks.tries == 0 {
            return Err("http_threads must be 1..64, hooks.queue and hooks.tries > 0".into());
        }
        if let Some(k) = &self.signing_key {
            if k.file.is_empty() || !crate::signing::valid_kid(&k.kid) {
                return Err("signing_key needs a file and a kid of 1-32 characters A-Z a-z 0-9 . _ -".into());
            }
        }
        let i = &self.ingest;
        if i.queue == 0 || i.control_queue == 0 || i.batch_max == 0 || i.queue > 1_000_000 || i.control_queue > 1_000_000 || i.batch_max > 100_000 || i.batch_linger_ms > 10_000 {
            return Err("ingest.queue and ingest.control_queue must be 1..1000000, ingest.batch_max 1..100000, ingest.batch_linger_ms <= 10000".into());
        }
        self.hooks.allow_list()?;
        Ok(())
    }
}
