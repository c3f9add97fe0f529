//! Ejoin GoIP (GSM/SMS gateway) client: status, port commands, SMS tasks,
//! inbox and statistics over the vendor's HTTP API
//! (`shared/seeds/ejoin-goip-http-api.txt`, DEVICE-NOTES), optionally
//! inside the secure session (`crypt` option).
//!
//! The typed methods are what the SMS feature builds on; [`LanDevice`]
//! gives the poller its normalised status and `goip get|set` its commands
//! (see [`command`]).

pub mod api;
pub mod command;
pub mod crypt;
pub mod lenient;
pub mod ports;
pub mod push;
pub mod status;
mod transport;

use super::{DeviceConfig, DeviceError, DeviceKind, DeviceStatus, LanDevice};
use api::{check_code, CmdOp, SendSms, SmsPage, Stats, StatsQuery, TaskList, TaskStatus};
use crypt::{AuthOrder, CryptMode};
use ports::PortSpec;
use push::DevStatus;
use serde_json::{json, Map, Value};
use transport::{Security, Transport};

/// Options of a `goip` device section (bool: secret).
/// - `crypt`: `none` (default: credentials in every request), `xor`, `rc4`,
///   `aes` (AES-256-ECB) — the latter three run the secure session;
/// - `session`: `1` runs the secure session even with `crypt none`;
/// - `auth_order`: `resource` (default, the seed's
///   `MD5(u+p+session+resource+seq)`) or `seq` (the vendor's lab script's
///   `MD5(u+p+session+seq+resource)`, for firmware that computes it so);
/// - `post_params`: where a POST carries `version`, `username` and
///   `password` without a session: `query` (default, as the seed's examples
///   and field units do) or `body` (seed §6.3.1.2: "for POST they are
///   attributes of the body's JSON");
/// - `expires`: session lifetime asked for, seconds (default 180);
/// - `all_sims`: `1` reports every SIM slot, not only the active ones;
/// - `sms_page`: SMS read per inbox request (default 50).
pub const EXTRA_OPTIONS: &[(&str, bool)] =
    &[
        ("crypt", false),
        ("session", false),
        ("auth_order", false),
        ("expires", false),
        ("all_sims", false),
        ("sms_page", false),
        ("post_params", false),
    ];

/// Default number of SMS per inbox page.
pub const DEFAULT_SMS_PAGE: u32 = 50;

/// Success codes per endpoint (DEVICE-NOTES): 200 mostly, 0 for the inbox;
/// commands answer 0 in the seed's example and 200 in the notes.
const OK_200: &[i64] = &[200];
const OK_CMD: &[i64] = &[200, 0];
const OK_INBOX: &[i64] = &[0];

pub struct GoipClient {
    name: String,
    t: Transport,
    all_sims: bool,
    sms_page: u32,
}

fn flag(v: Option<&str>) -> bool {
    matches!(v.map(str::to_ascii_lowercase).as_deref(), Some("1" | "on" | "yes" | "true"))
}

impl GoipClient {
    pub fn new(cfg: &DeviceConfig) -> Result<Self, String> {
        if !(cfg.address.starts_with("http://") || cfg.address.starts_with("https://")) {
            return Err(format!("goip {}: address must be an http:// or https:// URL", cfg.name));
        }
        let mode = CryptMode::parse(cfg.opt("crypt").unwrap_or("none"))
            .ok_or_else(|| format!("goip {}: crypt must be none, xor, rc4 or aes", cfg.name))?;
        let order = AuthOrder::parse(cfg.opt("auth_order").unwrap_or(""))
            .ok_or_else(|| format!("goip {}: auth_order must be seq or resource", cfg.name))?;
        let expires = match cfg.opt("expires") {
            None => crypt::DEFAULT_EXPIRES,
            Some(e) => e
                .parse()
                .ok()
                .filter(|&e| e >= 1)
                .ok_or_else(|| format!("goip {}: expires must be a positive number of seconds", cfg.name))?,
        };
        let sms_page = match cfg.opt("sms_page") {
            None => DEFAULT_SMS_PAGE,
            Some(n) => {
                n.parse().ok().filter(|&n| n >= 1).ok_or_else(|| format!("goip {}: sms_page must be a positive number", cfg.name))?
            }
        };
        let in_body = match cfg.opt("post_params").map(str::to_ascii_lowercase).as_deref() {
            None | Some("query") => false,
            Some("body") => true,
            Some(_) => return Err(format!("goip {}: post_params must be query or body", cfg.name)),
        };
        let security = if mode != CryptMode::None || flag(cfg.opt("session")) {
            Security::Session { mode, order, expires }
        } else {
            Security::Plain { in_body }
        };
        Ok(GoipClient {
            name: cfg.name.clone(),
            t: Transport::new(&cfg.address, &cfg.username, &cfg.password, cfg.timeout, security),
            all_sims: flag(cfg.opt("all_sims")),
            sms_page,
        })
    }

    /// Secure-session handshakes done so far.
    pub fn handshakes(&self) -> u64 {
        self.t.handshakes
    }

    /// The device's status (`goip_get_status.html`), push settings unchanged.
    pub fn status(&mut self) -> Result<DevStatus, DeviceError> {
        let v = self.status_raw(None)?;
        DevStatus::from_value(&v).map_err(DeviceError::Protocol)
    }

    /// Have the device push `dev-status` to `url` every `period` seconds
    /// (0 stops the periodic pushes; the device's minimum is 60). Returns
    /// the status the device answers with.
    pub fn set_status_push(&mut self, url: &str, period: u32) -> Result<DevStatus, DeviceError> {
        if url.is_empty() {
            return Err(DeviceError::BadRequest("status push URL is empty".into()));
        }
        let v = self.status_raw(Some((url, period)))?;
        DevStatus::from_value(&v).map_err(DeviceError::Protocol)
    }

    fn status_raw(&mut self, push: Option<(&str, u32)>) -> Result<Value, DeviceError> {
        let mut q = Vec::new();
        if let Some((url, period)) = push {
            q.push(("url", url.to_string()));
            q.push(("period", period.to_string()));
        }
        if self.all_sims {
            q.push(("all_sims", "1".to_string()));
        }
        let v = self.t.call("/goip_get_status.html", &q, None)?;
        // The status answer has no `code`; a `code` means an error answer.
        if let Some(o) = v.as_object() {
            if lenient::field(o, "type").and_then(Value::as_str) != Some("dev-status") && o.contains_key("code") {
                check_code("status", &v, OK_200)?;
            }
        }
        if !v.is_object() {
            return Err(DeviceError::Protocol("status: answer is not a JSON object".into()));
        }
        Ok(v)
    }

    /// `goip_send_cmd.html`. For lock/unlock/switch/reset/save/reboot/
    /// multiple the body is `{"type":"command","op","ports"}` plus `extra`
    /// (e.g. `auto_fail_sim_switch`, or `ops` for multiple). For get, the
    /// keys of `extra` are the parameter names to read; for set, `extra`
    /// holds `name: value` pairs; both travel in the query (seed §5.1.2).
    pub fn send_cmd(&mut self, op: CmdOp, ports: Option<&PortSpec>, extra: &Map<String, Value>) -> Result<Value, DeviceError> {
        op.check_ports(ports).map_err(DeviceError::BadRequest)?;
        let v = match op {
            CmdOp::Get | CmdOp::Set => {
                if extra.is_empty() {
                    return Err(DeviceError::BadRequest(format!("op {} needs parameter names", op.as_str())));
                }
                let mut q = vec![("op", op.as_str().to_string())];
                for (k, v) in extra {
                    let value = if op == CmdOp::Get { String::new() } else { lenient::text(v).unwrap_or_else(|| v.to_string()) };
                    q.push((k.as_str(), value));
                }
                self.t.call("/goip_send_cmd.html", &q, None)?
            }
            _ => {
                if op == CmdOp::Multiple {
                    check_multiple(extra.get("ops"))?;
                }
                let mut body = extra.clone();
                body.insert("type".into(), json!("command"));
                body.insert("op".into(), json!(op.as_str()));
                if let Some(p) = ports {
                    body.insert("ports".into(), json!(p.to_string()));
                }
                self.t.call("/goip_send_cmd.html", &[], Some(&Value::Object(body)))?
            }
        };
        check_code(op.as_str(), &v, OK_CMD)?;
        Ok(v)
    }

    /// `goip_post_sms.html`: the device's verdict on each task (code 0 =
    /// accepted; 13 = duplicated task id, …).
    pub fn send_sms(&mut self, req: &SendSms) -> Result<Vec<TaskStatus>, DeviceError> {
        req.validate().map_err(DeviceError::BadRequest)?;
        let v = self.t.call("/goip_post_sms.html", &[], Some(&req.body()))?;
        let o = check_code("send-sms", &v, OK_200)?;
        TaskStatus::list(lenient::field(o, "status"))
    }

    /// One page of the inbox from `sms_id_start` (1 = the first). When
    /// `ssrc` (from an earlier page) is not the device's, the device has
    /// restarted and renumbered: the page is read again from id 1 and
    /// `ssrc_changed` is set.
    pub fn get_sms(&mut self, ssrc: Option<&str>, sms_id_start: u64) -> Result<SmsPage, DeviceError> {
        let n = self.sms_page as u64;
        self.get_sms_n(ssrc, sms_id_start, n)
    }

    /// [`GoipClient::get_sms`] with `num` SMS per page (1 isolates a row
    /// that makes its page unreadable).
    pub fn get_sms_n(&mut self, ssrc: Option<&str>, sms_id_start: u64, num: u64) -> Result<SmsPage, DeviceError> {
        let start = sms_id_start.max(1);
        let num = num.max(1);
        let mut page = self.inbox(start, num, false)?;
        if ssrc.is_some_and(|s| s != page.ssrc) {
            if start != 1 {
                page = self.inbox(1, num, false)?;
            }
            page.ssrc_changed = true;
        }
        Ok(page)
    }

    /// Read and delete `count` SMS from `sms_id_start` (`sms_del=1`).
    pub fn remove_sms(&mut self, sms_id_start: u64, count: u64) -> Result<SmsPage, DeviceError> {
        if count == 0 {
            return Err(DeviceError::BadRequest("remove_sms: count must be at least 1".into()));
        }
        self.inbox(sms_id_start.max(1), count, true)
    }

    fn inbox(&mut self, start: u64, num: u64, delete: bool) -> Result<SmsPage, DeviceError> {
        let v = self.inbox_raw(start, num, delete)?;
        SmsPage::from_answer(check_code("get-sms", &v, OK_INBOX)?)
    }

    fn inbox_raw(&mut self, start: u64, num: u64, delete: bool) -> Result<Value, DeviceError> {
        let q = [("sms_id", start.to_string()), ("sms_num", num.to_string()), ("sms_del", (delete as u8).to_string())];
        self.t.call("/goip_get_sms.html", &q, None)
    }

    /// Pause queued tasks (`None`: all of them).
    pub fn pause_tasks(&mut self, tids: Option<&[i64]>) -> Result<Vec<TaskStatus>, DeviceError> {
        self.task_control("/goip_pause_sms.html", tids)
    }
    /// Resume paused tasks (`None`: all of them).
    pub fn resume_tasks(&mut self, tids: Option<&[i64]>) -> Result<Vec<TaskStatus>, DeviceError> {
        self.task_control("/goip_resume_sms.html", tids)
    }
    /// Remove queued tasks (`None`: all of them).
    pub fn remove_tasks(&mut self, tids: Option<&[i64]>) -> Result<Vec<TaskStatus>, DeviceError> {
        self.task_control("/goip_remove_sms.html", tids)
    }

    fn task_control(&mut self, resource: &str, tids: Option<&[i64]>) -> Result<Vec<TaskStatus>, DeviceError> {
        let v = self.task_control_raw(resource, tids)?;
        TaskStatus::list(lenient::field(check_code(resource, &v, OK_200)?, "results"))
    }

    fn task_control_raw(&mut self, resource: &str, tids: Option<&[i64]>) -> Result<Value, DeviceError> {
        let body = match tids {
            Some(t) => json!({ "tids": t }),
            None => json!({}),
        };
        self.t.call(resource, &[], Some(&body))
    }

    /// Queued tasks of `port` (1-based), `num` from position `pos`.
    pub fn get_tasks(&mut self, port: u16, pos: u32, num: u32, with_content: bool) -> Result<TaskList, DeviceError> {
        let v = self.get_tasks_raw(port, pos, num, with_content)?;
        TaskList::from_answer(check_code("get-tasks", &v, OK_200)?)
    }

    fn get_tasks_raw(&mut self, port: u16, pos: u32, num: u32, with_content: bool) -> Result<Value, DeviceError> {
        if port == 0 || num == 0 {
            return Err(DeviceError::BadRequest("get_tasks: port and num start at 1".into()));
        }
        let q = [
            ("port", port.to_string()),
            ("pos", pos.to_string()),
            ("num", num.to_string()),
            ("has_content", (with_content as u8).to_string()),
        ];
        self.t.call("/goip_get_tasks.html", &q, None)
    }

    /// SMS counters (`goip_get_sms_stat.html`).
    pub fn sms_stats(&mut self, q: &StatsQuery) -> Result<Stats, DeviceError> {
        let v = self.stats_raw("/goip_get_sms_stat.html", q)?;
        Stats::from_answer(check_code("sms-stats", &v, OK_200)?)
    }

    /// Call counters (`goip_get_call_stat.html`).
    pub fn call_stats(&mut self, q: &StatsQuery) -> Result<Stats, DeviceError> {
        let v = self.stats_raw("/goip_get_call_stat.html", q)?;
        Stats::from_answer(check_code("call-stats", &v, OK_200)?)
    }

    fn stats_raw(&mut self, resource: &str, q: &StatsQuery) -> Result<Value, DeviceError> {
        let mut query = vec![("type", q.period.code().to_string())];
        if let Some(p) = &q.ports {
            query.push(("ports", p.clone()));
        }
        if let Some(s) = &q.slots {
            query.push(("slots", s.clone()));
        }
        self.t.call(resource, &query, None)
    }
}

/// Validate the `ops` of a multiple command: each an object with a known
/// port op and valid ports.
fn check_multiple(ops: Option<&Value>) -> Result<(), DeviceError> {
    let bad = |m: String| DeviceError::BadRequest(m);
    let ops =
        ops.and_then(Value::as_array).filter(|a| !a.is_empty()).ok_or_else(|| bad("op multiple needs a non-empty ops array".into()))?;
    for (i, o) in ops.iter().enumerate() {
        let op = o.get("op").and_then(Value::as_str).and_then(CmdOp::parse).filter(|op| op.needs_ports());
        let op = op.ok_or_else(|| bad(format!("ops[{i}]: op must be lock, unlock, switch or reset")))?;
        let ports = o.get("ports").and_then(Value::as_str).ok_or_else(|| bad(format!("ops[{i}]: ports missing")))?;
        let spec = PortSpec::parse(ports).map_err(|e| bad(format!("ops[{i}]: {e}")))?;
        op.check_ports(Some(&spec)).map_err(|e| bad(format!("ops[{i}]: {e}")))?;
    }
    Ok(())
}

impl LanDevice for GoipClient {
    fn kind(&self) -> DeviceKind {
        DeviceKind::Goip
    }

    fn poll(&mut self) -> Result<DeviceStatus, DeviceError> {
        let raw = self.status_raw(None)?;
        let st = DevStatus::from_value(&raw).map_err(DeviceError::Protocol)?;
        Ok(status::normalise(&self.name, &st, raw))
    }

    fn command(&mut self, method: &str, body: &Value) -> Result<Value, DeviceError> {
        command::run(self, method, body)
    }
}
