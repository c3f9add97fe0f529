//! Command ids, kept as the exact JSON text received.
//!
//! docs/PROTOCOL.md: the id is echoed exactly as received. serde_json
//! without `arbitrary_precision` reads an integer beyond 64 bits as an
//! `f64` (2^64 came back as `1.8446744073709552e+19`), so an [`Id`] never
//! goes through a `Value`: it holds the id's JSON text ([`RawValue`]) and
//! serialises back to those very bytes.
//!
//! The rule for a command's id ([`Id::check`]):
//! - a JSON integer of at most [`MAX_DIGITS`] digits (a sign allowed), or
//! - a JSON string of 1..=[`MAX_STR`] bytes (decoded);
//! - anything else (a float such as `1.5` or `1e3`, `-0`, `true`, an
//!   object, more digits) is refused with a reason, and the refusal still
//!   echoes the text when it is short ([`MAX_ECHO`]).
//!
//! The journal key ([`Id::key`]) is the one earlier agents wrote, so their
//! journals stay valid: `n:<digits>` for an integer (its decimal form,
//! which for a JSON integer is its text), `s:<text>` for a string (the
//! decoded text).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Most digits of an integer id (2^128 has 39).
pub const MAX_DIGITS: usize = 40;
/// Longest string id, in bytes (journal keys stay small).
pub const MAX_STR: usize = 128;
/// Longest refused id still echoed in the refusal (else `null`).
pub const MAX_ECHO: usize = 256;

/// A command id: the JSON text received, echoed as is.
#[derive(Clone, Debug)]
pub struct Id(Box<RawValue>);

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        self.0.get() == other.0.get()
    }
}
impl Eq for Id {}

/// What kind of id a JSON text is.
enum Kind<'a> {
    Integer(&'a str),
    Str(String),
}

fn kind(text: &str) -> Result<Kind<'_>, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let is_int = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if is_int {
        if text == "-0" {
            return Err("id -0 is not an integer (JSON reads it as a float)".into());
        }
        if digits.len() > MAX_DIGITS {
            return Err(format!("id has {} digits; at most {MAX_DIGITS} are accepted", digits.len()));
        }
        return Ok(Kind::Integer(text));
    }
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).map_err(|e| format!("id is not a valid JSON string: {e}"))?;
        if s.is_empty() || s.len() > MAX_STR {
            return Err(format!("a string id must have 1..{MAX_STR} bytes, not {}", s.len()));
        }
        return Ok(Kind::Str(s));
    }
    Err(format!("id must be an integer of up to {MAX_DIGITS} digits or a string of 1..{MAX_STR} bytes"))
}

impl Id {
    /// The id of a command: checked by the rule above.
    pub fn check(raw: &RawValue) -> Result<Id, String> {
        let text = raw.get().trim();
        kind(text)?;
        Id::from_text(text)
    }

    /// Any JSON value as an id, unchecked (a stored answer's id, a refused
    /// id being echoed).
    pub fn from_text(text: &str) -> Result<Id, String> {
        RawValue::from_string(text.trim().to_string()).map(Id).map_err(|e| format!("id is not JSON: {e}"))
    }

    /// `null`: the id of a command whose id could not be read.
    pub fn null() -> Id {
        Id(RawValue::NULL.to_owned())
    }

    /// An integer id.
    pub fn from_u64(n: u64) -> Id {
        Id::from_text(&n.to_string()).unwrap_or_else(|_| Id::null())
    }

    /// A string id (any text; JSON-escaped here).
    pub fn from_string(s: &str) -> Id {
        serde_json::to_string(s).ok().and_then(|t| Id::from_text(&t).ok()).unwrap_or_else(Id::null)
    }

    /// The id's JSON text, exactly as received.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    pub fn is_null(&self) -> bool {
        self.text() == "null"
    }

    /// The journal key (`n:<digits>` or `s:<text>`), None for an id that
    /// [`Id::check`] refuses.
    pub fn key(&self) -> Option<String> {
        match kind(self.text()).ok()? {
            Kind::Integer(t) => Some(format!("n:{t}")),
            Kind::Str(s) => Some(format!("s:{s}")),
        }
    }

    /// For text meant for people (`id 42`, `id "a"`): the JSON text.
    pub fn display(&self) -> &str {
        self.text()
    }

    /// The id as a `serde_json::Value`, when that is exact (a string, or
    /// an integer of 64 bits): for code that still holds ids in a Value.
    pub fn to_value(&self) -> Option<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(self.text()).ok()?;
        match &v {
            serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => Some(v),
            serde_json::Value::String(_) | serde_json::Value::Null => Some(v),
            _ => None,
        }
    }

    /// An id from a `Value` (exact for what a Value can hold exactly).
    pub fn from_value(v: &serde_json::Value) -> Id {
        serde_json::to_string(v).ok().and_then(|t| Id::from_text(&t).ok()).unwrap_or_else(Id::null)
    }

    /// Does `v` (an id as some other code holds it: a number, a string of
    /// digits, a string) name this id? For matching answers to commands.
    pub fn matches_text(&self, other: &str) -> bool {
        let t = self.text();
        if t == other {
            return true;
        }
        // `"42"` and `42` name the same id for people typing it.
        let unq = |s: &str| -> Option<String> { serde_json::from_str::<String>(s).ok() };
        match (unq(t), unq(other)) {
            (Some(a), None) => a == other,
            (None, Some(b)) => b == t,
            _ => false,
        }
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        Box::<RawValue>::deserialize(d).map(Id)
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(t: &str) -> Box<RawValue> {
        RawValue::from_string(t.to_string()).unwrap()
    }

    #[test]
    fn integers_of_any_size_up_to_the_limit_are_kept_exactly() {
        for t in ["0", "42", "-7", "201811260000000001", "18446744073709551615", "18446744073709551616", "1000000000000000000000000000000"] {
            let id = Id::check(&raw(t)).unwrap();
            assert_eq!(id.text(), t);
            assert_eq!(serde_json::to_string(&id).unwrap(), t);
            assert_eq!(id.key().unwrap(), format!("n:{t}"));
        }
        let forty = "9".repeat(40);
        assert!(Id::check(&raw(&forty)).is_ok());
        assert!(Id::check(&raw(&"9".repeat(41))).unwrap_err().contains("at most 40"));
    }

    #[test]
    fn keys_are_those_of_earlier_journals() {
        // envelope::id_key before: format!("n:{n}") of the serde Number, format!("s:{s}").
        for (t, k) in [("1", "n:1"), ("-5", "n:-5"), ("18446744073709551615", "n:18446744073709551615"), (r#""x1""#, "s:x1"), (r#""a\u0062""#, "s:ab")] {
            let old = match serde_json::from_str::<serde_json::Value>(t).unwrap() {
                serde_json::Value::Number(n) => format!("n:{n}"),
                serde_json::Value::String(s) => format!("s:{s}"),
                _ => unreachable!(),
            };
            assert_eq!(old, k);
            assert_eq!(Id::check(&raw(t)).unwrap().key().unwrap(), k);
        }
    }

    #[test]
    fn strings_are_echoed_with_their_escapes() {
        let id = Id::check(&raw(r#""a\u0062\"c""#)).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""a\u0062\"c""#);
        assert_eq!(id.key().unwrap(), "s:ab\"c");
        assert!(Id::check(&raw(r#""""#)).is_err());
        assert!(Id::check(&raw(&format!("\"{}\"", "x".repeat(129)))).is_err());
    }

    #[test]
    fn floats_and_others_are_refused_with_a_reason() {
        for t in ["1.5", "1e3", "1.8446744073709552e+19", "1.0", "-0", "true", "null", "[1]", "{}"] {
            let e = Id::check(&raw(t)).unwrap_err();
            assert!(e.contains("id"), "{t}: {e}");
        }
    }

    #[test]
    fn round_trips_through_a_struct() {
        #[derive(Serialize, Deserialize)]
        struct A {
            id: Id,
            n: u8,
        }
        let a: A = serde_json::from_str(r#"{"id": 1000000000000000000000000000000, "n": 1}"#).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"id":1000000000000000000000000000000,"n":1}"#);
        assert!(Id::from_u64(7).matches_text("7") && Id::from_u64(7).matches_text("\"7\"") && Id::from_string("7").matches_text("7"));
        assert!(!Id::from_u64(7).matches_text("8"));
        assert_eq!(Id::from_string("q\"").text(), r#""q\"""#);
        assert_eq!(Id::from_text("18446744073709551616").unwrap().to_value(), None, "not exact in a Value");
        assert!(Id::null().is_null());
    }
}
