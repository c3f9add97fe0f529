//! The console's WebApi: names, request fields and answers.

use super::super::DeviceError;
use serde::Deserialize;
use serde_json::Value;

/// Path of every WebApi call; `controler` (sic) and `action` go in the query.
pub const PATH: &str = "/cgi-bin/php-cgi/html/delegatemodule/WebApi.php";

pub const USER: &str = "User";
pub const QUERY_USER: &str = "ExGetUserInfo";
pub const ADD_USER: &str = "AddUserCloud";
pub const UPDATE_USER: &str = "UpdateUserCloud";
pub const DELETE_USERS: &str = "DelUserByNameCloud";
pub const GROUP: &str = "Group";
/// Fields of `User/AddUserCloud` as the seed lists them, plus
/// `delay_flush`, which the vendor's published client (PyPI
/// `sangfor-sslvpn-api` 1.0) sends on add, update and delete.
pub const ADD_USER_FIELDS: &[&str] = &[
    "name", "parent_group", "note", "passwd", "phone", "role_name", "b_inherit_auth", "b_inherit_grpolicy", "is_extauth",
    "ext_auth_name", "is_pwd", "delay_flush",
];
/// Fields of `User/UpdateUserCloud` as the seed lists them, plus `delay_flush`.
pub const UPDATE_USER_FIELDS: &[&str] = &[
    "old_name", "new_name", "parent_group", "note", "passwd", "phone", "role_name", "is_enable", "is_extauth", "ext_auth_name",
    "delay_flush",
];
/// Fields of `User/DelUserByNameCloud`: the seed's `names`, plus `delay_flush`.
pub const DELETE_USERS_FIELDS: &[&str] = &["names", "delay_flush"];
/// `User/ExtSetUserEnable` (not in the seed's excerpt): the vendor's
/// client sends `username` + `enable`; `names` + `is_enable` (the
/// field names of the seed's other calls) are accepted too.
pub const SET_ENABLE: &str = "ExtSetUserEnable";
pub const SET_ENABLE_FIELDS: &[&str] = &["username", "enable", "names", "is_enable"];
/// Answer fields that carry secrets (ExGetUserInfo's `passwd`, `sec_key`,
/// `crypto_key`, and any password or key a console may add): masked in
/// every answer and status the agent forwards.
pub const SECRET_FIELDS: &[&str] =
    &["passwd", "password", "pwd", "sec_key", "crypto_key", "secret", "api_secret", "sinfor_apitoken", "token", "key", "psk"];
/// What a masked secret shows.
pub const MASK: &str = "******";
pub const QUERY_GROUP: &str = "GetGroupInfo";
/// The "take effect now" call as the seed names it (the default).
pub const COMMIT_DEFAULT: &str = "Updater/UpdaterCloud";
/// The same call as the vendor's current document names it.
pub const COMMIT_DATASYNC: &str = "Updater/DataSyncCloud";

/// The answer code for a refused `sinfor_apitoken`.
pub const CODE_AUTH: i64 = 4;

/// Field names the client sets itself; a command may not pass them.
pub const RESERVED: &[&str] = &["controler", "controller", "action", "timestamp", "sinfor_apitoken"];

/// A controller, action or parameter name: 1–64 of `[A-Za-z0-9_]`.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A `Controller/Action` pair, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub controler: String,
    pub action: String,
}

impl Call {
    pub fn new(controler: &str, action: &str) -> Result<Call, String> {
        if !is_identifier(controler) || !is_identifier(action) {
            return Err(format!("controler and action must be 1-64 of [A-Za-z0-9_] (got {controler:?}/{action:?})"));
        }
        Ok(Call { controler: controler.to_string(), action: action.to_string() })
    }
    /// From `Controller/Action`.
    pub fn parse(s: &str) -> Result<Call, String> {
        let (c, a) = s.split_once('/').ok_or_else(|| format!("expected Controller/Action, got {s:?}"))?;
        Call::new(c, a)
    }
    /// True for the actions that only read: the seed's queries, and names
    /// that say so by the console's naming convention.
    pub fn is_query(&self) -> bool {
        ["Get", "ExGet", "Query", "List", "Search"].iter().any(|p| self.action.starts_with(p))
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.controler, self.action)
    }
}

/// A parameter value as the form carries it: strings as they are, numbers
/// in JSON notation, booleans as the console's `1`/`0`, null as empty,
/// arrays and objects as JSON text (`names=["u1","u2"]`).
pub fn flatten(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `v` with the value of every [`SECRET_FIELDS`] key (at any depth,
/// compared without case) replaced by [`MASK`] when it is not empty, so
/// that an empty secret still reads as "none set".
pub fn mask_secrets(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, val)| {
                    let secret = SECRET_FIELDS.iter().any(|s| s.eq_ignore_ascii_case(k));
                    let empty = matches!(val, Value::Null) || val.as_str() == Some("");
                    let shown = if secret && !empty { Value::String(MASK.into()) } else { mask_secrets(val) };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(mask_secrets).collect()),
        other => other.clone(),
    }
}

/// A decoded answer; `raw` is the console's JSON as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub result: Value,
    pub message: String,
    pub raw: Value,
}

#[derive(Deserialize)]
struct Wire {
    code: Value,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    message: Value,
}

/// Check an answer: HTTP status, JSON shape, `code`. `serde_json` decodes
/// the console's `\uXXXX` messages.
pub fn parse_answer(call: &Call, status: u16, body: &[u8]) -> Result<Answer, DeviceError> {
    let raw: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if status != 200 => return Err(DeviceError::Protocol(format!("{call}: HTTP {status}"))),
        Err(e) => return Err(DeviceError::Protocol(format!("{call}: answer is not JSON: {e}"))),
    };
    let wire = Wire::deserialize(&raw).map_err(|e| DeviceError::Protocol(format!("{call}: unexpected answer: {e}")))?;
    let code = match &wire.code {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| DeviceError::Protocol(format!("{call}: answer code is not a number")))?;
    let message = match &wire.message {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if code == CODE_AUTH {
        return Err(DeviceError::Auth(format!(
            "{call}: console refused sinfor_apitoken ({message}); check api_secret and the router's clock"
        )));
    }
    if code != 0 || wire.success == Some(false) {
        let msg = if message.is_empty() { format!("{call} failed") } else { format!("{call}: {message}") };
        return Err(DeviceError::Device { code, msg });
    }
    if status != 200 {
        return Err(DeviceError::Protocol(format!("{call}: HTTP {status} with a success answer")));
    }
    Ok(Answer { result: wire.result, message, raw })
}

/// Fields of a user to create or change. `None` leaves a field to the
/// console's default (create) or as it is (update).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserSpec {
    pub name: String,
    /// Full path of an existing group, `/` for the root group.
    pub parent_group: String,
    pub note: Option<String>,
    pub passwd: Option<String>,
    pub phone: Option<String>,
    /// Role names, comma-separated.
    pub role_name: Option<String>,
    /// Enabled (update only; the console ignores it on create).
    pub is_enable: Option<bool>,
}

impl UserSpec {
    pub fn new(name: &str, parent_group: &str) -> UserSpec {
        UserSpec { name: name.into(), parent_group: parent_group.into(), ..Default::default() }
    }

    /// The optional fields as form pairs.
    pub fn optional_fields(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for (k, val) in [("note", &self.note), ("passwd", &self.passwd), ("phone", &self.phone), ("role_name", &self.role_name)] {
            if let Some(val) = val {
                v.push((k.to_string(), val.clone()));
            }
        }
        if let Some(e) = self.is_enable {
            v.push(("is_enable".into(), if e { "1" } else { "0" }.into()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call() -> Call {
        Call::new(USER, QUERY_USER).unwrap()
    }

    #[test]
    fn names() {
        assert!(Call::new("User", "AddUserCloud").is_ok());
        assert!(Call::new("User&x=1", "A").is_err());
        assert!(Call::new("", "A").is_err());
        assert_eq!(Call::parse(COMMIT_DATASYNC).unwrap().action, "DataSyncCloud");
        assert!(Call::parse("Updater").is_err());
        assert!(call().is_query());
        assert!(!Call::new(USER, ADD_USER).unwrap().is_query());
    }

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let v = json!({"result": {"passwd": "\u{2642}", "sec_key": "A211", "crypto_key": "", "pwd_last_change": "1"}, "data": [{"SEC_KEY": "x"}]});
        let m = mask_secrets(&v);
        assert_eq!(m["result"]["passwd"], MASK);
        assert_eq!(m["result"]["sec_key"], MASK);
        assert_eq!(m["result"]["crypto_key"], "");
        assert_eq!(m["result"]["pwd_last_change"], "1");
        assert_eq!(m["data"][0]["SEC_KEY"], MASK);
    }

    #[test]
    fn flattening() {
        assert_eq!(flatten(&json!("a b")), "a b");
        assert_eq!(flatten(&json!(true)), "1");
        assert_eq!(flatten(&json!(12)), "12");
        assert_eq!(flatten(&json!(null)), "");
        assert_eq!(flatten(&json!(["u1", "u2"])), r#"["u1","u2"]"#);
    }

    #[test]
    fn answers() {
        let ok = br#"{"code":0,"success":true,"result":{"name":"u"},"message":"\u6dfb\u52a0\u7528\u6237\u6210\u529f","readOnlyInfo":null}"#;
        let a = parse_answer(&call(), 200, ok).unwrap();
        assert_eq!(a.message, "添加用户成功");
        assert_eq!(a.result["name"], "u");
        let e = parse_answer(&call(), 200, br#"{"code":-10,"success":false,"message":"\u7528\u6237\u4e0d\u5b58\u5728"}"#);
        assert_eq!(e, Err(DeviceError::Device { code: -10, msg: "User/ExGetUserInfo: 用户不存在".into() }));
        assert!(matches!(parse_answer(&call(), 200, br#"{"code":4,"success":false}"#), Err(DeviceError::Auth(_))));
        assert!(matches!(parse_answer(&call(), 200, b"<html>"), Err(DeviceError::Protocol(_))));
        assert!(matches!(parse_answer(&call(), 200, br#"{"success":true}"#), Err(DeviceError::Protocol(_))));
        assert!(matches!(parse_answer(&call(), 500, b"Internal"), Err(DeviceError::Protocol(_))));
        assert!(matches!(parse_answer(&call(), 404, br#"{"code":404,"message":"x"}"#), Err(DeviceError::Device { code: 404, .. })));
    }
}
