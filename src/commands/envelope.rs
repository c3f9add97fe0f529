//! The command and answer envelopes of PROTOCOL.md.

use serde_json::{json, Map, Value};

/// A parsed command. `id` is kept as the JSON value received so it is
/// echoed exactly (serde_json keeps 64-bit integers exact).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: Value,
    /// Journal key of the id: `n:<digits>` or `s:<text>`.
    pub key: String,
    pub from: String,
    pub command: String,
    pub method: String,
    /// The body (`d` or `body`), always an object.
    pub body: Value,
    pub publish_time: Option<u64>,
    pub expires: Option<u64>,
    pub detached: bool,
    /// Hash of what the command asks (command, method, body); a
    /// redelivery with another hash under the same id is a conflict.
    pub hash: String,
    /// The key id that signed it (docs/PROTOCOL.md, "Signed commands");
    /// None for an unsigned command (accepted only with no keys configured).
    pub signed_by: Option<String>,
}

/// A command that could not be parsed, with what is known of it so the
/// error answer can still carry the id.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub id: Value,
    pub from: String,
    pub command: String,
    pub method: String,
    pub msg: String,
}

/// Longest string id accepted (journal keys stay small).
const MAX_ID_LEN: usize = 128;

/// The journal key of an id (`n:<digits>` or `s:<text>`), if it is a valid one.
pub fn id_key(id: &Value) -> Option<String> {
    match id {
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(format!("n:{n}")),
        Value::String(s) if !s.is_empty() && s.len() <= MAX_ID_LEN => Some(format!("s:{s}")),
        _ => None,
    }
}

pub fn parse(payload: &[u8]) -> Result<Command, ParseError> {
    match serde_json::from_slice(payload) {
        Ok(v) => from_value(v),
        Err(e) => Err(ParseError { id: Value::Null, from: String::new(), command: String::new(), method: String::new(), msg: format!("malformed JSON: {e}") }),
    }
}

/// A command from its parsed JSON (a signed command's inner bytes are
/// parsed once, by the trust gate).
pub fn from_value(v: Value) -> Result<Command, ParseError> {
    let mut perr = ParseError { id: Value::Null, from: String::new(), command: String::new(), method: String::new(), msg: String::new() };
    let Value::Object(obj) = v else {
        perr.msg = "the command must be a JSON object".into();
        return Err(perr);
    };
    let text = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    perr.from = text("from");
    perr.command = text("command");
    perr.method = text("method");
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    let key = match (&id, id_key(&id)) {
        (_, Some(k)) => k,
        (Value::Null, None) => {
            perr.msg = "missing id".into();
            return Err(perr);
        }
        _ => {
            perr.id = id;
            perr.msg = format!("id must be an integer of up to 64 bits or a string of 1..{MAX_ID_LEN} characters");
            return Err(perr);
        }
    };
    perr.id = id.clone();
    if perr.command.is_empty() {
        perr.msg = "missing command".into();
        return Err(perr);
    }
    if !matches!(perr.method.as_str(), "" | "get" | "set") {
        perr.msg = format!("method must be \"\", \"get\" or \"set\", not {:?}", perr.method);
        return Err(perr);
    }
    let raw_body = obj.get("d").or_else(|| obj.get("body")).cloned().unwrap_or(Value::Null);
    let body = match raw_body {
        Value::Null => Value::Object(Map::new()),
        Value::Object(_) => raw_body,
        // The console's publish API sends the body as a JSON string.
        Value::String(s) if s.trim().is_empty() => Value::Object(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(o @ Value::Object(_)) => o,
            Ok(_) => {
                perr.msg = "body must be a JSON object (or a string holding one)".into();
                return Err(perr);
            }
            Err(e) => {
                perr.msg = format!("body is a string but not JSON: {e}");
                return Err(perr);
            }
        },
        _ => {
            perr.msg = "body must be a JSON object (or a string holding one)".into();
            return Err(perr);
        }
    };
    let num = |k: &str| -> Result<Option<u64>, String> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| format!("{k} must be a non-negative integer")),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| format!("{k} must be a non-negative integer")),
            Some(_) => Err(format!("{k} must be a non-negative integer")),
        }
    };
    let publish_time = num("publishTime").map_err(|m| ParseError { msg: m, ..perr.clone() })?;
    let expires = num("expires").map_err(|m| ParseError { msg: m, ..perr.clone() })?;
    let detached = matches!(obj.get("detached"), Some(Value::Bool(true)));
    let hash = crate::util::sha256_hex(format!("{}\n{}\n{}", perr.command, perr.method, body).as_bytes());
    Ok(Command { id, key, from: perr.from, command: perr.command, method: perr.method, body, publish_time, expires, detached, hash, signed_by: None })
}

/// What can be read of a command without building its body: for
/// answering one that will not be run (too large, busy) with its id.
pub fn parse_head(payload: &[u8]) -> ParseError {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        id: Value,
        #[serde(default)]
        from: Value,
        #[serde(default)]
        command: Value,
        #[serde(default)]
        method: Value,
    }
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    match serde_json::from_slice::<Head>(payload) {
        Ok(h) => {
            let id = match h.id {
                Value::Number(n) if n.is_u64() || n.is_i64() => Value::Number(n),
                Value::String(s) if !s.is_empty() && s.len() <= MAX_ID_LEN => Value::String(s),
                _ => Value::Null,
            };
            ParseError { id, from: text(&h.from), command: text(&h.command), method: text(&h.method), msg: String::new() }
        }
        Err(_) => ParseError { id: Value::Null, from: String::new(), command: String::new(), method: String::new(), msg: String::new() },
    }
}

/// The outcome of a handler, before it is wrapped in the answer envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The command was carried out (process ran, device reached).
    pub executed: bool,
    /// The command's outcome is success.
    pub ok: bool,
    pub msg: String,
    pub result: Value,
    /// More keys for `d` (e.g. `stderr`, `code` for `sh`).
    pub extra: Map<String, Value>,
    /// The answer comes later, from whoever took the command over (a
    /// broker trial, commands/broker_trial.rs): the engine neither
    /// journals nor publishes this outcome; the journal entry stays running.
    pub deferred: bool,
}

impl Outcome {
    pub fn ok(result: Value) -> Outcome {
        Outcome { executed: true, ok: true, msg: String::new(), result, extra: Map::new(), deferred: false }
    }
    /// Could not be carried out at all.
    pub fn err(msg: impl Into<String>) -> Outcome {
        Outcome { executed: false, ok: false, msg: msg.into(), result: Value::String(String::new()), extra: Map::new(), deferred: false }
    }
    /// Carried out, but the outcome is a failure.
    pub fn failed(msg: impl Into<String>, result: Value) -> Outcome {
        Outcome { executed: true, ok: false, msg: msg.into(), result, extra: Map::new(), deferred: false }
    }
    /// Answered later by someone else (see `deferred`).
    pub fn deferred() -> Outcome {
        Outcome { deferred: true, ..Outcome::ok(Value::Null) }
    }
    pub fn with(mut self, k: &str, v: Value) -> Outcome {
        self.extra.insert(k.to_string(), v);
        self
    }
}

fn status(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "err"
    }
}

/// Build the answer published on `{p}/resp/cmd`.
pub fn answer(sn: &str, id: &Value, from: &str, command: &str, method: &str, o: &Outcome) -> Value {
    let mut d = Map::new();
    d.insert("exestatus".into(), json!(status(o.executed)));
    d.insert("status".into(), json!(status(o.ok)));
    d.insert("msg".into(), json!(o.msg));
    d.insert("result".into(), o.result.clone());
    for (k, v) in &o.extra {
        d.insert(k.clone(), v.clone());
    }
    json!({
        "id": id, "sn": sn, "from": from, "command": command, "method": method,
        "status": status(o.ok), "time": crate::util::unix_now(), "d": Value::Object(d),
    })
}

pub fn answer_for(sn: &str, c: &Command, o: &Outcome) -> Value {
    answer(sn, &c.id, &c.from, &c.command, &c.method, o)
}

pub fn answer_for_parse_error(sn: &str, e: &ParseError) -> Value {
    answer(sn, &e.id, &e.from, &e.command, &e.method, &Outcome::err(e.msg.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_protocol_example_and_keeps_the_id_exact() {
        let p = br#"{"id": 201811260000000001, "from": "iot_web_console", "command": "sh", "method": "", "d": {"shcmd": "whoami"}, "publishTime": 1542604400, "expires": 38400, "maxRetries": 3, "tryTimes": 1, "detached": true}"#;
        let c = parse(p).unwrap();
        assert_eq!(c.key, "n:201811260000000001");
        assert_eq!(c.body["shcmd"], "whoami");
        assert!(c.detached);
        assert_eq!((c.publish_time, c.expires), (Some(1542604400), Some(38400)));
        let a = answer_for("SN1", &c, &Outcome::ok(json!("cm9vdA==")));
        assert!(a.to_string().contains("\"id\":201811260000000001"));
        assert_eq!(a["d"]["exestatus"], "ok");
    }

    #[test]
    fn body_as_string_and_synonym() {
        let c = parse(br#"{"id":"x1","command":"report","body":"{\"what\":\"sys\"}"}"#).unwrap();
        assert_eq!(c.body["what"], "sys");
        assert_eq!(c.key, "s:x1");
        let retry = parse(br#"{"id":"x1","command":"report","d":{"what":"sys"},"tryTimes":2}"#).unwrap();
        assert_eq!(c.hash, retry.hash, "retries with other envelope fields are the same command");
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        assert!(parse(b"{nope").unwrap_err().msg.starts_with("malformed JSON"));
        assert_eq!(parse(br#"{"command":"sh"}"#).unwrap_err().msg, "missing id");
        let e = parse(br#"{"id":5,"command":"sh","d":"[1]"}"#).unwrap_err();
        assert_eq!(e.id, json!(5));
        assert!(e.msg.contains("body must be"));
        assert!(parse(br#"{"id":1.5,"command":"sh"}"#).is_err());
        assert!(parse(br#"{"id":1,"command":"sh","method":"put"}"#).is_err());
    }

    #[test]
    fn head_reads_the_id_of_a_huge_command() {
        let big = format!(r#"{{"d": {{"shcmd": "{}", "id": 1}}, "id": 18446744073709551615, "command": "sh"}}"#, "x".repeat(400_000));
        let h = parse_head(big.as_bytes());
        assert_eq!(h.id.to_string(), "18446744073709551615");
        assert_eq!(h.command, "sh");
        assert_eq!(parse_head(b"{not json").id, Value::Null);
    }
}
