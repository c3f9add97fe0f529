//! The `sms` command: validate, build one send-sms task whose id (tid) is
//! derived from the command id and kept in the journal, post it, answer
//! with the GoIP's verdict on the task.

use super::Shared;
use crate::agent::Ctx;
use crate::commands::envelope::{Command, Outcome};
use crate::devices::goip::api::{SendSms, SmsTask};
use crate::devices::goip::ports::PortSpec;
use crate::devices::goip::GoipClient;
use crate::devices::{DeviceConfig, DeviceKind};
use base64::Engine;
use serde_json::{json, Map, Value};

/// Recipients of one command at most.
pub const MAX_RECIPIENTS: usize = 100;
/// Characters of text at most (the GoIP splits long text into parts; 1600
/// is about ten parts of 7-bit text).
pub const MAX_TEXT: usize = 1600;
/// GoIP answer code for a task id it already has.
const DUPLICATED_TID: i64 = 13;

/// The task id for a command: 31 bits of SHA-256 of its journal key, never
/// 0. The same command id always gives the same tid, so even a retry whose
/// journal data was lost cannot make a second task.
pub fn derive_tid(key: &str) -> i64 {
    let h = crate::util::sha256_hex(key.as_bytes());
    let n = i64::from_str_radix(&h[..8], 16).unwrap_or(1) & 0x7fff_ffff;
    n.max(1)
}

/// Check and normalise recipients (`"n1,n2"` or an array): each an
/// optional `+` then 1..20 digits; spaces and dashes inside are dropped.
pub fn parse_numbers(v: Option<&Value>) -> Result<Vec<String>, String> {
    let items: Vec<String> = match v {
        Some(Value::String(s)) => s.split(',').map(String::from).collect(),
        Some(Value::Number(n)) => vec![n.to_string()],
        Some(Value::Array(a)) => {
            a.iter().map(|x| crate::devices::goip::lenient::text(x).ok_or("to: every number must be a string")).collect::<Result<_, _>>()?
        }
        _ => return Err("to: missing (a comma-separated string of numbers)".into()),
    };
    let mut out = Vec::new();
    for raw in items {
        let n: String = raw.trim().chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if n.is_empty() {
            continue;
        }
        let digits = n.strip_prefix('+').unwrap_or(&n);
        if digits.is_empty() || digits.len() > 20 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("to: {raw:?} is not a phone number"));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    if out.is_empty() {
        return Err("to: no recipient".into());
    }
    if out.len() > MAX_RECIPIENTS {
        return Err(format!("to: {} recipients, at most {MAX_RECIPIENTS}", out.len()));
    }
    Ok(out)
}

/// Whether `s` fits the GSM 7-bit alphabet (basic set plus extension).
pub fn is_gsm7(s: &str) -> bool {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXT: &str = "^{}\\[~]|€\u{0c}";
    s.chars().all(|c| BASIC.contains(c) || EXT.contains(c))
}

/// Build the task from the command body. Task fields other than the ones
/// handled here (`smc`, `intvl`, `tmo`, `dr`, `sr_prd`, …) pass through.
pub fn build_task(body: &Value, tid: i64) -> Result<SmsTask, String> {
    let o = body.as_object().ok_or("body must be an object")?;
    let to = parse_numbers(o.get("to"))?;
    let text = match o.get("sms") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err("sms: must be a string".into()),
    };
    let mms = o.get("smstype").and_then(crate::devices::goip::lenient::int) == Some(1);
    if text.is_empty() && !mms {
        return Err("sms: empty text".into());
    }
    if text.chars().count() > MAX_TEXT {
        return Err(format!("sms: {} characters, at most {MAX_TEXT}", text.chars().count()));
    }
    if text.contains('\0') {
        return Err("sms: NUL characters are not allowed".into());
    }
    let mut rest: Map<String, Value> = o.clone();
    for k in ["device", "tid", "to", "sms", "from", "chs", "coding"] {
        rest.remove(k);
    }
    // Required by the type; set below.
    rest.insert("tid".into(), json!(0));
    rest.insert("to".into(), json!(""));
    rest.insert("sms".into(), json!(""));
    let mut task: SmsTask = serde_json::from_value(Value::Object(rest)).map_err(|e| format!("bad task field: {e}"))?;
    task.tid = tid;
    task.to = to.join(",");
    task.from = match o.get("from").and_then(crate::devices::goip::lenient::text).filter(|s| !s.is_empty()) {
        Some(f) => {
            PortSpec::parse(&f).map_err(|e| format!("from: {e}"))?;
            Some(f)
        }
        None => None,
    };
    task.coding = match o.get("coding") {
        None | Some(Value::Null) => (!is_gsm7(&text)).then_some(1),
        Some(v) => Some(crate::devices::goip::lenient::int(v).filter(|c| (0..=2).contains(c)).ok_or("coding must be 0, 1 or 2")?),
    };
    if task.coding == Some(2) && !is_gsm7(&text) {
        return Err("coding 2 (7-bit) cannot carry this text; use 1 (UCS2) or leave coding out".into());
    }
    // Non-ASCII text travels base64 (`chs`): the seed's documented
    // alternative, and immune to firmware that mangles multi-byte JSON.
    if text.is_ascii() {
        task.sms = text;
    } else {
        task.sms = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        task.chs = Some("base64".into());
    }
    task.sdr = task.sdr.or(Some(1));
    task.fdr = task.fdr.or(Some(1));
    task.validate()?;
    Ok(task)
}

/// The GoIP named in the body, or the first enabled one.
fn pick_device(ctx: &Ctx, body: &Value) -> Result<DeviceConfig, String> {
    let cfg = ctx.config();
    let mut goips = cfg.devices.iter().filter(|d| d.kind == DeviceKind::Goip && d.enabled);
    match body.get("device") {
        None | Some(Value::Null) => goips.next().cloned().ok_or_else(|| "sms: no goip device is configured".into()),
        Some(Value::String(n)) => goips.find(|d| &d.name == n).cloned().ok_or_else(|| format!("sms: no goip device named {n:?}")),
        Some(_) => Err("device: must be a string".into()),
    }
}

pub fn handle(ctx: &Ctx, cmd: &Command) -> Outcome {
    if !cmd.wire.method.is_empty() {
        return Outcome::err("sms: method must be \"\"");
    }
    let dev = match pick_device(ctx, &cmd.wire.body) {
        Ok(d) => d,
        Err(e) => return Outcome::err(e),
    };
    // A retry of the same id reuses the stored tid (and says it is a retry).
    let prior = ctx.journal.lock().ok().and_then(|j| j.get(&cmd.key).map(|e| e.data.clone())).unwrap_or(Value::Null);
    let retry = prior.get("tid").and_then(Value::as_i64);
    let tid = retry.unwrap_or_else(|| derive_tid(&cmd.key));
    let task = match build_task(&cmd.wire.body, tid) {
        Ok(t) => t,
        Err(e) => return Outcome::err(format!("sms: {e}")),
    };
    let mut client = match GoipClient::new(&dev) {
        Ok(c) => c,
        Err(e) => return Outcome::err(e),
    };
    if let Ok(mut j) = ctx.journal.lock() {
        if let Err(e) = j.set_data(&cmd.key, json!({"tid": tid, "device": dev.name})) {
            return Outcome::err(format!("sms: journal: {e}"));
        }
    }
    let shared: Option<std::sync::Arc<Shared>> = ctx.sms.shared();
    let mut req = SendSms::default();
    if let Some(s) = &shared {
        let numbers: Vec<String> = task.to.split(',').map(String::from).collect();
        if let Err(e) = s.ingest.remember_task(&dev.name, tid, &cmd.id_value(), &numbers) {
            return Outcome::err(format!("sms: cannot record the task: {e}"));
        }
        if let Some(url) = s.url_for(&dev.name) {
            req.sr_url = Some(url.clone());
            req.sms_url = Some(url);
        }
    }
    req.tasks.push(task);
    let statuses = match client.send_sms(&req) {
        Ok(s) => s,
        Err(e) => return Outcome::err(format!("sms: {e}")),
    };
    let Some(st) = statuses.iter().find(|s| s.tid == tid) else {
        return Outcome::failed("sms: the goip did not answer for the task", json!({"tid": tid, "device": dev.name}));
    };
    let result = json!({"tid": tid, "device": dev.name, "code": st.code, "reason": st.reason});
    if st.accepted() {
        Outcome::ok(result)
    } else if st.code == DUPLICATED_TID && retry.is_some() {
        // Our own task from the first try: accepted then.
        Outcome::ok(result).with("note", json!("task already taken on an earlier try"))
    } else {
        Outcome::failed(format!("sms: goip refused the task: {} {}", st.code, st.reason), result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tid_is_stable_positive_and_31_bits() {
        let a = derive_tid("n:201811260000000001");
        assert_eq!(a, derive_tid("n:201811260000000001"));
        assert_ne!(a, derive_tid("n:201811260000000002"));
        for k in ["n:1", "s:x", ""] {
            let t = derive_tid(k);
            assert!((1..=0x7fff_ffff).contains(&t));
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_numbers(Some(&json!("+86 138-0000, 10086,10086"))).unwrap(), vec!["+861380000", "10086"]);
        assert_eq!(parse_numbers(Some(&json!(["1", 2]))).unwrap(), vec!["1", "2"]);
        assert!(parse_numbers(Some(&json!("12a"))).is_err());
        assert!(parse_numbers(Some(&json!(" , "))).is_err());
        assert!(parse_numbers(Some(&json!("+"))).is_err());
        assert!(parse_numbers(None).is_err());
        let many: Vec<String> = (0..=MAX_RECIPIENTS).map(|i| i.to_string()).collect();
        assert!(parse_numbers(Some(&json!(many.join(",")))).is_err());
    }

    #[test]
    fn task_coding_and_ports() {
        let t = build_task(&json!({"to": "10086", "sms": "hello", "from": "1A", "dr": 1}), 7).unwrap();
        assert_eq!((t.tid, t.coding, t.chs.as_deref(), t.sms.as_str()), (7, None, None, "hello"));
        assert_eq!((t.sdr, t.fdr, t.dr), (Some(1), Some(1), Some(1)));
        let t = build_task(&json!({"to": "10086", "sms": "你好"}), 7).unwrap();
        assert_eq!((t.coding, t.chs.as_deref(), t.sms.as_str()), (Some(1), Some("base64"), "5L2g5aW9"));
        let long = "x".repeat(MAX_TEXT);
        assert_eq!(build_task(&json!({"to": "1", "sms": long}), 1).unwrap().coding, None);
        assert!(build_task(&json!({"to": "1", "sms": "x".repeat(MAX_TEXT + 1)}), 1).is_err());
        assert!(build_task(&json!({"to": "1", "sms": ""}), 1).is_err());
        assert!(build_task(&json!({"to": "1", "sms": "x", "from": "1Z9"}), 1).is_err());
        assert!(build_task(&json!({"to": "1", "sms": "x", "coding": 5}), 1).is_err());
        assert!(build_task(&json!({"to": "1", "sms": "é€", "coding": 2}), 1).is_ok(), "both are in the GSM alphabet");
        assert!(build_task(&json!({"to": "1", "sms": "你", "coding": 2}), 1).is_err());
        assert!(build_task(&json!({"to": "1", "sms": 5}), 1).is_err());
    }
}
