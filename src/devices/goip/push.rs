//! The bodies the GoIP sends on its own (seed §4, §6.3.2, §7): `dev-status`,
//! `port-status`, `status-report` and `recv-sms`. The same row formats come
//! back in answers (`goip_get_status.html`, `goip_get_sms.html`), so the
//! client reuses these parsers.
//!
//! Reading is lenient (DEVICE-NOTES): numbers may be strings and strings
//! numbers, SMS rows may be longer than documented, text may end in NULs.
//! A row that cannot be read is reported as a [`RowError`] next to the rows
//! that could, so one bad row never costs the batch.

use super::lenient::{self, get_float, get_int, get_text, RowError};
use super::ports::Port;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

/// Text of a port state code (seed §4.1.4).
pub fn state_text(code: i64) -> &'static str {
    match code {
        0 => "no SIM",
        1 => "SIM idle",
        2 => "registering",
        3 => "registered",
        4 => "in call",
        5 => "no balance or alarm",
        6 => "registration failed",
        7 => "SIM locked by device",
        8 => "SIM blocked by operator",
        9 => "SIM read error",
        11 => "SIM detected",
        12 => "locked by user",
        13 => "port-to-port call",
        14 => "waiting for port-to-port call",
        _ => "unknown",
    }
}

/// Whether a state code means the SIM is registered on the network (the
/// operator is valid for 3 and 4; 13/14 are calls between ports).
pub fn is_registered(code: i64) -> bool {
    matches!(code, 3 | 4 | 13 | 14)
}

/// One port (SIM slot) as the device reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortState {
    /// As reported (`1A`, `1.01`).
    pub port: String,
    pub port_no: Option<u16>,
    pub slot: Option<u16>,
    /// State code from `st` (a number) or `status` (`"3 OK"`).
    pub state: Option<i64>,
    /// The device's reason text when it gives one, else the code's meaning.
    pub state_text: String,
    pub registered: bool,
    pub seq: Option<i64>,
    pub imei: Option<String>,
    pub iccid: Option<String>,
    pub imsi: Option<String>,
    /// SIM number (`sn`).
    pub number: Option<String>,
    /// Operator id and name (`opr`).
    pub operator: Option<String>,
    pub balance: Option<f64>,
    pub signal: Option<i64>,
    /// Every field as received.
    pub raw: Map<String, Value>,
}

impl PortState {
    pub fn from_value(v: &Value) -> Result<PortState, String> {
        let o = v.as_object().ok_or("port state is not an object")?;
        let port = get_text(o, "port").ok_or("port state without port")?;
        let parsed = Port::parse(&port).ok();
        let st = lenient::field(o, "st").or_else(|| lenient::field(o, "status")).and_then(lenient::code_reason);
        let (state, reason) = match st {
            Some((c, r)) => (Some(c), r),
            None => (None, String::new()),
        };
        let state_text = match state {
            Some(c) if reason.is_empty() || reason.eq_ignore_ascii_case("ok") => state_text(c).to_string(),
            Some(_) => reason,
            None => "unknown".to_string(),
        };
        Ok(PortState {
            port_no: parsed.map(|p| p.port),
            slot: parsed.and_then(|p| p.slot),
            port,
            state,
            state_text,
            registered: state.is_some_and(is_registered),
            seq: get_int(o, "seq"),
            imei: get_text(o, "imei"),
            iccid: get_text(o, "iccid"),
            imsi: get_text(o, "imsi"),
            number: get_text(o, "sn"),
            operator: get_text(o, "opr"),
            balance: get_float(o, "bal"),
            signal: get_int(o, "sig"),
            raw: o.clone(),
        })
    }
}

/// The whole device (`dev-status`), pushed or answered by `goip_get_status.html`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DevStatus {
    pub seq: Option<i64>,
    pub expires: Option<i64>,
    pub mac: Option<String>,
    pub ip: Option<String>,
    /// Firmware version (`ver`).
    pub version: Option<String>,
    pub max_ports: Option<i64>,
    pub max_slots: Option<i64>,
    pub ports: Vec<PortState>,
    pub bad_ports: Vec<RowError>,
}

impl DevStatus {
    pub fn from_value(v: &Value) -> Result<DevStatus, String> {
        let o = v.as_object().ok_or("device status is not an object")?;
        let rows = match lenient::field(o, "status") {
            Some(Value::Array(a)) => a.as_slice(),
            Some(Value::Null) | None => &[],
            Some(_) => return Err("device status: `status` is not an array".into()),
        };
        let (ports, bad_ports) = split_rows(rows, PortState::from_value);
        Ok(DevStatus {
            seq: get_int(o, "seq"),
            expires: get_int(o, "expires"),
            mac: get_text(o, "mac"),
            ip: get_text(o, "ip"),
            version: get_text(o, "ver"),
            max_ports: get_int(o, "max-ports").or_else(|| get_int(o, "max_ports")),
            // The seed writes both `max-slots` and `max-slot`.
            max_slots: get_int(o, "max-slots").or_else(|| get_int(o, "max-slot")),
            ports,
            bad_ports,
        })
    }
}

/// A received SMS or delivery report (a `recv-sms` / `goip_get_sms` row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sms {
    /// True for a delivery report.
    pub is_report: bool,
    pub port: String,
    /// Unix time the device received it.
    pub time: i64,
    /// Sender; the service centre for a delivery report.
    pub from: String,
    /// Recipient; the original recipient for a delivery report.
    pub to: String,
    /// The text (base64 decoded), or the report's `code scts`.
    pub text: String,
    /// Whether `text` came base64-encoded as documented.
    pub base64: bool,
    /// Delivery report: 0 means delivered.
    pub report_code: Option<i64>,
    /// Delivery report: the service centre time stamp.
    pub report_scts: Option<String>,
    /// Elements beyond the six documented, as received.
    pub extra: Vec<Value>,
}

impl Sms {
    pub fn from_value(v: &Value) -> Result<Sms, String> {
        let a = v.as_array().ok_or("SMS row is not an array")?;
        if a.len() < 6 {
            return Err(format!("SMS row has {} elements, expected 6", a.len()));
        }
        let flag = lenient::int(&a[0]).ok_or("SMS row: bad report flag")?;
        let port = lenient::text(&a[1]).filter(|s| !s.is_empty()).ok_or("SMS row: no port")?;
        let time = lenient::int(&a[2]).ok_or("SMS row: bad time stamp")?;
        let from = lenient::text(&a[3]).unwrap_or_default();
        let to = lenient::text(&a[4]).unwrap_or_default();
        let content = lenient::text(&a[5]).ok_or("SMS row: no content")?;
        let is_report = flag == 1;
        let (text, base64, report_code, report_scts) = if is_report {
            let mut parts = content.splitn(2, ' ');
            let code = parts.next().and_then(|c| c.parse().ok());
            let scts = parts.next().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
            (content, false, code, scts)
        } else {
            match decode_base64_text(&content) {
                Some(t) => (t, true, None, None),
                None => (content, false, None, None),
            }
        };
        Ok(Sms { is_report, port, time, from, to, text, base64, report_code, report_scts, extra: a[6..].to_vec() })
    }
}

/// Base64 (line breaks and missing padding tolerated) to UTF-8 text with
/// trailing NULs removed; `None` when it is not base64 or does not decode
/// to UTF-8 (the caller then keeps the content as received).
pub fn decode_base64_text(s: &str) -> Option<String> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Some(String::new());
    }
    let bytes = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT.decode(compact.as_bytes()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    Some(text.trim_end_matches('\0').to_string())
}

/// A row of an SMS batch in its place: read, or kept raw with the reason.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SmsRow<'a> {
    Read(&'a Sms),
    Unreadable(&'a RowError),
}

/// The rows of a batch back in their original order (`split_rows` put the
/// good ones in order and the bad ones aside with their index).
pub fn rows_in_order<'a>(sms: &'a [Sms], bad: &'a [RowError]) -> Vec<SmsRow<'a>> {
    let mut out = Vec::with_capacity(sms.len() + bad.len());
    let (mut good, mut bad_it) = (sms.iter(), bad.iter().peekable());
    for i in 0..sms.len() + bad.len() {
        let here = bad_it.peek().is_some_and(|b| b.index == i);
        let row = if here { bad_it.next().map(SmsRow::Unreadable) } else { good.next().map(SmsRow::Read) };
        match row.or_else(|| bad_it.next().map(SmsRow::Unreadable)) {
            Some(r) => out.push(r),
            None => break,
        }
    }
    out
}

/// A `recv-sms` push.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecvSms {
    /// `sms_num` as declared (may disagree with the rows).
    pub declared: Option<i64>,
    pub sms: Vec<Sms>,
    pub bad: Vec<RowError>,
}

/// One success (`sdr`) or failure (`fdr`) detail of a task report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detail {
    /// Index of the number in the task's recipient list.
    pub index: i64,
    pub number: String,
    pub port: String,
    pub time: Option<i64>,
    /// Failures: the device's reason (code + text).
    pub reason_code: Option<i64>,
    pub reason: Option<String>,
    /// Failures: the operator's reason.
    pub operator_reason: Option<String>,
}

impl Detail {
    pub fn from_value(v: &Value) -> Result<Detail, String> {
        let a = v.as_array().ok_or("detail record is not an array")?;
        if a.len() < 3 {
            return Err(format!("detail record has {} elements, expected at least 3 (index, number, port)", a.len()));
        }
        let reason = a.get(4).and_then(lenient::code_reason);
        Ok(Detail {
            index: lenient::int(&a[0]).ok_or("detail record: bad index")?,
            number: lenient::text(&a[1]).ok_or("detail record: no number")?,
            port: lenient::text(&a[2]).unwrap_or_default(),
            time: a.get(3).and_then(lenient::int),
            reason_code: reason.as_ref().map(|r| r.0),
            reason: reason.map(|r| r.1).filter(|r| !r.is_empty()),
            operator_reason: a.get(5).and_then(lenient::text).filter(|s| !s.is_empty()),
        })
    }
}

/// One task's report in a `status-report` push.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskReport {
    pub tid: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
    pub unsent: i64,
    pub sdr: Vec<Detail>,
    pub fdr: Vec<Detail>,
    pub bad_details: Vec<RowError>,
}

impl TaskReport {
    pub fn from_value(v: &Value) -> Result<TaskReport, String> {
        let o = v.as_object().ok_or("report is not an object")?;
        let tid = get_int(o, "tid").ok_or("report without tid")?;
        let details = |k: &str| match lenient::field(o, k) {
            Some(Value::Array(a)) => split_rows(a, Detail::from_value),
            _ => (Vec::new(), Vec::new()),
        };
        let (sdr, mut bad_details) = details("sdr");
        let (fdr, bad_f) = details("fdr");
        bad_details.extend(bad_f);
        let n = |k: &str| get_int(o, k).unwrap_or(0);
        Ok(TaskReport { tid, sending: n("sending"), sent: n("sent"), failed: n("failed"), unsent: n("unsent"), sdr, fdr, bad_details })
    }
}

/// A `status-report` push.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub declared: Option<i64>,
    pub reports: Vec<TaskReport>,
    pub bad: Vec<RowError>,
}

/// Any push body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Push {
    DevStatus(DevStatus),
    PortStatus(PortState),
    StatusReport(StatusReport),
    RecvSms(RecvSms),
}

impl Push {
    /// The body's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Push::DevStatus(_) => "dev-status",
            Push::PortStatus(_) => "port-status",
            Push::StatusReport(_) => "status-report",
            Push::RecvSms(_) => "recv-sms",
        }
    }
}

/// Read a push body. Errors only when the body as a whole is unusable
/// (not JSON, unknown `type`, rows missing); bad rows are kept aside.
pub fn parse_push(body: &[u8]) -> Result<Push, String> {
    let v = lenient::parse_body(body)?;
    let o = v.as_object().ok_or("push body is not a JSON object")?;
    let kind = get_text(o, "type").ok_or("push body without type")?;
    match kind.as_str() {
        "dev-status" => DevStatus::from_value(&v).map(Push::DevStatus),
        "port-status" => PortState::from_value(&v).map(Push::PortStatus),
        "status-report" => {
            let rows = array_field(o, "rpts")?;
            let (reports, bad) = split_rows(rows, TaskReport::from_value);
            Ok(Push::StatusReport(StatusReport { declared: get_int(o, "rpt_num"), reports, bad }))
        }
        "recv-sms" => {
            let rows = array_field(o, "sms")?;
            let (sms, bad) = split_rows(rows, Sms::from_value);
            Ok(Push::RecvSms(RecvSms { declared: get_int(o, "sms_num"), sms, bad }))
        }
        other => Err(format!("unknown push type {other:?}")),
    }
}

fn array_field<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a [Value], String> {
    match lenient::field(o, k) {
        Some(Value::Array(a)) => Ok(a),
        Some(Value::Null) | None => Ok(&[]),
        Some(_) => Err(format!("`{k}` is not an array")),
    }
}

/// Parse each row; good ones in order, bad ones with their index.
pub fn split_rows<T>(rows: &[Value], f: impl Fn(&Value) -> Result<T, String>) -> (Vec<T>, Vec<RowError>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        match f(row) {
            Ok(t) => good.push(t),
            Err(reason) => bad.push(RowError { index, reason, raw: row.clone() }),
        }
    }
    (good, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_status_seed_example() {
        let body = br#"{"type":"dev-status","seq":3,"expires":60,"mac":"00-30-f1-00-6c-55","ip":"192.0.2.67",
            "ver":"532-604-924-041-100-000","max-ports":32,"max-slot":4,"status":[{"port":"1.01","sim":"","seq":8,"st":3,
            "imei":"898610599441327","iccid":"89860116289910033431","imsi":"460014978212473","sn":"",
            "opr":"46001 CHINA UNICOM GSM","bal":"0.00","sig":15,"tot_dur":"0/-1"}, "junk", {"st": 3}]}"#;
        let Push::DevStatus(d) = parse_push(body).unwrap() else { panic!("kind") };
        assert_eq!(d.max_slots, Some(4));
        assert_eq!(d.version.as_deref(), Some("532-604-924-041-100-000"));
        assert_eq!(d.ports.len(), 1);
        let p = &d.ports[0];
        assert_eq!((p.port_no, p.slot, p.state, p.registered), (Some(1), Some(1), Some(3), true));
        assert_eq!(p.state_text, "registered");
        assert_eq!(p.number, None);
        assert_eq!(p.balance, Some(0.0));
        assert_eq!(p.signal, Some(15));
        assert_eq!(p.raw["tot_dur"], "0/-1");
        assert_eq!(d.bad_ports.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn port_status_strings_and_numbers_swapped() {
        let body = br#"{"type":"port-status","port":"2B","seq":"1","status":"6 Register Failed","bal":100.5,"opr":46000,"sig":"20","imei":860000000000001}"#;
        let Push::PortStatus(p) = parse_push(body).unwrap() else { panic!("kind") };
        assert_eq!((p.port_no, p.slot, p.seq, p.state), (Some(2), Some(2), Some(1), Some(6)));
        assert_eq!(p.state_text, "Register Failed");
        assert!(!p.registered);
        assert_eq!(p.operator.as_deref(), Some("46000"));
        assert_eq!(p.imei.as_deref(), Some("860000000000001"));
        assert_eq!((p.balance, p.signal), (Some(100.5), Some(20)));
    }

    #[test]
    fn recv_sms_lenient_rows() {
        // "aGVsbG8AAA==" is "hello\0\0"; the second row has extra elements and
        // string numbers; the third is malformed; the fourth a delivery report.
        let body = b"{\"type\":\"recv-sms\",\"sms_num\":\"4\",\"sms\":[[0,\"1A\",1466506477,\"10010\",\"1326\",\"aGVsbG8AAA==\"],\
            [\"0\",\"2B\",\"1466506670\",10086,\"1326\",\"5L2g5aW9\",\"x\",7],[0,\"1A\"],\
            [1,\"1A\",1466506700,\"+8613800\",\"1390000\",\"0 210622101010\"]]}\0\0";
        let Push::RecvSms(r) = parse_push(body).unwrap() else { panic!("kind") };
        assert_eq!(r.declared, Some(4));
        assert_eq!(r.sms.len(), 3);
        assert_eq!(r.sms[0].text, "hello");
        assert!(r.sms[0].base64);
        assert_eq!((r.sms[1].from.as_str(), r.sms[1].time, r.sms[1].text.as_str()), ("10086", 1466506670, "你好"));
        assert_eq!(r.sms[1].extra.len(), 2);
        assert!(r.sms[2].is_report);
        assert_eq!((r.sms[2].report_code, r.sms[2].report_scts.as_deref()), (Some(0), Some("210622101010")));
        assert_eq!(r.bad.len(), 1);
        assert_eq!(r.bad[0].index, 2);
    }

    #[test]
    fn status_report_keeps_good_rows() {
        let body = br#"{"type":"status-report","rpt_num":3,"rpts":[
            {"tid":"1223","sending":0,"sent":"1","failed":1,"unsent":0,
             "sdr":[[0,"13686876620","1A",1466506477]],
             "fdr":[[1,"000123","2A",1466506478,"1 Send Failed","27 Unknown subscriber"],["bad"]]},
            {"sent":1}, 7]}"#;
        let Push::StatusReport(s) = parse_push(body).unwrap() else { panic!("kind") };
        assert_eq!(s.reports.len(), 1);
        let r = &s.reports[0];
        assert_eq!((r.tid, r.sent, r.failed), (1223, 1, 1));
        assert_eq!(r.sdr[0].number, "13686876620");
        assert_eq!(r.fdr[0].reason_code, Some(1));
        assert_eq!(r.fdr[0].operator_reason.as_deref(), Some("27 Unknown subscriber"));
        assert_eq!(r.bad_details.len(), 1);
        assert_eq!(s.bad.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn whole_body_errors() {
        assert!(parse_push(b"garbage").is_err());
        assert!(parse_push(br#"{"type":"what"}"#).is_err());
        assert!(parse_push(br#"{"type":"recv-sms","sms":5}"#).is_err());
        assert!(parse_push(br#"[1]"#).is_err());
    }
}
