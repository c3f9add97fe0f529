//! The SMS rig the SMS suites share: mosquitto, a platform client, the
//! GoIP simulator and the agent with its push receiver, all on 127.0.0.1,
//! started and caught up (a probe SMS has come through).

use super::{agent_section, free_port, Agent, Broker, Platform, T};
use dma_sims::goip::{GoipSim, GoipSimConfig};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The URL the agent registered with the GoIP simulator (its push token
/// in it), once it has: where a GoIP pushes to.
pub fn registered_push_url(sim: &GoipSim) -> String {
    let mut url = None;
    super::wait_until(T, || {
        url = sim.param("sms_url");
        url.is_some()
    });
    url.expect("the agent never registered its push URL with the GoIP")
}

pub struct SmsRig {
    pub broker: Broker,
    pub platform: Platform,
    pub agent: Agent,
    pub sim: GoipSim,
    /// The agent's push receiver port.
    pub rx: u16,
    pub sn: String,
}

/// What the suites set differently.
#[derive(Clone, Copy)]
pub struct SmsRigConfig<'a> {
    /// The receiver's `status_period` (s): how often the GoIP is asked to
    /// push its status (0: never).
    pub status_period: u64,
    /// Options added to the GoIP device section (one `\toption …\n` each).
    pub device: &'a str,
    /// Options added to the agent section.
    pub agent: &'a str,
}

impl SmsRig {
    pub fn start(sn: &str, c: SmsRigConfig) -> SmsRig {
        let broker = Broker::start();
        let platform = Platform::connect(broker.port, "dma");
        let sim = GoipSim::start("127.0.0.1:0", GoipSimConfig::default()).expect("sim");
        let rx = free_port();
        let cfg = format!(
            "{}\nconfig sms_receiver\n\toption enabled '1'\n\toption listen '127.0.0.1:{rx}'\n\toption rate '5000'\n\toption reconcile_interval '2'\n\toption status_period '{}'\n\nconfig device 'gw1'\n\toption type 'goip'\n\toption address '{}'\n\toption username 'root'\n\toption password 'root'\n{}",
            agent_section(sn, broker.port, std::path::Path::new("{state}"), c.agent),
            c.status_period,
            sim.url(),
            c.device
        );
        let agent = Agent::start(sn, &cfg);
        platform.wait(&format!("dma/state/{sn}"), T, |m| m.json["online"] == true).unwrap_or_else(|| panic!("no birth; agent log:\n{}", agent.log()));
        let r = SmsRig { broker, platform, agent, sim, rx, sn: sn.into() };
        // Registered and caught up with the inbox: a probe SMS comes through.
        r.sim.deliver_sms("1A", "10000", "probe");
        r.wait_sms(&r.platform, 1, T);
        r
    }

    /// This agent's events of one type that `p` has seen.
    pub fn events(&self, p: &Platform, kind: &str) -> Vec<Value> {
        p.all("dma/event").into_iter().map(|m| m.json).filter(|j| j["type"] == kind && j["sn"] == self.sn.as_str()).collect()
    }

    /// The texts of this agent's `sms-received` events `p` has seen.
    pub fn texts(&self, p: &Platform) -> Vec<String> {
        self.events(p, "sms-received").iter().map(|e| e["text"].as_str().unwrap_or("").to_string()).collect()
    }

    /// Wait until `p` has seen `n` `sms-received` events of this agent; them.
    pub fn wait_sms(&self, p: &Platform, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.events(p, "sms-received");
            if got.len() >= n || Instant::now() > deadline {
                assert!(got.len() >= n, "{} of {n} sms-received events; agent log:\n{}", got.len(), self.agent.log());
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait for an event of this agent of type `kind` for which `pred` holds.
    pub fn wait_event(&self, kind: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        self.platform
            .wait("dma/event", timeout, |m| m.json["type"] == kind && m.json["sn"] == self.sn.as_str() && pred(&m.json))
            .unwrap_or_else(|| panic!("no {kind} event as expected; agent log:\n{}", self.agent.log()))
            .json
    }

    /// The URL the GoIP `gw1` was told to push to (token included).
    pub fn push_url(&self) -> String {
        registered_push_url(&self.sim)
    }

    /// POST `body` to the receiver as the GoIP `gw1` does: the status code
    /// and the JSON answer (Null if none).
    pub fn post(&self, body: &Value) -> (u16, Value) {
        self.post_to(&self.push_url(), body)
    }

    /// POST `body` to `url` (a forged or wrong push URL).
    pub fn post_to(&self, url: &str, body: &Value) -> (u16, Value) {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let mut r = agent
            .post(url)
            .header("Content-Type", "application/json;charset=utf-8")
            .send(body.to_string().as_bytes())
            .expect("post to the receiver");
        let code = r.status().as_u16();
        let v = r.body_mut().read_to_string().ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null);
        (code, v)
    }
}
