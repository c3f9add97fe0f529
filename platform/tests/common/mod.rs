//! Harness for the platform's tests: real mosquitto, the real `dma-agent`
//! binary (built from the workspace root; `DMA_AGENT_BIN` /
//! `DMA_AGENT_RUNNER` as in the agent's own harness), the real
//! `dma-platform` process, an HTTP client for the REST API and an HTTP
//! receiver for callbacks and routes. (The agent's `tests/common/mod.rs`
//! cannot be included: it names the agent crate's own binary; its broker
//! file is.)
#![allow(dead_code)]

/// mosquitto, free ports, temp dirs: the agent's harness file.
#[path = "../../../tests/common/broker.rs"]
pub mod broker;
pub mod browser;
pub mod hooks;
pub mod pg;

#[allow(unused_imports)] // each test file uses its own part of the harness
pub use broker::{free_port, temp_dir, wait_port, Broker, SEQ};

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const T: Duration = Duration::from_secs(30);
pub const USER: &str = "admin";
pub const PASSWORD: &str = "s3cret-pass";

/// Poll `f` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The agent binary: built once from the workspace root.
fn agent_bin() -> String {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(b) = std::env::var("DMA_AGENT_BIN") {
            return b;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--bin", "dma-agent"]).current_dir(&root);
        // Not this test's own build environment (CARGO_PKG_*, CARGO_MANIFEST_DIR, …):
        // build scripts watching it would rebuild the agent's dependencies.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
                cmd.env_remove(&k);
            }
        }
        let st = cmd.status().expect("cargo build --bin dma-agent");
        assert!(st.success(), "cargo build --bin dma-agent failed");
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("dma-agent").to_string_lossy().into_owned()
    })
    .clone()
}

/// A running agent with its own config and state dir.
pub struct Agent {
    pub dir: PathBuf,
    pub sn: String,
    config: PathBuf,
    child: Option<Child>,
    runs: u32,
}

impl Agent {
    /// An agent for `sn` on the broker at `port`; `extra` goes into its `config agent` section.
    pub fn start(sn: &str, port: u16, extra: &str) -> Agent {
        let dir = temp_dir("agent");
        let config = dir.join("dma-agent.conf");
        std::fs::write(
            &config,
            format!(
                "config agent 'agent'\n\toption sn '{sn}'\n\toption broker_host '127.0.0.1'\n\toption broker_port '{port}'\n\toption prefix 'dma'\n\
                 \toption state_dir '{}'\n\toption clock_trust 'always'\n\toption reconnect_min '1'\n\toption reconnect_max '2'\n\toption keepalive '10'\n\
                 \toption sys_interval '2'\n\toption procs_interval '2'\n{extra}",
                dir.join("state").display()
            ),
        )
        .expect("agent config");
        let mut a = Agent { dir, sn: sn.into(), config, child: None, runs: 0 };
        a.spawn();
        a
    }

    pub fn spawn(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.dir.join(format!("agent-{}.log", self.runs))).expect("log");
        let bin = agent_bin();
        let mut cmd = match std::env::var("DMA_AGENT_RUNNER").ok().filter(|s| !s.is_empty()) {
            Some(r) => {
                let mut c = Command::new(r);
                c.arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd.arg("--config").arg(&self.config).arg("--log-level").arg("debug").stdout(Stdio::null()).stderr(log).spawn().expect("start dma-agent");
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        (1..=self.runs).map(|i| std::fs::read_to_string(self.dir.join(format!("agent-{i}.log"))).unwrap_or_default()).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- agent {} log (tail) ----\n{}", self.sn, tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A `dma-platform` process; its database file outlives restarts.
pub struct Platform {
    pub dir: PathBuf,
    pub port: u16,
    pub db: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    runs: u32,
    pub token: String,
}

/// The platform's JSON config; `extra` (an object) is merged in.
pub fn platform_config(listen_port: u16, db: &str, broker_port: u16, client_id: &str, extra: Value) -> Value {
    let hash = dma_platform::auth::hash_password(PASSWORD).expect("hash");
    let mut c = json!({
        "listen": format!("127.0.0.1:{listen_port}"),
        "database": db,
        "broker": {"host": "127.0.0.1", "port": broker_port, "client_id": client_id, "prefix": "dma"},
        "users": [{"user": USER, "password_hash": hash, "roles": ["admin"]}],
        "answer_timeout": 20,
        "retry_delay": 0,
        // The tests' receivers are on 127.0.0.1: named in the allow list.
        "hooks": {"tries": 2, "timeout_ms": 2000, "queue": 100, "allow": ["127.0.0.1/32"]},
    });
    if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
        for (k, v) in e {
            if let (Some(Value::Object(a)), Value::Object(b)) = (o.get_mut(&k), &v) {
                for (k2, v2) in b {
                    a.insert(k2.clone(), v2.clone());
                }
            } else {
                o.insert(k, v);
            }
        }
    }
    c
}

impl Platform {
    pub fn start(broker_port: u16) -> Platform {
        let dir = temp_dir("platform");
        let db = dir.join("platform.db").to_string_lossy().into_owned();
        Platform::start_with(dir.clone(), &platform_config(free_port(), &db, broker_port, &format!("platform-{}", SEQ.fetch_add(1, Ordering::SeqCst)), json!({})))
    }

    pub fn start_with(dir: PathBuf, cfg: &Value) -> Platform {
        let port = cfg["listen"].as_str().and_then(|l| l.rsplit(':').next()).and_then(|p| p.parse().ok()).expect("listen port");
        let config = dir.join(format!("platform-{port}.json"));
        std::fs::write(&config, serde_json::to_string_pretty(cfg).expect("json")).expect("platform config");
        let db = PathBuf::from(cfg["database"].as_str().expect("database"));
        let mut p = Platform { dir, port, db, config, child: None, runs: 0, token: String::new() };
        p.spawn();
        p.token = p.login(USER, PASSWORD).expect("login");
        p
    }

    pub fn spawn(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.dir.join(format!("platform-{}-{}.log", self.port, self.runs))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_dma-platform"))
            .arg("--config")
            .arg(&self.config)
            .arg("--log-level")
            .arg("debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dma-platform");
        self.child = Some(child);
        assert!(wait_port(self.port, true, Duration::from_secs(20)), "dma-platform did not listen on {}:\n{}", self.port, self.log());
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|i| std::fs::read_to_string(self.dir.join(format!("platform-{}-{i}.log", self.port))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(20))).http_status_as_error(false).build().into()
    }

    /// (HTTP status, JSON body) of an API call with the current token.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body)
    }

    pub fn call_as(&self, token: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = self.url(&format!("/iot/api/v1/{path}"));
        let a = Platform::agent();
        let auth = format!("Bearer {token}");
        let r = match (method, body) {
            ("GET", _) => a.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => a.delete(&url).header("Authorization", &auth).call(),
            ("POST", Some(b)) => a.post(&url).header("Authorization", &auth).send(b.to_string()),
            ("PUT", Some(b)) => a.put(&url).header("Authorization", &auth).send(b.to_string()),
            _ => panic!("bad call {method} {path}"),
        };
        let mut r = r.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().expect("body");
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}")))
    }

    /// `data` of an ok answer (panics on an error envelope).
    pub fn get(&self, path: &str) -> Value {
        let (st, v) = self.call("GET", path, None);
        assert!(st == 200 && v["status"] == "ok", "GET {path}: {st} {v}");
        v["data"].clone()
    }

    pub fn post(&self, path: &str, body: &Value) -> Value {
        let (st, v) = self.call("POST", path, Some(body));
        assert!(st == 200 && v["status"] == "ok", "POST {path}: {st} {v}");
        v["data"].clone()
    }

    pub fn login(&self, user: &str, password: &str) -> Result<String, Value> {
        let url = self.url("/iot/api/v1/auth/login");
        let mut r = Platform::agent().post(&url).send(json!({"user": user, "password": password}).to_string()).expect("login");
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
        v["data"]["token"].as_str().map(str::to_string).ok_or(v)
    }

    /// The command's status object.
    pub fn command(&self, id: u64) -> Value {
        self.get(&format!("remotectl/commands?id={id}"))
    }

    /// Wait until the command's `state` is `state`.
    pub fn wait_state(&self, id: u64, state: i64, timeout: Duration) -> Value {
        wait_for(timeout, || Some(self.command(id)).filter(|c| c["state"] == state))
            .unwrap_or_else(|| panic!("command {id} not in state {state} within {timeout:?}: {}\n{}", self.command(id), self.log()))
    }

    /// Wait until the device is online (or offline) in `monitor/devices`.
    pub fn wait_device(&self, sn: &str, online: bool, timeout: Duration) -> Value {
        wait_for(timeout, || {
            let d = self.get(&format!("monitor/devices?sn={sn}"));
            d["list"].get(0).filter(|x| x["online"] == online).cloned()
        })
        .unwrap_or_else(|| panic!("device {sn} not online={online} within {timeout:?}\n{}", self.log()))
    }

    /// POST one command; returns its id.
    pub fn send(&self, body: Value) -> u64 {
        let d = self.post("remotectl/commands", &body);
        d["to"][0]["id"].as_u64().unwrap_or_else(|| panic!("no id: {d}"))
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- platform {} log (tail) ----\n{}", self.port, tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// An sh command in the seed's form for one device.
pub fn sh(sn: &str, shcmd: &str, extra: Value) -> Value {
    let mut b = json!({"from": "test", "to": [{"sn": sn}], "command": "sh", "method": "", "body": {"shcmd": shcmd}, "publishNow": true, "maxRetries": 1, "expires": 600, "detached": false});
    if let (Some(o), Value::Object(e)) = (b.as_object_mut(), extra) {
        o.extend(e);
    }
    b
}

pub fn unb64(v: &Value) -> String {
    use base64::Engine as _;
    String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).unwrap_or_default()).into_owned()
}

/// Publish one message as a device would (QoS 1), through a short-lived client.
pub fn publish(port: u16, topic: &str, payload: &str) {
    use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
    let mut o = MqttOptions::new(format!("ptest-pub-{}", SEQ.fetch_add(1, Ordering::SeqCst)), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut conn) = Client::new(o, 10);
    client.publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec()).expect("publish");
    let deadline = Instant::now() + Duration::from_secs(10);
    for ev in conn.iter() {
        if matches!(ev, Ok(Event::Incoming(Incoming::PubAck(_)))) || Instant::now() > deadline {
            break;
        }
        if ev.is_err() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = client.disconnect();
}

/// Messages on `filter` seen by a test client, as they arrive.
pub struct Watch {
    pub msgs: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    _client: rumqttc::Client,
}

impl Watch {
    pub fn start(port: u16, filter: &str) -> Watch {
        use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
        let mut o = MqttOptions::new(format!("ptest-watch-{}", SEQ.fetch_add(1, Ordering::SeqCst)), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(10));
        let (client, mut conn) = Client::new(o, 100);
        let msgs: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>> = Default::default();
        let (m, c, f) = (msgs.clone(), client.clone(), filter.to_string());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = c.subscribe(f.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        m.lock().unwrap().push((p.topic.clone(), v));
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("watch subscribed");
        Watch { msgs, _client: client }
    }

    pub fn all(&self) -> Vec<(String, Value)> {
        self.msgs.lock().unwrap().clone()
    }
}
