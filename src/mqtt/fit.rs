//! Fit every outgoing message under the MQTT packet limit.
//!
//! rumqttc refuses to write a packet larger than the outgoing limit and
//! drops the connection; it then sends the same packet again after the
//! reconnect, forever. So nothing larger may ever reach it: each message
//! is cut to fit here, and the cut is flagged so the platform knows.
//!
//! Answers are a type of their own ([`Answer`], dma-wire) and are cut
//! once, where their bytes are made ([`answer_payload`], by
//! [`fit_answer_to`]); everything else is a JSON value cut by [`fit`].
//!
//! - `sh` answers: stdout (`d.result`) and stderr (`d.stderr`), base64, are
//!   shortened together on 4-character boundaries (so what is left decodes
//!   to a prefix of the output) and `d.stdoutTruncated` /
//!   `d.stderrTruncated` say which was cut.
//! - other answers: the largest parts of `d.result` are cut; `d.truncated`.
//! - events, `periph`, reports: the largest parts of the body are cut;
//!   top-level `"truncated": true`.

use dma_wire::Answer;
use serde_json::{Map, Value};

/// Largest packet the agent sends (fixed header, topic, packet id and payload).
pub const MAX_PACKET: usize = 256 * 1024;

/// Room a payload has on `topic` under `packet` bytes: fixed header (1 +
/// up to 4 length bytes), topic (2 + len), packet id (2).
pub fn budget(topic: &str, packet: usize) -> usize {
    packet.saturating_sub(1 + 4 + 2 + topic.len() + 2)
}

/// Does `payload` fit on `topic` under the agent's limit?
pub fn fits(topic: &str, payload_len: usize) -> bool {
    payload_len <= budget(topic, MAX_PACKET)
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// Fit `v` for `topic` under the agent's limit. Returns it unchanged when it fits.
pub fn fit(topic: &str, v: Value) -> Value {
    fit_to(v, budget(topic, MAX_PACKET))
}

/// Fit `v` into `limit` serialized bytes (see the module doc for how).
pub fn fit_to(mut v: Value, limit: usize) -> Value {
    if size(&v) <= limit {
        return v;
    }
    if let Some(o) = v.as_object_mut() {
        o.insert("truncated".into(), Value::Bool(true));
        let body = ["d", "msg"].into_iter().find(|k| o.contains_key(*k));
        if let Some(k) = body {
            shrink(&mut v, &[k], limit);
        }
    }
    shrink(&mut v, &[], limit);
    if size(&v) > limit {
        // Nothing sensible is left: say so in the smallest form.
        let mut o = serde_json::Map::new();
        for k in ["id", "sn", "from", "command", "method", "status", "time", "type", "eid", "gwId", "nId", "kind"] {
            if let Some(x) = v.get(k) {
                if size(x) < 256 {
                    o.insert(k.into(), x.clone());
                }
            }
        }
        o.insert("truncated".into(), Value::Bool(true));
        v = Value::Object(o);
    }
    v
}

/// Longest answer topic the payload budget of [`answer_payload`] allows
/// for (prefix and serial are bounded well below it by the configuration).
const MAX_ANSWER_TOPIC: usize = 512;

/// The bytes of an answer as published: typed all the way (the id goes
/// out as it came in), cut to fit when too large for any answer topic.
/// The one place an answer is cut for the broker: serialised once when it
/// fits (nearly always).
pub fn answer_payload(a: &Answer) -> Vec<u8> {
    let limit = MAX_PACKET.saturating_sub(1 + 4 + 2 + MAX_ANSWER_TOPIC + 2);
    let bytes = a.to_bytes();
    if bytes.len() <= limit {
        return bytes;
    }
    fit_answer_to(a.clone(), limit).to_bytes()
}

/// Fit an answer into `limit` serialized bytes: its `d` is cut (see the
/// module doc); the id and names stay as they are unless they alone are
/// too large (then the smallest form: the id, short names, the statuses).
pub fn fit_answer_to(mut a: Answer, limit: usize) -> Answer {
    let total = a.to_bytes().len();
    if total <= limit {
        return a;
    }
    let d_size = serde_json::to_vec(&a.d).map(|b| b.len()).unwrap_or(usize::MAX);
    let d_limit = limit.saturating_sub(total.saturating_sub(d_size));
    let mut d = Value::Object(std::mem::take(&mut a.d));
    if a.command() == "sh" {
        fit_sh(&mut d, d_limit);
    }
    if size(&d) > d_limit {
        if let Some(o) = d.as_object_mut() {
            o.insert("truncated".into(), Value::Bool(true));
        }
        shrink(&mut d, &["result"], d_limit);
        shrink(&mut d, &[], d_limit);
    }
    if let Value::Object(m) = d {
        a.d = m;
    }
    if a.to_bytes().len() > limit {
        // Nothing sensible is left: say so in the smallest form.
        let keep = |s: &mut Option<String>| {
            if s.as_ref().is_some_and(|t| t.len() >= 256) {
                *s = None;
            }
        };
        for s in [&mut a.sn, &mut a.from, &mut a.command, &mut a.method] {
            keep(s);
        }
        let mut small = Map::new();
        for k in [dma_wire::answer::EXESTATUS, dma_wire::answer::STATUS] {
            if let Some(x) = a.d.get(k).filter(|x| size(x) < 256) {
                small.insert(k.into(), x.clone());
            }
        }
        small.insert("truncated".into(), Value::Bool(true));
        a.d = small;
    }
    a
}

/// Shorten an `sh` answer's stdout and stderr (in its `d`) together.
fn fit_sh(d: &mut Value, limit: usize) {
    let total = size(d);
    let Some(d) = d.as_object_mut() else { return };
    let len = |k: &str| d.get(k).and_then(|x| x.as_str()).map(|s| s.len()).unwrap_or(0);
    let (out, err) = (len("result"), len("stderr"));
    // Base64 has no characters JSON escapes: bytes removed from the
    // strings are bytes removed from the message. 16 bytes cover the
    // flags turning from false to true.
    let excess = total.saturating_sub(limit) + 16;
    let room = (out + err).saturating_sub(excess);
    // Each gets half the room; what one does not need goes to the other.
    let half = room / 2;
    let (keep_out, keep_err) = if out <= half {
        (out, room - out)
    } else if err <= half {
        (room - err, err)
    } else {
        (half, room - half)
    };
    for (k, keep, flag) in [("result", keep_out, "stdoutTruncated"), ("stderr", keep_err, "stderrTruncated")] {
        if let Some(Value::String(s)) = d.get_mut(k) {
            if keep < s.len() {
                s.truncate(keep - keep % 4);
                d.insert(flag.into(), Value::Bool(true));
            }
        }
    }
}

/// Cut the value at `path` (within `root`) until `root` fits `limit`,
/// a few rounds at most.
fn shrink(root: &mut Value, path: &[&str], limit: usize) {
    for _ in 0..12 {
        let n = size(root);
        if n <= limit {
            return;
        }
        let mut target = &mut *root;
        for k in path {
            match target.get_mut(*k) {
                Some(t) => target = t,
                None => return,
            }
        }
        if !cut(target, n - limit) {
            return;
        }
    }
}

/// Remove at least `excess` serialized bytes from `v`, biggest part first.
/// Returns false when nothing could be removed.
fn cut(v: &mut Value, excess: usize) -> bool {
    match v {
        Value::String(s) => {
            if s.is_empty() {
                return false;
            }
            // Escaped characters take more room serialized than in memory:
            // cut by the serialized size and round down to a char boundary.
            let ser = size(&Value::String(s.clone()));
            let ratio = ser.max(1) as f64 / s.len().max(1) as f64;
            let drop = ((excess + 8) as f64 / ratio).ceil() as usize;
            let mut keep = s.len().saturating_sub(drop);
            while keep > 0 && !s.is_char_boundary(keep) {
                keep -= 1;
            }
            s.truncate(keep);
            true
        }
        Value::Array(a) => {
            let Some((i, biggest)) = a.iter().enumerate().map(|(i, x)| (i, size(x))).max_by_key(|p| p.1) else { return false };
            if biggest > excess + 64 {
                return a.get_mut(i).map(|x| cut(x, excess)).unwrap_or(false);
            }
            // Many small items: drop from the end.
            let mut removed = 0;
            while removed < excess + 8 {
                match a.pop() {
                    Some(x) => removed += size(&x) + 1,
                    None => break,
                }
            }
            removed > 0
        }
        Value::Object(o) => {
            let Some((k, biggest)) = o.iter().map(|(k, x)| (k.clone(), size(x) + k.len())).max_by_key(|p| p.1) else { return false };
            if biggest > excess + 64 {
                if let Some(x) = o.get_mut(&k) {
                    if cut(x, excess) {
                        return true;
                    }
                }
            }
            // Drop the biggest members until enough is gone.
            let mut members: Vec<(String, usize)> = o.iter().map(|(k, x)| (k.clone(), size(x) + k.len() + 4)).collect();
            members.sort_by_key(|m| std::cmp::Reverse(m.1));
            let mut removed = 0;
            for (k, n) in members {
                if removed >= excess + 8 {
                    break;
                }
                o.remove(&k);
                removed += n;
            }
            removed > 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    fn ans(v: Value) -> Answer {
        Answer::parse(v.to_string().as_bytes()).unwrap()
    }

    pub(super) fn fit_answer(topic: &str, a: Answer) -> Answer {
        fit_answer_to(a, budget(topic, MAX_PACKET))
    }

    #[test]
    fn the_payload_is_the_answer_itself_or_cut_once_to_fit_any_answer_topic() {
        let small = ans(json!({"id": 1, "d": {"exestatus": "ok", "result": "abc"}}));
        assert_eq!(answer_payload(&small), small.to_bytes());
        let big = ans(json!({"id": 9, "command": "sh", "d": {"exestatus": "ok", "result": b64(400_000, b'x'), "stderr": ""}}));
        let p = answer_payload(&big);
        assert!(fits(&"t".repeat(MAX_ANSWER_TOPIC), p.len()), "{}", p.len());
        let back = Answer::parse(&p).unwrap();
        assert_eq!((back.id.text(), back.d["stdoutTruncated"].as_bool()), ("9", Some(true)));
    }

    fn len(a: &Answer) -> usize {
        a.to_bytes().len()
    }

    fn b64(n: usize, c: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode(vec![c; n])
    }

    #[test]
    fn small_messages_are_untouched() {
        let v = ans(json!({"id": 1, "d": {"exestatus": "ok", "result": "abc"}}));
        assert_eq!(fit_answer("dma/resp/cmd", v.clone()), v);
    }

    #[test]
    fn sh_answer_is_cut_in_stdout_and_stderr_together() {
        let v = ans(json!({"id": 7, "command": "sh", "status": "ok",
                       "d": {"exestatus": "ok", "result": b64(300_000, b'x'), "stderr": b64(60_000, b'e'),
                             "stdoutTruncated": false, "stderrTruncated": false, "code": 0}}));
        let f = fit_answer("dma/resp/cmd", v);
        let n = len(&f);
        assert!(fits("dma/resp/cmd", n), "{n}");
        assert!(n > MAX_PACKET - 1024, "uses the room it has: {n}");
        assert_eq!(f.id.text(), "7");
        assert_eq!(f.d["stdoutTruncated"], true);
        assert_eq!(f.d["stderrTruncated"], false, "stderr is small enough to keep whole");
        let e = base64::engine::general_purpose::STANDARD;
        let out = e.decode(f.d["result"].as_str().unwrap()).expect("still base64");
        assert!(out.iter().all(|&b| b == b'x') && out.len() > 100_000);
        assert_eq!(e.decode(f.d["stderr"].as_str().unwrap()).unwrap().len(), 60_000);
        // Both large: both cut.
        let v = ans(json!({"id": 8, "command": "sh", "d": {"exestatus": "ok", "result": b64(300_000, b'x'), "stderr": b64(300_000, b'y')}}));
        let f = fit_answer("dma/resp/cmd", v);
        assert!(fits("dma/resp/cmd", len(&f)));
        assert_eq!((f.d["stdoutTruncated"].as_bool(), f.d["stderrTruncated"].as_bool()), (Some(true), Some(true)));
    }

    #[test]
    fn other_messages_are_cut_and_flagged() {
        let rows: Vec<Value> = (0..20_000).map(|i| json!({"n": i, "text": "some sms text"})).collect();
        let a = ans(json!({"id": "x", "command": "goip", "d": {"exestatus": "ok", "status": "ok", "result": rows}}));
        let f = fit_answer("dma/resp/cmd", a);
        assert!(fits("dma/resp/cmd", len(&f)));
        assert_eq!(f.d["truncated"], true);
        assert_eq!(f.id.text(), r#""x""#);
        assert!(f.d["result"].as_array().unwrap().len() > 1000, "keeps what fits");
        let ev = json!({"sn": "S", "eid": 4, "type": "sms-received", "text": "é\"".repeat(200_000)});
        let f = fit_to(ev, 10_000);
        assert!(serde_json::to_vec(&f).unwrap().len() <= 10_000);
        assert_eq!((f["truncated"].as_bool(), f["eid"].as_u64()), (Some(true), Some(4)));
        let p = json!({"sn": "S", "kind": "goip", "msg": {"a": "x".repeat(400_000), "b": [1, 2, 3]}});
        let f = fit("dma/periph", p);
        assert!(fits("dma/periph", serde_json::to_vec(&f).unwrap().len()));
        assert_eq!(f["msg"]["b"], json!([1, 2, 3]));
    }
}

#[cfg(test)]
mod answer_tests {
    use super::tests::fit_answer;
    use super::*;

    /// An id beyond 64 bits survives the cut, and names too large for any
    /// packet give way to the smallest form.
    #[test]
    fn the_id_survives_every_cut() {
        let id = dma_wire::Id::from_text("1000000000000000000000000000000").unwrap();
        let o = Map::new();
        let huge = "x".repeat(400_000);
        let a = Answer::new(
            dma_wire::answer::To { sn: "S", id: &id, from: &huge, command: "goip", method: "get" },
            dma_wire::answer::Outcome { executed: true, ok: true, msg: "", result: &Value::String(huge.clone()), extra: &o },
            1,
        );
        let f = fit_answer("dma/resp/cmd", a);
        let text = f.to_text();
        assert!(fits("dma/resp/cmd", text.len()));
        assert!(text.starts_with(r#"{"id":1000000000000000000000000000000,"sn":"S","command":"goip""#), "{}", &text[..200.min(text.len())]);
        assert_eq!(f.d.get("truncated"), Some(&Value::Bool(true)));
    }
}
