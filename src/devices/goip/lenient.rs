//! Lenient reading of GoIP JSON: firmware sends numbers as strings and
//! strings as numbers, and pads text with NUL bytes. Every accessor here
//! accepts both forms and never panics.

use serde_json::{Map, Value};

/// Strip trailing NULs (and the whitespace around them).
pub fn clean(s: &str) -> &str {
    s.trim_end_matches(|c: char| c == '\0' || c.is_whitespace()).trim_start()
}

/// An integer from a number (whole floats too) or a numeric string.
/// A string such as `"3 OK"` yields its leading number.
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64)),
        Value::String(s) => {
            let s = clean(s);
            let end = s.char_indices().find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-'))).map_or(s.len(), |(i, _)| i);
            s[..end].parse().ok()
        }
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

/// A float from a number or a numeric string (`"100.00"`).
pub fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => crate::util::decimal(clean(s)),
        _ => None,
    }
}

/// Text from a string (NULs stripped) or a number/bool; `None` for null,
/// arrays and objects.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(clean(s).to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A field by name, the exact spelling first, then any case: the seed's
/// tables write `Port`, `Stats`, `Username` where its examples write
/// `port`, `stats`, `username`.
pub fn field<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    o.get(k).or_else(|| o.iter().find(|(name, _)| name.eq_ignore_ascii_case(k)).map(|(_, v)| v))
}

/// Field accessors over an object (names matched as [`field`] does).
pub fn get_int(o: &Map<String, Value>, k: &str) -> Option<i64> {
    field(o, k).and_then(int)
}
pub fn get_float(o: &Map<String, Value>, k: &str) -> Option<f64> {
    field(o, k).and_then(float)
}
/// Text of a field; empty strings count as absent.
pub fn get_text(o: &Map<String, Value>, k: &str) -> Option<String> {
    field(o, k).and_then(text).filter(|s| !s.is_empty())
}

/// Split a `"<code> <reason>"` status (`"0 OK"`, `"2 Invalid Port"`); a bare
/// number gives an empty reason.
pub fn code_reason(v: &Value) -> Option<(i64, String)> {
    let code = int(v)?;
    let reason = match v {
        Value::String(s) => {
            let s = clean(s);
            s.split_once(char::is_whitespace).map(|(_, r)| r.trim().to_string()).unwrap_or_default()
        }
        _ => String::new(),
    };
    Some((code, reason))
}

/// Parse a JSON body, tolerating trailing NULs and whitespace.
pub fn parse_body(body: &[u8]) -> Result<Value, String> {
    let mut end = body.len();
    while end > 0 && (body[end - 1] == 0 || body[end - 1].is_ascii_whitespace()) {
        end -= 1;
    }
    let body = &body[..end];
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        // Text in another encoding (raw GSM bytes, Latin-1): read it with
        // replacement characters rather than lose the whole batch.
        Err(_) if std::str::from_utf8(body).is_err() => {
            serde_json::from_str(&String::from_utf8_lossy(body)).map_err(|e| format!("not JSON: {e}"))
        }
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// A row of a batch that could not be read; the rest of the batch stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RowError {
    /// Position of the row in its array.
    pub index: usize,
    pub reason: String,
    /// The row as received.
    pub raw: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_forms() {
        assert_eq!(int(&json!(3)), Some(3));
        assert_eq!(int(&json!("3 OK")), Some(3));
        assert_eq!(int(&json!(" 15\u{0}")), Some(15));
        assert_eq!(int(&json!(2.0)), Some(2));
        assert_eq!(int(&json!("-5")), Some(-5));
        assert_eq!(int(&json!("OK")), None);
        assert_eq!(float(&json!("100.00")), Some(100.0));
        assert_eq!(text(&json!(460)), Some("460".into()));
        assert_eq!(text(&json!("1A\u{0}\u{0}")), Some("1A".into()));
        assert_eq!(code_reason(&json!("2 Invalid Port")), Some((2, "Invalid Port".into())));
        assert_eq!(code_reason(&json!(0)), Some((0, String::new())));
        assert_eq!(parse_body(b"{\"a\":1}\0\0\n").unwrap(), json!({"a": 1}));
        assert!(parse_body(b"<html>").is_err());
        assert_eq!(parse_body(b"[\"a\xff\"]").unwrap(), json!(["a\u{fffd}"]), "invalid UTF-8 replaced, not fatal");
    }
}
