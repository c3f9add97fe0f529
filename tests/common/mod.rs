//! Test harness: a real mosquitto on 127.0.0.1, the real `dma-agent`
//! binary (or a cross-built one under QEMU: `DMA_AGENT_BIN`,
//! `DMA_AGENT_RUNNER`), and a platform-side MQTT client.
#![allow(dead_code)]

pub mod bins;
pub mod broker;
pub mod fsfault;
pub mod proxy;
pub mod signer;
pub mod sms_rig;

pub use broker::{free_port, temp_dir, Broker, SEQ};

use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Poll `f` every 100 ms until it holds or `timeout` passes; its last value.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// Whether a message on `actual` is one the test asked for with `wanted`.
/// Tests name a device message by its kind's shared topic (`dma/sys`,
/// `dma/resp/cmd`: PROTOCOL.md, `topic_layout shared`); the per-device
/// topic of the same kind (`dma/sys/{sn}`, the default layout) matches it
/// too. Any other topic must be equal. tests/topic_layout.rs asserts
/// exact topics in each layout.
pub fn topic_is(wanted: &str, actual: &str) -> bool {
    if actual == wanted {
        return true;
    }
    let kind = dma_agent::mqtt::topics::DEVICE_KINDS.iter().any(|k| wanted.ends_with(&format!("/{k}")));
    kind && actual.strip_prefix(wanted).and_then(|r| r.strip_prefix('/')).is_some_and(|sn| !sn.is_empty() && !sn.contains('/'))
}

/// A message seen by the platform client.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub raw: String,
    pub json: Value,
    pub retain: bool,
}

#[derive(Default)]
struct Seen {
    msgs: Vec<Msg>,
    connected: bool,
}

/// The platform side: subscribes to everything under the prefix.
pub struct Platform {
    pub client: Client,
    seen: Arc<(Mutex<Seen>, Condvar)>,
}

impl Platform {
    pub fn connect(port: u16, prefix: &str) -> Platform {
        Platform::connect_as(port, prefix, &format!("platform-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst)))
    }

    pub fn connect_as(port: u16, prefix: &str, id: &str) -> Platform {
        Platform::connect_with(port, prefix, id, None)
    }

    /// Connect with a broker account (`user`, `password`).
    pub fn connect_with(port: u16, prefix: &str, id: &str, login: Option<(&str, &str)>) -> Platform {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        if let Some((u, p)) = login {
            o.set_credentials(u, p);
        }
        o.set_keep_alive(Duration::from_secs(30));
        // A persistent session, like the platform's: across a broker
        // restart (mosquitto keeps sessions on disk) nothing published
        // while this client was away is missed.
        o.set_clean_session(false);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(o, 1000);
        let seen: Arc<(Mutex<Seen>, Condvar)> = Arc::default();
        let s2 = seen.clone();
        let c2 = client.clone();
        let topic = format!("{prefix}/#");
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = c2.subscribe(topic.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let (m, cv) = &*s2;
                        m.lock().unwrap().connected = true;
                        cv.notify_all();
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let raw = String::from_utf8_lossy(&p.payload).into_owned();
                        let json = serde_json::from_str(&raw).unwrap_or(Value::Null);
                        let (m, cv) = &*s2;
                        m.lock().unwrap().msgs.push(Msg { topic: p.topic.clone(), raw, json, retain: p.retain });
                        cv.notify_all();
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        {
            let (m, cv) = &*seen;
            let g = m.lock().unwrap();
            let (_g, t) = cv.wait_timeout_while(g, Duration::from_secs(10), |s| !s.connected).unwrap();
            assert!(!t.timed_out(), "platform client could not connect");
        }
        Platform { client, seen }
    }

    /// Wait for a message on `topic` matching `pred`, seen at index >= `from`.
    pub fn wait_from(&self, from: usize, topic: &str, timeout: Duration, pred: impl Fn(&Msg) -> bool) -> Option<Msg> {
        let (m, cv) = &*self.seen;
        let deadline = Instant::now() + timeout;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(msg) = g.msgs.iter().skip(from).find(|x| topic_is(topic, &x.topic) && pred(x)) {
                return Some(msg.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    pub fn wait(&self, topic: &str, timeout: Duration, pred: impl Fn(&Msg) -> bool) -> Option<Msg> {
        self.wait_from(0, topic, timeout, pred)
    }

    pub fn count(&self) -> usize {
        self.seen.0.lock().unwrap().msgs.len()
    }

    pub fn all(&self, topic: &str) -> Vec<Msg> {
        self.seen.0.lock().unwrap().msgs.iter().filter(|m| topic_is(topic, &m.topic)).cloned().collect()
    }

    /// Every topic seen so far (exact names).
    pub fn topics(&self) -> std::collections::BTreeSet<String> {
        self.seen.0.lock().unwrap().msgs.iter().map(|m| m.topic.clone()).collect()
    }

    pub fn publish_raw(&self, topic: &str, payload: &str) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec()).expect("publish");
    }

    /// Send a command and wait for the answer with that id.
    pub fn command(&self, prefix: &str, sn: &str, cmd: Value, timeout: Duration) -> Value {
        let from = self.count();
        let id = cmd["id"].clone();
        self.publish_raw(&format!("{prefix}/cmd/{sn}"), &cmd.to_string());
        self.wait_from(from, &format!("{prefix}/resp/cmd"), timeout, |m| m.json["id"] == id)
            .unwrap_or_else(|| panic!("no answer to {cmd} within {timeout:?}"))
            .json
    }

    /// Send a command signed with `key` (its id must be in `cmd`) and wait for the answer.
    pub fn signed_command(&self, prefix: &str, sn: &str, key: &signer::Key, cmd: Value, timeout: Duration) -> Value {
        let from = self.count();
        let id = cmd["id"].clone();
        self.publish_raw(&format!("{prefix}/cmd/{sn}"), &key.sign_for(sn, &cmd));
        self.wait_from(from, &format!("{prefix}/resp/cmd"), timeout, |m| m.json["id"] == id)
            .unwrap_or_else(|| panic!("no answer to signed {cmd} within {timeout:?}"))
            .json
    }

    /// Answers with this id on resp/cmd so far.
    pub fn answers(&self, prefix: &str, id: &Value) -> Vec<Value> {
        self.all(&format!("{prefix}/resp/cmd")).into_iter().filter(|m| &m.json["id"] == id).map(|m| m.json).collect()
    }
}

/// The agent binary to test: the host build, or `DMA_AGENT_BIN` (run
/// through `DMA_AGENT_RUNNER`, e.g. qemu-arm-static).
pub fn agent_command() -> Command {
    let bin = std::env::var("DMA_AGENT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_dma-agent").to_string());
    match std::env::var("DMA_AGENT_RUNNER").ok().filter(|s| !s.is_empty()) {
        Some(runner) => {
            let mut c = Command::new(runner);
            c.arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// A running agent with its own config and state dir.
pub struct Agent {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub sn: String,
    runs: u32,
}

/// The agent section used by most tests; `extra` is appended inside it.
pub fn agent_section(sn: &str, port: u16, state_dir: &Path, extra: &str) -> String {
    format!(
        "config agent 'agent'\n\toption sn '{sn}'\n\toption broker_host '127.0.0.1'\n\toption broker_port '{port}'\n\toption prefix 'dma'\n\toption state_dir '{}'\n\toption clock_trust 'always'\n\toption reconnect_min '1'\n\toption reconnect_max '2'\n\toption keepalive '10'\n{extra}",
        state_dir.display()
    )
}

impl Agent {
    /// Write `config` (use `{state}` for the state dir) and start.
    pub fn start(sn: &str, config: &str) -> Agent {
        let dir = temp_dir("agent");
        let state = dir.join("state");
        let path = dir.join("dma-agent.conf");
        std::fs::write(&path, config.replace("{state}", &state.to_string_lossy())).expect("config");
        let mut a = Agent { dir, config: path, child: None, sn: sn.to_string(), runs: 0 };
        a.spawn();
        a
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn spawn(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.dir.join(format!("agent-{}.log", self.runs))).expect("log");
        let child = agent_command()
            .arg("--config")
            .arg(&self.config)
            .arg("--log-level")
            .arg("debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dma-agent");
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|i| std::fs::read_to_string(self.dir.join(format!("agent-{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }

    /// With `DMA_RSS_LOG` set, append the agent's peak RSS (VmHWM, KiB) so
    /// far to that file: `cross/measure.sh e2e` reads it.
    fn record_peak_rss(&self) {
        let (Ok(path), Some(pid)) = (std::env::var("DMA_RSS_LOG"), self.pid()) else { return };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(kb) = status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)) {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{kb}");
            }
        }
    }

    /// SIGTERM and wait (bounded) for the exit; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.record_peak_rss();
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let mut c = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    pub fn kill9(&mut self) {
        self.record_peak_rss();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- agent log ({}) ----\n{}", self.dir.display(), self.log());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub fn unb64(v: &Value) -> String {
    use base64::Engine as _;
    String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).unwrap_or_default()).into_owned()
}

pub const T: Duration = Duration::from_secs(20);
