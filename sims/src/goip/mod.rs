//! Simulated Ejoin GoIP: the HTTP API of the seed (status, commands,
//! send-sms tasks, inbox, statistics, the secure session with none/rc4/
//! aes-ecb) plus the device's pushes (`dev-status`, `port-status`,
//! `status-report`, `recv-sms`) POSTed to the URLs a client sets.
//!
//! Simplifications, stated so tests can lean on them: the status `period`
//! is honoured from 1 s (a real GoIP's minimum is 60 s); recipients that
//! start with [`GoipSimConfig::fail_prefix`] fail, all others succeed;
//! pausing, resuming or removing an unknown or finished task answers
//! `"11 TID Expected"`; authentication failures answer HTTP 401 with
//! `{"code": 401, "reason": "Unauthorized: …"}`, a refused handshake
//! `{"code": <non-zero>, "desc"}`; `goip_send_cmd.html` answers
//! `"code": 0` as the seed's example does (§6.4.2), the other endpoints
//! 200, the inbox 0 (DEVICE-NOTES).
//!
//! The vendor side (session auth, key, RC4/AES-ECB, port syntax, state
//! texts) is in [`vendor`], written from the seed, not the client's code.

mod routes;
mod state;
pub mod vendor;

pub use state::{SimTask, TaskState};
pub use vendor::AuthOrder;

use super::{Sim, SimServer};
use serde_json::{json, Value};
use state::{Push, State};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct GoipSimConfig {
    pub username: String,
    pub password: String,
    /// Number of ports (`1A` … `NA`).
    pub ports: u16,
    /// SIM slots per port (letters A…).
    pub slots: u16,
    /// Port n's SIM registers `n × register_after` after power-on.
    pub register_after: Duration,
    /// Ports without a SIM.
    pub empty_ports: Vec<u16>,
    pub mac: String,
    pub version: String,
    /// The per-request auth the device checks.
    pub auth_order: AuthOrder,
    /// Time a queued task waits before it is sent.
    pub send_delay: Duration,
    /// Recipients starting with this fail to send (empty: none fail).
    pub fail_prefix: String,
}

impl Default for GoipSimConfig {
    fn default() -> Self {
        GoipSimConfig {
            username: "root".into(),
            password: "root".into(),
            ports: 4,
            slots: 1,
            register_after: Duration::from_millis(150),
            empty_ports: Vec::new(),
            mac: "00-30-f1-00-6c-55".into(),
            version: "532-604-924-041-100-000".into(),
            auth_order: AuthOrder::ResourceFirst,
            send_delay: Duration::from_millis(100),
            fail_prefix: "000".into(),
        }
    }
}

/// A running simulated GoIP (where it listens and its fault switch:
/// [`Sim`]). Dropping it stops it.
pub type GoipSim = Sim<State, SimServer, Pusher>;

/// What runs beside the GoIP's server: the ticker (SIMs registering,
/// tasks sending) and the pusher (status and SMS pushes to the agent).
pub struct Pusher {
    pushes: Arc<Mutex<Vec<(String, Value)>>>,
    tx: Option<mpsc::Sender<Push>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl GoipSim {
    pub fn start(bind: &str, cfg: GoipSimConfig) -> std::io::Result<GoipSim> {
        let state = Arc::new(Mutex::new(State::new(cfg)));
        let pushes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Push>();
        let server = {
            let (state, tx) = (state.clone(), tx.clone());
            SimServer::start(bind, move |req| {
                let (resp, out) = match state.lock() {
                    Ok(mut s) => routes::handle(&mut s, req),
                    Err(_) => (super::SimResponse::text(500, "state poisoned"), Vec::new()),
                };
                for p in out {
                    let _ = tx.send(p);
                }
                resp
            })?
        };
        let pusher = {
            let pushes = pushes.clone();
            std::thread::Builder::new().name("goip-sim-push".into()).spawn(move || push_loop(&rx, &pushes))?
        };
        let ticker = {
            let (state, tx, stop) = (state.clone(), tx.clone(), stop.clone());
            std::thread::Builder::new().name("goip-sim-tick".into()).spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let out = state.lock().map(|mut s| s.tick()).unwrap_or_default();
                    for p in out {
                        let _ = tx.send(p);
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
            })?
        };
        Ok(Sim::assemble(server, state, Pusher { pushes, tx: Some(tx), stop, threads: vec![ticker, pusher] }))
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state()
    }

    /// Simulate a power cycle: new `ssrc`, empty inbox, SIMs register
    /// again, sessions and queued tasks lost; settings stay.
    pub fn restart(&self) {
        let mut s = self.st();
        s.boots += 1;
        s.power_on();
    }

    /// A reboot that also loses the push targets (status URL, sms_url,
    /// sr_url), as a factory-fresh or reflashed device would: the agent
    /// must notice (new ssrc) and register again.
    pub fn restart_forgetting_push_urls(&self) {
        let mut s = self.st();
        s.boots += 1;
        s.power_on();
        s.status_url = None;
        s.params.remove("sms_url");
        s.params.remove("sr_url");
    }

    /// An SMS arrives on `port` (e.g. `1A`): stored in the inbox and pushed
    /// as `recv-sms` to the SMS URL when one is set. Returns its inbox id.
    pub fn deliver_sms(&self, port: &str, from: &str, text: &str) -> i64 {
        let (id, push) = {
            let mut s = self.st();
            let to = vendor::one_port(port).map(|(no, _)| State::sim_number(no)).unwrap_or_default();
            let row = State::sms_row(port, from, &to, text);
            let id = s.store_sms(row.clone());
            (id, s.sms_url().map(|u| (u, json!({"type": "recv-sms", "sms_num": 1, "sms": [row]}))))
        };
        if let (Some(p), Some(tx)) = (push, &self.side().tx) {
            let _ = tx.send(p);
        }
        id
    }

    /// Any inbox row exactly as given (odd firmware: malformed rows, content
    /// that is not base64, extra elements): stored and pushed like
    /// [`GoipSim::deliver_sms`]. Returns its inbox id.
    pub fn deliver_row(&self, row: Value) -> i64 {
        let (id, push) = {
            let mut s = self.st();
            let id = s.store_sms(row.clone());
            (id, s.sms_url().map(|u| (u, json!({"type": "recv-sms", "sms_num": 1, "sms": [row]}))))
        };
        if let (Some(p), Some(tx)) = (push, &self.side().tx) {
            let _ = tx.send(p);
        }
        id
    }

    /// Every task taken, in order, with its current state.
    pub fn tasks(&self) -> Vec<SimTask> {
        self.st().tasks.clone()
    }
    /// Refused logins: wrong credentials, refused handshakes, bad session auth.
    /// Requests authenticated by `username`/`password` in a POST's body.
    pub fn body_credentials(&self) -> u64 {
        self.st().body_credentials
    }
    pub fn login_failures(&self) -> u64 {
        self.st().login_failures
    }
    /// Secure sessions established.
    pub fn handshakes(&self) -> u64 {
        self.st().handshakes
    }
    /// The `dev-status` push URL a client set, and its period.
    pub fn last_status_url(&self) -> Option<String> {
        self.st().status_url.clone()
    }
    pub fn status_period(&self) -> u64 {
        self.st().period
    }
    /// The current inbox `ssrc`.
    pub fn ssrc(&self) -> String {
        self.st().ssrc.clone()
    }
    /// Number of SMS in the inbox.
    pub fn inbox_len(&self) -> usize {
        self.st().inbox.len()
    }
    /// A configuration value set by `goip_send_cmd.html?op=set` (or `sms_url` from send-sms).
    pub fn param(&self, name: &str) -> Option<String> {
        self.st().params.get(name).cloned()
    }
    /// Bodies of the port commands received.
    pub fn commands(&self) -> Vec<Value> {
        self.st().commands.clone()
    }
    /// State code of port `no`'s active SIM.
    pub fn port_state(&self, no: u16) -> Option<i64> {
        self.st().ports.iter().find(|p| p.no == no).map(|p| p.state)
    }
    /// Times the device has started (1 + restarts and reboots).
    pub fn boots(&self) -> u64 {
        self.st().boots
    }
    /// Forget every secure session (as the device does when they expire).
    pub fn expire_sessions(&self) {
        self.st().sessions.clear();
    }
    /// Pushes sent so far: target URL and body.
    pub fn pushes(&self) -> Vec<(String, Value)> {
        self.side().pushes.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

// Dropped after the server (`Sim` drops it last).
impl Drop for Pusher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Dropping our sender (the server's went with the server, the
        // ticker's with the ticker) ends the pusher.
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn push_loop(rx: &mpsc::Receiver<Push>, log: &Mutex<Vec<(String, Value)>>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .into();
    while let Ok((url, body)) = rx.recv() {
        let _ = agent.post(&url).header("Content-Type", "application/json;charset=utf-8").send(body.to_string().as_bytes());
        if let Ok(mut l) = log.lock() {
            l.push((url, body));
        }
    }
}
