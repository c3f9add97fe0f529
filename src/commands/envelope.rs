//! The command and answer envelopes of PROTOCOL.md.

use dma_wire::answer::{self as wa, Answer, To};
use dma_wire::Id;
use serde_json::{Map, Value};

/// A parsed command: the wire's command (`dma_wire::command::Command`, one
/// definition for agent, ctl and platform; its `id` is the JSON text
/// received, echoed exactly) and what the agent derives from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub wire: dma_wire::command::Command,
    /// Journal key of the id: `n:<digits>` or `s:<text>` ([`Id::key`]).
    pub key: String,
    /// Hash of what the command asks (command, method, body); a
    /// redelivery with another hash under the same id is a conflict.
    pub hash: String,
    /// The key id that signed it (docs/PROTOCOL.md, "Signed commands");
    /// None for an unsigned command (accepted only with no keys configured).
    pub signed_by: Option<String>,
}

impl Command {
    /// The id as a JSON value for records that hold one (SMS task ids):
    /// exact for strings and 64-bit integers; a longer integer becomes the
    /// string of its digits there.
    pub fn id_value(&self) -> Value {
        let id = &self.wire.id;
        id.to_value().unwrap_or_else(|| Value::String(id.text().to_string()))
    }
}

/// A command that could not be parsed, with what is known of it so the
/// error answer can still carry the id (as received).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub id: Id,
    pub from: String,
    pub command: String,
    pub method: String,
    pub msg: String,
}

impl ParseError {
    fn of(r: dma_wire::Refused) -> ParseError {
        let h = r.head;
        ParseError { id: h.id, from: h.from, command: h.command, method: h.method, msg: r.msg }
    }
}

/// Parse and check a command (dma-wire's envelope rules) and derive its
/// journal key and hash.
pub fn parse(payload: &[u8]) -> Result<Command, ParseError> {
    let c = dma_wire::command::parse(payload).map_err(ParseError::of)?;
    let Some(key) = c.id.key() else {
        // Id::check accepted it, so it has a key; kept as an error value all the same.
        return Err(ParseError { id: c.id, from: c.from, command: c.command, method: c.method, msg: "invalid id".into() });
    };
    // The same text as before dma-wire: journals keep matching redeliveries.
    let hash = crate::util::sha256_hex(format!("{}\n{}\n{}", c.command, c.method, c.body).as_bytes());
    Ok(Command { wire: c, key, hash, signed_by: None })
}

/// What can be read of a command without building its body: for
/// answering one that will not be run (too large, busy) with its id.
pub fn parse_head(payload: &[u8]) -> ParseError {
    let h = dma_wire::command::head(payload);
    ParseError { id: h.id, from: h.from, command: h.command, method: h.method, msg: String::new() }
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

/// Build the answer published on `{p}/resp/cmd`.
pub fn answer(sn: &str, id: &Id, from: &str, command: &str, method: &str, o: &Outcome) -> Answer {
    Answer::new(
        To { sn, id, from, command, method },
        wa::Outcome { executed: o.executed, ok: o.ok, msg: &o.msg, result: &o.result, extra: &o.extra },
        crate::util::unix_now(),
    )
}

pub fn answer_for(sn: &str, c: &Command, o: &Outcome) -> Answer {
    answer(sn, &c.wire.id, &c.wire.from, &c.wire.command, &c.wire.method, o)
}

pub fn answer_for_parse_error(sn: &str, e: &ParseError) -> Answer {
    answer(sn, &e.id, &e.from, &e.command, &e.method, &Outcome::err(e.msg.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_beyond_64_bits_are_echoed_exactly() {
        for t in ["18446744073709551616", "1000000000000000000000000000000", "9223372036854775807", r#""s-1\u00e9""#] {
            let c = parse(format!(r#"{{"id":{t},"command":"report"}}"#).as_bytes()).unwrap();
            let a = answer_for("SN", &c, &Outcome::ok(json!(1)));
            assert!(a.to_text().starts_with(&format!(r#"{{"id":{t},"#)), "{}", a.to_text());
        }
        let e = parse(br#"{"id":1.8446744073709552e+19,"command":"report"}"#).unwrap_err();
        assert!(e.msg.starts_with("id must be an integer"), "{}", e.msg);
        assert!(answer_for_parse_error("SN", &e).to_text().starts_with(r#"{"id":1.8446744073709552e+19,"#));
    }

    #[test]
    fn parses_the_protocol_example_and_keeps_the_id_exact() {
        let p = br#"{"id": 201811260000000001, "from": "iot_web_console", "command": "sh", "method": "", "d": {"shcmd": "whoami"}, "publishTime": 1542604400, "expires": 38400, "maxRetries": 3, "tryTimes": 1, "detached": true}"#;
        let c = parse(p).unwrap();
        assert_eq!(c.key, "n:201811260000000001");
        assert_eq!(c.hash, crate::util::sha256_hex(b"sh\n\n{\"shcmd\":\"whoami\"}"), "the hash of earlier agents");
        assert_eq!(c.wire.body["shcmd"], "whoami");
        assert!(c.wire.detached);
        assert_eq!((c.wire.publish_time, c.wire.expires), (Some(1542604400), Some(38400)));
        let a = answer_for("SN1", &c, &Outcome::ok(json!("cm9vdA==")));
        assert!(a.to_text().contains("\"id\":201811260000000001"));
        assert_eq!(a.d["exestatus"], "ok");
    }

    #[test]
    fn body_as_string_and_synonym() {
        let c = parse(br#"{"id":"x1","command":"report","body":"{\"what\":\"sys\"}"}"#).unwrap();
        assert_eq!(c.wire.body["what"], "sys");
        assert_eq!(c.key, "s:x1");
        let retry = parse(br#"{"id":"x1","command":"report","d":{"what":"sys"},"tryTimes":2}"#).unwrap();
        assert_eq!(c.hash, retry.hash, "retries with other envelope fields are the same command");
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        assert!(parse(b"{nope").unwrap_err().msg.starts_with("malformed JSON"));
        assert_eq!(parse(br#"{"command":"sh"}"#).unwrap_err().msg, "missing id");
        let e = parse(br#"{"id":5,"command":"sh","d":"[1]"}"#).unwrap_err();
        assert_eq!(e.id.text(), "5");
        assert!(e.msg.contains("body must be"));
        assert!(parse(br#"{"id":1.5,"command":"sh"}"#).is_err());
        assert!(parse(br#"{"id":1,"command":"sh","method":"put"}"#).is_err());
    }

    #[test]
    fn head_reads_the_id_of_a_huge_command() {
        let big = format!(r#"{{"d": {{"shcmd": "{}", "id": 1}}, "id": 18446744073709551615, "command": "sh"}}"#, "x".repeat(400_000));
        let h = parse_head(big.as_bytes());
        assert_eq!(h.id.text(), "18446744073709551615");
        assert_eq!(h.command, "sh");
        assert!(parse_head(b"{not json").id.is_null());
    }
}
