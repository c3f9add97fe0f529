//! The simulated GoIP's state: ports whose SIMs register over time, SMS
//! tasks, the inbox with its `ssrc`, secure sessions and push targets.

use super::vendor::{self, Cipher, Selection};
use super::GoipSimConfig;
use crate::wire::{fresh_hex, now_secs};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Queued,
    Paused,
    Sent,
    Removed,
}

/// A send-sms task as the simulator took it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTask {
    pub tid: i64,
    pub from: Option<String>,
    /// Recipients in order.
    pub to: Vec<String>,
    pub sms: String,
    pub state: TaskState,
    /// The task object as received.
    pub raw: Value,
    /// Where its status report goes.
    pub sr_url: Option<String>,
    pub(super) due: Instant,
}

#[derive(Debug, Clone)]
pub struct SimPort {
    pub no: u16,
    pub slot: u16,
    pub has_sim: bool,
    pub state: i64,
    /// When a registering SIM becomes registered.
    pub registers_at: Instant,
    pub seq: i64,
}

#[derive(Debug, Clone)]
pub struct SessionRec {
    pub initial_auth: String,
    pub crypt: Cipher,
    pub last_seq: u64,
    pub expires: Duration,
    pub last_use: Instant,
}

/// One message to POST to a client-given URL.
pub(super) type Push = (String, Value);

pub struct State {
    pub cfg: GoipSimConfig,
    pub ports: Vec<SimPort>,
    pub tasks: Vec<SimTask>,
    pub ssrc: String,
    pub inbox: Vec<(i64, Value)>,
    pub next_sms_id: i64,
    pub sessions: HashMap<String, SessionRec>,
    pub status_url: Option<String>,
    pub period: u64,
    pub last_status_push: Instant,
    pub status_seq: i64,
    /// Configuration the `get`/`set` commands read and write (`sms_url`, `sr_url`, …).
    pub params: BTreeMap<String, String>,
    pub login_failures: u64,
    /// Requests whose credentials came in the POST body (seed §6.3.1.2).
    pub body_credentials: u64,
    pub handshakes: u64,
    /// Bodies of `goip_send_cmd.html` as received (decrypted).
    pub commands: Vec<Value>,
    pub boots: u64,
    nonce_seq: u64,
}

impl State {
    pub fn new(cfg: GoipSimConfig) -> State {
        let now = Instant::now();
        let mut s = State {
            ports: Vec::new(),
            tasks: Vec::new(),
            ssrc: String::new(),
            inbox: Vec::new(),
            next_sms_id: 1,
            sessions: HashMap::new(),
            status_url: None,
            period: 0,
            last_status_push: now,
            status_seq: 0,
            params: BTreeMap::new(),
            login_failures: 0,
            body_credentials: 0,
            handshakes: 0,
            commands: Vec::new(),
            boots: 1,
            nonce_seq: 0,
            cfg,
        };
        s.power_on();
        s
    }

    /// What a (re)start resets: SIMs register again, the inbox and its ids
    /// start over under a new `ssrc`, sessions and queued tasks are lost.
    pub fn power_on(&mut self) {
        let now = Instant::now();
        self.ports = (1..=self.cfg.ports)
            .map(|no| {
                let has_sim = !self.cfg.empty_ports.contains(&no);
                SimPort {
                    no,
                    slot: 1,
                    has_sim,
                    state: if has_sim { 2 } else { 0 },
                    registers_at: now + self.cfg.register_after * no as u32,
                    seq: 0,
                }
            })
            .collect();
        self.ssrc = self.rand_hex16();
        self.inbox.clear();
        self.next_sms_id = 1;
        self.sessions.clear();
        for t in &mut self.tasks {
            if matches!(t.state, TaskState::Queued | TaskState::Paused) {
                t.state = TaskState::Removed;
            }
        }
    }

    /// 16 hex characters, fresh each time (ssrc, session ids).
    fn rand_hex16(&mut self) -> String {
        self.nonce_seq += 1;
        fresh_hex("goip", self.nonce_seq)[..16].to_string()
    }

    /// A new secure-session id (DEVICE-NOTES' example: `0123456789abcdef`).
    pub fn new_session_id(&mut self) -> String {
        self.rand_hex16()
    }

    pub fn port_label(p: &SimPort) -> String {
        vendor::port_label(p.no, p.slot)
    }

    pub fn sim_number(no: u16) -> String {
        format!("13800000{no:03}")
    }

    fn port_json(&self, p: &SimPort, slot: u16, active: bool) -> Value {
        let st = if !active {
            if p.has_sim {
                1
            } else {
                0
            }
        } else {
            p.state
        };
        let label = vendor::port_label(p.no, slot);
        let mut v = json!({
            "port": label, "sim": "", "seq": p.seq, "st": st,
            "imei": format!("8600000000000{:02}", p.no % 100),
            "iccid": if p.has_sim { format!("898600000000000000{:02}", p.no % 100) } else { String::new() },
            "imsi": if p.has_sim { format!("4600000000000{:02}", p.no % 100) } else { String::new() },
            "sn": if p.has_sim { Self::sim_number(p.no) } else { String::new() },
            "opr": "", "bal": "0.00", "sig": 0,
            "tot_dur": "0/-1", "mon_dur": "0/-1", "day_dur": "0/-1",
        });
        if active && matches!(p.state, 3 | 4) {
            v["opr"] = json!("46000 CHINA MOBILE");
            v["bal"] = json!("12.50");
            v["sig"] = json!(18 + p.no as i64 % 10);
        }
        v
    }

    pub fn dev_status(&mut self, all_sims: bool) -> Value {
        self.status_seq += 1;
        let mut rows = Vec::new();
        for p in &self.ports {
            if all_sims {
                for slot in 1..=self.cfg.slots {
                    rows.push(self.port_json(p, slot, slot == p.slot));
                }
            } else {
                rows.push(self.port_json(p, p.slot, true));
            }
        }
        json!({
            "type": "dev-status", "seq": self.status_seq,
            "expires": if self.period > 0 { self.period } else { 180 },
            "mac": self.cfg.mac, "ip": "127.0.0.1", "ver": self.cfg.version,
            "max-ports": self.cfg.ports, "max-slots": self.cfg.slots,
            "status": rows,
        })
    }

    /// A `port-status` push body for port index `i` (its `seq` advanced).
    pub fn port_status(&mut self, i: usize) -> Option<Value> {
        let p = self.ports.get_mut(i)?;
        p.seq += 1;
        let p = p.clone();
        let mut v = self.port_json(&p, p.slot, true);
        let text = vendor::state_words(p.state);
        let o = v.as_object_mut()?;
        o.remove("st");
        o.insert("type".into(), json!("port-status"));
        o.insert("status".into(), json!(format!("{} {text}", p.state)));
        Some(v)
    }

    /// Port indexes named by `spec`.
    pub fn select(&self, spec: &Selection) -> Vec<usize> {
        (0..self.ports.len()).filter(|&i| spec.has_port(self.ports[i].no)).collect()
    }

    pub fn sms_url(&self) -> Option<String> {
        self.params.get("sms_url").filter(|u| !u.is_empty()).cloned()
    }

    /// Store an SMS row in the inbox; returns its id.
    pub fn store_sms(&mut self, row: Value) -> i64 {
        let id = self.next_sms_id;
        self.next_sms_id += 1;
        self.inbox.push((id, row));
        id
    }

    /// A received SMS row (seed §7.2.3), text base64.
    pub fn sms_row(port: &str, from: &str, to: &str, text: &str) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        json!([0, port, now_secs(), from, to, b64])
    }

    /// Advance time: SIMs register, due tasks are sent, the periodic status
    /// is due. Returns the pushes to make.
    pub fn tick(&mut self) -> Vec<Push> {
        let now = Instant::now();
        let mut out = Vec::new();
        for i in 0..self.ports.len() {
            let p = &mut self.ports[i];
            if p.has_sim && p.state == 2 && now >= p.registers_at {
                p.state = 3;
                if let (Some(url), Some(body)) = (self.status_url.clone(), self.port_status(i)) {
                    out.push((url, body));
                }
            }
        }
        let due: Vec<usize> =
            (0..self.tasks.len()).filter(|&i| self.tasks[i].state == TaskState::Queued && now >= self.tasks[i].due).collect();
        for i in due {
            out.extend(self.complete_task(i));
        }
        if let Some(url) = self.status_url.clone() {
            if self.period > 0 && self.last_status_push.elapsed() >= Duration::from_secs(self.period) {
                self.last_status_push = now;
                out.push((url, self.dev_status(false)));
            }
        }
        out
    }

    /// Send task `i`: recipients starting with the configured failure
    /// prefix fail, the others succeed. Pushes its status report, and
    /// delivery reports when the task asked for them (`dr`).
    fn complete_task(&mut self, i: usize) -> Vec<Push> {
        let fail_prefix = self.cfg.fail_prefix.clone();
        let port_label = {
            let t = &self.tasks[i];
            let first = t.from.as_deref().and_then(Selection::read).and_then(|s| self.select(&s).first().copied()).unwrap_or(0);
            self.ports.get(first).map(Self::port_label).unwrap_or_else(|| "1A".into())
        };
        let t = &mut self.tasks[i];
        t.state = TaskState::Sent;
        let now = now_secs();
        let (mut sdr, mut fdr) = (Vec::new(), Vec::new());
        for (idx, n) in t.to.iter().enumerate() {
            if !fail_prefix.is_empty() && n.starts_with(&fail_prefix) {
                fdr.push(json!([idx, n, port_label, now, "1 Send Failed", "27 Unknown subscriber"]));
            } else {
                sdr.push(json!([idx, n, port_label, now]));
            }
        }
        let flag = |k: &str, default: i64| t.raw.get(k).and_then(vendor::number).unwrap_or(default) == 1;
        let mut rpt = json!({"tid": t.tid, "sending": 0, "sent": sdr.len(), "failed": fdr.len(), "unsent": 0});
        let dr = flag("dr", 0);
        let delivered: Vec<String> = sdr.iter().filter_map(|r| r[1].as_str().map(String::from)).collect();
        if flag("sdr", 0) {
            rpt["sdr"] = json!(sdr);
        }
        if flag("fdr", 1) {
            rpt["fdr"] = json!(fdr);
        }
        let mut out = Vec::new();
        if let Some(url) = t.sr_url.clone().or_else(|| self.params.get("sr_url").cloned()).filter(|u| !u.is_empty()) {
            out.push((url, json!({"type": "status-report", "rpt_num": 1, "rpts": [rpt]})));
        }
        if dr {
            let rows: Vec<Value> = delivered.iter().map(|to| json!([1, port_label, now, "+8613800100500", to, "0 261123101010"])).collect();
            for r in &rows {
                self.store_sms(r.clone());
            }
            if let Some(url) = self.sms_url() {
                out.push((url, json!({"type": "recv-sms", "sms_num": rows.len(), "sms": rows})));
            }
        }
        out
    }
}
