//! Typed requests to and answers from the GoIP's HTTP API (seed §4–§10).

use super::lenient::{self, get_int, get_text, RowError};
use super::ports::PortSpec;
use super::push::{split_rows, Sms};
use crate::devices::DeviceError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// `op` of `goip_send_cmd.html` (seed §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdOp {
    Lock,
    Unlock,
    /// Switch to the SIM slot named in `ports` (e.g. `2B`).
    Switch,
    /// Restart the module of a port.
    Reset,
    Save,
    Reboot,
    /// Read configuration parameters (`par_name` in the query).
    Get,
    /// Write configuration parameters (`par_name=value` in the query).
    Set,
    /// Several commands in one body (`ops`).
    Multiple,
}

impl CmdOp {
    pub fn parse(s: &str) -> Option<CmdOp> {
        Some(match s {
            "lock" => CmdOp::Lock,
            "unlock" => CmdOp::Unlock,
            "switch" => CmdOp::Switch,
            "reset" => CmdOp::Reset,
            "save" => CmdOp::Save,
            "reboot" => CmdOp::Reboot,
            "get" => CmdOp::Get,
            "set" => CmdOp::Set,
            "multiple" => CmdOp::Multiple,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CmdOp::Lock => "lock",
            CmdOp::Unlock => "unlock",
            CmdOp::Switch => "switch",
            CmdOp::Reset => "reset",
            CmdOp::Save => "save",
            CmdOp::Reboot => "reboot",
            CmdOp::Get => "get",
            CmdOp::Set => "set",
            CmdOp::Multiple => "multiple",
        }
    }
    /// Ops that act on ports and so need `ports`.
    pub fn needs_ports(self) -> bool {
        matches!(self, CmdOp::Lock | CmdOp::Unlock | CmdOp::Switch | CmdOp::Reset)
    }
    /// Check `ports` against what the op needs: switch names slots, and
    /// only single ports (a range cannot say which slot to switch to).
    pub fn check_ports(self, ports: Option<&PortSpec>) -> Result<(), String> {
        match (self.needs_ports(), ports) {
            (true, None) => Err(format!("op {} needs ports", self.as_str())),
            (false, Some(_)) => Err(format!("op {} takes no ports", self.as_str())),
            (true, Some(PortSpec::List(items))) if self == CmdOp::Switch => {
                use super::ports::PortItem;
                if items.iter().all(|i| matches!(i, PortItem::One(p) if p.slot.is_some())) {
                    Ok(())
                } else {
                    Err("op switch needs ports with their slot, e.g. 2B".into())
                }
            }
            (true, Some(PortSpec::All)) if self == CmdOp::Switch => Err("op switch needs ports with their slot, e.g. 2B".into()),
            _ => Ok(()),
        }
    }
}

/// One send-sms task (seed §6.3.1.3). Unknown fields (`smstype`,
/// `attachments`, …) pass through `extra` unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SmsTask {
    pub tid: i64,
    /// Recipients, comma-separated.
    pub to: String,
    pub sms: String,
    /// Sending ports (`1`, `1A`, `1-4`); the device chooses when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `utf8` (default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chs: Option<String>,
    /// 0 any, 1 UCS2, 2 7-bit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coding: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intvl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmo: Option<i64>,
    /// Success detail records in reports (1 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdr: Option<i64>,
    /// Failure detail records in reports (1 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fdr: Option<i64>,
    /// Delivery reports (1 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sr_prd: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sr_cnt: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SmsTask {
    /// A task with the three required fields.
    pub fn new(tid: i64, to: &str, sms: &str) -> SmsTask {
        SmsTask { tid, to: to.into(), sms: sms.into(), ..SmsTask::default() }
    }
    pub fn validate(&self) -> Result<(), String> {
        if self.tid < 0 {
            return Err("tid must not be negative".into());
        }
        if self.to.split(',').all(|n| n.trim().is_empty()) {
            return Err("to: no recipient".into());
        }
        let mms = self.extra.get("smstype").and_then(lenient::int) == Some(1);
        if self.sms.is_empty() && !mms {
            return Err("sms: empty text".into());
        }
        if let Some(from) = self.from.as_deref().filter(|f| !f.trim().is_empty()) {
            PortSpec::parse(from).map_err(|e| format!("from: {e}"))?;
        }
        if let Some(c) = self.coding {
            if !(0..=2).contains(&c) {
                return Err("coding must be 0, 1 or 2".into());
            }
        }
        Ok(())
    }
}

/// A `goip_post_sms.html` request: tasks plus where reports go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendSms {
    pub tasks: Vec<SmsTask>,
    /// Where `status-report` pushes go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sr_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sr_cnt: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sr_prd: Option<i64>,
    /// Where `recv-sms` pushes go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_cnt: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_prd: Option<i64>,
}

impl SendSms {
    pub fn validate(&self) -> Result<(), String> {
        if self.tasks.is_empty() {
            return Err("no task".into());
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.tasks {
            t.validate().map_err(|e| format!("task {}: {e}", t.tid))?;
            if !seen.insert(t.tid) {
                return Err(format!("task id {} given twice", t.tid));
            }
        }
        Ok(())
    }
    /// The JSON body (seed §6.3.1.3).
    pub fn body(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), json!("send-sms"));
            o.insert("task_num".into(), json!(self.tasks.len()));
        }
        v
    }
}

/// A task's status in a send/pause/resume/remove answer (`"0 OK"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskStatus {
    pub tid: i64,
    pub code: i64,
    pub reason: String,
}

impl TaskStatus {
    /// Code 0: the device took the task (or the action on it).
    pub fn accepted(&self) -> bool {
        self.code == 0
    }
    /// Read the `status` / `results` array of an answer.
    pub fn list(rows: Option<&Value>) -> Result<Vec<TaskStatus>, DeviceError> {
        let rows = match rows {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(DeviceError::Protocol("task statuses are not an array".into())),
        };
        rows.iter()
            .map(|r| {
                let o = r.as_object().ok_or_else(|| DeviceError::Protocol("task status is not an object".into()))?;
                let tid = get_int(o, "tid").ok_or_else(|| DeviceError::Protocol("task status without tid".into()))?;
                let (code, reason) = lenient::field(o, "status")
                    .and_then(lenient::code_reason)
                    .ok_or_else(|| DeviceError::Protocol(format!("task {tid}: no status")))?;
                Ok(TaskStatus { tid, code, reason })
            })
            .collect()
    }
}

/// One page of the inbox (`goip_get_sms.html`, seed §8).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmsPage {
    /// The device's run identity; a new one means it restarted and ids began again.
    pub ssrc: String,
    /// The id to ask for next.
    pub next_sms: i64,
    pub sms: Vec<Sms>,
    pub bad: Vec<RowError>,
    /// The caller's ssrc was not the device's: the page was read from id 1.
    pub ssrc_changed: bool,
}

impl SmsPage {
    pub fn from_answer(o: &Map<String, Value>) -> Result<SmsPage, DeviceError> {
        let ssrc = get_text(o, "ssrc").ok_or_else(|| DeviceError::Protocol("inbox answer without ssrc".into()))?;
        let next_sms = get_int(o, "next_sms").ok_or_else(|| DeviceError::Protocol("inbox answer without next_sms".into()))?;
        let rows = match lenient::field(o, "data") {
            Some(Value::Array(a)) => a.as_slice(),
            Some(Value::Null) | None => &[],
            Some(_) => return Err(DeviceError::Protocol("inbox data is not an array".into())),
        };
        let (sms, bad) = split_rows(rows, Sms::from_value);
        Ok(SmsPage { ssrc, next_sms, sms, bad, ssrc_changed: false })
    }
}

/// One queued task (`goip_get_tasks.html`, seed §6.3.6).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedTask {
    pub tid: i64,
    pub paused: bool,
    pub from: Option<String>,
    pub to: Option<String>,
    pub sms: Option<String>,
    pub raw: Map<String, Value>,
}

/// The queued tasks of one port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskList {
    pub total: i64,
    pub tasks: Vec<QueuedTask>,
    pub bad: Vec<RowError>,
}

impl TaskList {
    pub fn from_answer(o: &Map<String, Value>) -> Result<TaskList, DeviceError> {
        let rows = match lenient::field(o, "tasks") {
            Some(Value::Array(a)) => a.as_slice(),
            Some(Value::Null) | None => &[],
            Some(_) => return Err(DeviceError::Protocol("tasks is not an array".into())),
        };
        let (tasks, bad) = split_rows(rows, |v| {
            let t = v.as_object().ok_or("task is not an object")?;
            Ok(QueuedTask {
                tid: get_int(t, "tid").ok_or("task without tid")?,
                paused: get_int(t, "state") == Some(1),
                from: get_text(t, "from"),
                to: get_text(t, "to"),
                sms: get_text(t, "sms"),
                raw: t.clone(),
            })
        });
        let total = get_int(o, "total_num").unwrap_or(tasks.len() as i64);
        Ok(TaskList { total, tasks, bad })
    }
}

/// Period of an SMS or call statistic (`type`, seed §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatsPeriod {
    #[default]
    LastHour,
    LastTwoHours,
    Today,
    Total,
}

impl StatsPeriod {
    pub fn code(self) -> u8 {
        self as u8
    }
    pub fn from_code(c: i64) -> Option<StatsPeriod> {
        Some(match c {
            0 => StatsPeriod::LastHour,
            1 => StatsPeriod::LastTwoHours,
            2 => StatsPeriod::Today,
            3 => StatsPeriod::Total,
            _ => return None,
        })
    }
}

/// Which counters to read: ports and slots as the device writes them
/// (`all`, `2`, `1-3,4`), `None` for the device's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsQuery {
    pub ports: Option<String>,
    pub slots: Option<String>,
    pub period: StatsPeriod,
}

/// One statistics row: its port and slot plus every counter as received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatRow {
    pub port: i64,
    pub slot: Option<i64>,
    pub counters: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub rows: Vec<StatRow>,
    pub bad: Vec<RowError>,
}

impl Stats {
    pub fn from_answer(o: &Map<String, Value>) -> Result<Stats, DeviceError> {
        let rows = match lenient::field(o, "stats") {
            Some(Value::Array(a)) => a.as_slice(),
            Some(Value::Null) | None => &[],
            Some(_) => return Err(DeviceError::Protocol("stats is not an array".into())),
        };
        let (rows, bad) = split_rows(rows, |v| {
            let s = v.as_object().ok_or("stat is not an object")?;
            Ok(StatRow { port: get_int(s, "port").ok_or("stat without port")?, slot: get_int(s, "slot"), counters: s.clone() })
        });
        Ok(Stats { rows, bad })
    }
}

/// Check an answer's `code` against the codes that mean success for this
/// endpoint; the text of a failure is `reason` (or `desc` in handshakes).
pub fn check_code<'a>(what: &str, v: &'a Value, ok: &[i64]) -> Result<&'a Map<String, Value>, DeviceError> {
    let o = v.as_object().ok_or_else(|| DeviceError::Protocol(format!("{what}: answer is not a JSON object")))?;
    let code = get_int(o, "code").ok_or_else(|| DeviceError::Protocol(format!("{what}: answer without code")))?;
    if ok.contains(&code) {
        return Ok(o);
    }
    let msg = get_text(o, "reason").or_else(|| get_text(o, "desc")).unwrap_or_else(|| "no reason given".into());
    Err(DeviceError::Device { code, msg: format!("{what}: {msg}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_sms_body_and_validation() {
        let mut t = SmsTask::new(1223, "13686876620", "hello123");
        t.extra.insert("smstype".into(), json!(0));
        let req = SendSms { tasks: vec![t.clone()], sr_url: Some("http://x/sr".into()), ..SendSms::default() };
        req.validate().unwrap();
        let b = req.body();
        assert_eq!(b["type"], "send-sms");
        assert_eq!(b["task_num"], 1);
        assert_eq!(b["tasks"][0]["tid"], 1223);
        assert_eq!(b["tasks"][0]["smstype"], 0);
        assert!(b["tasks"][0].get("from").is_none());
        assert_eq!(b["sr_url"], "http://x/sr");
        let dup = SendSms { tasks: vec![t.clone(), t.clone()], ..SendSms::default() };
        assert!(dup.validate().is_err());
        let bad_port = SmsTask { from: Some("1Z9".into()), ..t.clone() };
        assert!(bad_port.validate().is_err());
        assert!(SmsTask::new(1, " , ", "x").validate().is_err());
        assert!(SmsTask::new(1, "1", "").validate().is_err());
        let parsed: SmsTask = serde_json::from_value(json!({"tid": 5, "to": "1", "sms": "x", "smstitle": "t"})).unwrap();
        assert_eq!(parsed.extra["smstitle"], "t");
    }

    #[test]
    fn answers() {
        let v =
            json!({"code": 200, "reason": "OK", "status": [{"tid": 1, "status": "0 OK"}, {"tid": "2", "status": "13 Duplicated TaskId"}]});
        let o = check_code("send", &v, &[200]).unwrap();
        let st = TaskStatus::list(o.get("status")).unwrap();
        assert!(st[0].accepted());
        assert_eq!((st[1].tid, st[1].code, st[1].reason.as_str()), (2, 13, "Duplicated TaskId"));
        let e = check_code("x", &json!({"code": 500, "reason": "busy"}), &[200]).unwrap_err();
        assert_eq!(e, DeviceError::Device { code: 500, msg: "x: busy".into() });
        assert!(matches!(check_code("x", &json!([1]), &[0]), Err(DeviceError::Protocol(_))));
        assert!(matches!(check_code("x", &json!({"reason": "OK"}), &[0]), Err(DeviceError::Protocol(_))));
    }

    #[test]
    fn switch_needs_slots() {
        let p = |s| PortSpec::parse(s).unwrap();
        assert!(CmdOp::Switch.check_ports(Some(&p("2B"))).is_ok());
        assert!(CmdOp::Switch.check_ports(Some(&p("2"))).is_err());
        assert!(CmdOp::Switch.check_ports(Some(&p("all"))).is_err());
        assert!(CmdOp::Lock.check_ports(Some(&p("1A,4-32"))).is_ok());
        assert!(CmdOp::Lock.check_ports(None).is_err());
        assert!(CmdOp::Reboot.check_ports(Some(&p("1"))).is_err());
    }
}
