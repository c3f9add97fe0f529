//! The answer envelope of docs/PROTOCOL.md ("Commands"): what a device
//! publishes on its answer topic. Typed so the id is the command's own
//! JSON text ([`Id`]) and so an answer is known by its type, not by the
//! keys it happens to have.

use crate::id::Id;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `"ok"` or `"err"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Err,
}

impl Status {
    pub fn of(ok: bool) -> Status {
        if ok {
            Status::Ok
        } else {
            Status::Err
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Err => "err",
        }
    }
}

/// Keys of `d` every full answer has.
pub const EXESTATUS: &str = "exestatus";
pub const STATUS: &str = "status";
pub const MSG: &str = "msg";
pub const RESULT: &str = "result";

/// An answer. The header fields are optional only so that answers cut to
/// their smallest form (and those stored by earlier agents) read back as
/// they were written; [`Answer::new`] fills them all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    #[serde(default = "Id::null")]
    pub id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// `exestatus`, `status`, `msg`, `result`, and per command more keys
    /// (`stderr`, `code`, `truncated`, …).
    #[serde(default)]
    pub d: Map<String, Value>,
}

/// What an answer says, before the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'a> {
    /// The command was carried out (`d.exestatus`).
    pub executed: bool,
    /// Its outcome is success (`status`, `d.status`).
    pub ok: bool,
    pub msg: &'a str,
    pub result: &'a Value,
    /// More keys for `d`.
    pub extra: &'a Map<String, Value>,
}

/// Who is answered: the command's id and names, and the device answering.
#[derive(Debug, Clone, Copy)]
pub struct To<'a> {
    pub sn: &'a str,
    pub id: &'a Id,
    pub from: &'a str,
    pub command: &'a str,
    pub method: &'a str,
}

impl Answer {
    pub fn new(to: To, o: Outcome, time: u64) -> Answer {
        let mut d = Map::new();
        d.insert(EXESTATUS.into(), Value::from(Status::of(o.executed).as_str()));
        d.insert(STATUS.into(), Value::from(Status::of(o.ok).as_str()));
        d.insert(MSG.into(), Value::from(o.msg));
        d.insert(RESULT.into(), o.result.clone());
        for (k, v) in o.extra {
            d.insert(k.clone(), v.clone());
        }
        Answer {
            id: to.id.clone(),
            sn: Some(to.sn.to_string()),
            from: Some(to.from.to_string()),
            command: Some(to.command.to_string()),
            method: Some(to.method.to_string()),
            status: Some(Status::of(o.ok)),
            time: Some(time),
            d,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == Some(Status::Ok)
    }

    pub fn command(&self) -> &str {
        self.command.as_deref().unwrap_or("")
    }

    pub fn msg(&self) -> &str {
        self.d.get(MSG).and_then(Value::as_str).unwrap_or("")
    }

    /// The JSON bytes published (the id exactly as received).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings, maps and raw ids cannot fail;
        // were it to, an empty object is still an answer.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }

    pub fn to_text(&self) -> String {
        String::from_utf8(self.to_bytes()).unwrap_or_default()
    }

    /// Read an answer (its id kept exactly).
    pub fn parse(bytes: &[u8]) -> Result<Answer, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not an answer: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_protocol_example_with_every_id() {
        for t in ["201811260000000001", "18446744073709551616", "1000000000000000000000000000000", r#""a-1""#] {
            let id = Id::from_text(t).unwrap();
            let mut extra = Map::new();
            extra.insert("code".into(), json!(0));
            let a = Answer::new(
                To { sn: "8CFCA0107D1B", id: &id, from: "iot_web_console", command: "sh", method: "" },
                Outcome { executed: true, ok: true, msg: "", result: &json!("cm9vdA=="), extra: &extra },
                18423,
            );
            let s = a.to_text();
            assert!(s.starts_with(&format!(r#"{{"id":{t},"sn":"8CFCA0107D1B","#)), "{s}");
            assert!(s.contains(r#""d":{"code":0,"exestatus":"ok","msg":"","result":"cm9vdA==","status":"ok"}"#), "{s}");
            let back = Answer::parse(s.as_bytes()).unwrap();
            assert_eq!(back, a);
            assert_eq!(back.to_text(), s, "read back and written again: the same bytes");
        }
    }

    #[test]
    fn cut_and_old_answers_read_back_as_written() {
        let small = r#"{"id":7,"status":"err","d":{"journalCut":true}}"#;
        let a = Answer::parse(small.as_bytes()).unwrap();
        assert_eq!(a.to_text(), small);
        assert!(!a.is_ok());
        assert!(Answer::parse(br#"{"id":1,"status":"maybe"}"#).is_err());
    }
}
