//! The command envelope of docs/PROTOCOL.md ("Commands", "The signed
//! envelope"): what the platform and `ctl` publish on `{p}/cmd/{sn}`, and
//! how the agent reads it — every field checked, every refusal with a
//! reason and with what could be read of the command (its id above all),
//! so the refusal can still be answered.

use crate::id::{Id, MAX_ECHO};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A command as the agent runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Checked by [`Id::check`]; echoed as received.
    pub id: Id,
    pub from: String,
    pub command: String,
    /// `""`, `"get"` or `"set"`.
    pub method: String,
    /// The body (`d` or its synonym `body`), always an object.
    pub body: Value,
    pub publish_time: Option<u64>,
    pub expires: Option<u64>,
    pub detached: bool,
    /// The serial a signed command is addressed to.
    pub sn: Option<String>,
}

/// What can be read of a command that is refused, for its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The id as received (`null` when there is none or it is too long to echo).
    pub id: Id,
    pub from: String,
    pub command: String,
    pub method: String,
}

impl Head {
    pub fn empty() -> Head {
        Head { id: Id::null(), from: String::new(), command: String::new(), method: String::new() }
    }
}

/// A refused command: what is known of it, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub head: Head,
    pub msg: String,
}

/// The fields of the envelope as they arrive; nothing is assumed of their
/// types (they are checked in [`parse`]). Other keys (`maxRetries`,
/// `tryTimes`, …) are ignored.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    from: Value,
    #[serde(default)]
    command: Value,
    #[serde(default)]
    method: Value,
    #[serde(default)]
    d: Option<Value>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default, rename = "publishTime")]
    publish_time: Value,
    #[serde(default)]
    expires: Value,
    #[serde(default)]
    detached: Value,
    #[serde(default)]
    sn: Value,
}

/// The head only (names and id): read from a command too large to build,
/// or one refused before it is built (a signed command's inner bytes).
/// A second type on purpose, not a part of [`Wire`]: reading `Wire` builds
/// `d`/`body` as `Value`s (the whole payload again in memory), which is
/// what a too-large command must not cost; this one skips them without
/// building them. And `Wire` cannot hold it by `#[serde(flatten)]`:
/// flatten buffers the fields first, which a borrowed `RawValue` id does
/// not survive (docs/ARCHITECTURE.md, "Ids, exactly").
#[derive(Deserialize)]
struct WireHead<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    from: Value,
    #[serde(default)]
    command: Value,
    #[serde(default)]
    method: Value,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// The id of a refused command, echoed when it is short enough.
fn echo(raw: Option<&RawValue>) -> Id {
    raw.filter(|r| r.get().len() <= MAX_ECHO).and_then(|r| Id::from_text(r.get()).ok()).unwrap_or_else(Id::null)
}

/// Does the JSON text start as an object? (A derived struct would also
/// read a JSON array, by position: callers check this first.)
pub fn is_object(payload: &[u8]) -> bool {
    payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// What can be read of a command without building its body (a command too
/// large to run, a refused signed command): its id and names.
pub fn head(payload: &[u8]) -> Head {
    match serde_json::from_slice::<WireHead>(payload) {
        Ok(h) if is_object(payload) => Head { id: echo(h.id), from: text(&h.from), command: text(&h.command), method: text(&h.method) },
        _ => Head::empty(),
    }
}

/// Read and check a command (the bytes of a plain command, or the inner
/// bytes of a signed one).
pub fn parse(payload: &[u8]) -> Result<Command, Refused> {
    // A derived struct would also read a JSON array (by position).
    if !is_object(payload) {
        let msg = match serde_json::from_slice::<serde::de::IgnoredAny>(payload) {
            Ok(_) => "the command must be a JSON object".to_string(),
            Err(e) => format!("malformed JSON: {e}"),
        };
        return Err(Refused { head: Head::empty(), msg });
    }
    let w: Wire = match serde_json::from_slice(payload) {
        Ok(w) => w,
        Err(e) if e.is_data() => {
            return Err(Refused { head: head(payload), msg: format!("malformed command: {e}") });
        }
        Err(e) => return Err(Refused { head: Head::empty(), msg: format!("malformed JSON: {e}") }),
    };
    let mut head = Head { id: echo(w.id), from: text(&w.from), command: text(&w.command), method: text(&w.method) };
    let refuse = |head: &Head, msg: String| Err(Refused { head: head.clone(), msg });
    let id = match w.id {
        None => return refuse(&head, "missing id".into()),
        Some(r) if r.get() == "null" => return refuse(&head, "missing id".into()),
        Some(r) => match Id::check(r) {
            Ok(id) => id,
            Err(m) => return refuse(&head, m),
        },
    };
    head.id = id.clone();
    if head.command.is_empty() {
        return refuse(&head, "missing command".into());
    }
    if !matches!(head.method.as_str(), "" | "get" | "set") {
        return refuse(&head, format!("method must be \"\", \"get\" or \"set\", not {:?}", head.method));
    }
    let raw_body = w.d.or(w.body).unwrap_or(Value::Null);
    let body = match body(raw_body) {
        Ok(b) => b,
        Err(m) => return refuse(&head, m),
    };
    let publish_time = match number(&w.publish_time, "publishTime") {
        Ok(n) => n,
        Err(m) => return refuse(&head, m),
    };
    let expires = match number(&w.expires, "expires") {
        Ok(n) => n,
        Err(m) => return refuse(&head, m),
    };
    let detached = matches!(w.detached, Value::Bool(true));
    let sn = w.sn.as_str().map(str::to_string);
    Ok(Command { id, from: head.from, command: head.command, method: head.method, body, publish_time, expires, detached, sn })
}

/// The body: an object, or (the console's publish API) a string holding one.
fn body(raw: Value) -> Result<Value, String> {
    match raw {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(_) => Ok(raw),
        Value::String(s) if s.trim().is_empty() => Ok(Value::Object(Map::new())),
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(o @ Value::Object(_)) => Ok(o),
            Ok(_) => Err("body must be a JSON object (or a string holding one)".into()),
            Err(e) => Err(format!("body is a string but not JSON: {e}")),
        },
        _ => Err("body must be a JSON object (or a string holding one)".into()),
    }
}

/// `publishTime`, `expires`: a non-negative integer, or a string of one.
fn number(v: &Value, k: &str) -> Result<Option<u64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| format!("{k} must be a non-negative integer")),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => s.parse().map(Some).map_err(|_| format!("{k} must be a non-negative integer")),
        _ => Err(format!("{k} must be a non-negative integer")),
    }
}

/// A command as the platform or `ctl` publishes it (the inner command of a
/// signed one: with `sn` and `publishTime`).
#[derive(Debug, Clone, Serialize)]
pub struct Outgoing {
    pub id: Id,
    pub from: String,
    pub command: String,
    pub method: String,
    pub d: Value,
    #[serde(rename = "publishTime", skip_serializing_if = "Option::is_none")]
    pub publish_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    #[serde(rename = "maxRetries", skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u64>,
    #[serde(rename = "tryTimes", skip_serializing_if = "Option::is_none")]
    pub try_times: Option<u64>,
    pub detached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sn: Option<String>,
}

/// The signed wrapper: `{"signed": {...}, "tryTimes": n}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedEnvelope {
    pub signed: Signed,
    #[serde(rename = "tryTimes", default, skip_serializing_if = "Option::is_none")]
    pub try_times: Option<u64>,
}

/// What `signed` holds. The signature is over [`SIGNED_CONTEXT`] followed by
/// the bytes `cmd` decodes to, exactly as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signed {
    pub v: u64,
    pub alg: String,
    pub kid: String,
    /// Base64 of the inner command's exact JSON bytes.
    pub cmd: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// The signature's domain separation prefix.
pub const SIGNED_CONTEXT: &[u8] = b"dma-cmd-v1\n";
/// The only signed-envelope version and algorithm.
pub const SIGNED_VERSION: u64 = 1;
pub const SIGNED_ALG: &str = "ed25519";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_protocol_example_and_keeps_the_id_exact() {
        let p = br#"{"id": 201811260000000001, "from": "iot_web_console", "command": "sh", "method": "", "d": {"shcmd": "whoami"}, "publishTime": 1542604400, "expires": 38400, "maxRetries": 3, "tryTimes": 1, "detached": true}"#;
        let c = parse(p).unwrap();
        assert_eq!(c.id.text(), "201811260000000001");
        assert_eq!(c.body["shcmd"], "whoami");
        assert!(c.detached);
        assert_eq!((c.publish_time, c.expires), (Some(1542604400), Some(38400)));
    }

    #[test]
    fn ids_beyond_64_bits_are_kept_as_text() {
        for t in ["18446744073709551616", "1000000000000000000000000000000", r#""abc""#, "-9223372036854775809"] {
            let c = parse(format!(r#"{{"id": {t}, "command": "report"}}"#).as_bytes()).unwrap();
            assert_eq!(c.id.text(), t);
        }
    }

    #[test]
    fn body_as_string_and_synonym() {
        let c = parse(br#"{"id":"x1","command":"report","body":"{\"what\":\"sys\"}"}"#).unwrap();
        assert_eq!(c.body["what"], "sys");
        assert_eq!(c.id.key().unwrap(), "s:x1");
    }

    #[test]
    fn rejects_bad_input_with_reasons_and_the_id() {
        assert!(parse(b"{nope").unwrap_err().msg.starts_with("malformed JSON"));
        assert_eq!(parse(b"[1]").unwrap_err().msg, "the command must be a JSON object");
        assert_eq!(parse(br#"{"command":"sh"}"#).unwrap_err().msg, "missing id");
        let e = parse(br#"{"id":5,"command":"sh","d":"[1]"}"#).unwrap_err();
        assert_eq!(e.head.id.text(), "5");
        assert!(e.msg.contains("body must be"));
        let e = parse(br#"{"id":1.5,"command":"sh"}"#).unwrap_err();
        assert_eq!((e.head.id.text(), e.head.command.as_str()), ("1.5", "sh"), "a refused id is echoed as sent");
        assert!(e.msg.starts_with("id must be"), "{}", e.msg);
        assert!(parse(br#"{"id":1,"command":"sh","method":"put"}"#).is_err());
        assert!(parse(br#"{"id":1,"command":"sh","expires":-1}"#).unwrap_err().msg.contains("expires"));
        let e = parse(br#"{"id":7,"command":"sh","from":{"a":1}}"#).unwrap();
        assert_eq!(e.from, "", "a name of another type reads as empty, as before");
    }

    #[test]
    fn head_reads_the_id_of_a_huge_command() {
        let big = format!(r#"{{"d": {{"shcmd": "{}", "id": 1}}, "id": 18446744073709551616, "command": "sh"}}"#, "x".repeat(400_000));
        let h = head(big.as_bytes());
        assert_eq!(h.id.text(), "18446744073709551616");
        assert_eq!(h.command, "sh");
        assert!(head(b"{not json").id.is_null());
        let h = head(br#"{"id": "a\"b", "command": "s\u0068"}"#);
        assert_eq!((h.id.text(), h.command.as_str()), (r#""a\"b""#, "sh"));
    }

    #[test]
    fn outgoing_serialises_the_id_exactly() {
        let o = Outgoing {
            id: Id::from_text("1000000000000000000000000000000").unwrap(),
            from: "ctl".into(),
            command: "sh".into(),
            method: String::new(),
            d: serde_json::json!({"shcmd": "id"}),
            publish_time: Some(5),
            expires: None,
            max_retries: None,
            try_times: None,
            detached: false,
            sn: Some("AB".into()),
        };
        let s = serde_json::to_string(&o).unwrap();
        assert!(s.starts_with(r#"{"id":1000000000000000000000000000000,"#), "{s}");
        assert_eq!(parse(s.as_bytes()).unwrap().sn.as_deref(), Some("AB"));
    }
}
