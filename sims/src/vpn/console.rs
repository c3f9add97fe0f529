//! The simulated console's WebApi: signature and timestamp checks, users
//! and groups in memory, online sessions, and the "take effect now" call.
//!
//! Written from the seed and DEVICE-NOTES without the client's
//! `devices::vpn` code (the signature in [`super::signature`]).
//!
//! Like the real console, changes are written to the database at once (the
//! queries see them) but only reach the running service ("memory": the
//! users who can log in) with `Updater/UpdaterCloud` or
//! `Updater/DataSyncCloud`.
//!
//! Choices where the seed is silent or truncated, each stated:
//! - a timestamp more than `max_skew` away from the simulator's clock
//!   answers code 4, like a wrong token (the seed lists no other code);
//! - `Group/GetGroupInfo` answers `id`, `name`, `path`, `parent_path`,
//!   `note`, `user_num` (users in the group and below) and `subgroup_num`,
//!   or -13 for an unknown group;
//! - add/update refuse a field the seed does not list for them with -2
//!   (the seed's "参数类型错误" code): `password` is not `passwd`;
//! - `names` (delete, enable, kick) is read as the seed's JSON array
//!   (`["u1","u2"]`) or as the vendor's later `u1,u2`;
//! - the actions the seed's excerpt does not document at all
//!   (`User/ExtSetUserEnable`, `User/GetSearchData`,
//!   `State/GetOnlineUserCloud`, `State/KillOnlineUserCloud`) take the
//!   parameters listed at their handlers; enabling/disabling writes the
//!   database (a commit makes it effective, as for every change), listing
//!   reads it, and the two `State` actions act on the running service at
//!   once (online sessions are not in the database). Disabling a user does
//!   not end the sessions it has: that is what kicking is for.

use super::signature;
use crate::wire::{form_pairs, now_secs};
use crate::{SimRequest, SimResponse};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The WebApi's one path (seed).
pub const PATH: &str = "/cgi-bin/php-cgi/html/delegatemodule/WebApi.php";
/// Code of a refused `sinfor_apitoken` (seed).
const CODE_AUTH: i64 = 4;
/// The fields every call carries besides its own.
const COMMON: &[&str] = &["timestamp", "sinfor_apitoken"];
/// Fields of `User/AddUserCloud` (seed "新建用户"), plus `delay_flush`,
/// which the vendor's published client (PyPI `sangfor-sslvpn-api` 1.0)
/// sends as `0` on add, update and delete. The seed is silent on its
/// meaning; the simulator accepts `0`/`1` and ignores it: a change still
/// needs the "take effect now" call.
const ADD_FIELDS: &[&str] = &[
    "name", "parent_group", "note", "passwd", "phone", "role_name", "b_inherit_auth", "b_inherit_grpolicy", "is_extauth",
    "ext_auth_name", "is_pwd", "delay_flush",
];
/// Fields of `User/UpdateUserCloud` (seed "编辑用户"), plus `delay_flush`.
const UPDATE_FIELDS: &[&str] = &[
    "old_name", "new_name", "parent_group", "note", "passwd", "phone", "role_name", "is_enable", "is_extauth", "ext_auth_name",
    "delay_flush",
];
/// Fields of `User/DelUserByNameCloud` (seed "删除用户"), plus `delay_flush`.
const DELETE_FIELDS: &[&str] = &["names", "delay_flush"];
/// How many received requests [`Console::requests`] keeps.
const MAX_LOG: usize = 256;
/// Largest page `User/GetSearchData` answers.
const MAX_PAGE: usize = 100;

/// One user as the simulator stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    pub id: u64,
    pub name: String,
    pub parent_group: String,
    pub note: String,
    pub passwd: String,
    pub phone: String,
    pub role_name: String,
    pub is_enable: bool,
    pub b_inherit_auth: bool,
    pub b_inherit_grpolicy: bool,
    pub create_time: u64,
}

/// A user logged in to the VPN (the running service's session table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineUser {
    pub name: String,
    pub ip: String,
    pub login_time: u64,
}

/// The console's state.
#[derive(Debug)]
pub struct Console {
    secret: String,
    max_skew: u64,
    groups: Vec<String>,
    /// The database: what the WebApi writes and queries read.
    users: BTreeMap<String, SimUser>,
    /// The running service: the database as of the last commit.
    active: BTreeMap<String, SimUser>,
    online: BTreeMap<String, OnlineUser>,
    commits: u64,
    next_id: u64,
    /// The last requests: `Controller/Action` and the body's field names.
    log: std::collections::VecDeque<(String, Vec<String>)>,
}

type Outcome = Result<(Value, &'static str), (i64, String)>;

fn refuse(code: i64, msg: &str) -> (i64, String) {
    (code, msg.to_string())
}

impl Console {
    pub fn new(secret: &str, max_skew: u64, groups: &[String]) -> Console {
        let mut all: Vec<String> = vec!["/".into()];
        all.extend(groups.iter().filter(|g| g.as_str() != "/").cloned());
        Console {
            secret: secret.into(),
            max_skew,
            groups: all,
            users: BTreeMap::new(),
            active: BTreeMap::new(),
            online: BTreeMap::new(),
            commits: 0,
            next_id: 1,
            log: std::collections::VecDeque::new(),
        }
    }

    /// The last requests received (signed or not): `Controller/Action`
    /// and the names of the body's fields, oldest first.
    pub fn requests(&self) -> Vec<(String, Vec<String>)> {
        self.log.iter().cloned().collect()
    }

    pub fn commits(&self) -> u64 {
        self.commits
    }
    /// True when the database differs from what is in effect.
    pub fn pending(&self) -> bool {
        self.users != self.active
    }
    pub fn users(&self) -> Vec<SimUser> {
        self.users.values().cloned().collect()
    }
    pub fn active_users(&self) -> Vec<SimUser> {
        self.active.values().cloned().collect()
    }
    pub fn online(&self) -> Vec<OnlineUser> {
        self.online.values().cloned().collect()
    }

    /// A VPN client logs in as `name` from `ip`: only a user in effect and
    /// enabled can (the running service, not the database, decides).
    pub fn login(&mut self, name: &str, ip: &str) -> bool {
        let allowed = self.active.get(name).is_some_and(|u| u.is_enable);
        if allowed {
            self.online.insert(name.into(), OnlineUser { name: name.into(), ip: ip.into(), login_time: now_secs() });
        }
        allowed
    }

    /// Answer one request.
    pub fn handle(&mut self, req: &SimRequest) -> SimResponse {
        if req.path != PATH {
            return answer(404, Err(refuse(404, "请求地址错误")));
        }
        if req.method != "POST" {
            return SimResponse::text(405, "POST only");
        }
        let query = req.query_pairs();
        let body = form_pairs(&req.body_text());
        let qv = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone()).unwrap_or_default();
        if self.log.len() >= MAX_LOG {
            self.log.pop_front();
        }
        self.log.push_back((format!("{}/{}", qv("controler"), qv("action")), body.iter().map(|(k, _)| k.clone()).collect()));
        if let Err(e) = self.check_token(&query, &body) {
            return answer(200, Err(e));
        }
        let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str()).unwrap_or_default();
        let form: BTreeMap<&str, &str> = body.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let outcome = match (get("controler"), get("action")) {
            ("Updater", "UpdaterCloud" | "DataSyncCloud") => self.commit(),
            ("User", "ExGetUserInfo") => self.query_user(&form),
            ("User", "AddUserCloud") => only(&form, ADD_FIELDS).and_then(|()| self.add_user(&form)),
            ("User", "UpdateUserCloud") => only(&form, UPDATE_FIELDS).and_then(|()| self.update_user(&form)),
            ("User", "DelUserByNameCloud") => only(&form, DELETE_FIELDS).and_then(|()| self.delete_users(&form)),
            ("User", "ExtSetUserEnable") => self.set_enable(&form),
            ("User", "GetSearchData") => self.search(&form),
            ("Group", "GetGroupInfo") => self.query_group(&form),
            ("State", "GetOnlineUserCloud") => Ok(self.online_list()),
            ("State", "KillOnlineUserCloud") => self.kill(&form),
            _ => Err(refuse(1, "请求地址的中的action或者controller不存在")),
        };
        answer(200, outcome)
    }

    fn check_token(&self, query: &[(String, String)], body: &[(String, String)]) -> Result<(), (i64, String)> {
        let field = |k: &str| body.iter().find(|(b, _)| b == k).map(|(_, v)| v.as_str());
        let refused = || refuse(CODE_AUTH, "sinfor_apitoken接口认证错误");
        let (Some(token), Some(ts)) = (field("sinfor_apitoken"), field("timestamp")) else {
            return Err(refused());
        };
        if !signature::matches(&signature::expected(query, body, ts, &self.secret), token) {
            return Err(refused());
        }
        let ts: u64 = ts.parse().map_err(|_| refused())?;
        if now_secs().abs_diff(ts) > self.max_skew {
            return Err(refuse(CODE_AUTH, "sinfor_apitoken接口认证错误:时间戳已过期"));
        }
        Ok(())
    }

    fn commit(&mut self) -> Outcome {
        self.active = self.users.clone();
        self.commits += 1;
        Ok((Value::Null, "数据同步成功"))
    }

    fn query_user(&self, form: &BTreeMap<&str, &str>) -> Outcome {
        let name = form.get("username").filter(|n| !n.is_empty()).ok_or(refuse(-2, "参数错误"))?;
        let user = self.users.get(*name).ok_or(refuse(-10, "用户不存在"))?;
        Ok((user_json(user, &self.groups), "查询用户成功"))
    }

    fn add_user(&mut self, form: &BTreeMap<&str, &str>) -> Outcome {
        let name = form.get("name").copied().unwrap_or_default();
        if name.is_empty() {
            return Err(refuse(-2, "用户名不能为空"));
        }
        if self.users.contains_key(name) {
            return Err(refuse(-9, "用户已存在"));
        }
        let group = self.existing_group(form)?;
        let flag = |k: &str| form.get(k).is_none_or(|v| *v != "0");
        let text = |k: &str| form.get(k).copied().unwrap_or_default().to_string();
        let user = SimUser {
            id: self.next_id,
            name: name.into(),
            parent_group: group,
            note: text("note"),
            passwd: text("passwd"),
            phone: text("phone"),
            role_name: text("role_name"),
            is_enable: true,
            b_inherit_auth: flag("b_inherit_auth"),
            b_inherit_grpolicy: flag("b_inherit_grpolicy"),
            create_time: now_secs(),
        };
        self.next_id += 1;
        self.users.insert(name.into(), user);
        Ok((Value::Null, "添加用户成功"))
    }

    fn update_user(&mut self, form: &BTreeMap<&str, &str>) -> Outcome {
        let old = form.get("old_name").copied().unwrap_or_default();
        let new = form.get("new_name").copied().unwrap_or_default();
        let mut user = self.users.get(old).cloned().ok_or(refuse(10, "oldname不存在"))?;
        if new.is_empty() {
            return Err(refuse(-2, "用户名不能为空"));
        }
        if new != old && self.users.contains_key(new) {
            return Err(refuse(-2, "用户名已存在"));
        }
        user.parent_group = self.existing_group(form)?;
        user.name = new.into();
        for (key, field) in [("note", &mut user.note), ("passwd", &mut user.passwd), ("phone", &mut user.phone), ("role_name", &mut user.role_name)] {
            if let Some(v) = form.get(key) {
                *field = v.to_string();
            }
        }
        if let Some(v) = form.get("is_enable") {
            user.is_enable = *v != "0";
        }
        self.users.remove(old);
        self.users.insert(new.into(), user);
        Ok((Value::Null, "操作成功"))
    }

    fn delete_users(&mut self, form: &BTreeMap<&str, &str>) -> Outcome {
        let names = names_of(form)?;
        for n in &names {
            self.users.remove(n);
        }
        Ok((Value::Null, "删除用户成功"))
    }

    /// `User/ExtSetUserEnable` (not in the seed's excerpt): the vendor's
    /// published client sends `username` (one name) and `enable` (1
    /// enable, 0 disable); the simulator also takes `names` and
    /// `is_enable` (the field names of the seed's other calls). Every name
    /// must exist (-10 otherwise, nothing changed).
    fn set_enable(&mut self, form: &BTreeMap<&str, &str>) -> Outcome {
        only(form, &["username", "enable", "names", "is_enable"])?;
        let names = match form.get("username").map(|v| v.trim()) {
            Some(n) if !n.is_empty() => vec![n.to_string()],
            Some(_) => return Err(refuse(-2, "参数错误: username")),
            None => names_of(form)?,
        };
        let enable = match form.get("enable").or_else(|| form.get("is_enable")).copied() {
            Some("1") => true,
            Some("0") => false,
            _ => return Err(refuse(-2, "参数错误: is_enable")),
        };
        if names.iter().any(|n| !self.users.contains_key(n)) {
            return Err(refuse(-10, "用户不存在"));
        }
        for n in &names {
            if let Some(u) = self.users.get_mut(n) {
                u.is_enable = enable;
            }
        }
        Ok((Value::Null, "操作成功"))
    }

    /// `User/GetSearchData` (the seed's "获取用户列表", not in its excerpt):
    /// optional `search` (part of the name), `parent_group` (that group
    /// and below), `start` (0) and `limit` (20, at most 100). Answers
    /// `{"total", "data": [user as ExGetUserInfo shows it]}` by name.
    fn search(&self, form: &BTreeMap<&str, &str>) -> Outcome {
        only(form, &["search", "parent_group", "start", "limit"])?;
        let number = |k: &str, default: usize| match form.get(k) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| refuse(-2, "参数错误")),
        };
        let (start, limit) = (number("start", 0)?, number("limit", 20)?.min(MAX_PAGE));
        let needle = form.get("search").copied().unwrap_or_default();
        let group = form.get("parent_group").copied().filter(|g| !g.is_empty());
        if let Some(g) = group {
            if !self.groups.iter().any(|x| x == g) {
                return Err(refuse(-13, "该用户组不存在"));
            }
        }
        let hits: Vec<&SimUser> =
            self.users.values().filter(|u| u.name.contains(needle) && group.is_none_or(|g| within(g, &u.parent_group))).collect();
        let page: Vec<Value> = hits.iter().skip(start).take(limit).map(|u| user_json(u, &self.groups)).collect();
        Ok((json!({"total": hits.len(), "data": page}), "查询成功"))
    }

    /// `State/GetOnlineUserCloud` (not in the seed's excerpt): the running
    /// service's sessions, `{"total", "data": [{"name", "ip", "login_time"}]}`.
    fn online_list(&self) -> (Value, &'static str) {
        let rows: Vec<Value> =
            self.online.values().map(|o| json!({"name": o.name, "ip": o.ip, "login_time": o.login_time.to_string()})).collect();
        (json!({"total": rows.len(), "data": rows}), "查询成功")
    }

    /// `State/KillOnlineUserCloud` (not in the seed's excerpt): log `names`
    /// off now. A name that is not online is not an error (the goal holds);
    /// the answer lists who was logged off.
    fn kill(&mut self, form: &BTreeMap<&str, &str>) -> Outcome {
        only(form, &["names"])?;
        let names = names_of(form)?;
        let killed: Vec<String> = names.into_iter().filter(|n| self.online.remove(n).is_some()).collect();
        Ok((json!({"killed": killed}), "操作成功"))
    }

    fn query_group(&self, form: &BTreeMap<&str, &str>) -> Outcome {
        let path = form.get("group_name").filter(|n| !n.is_empty()).ok_or(refuse(-2, "参数错误"))?;
        let idx = self.groups.iter().position(|g| g == path).ok_or(refuse(-13, "该用户组不存在"))?;
        let users = self.users.values().filter(|u| within(path, &u.parent_group)).count();
        let subgroups = self.groups.iter().filter(|g| parent_of(g) == Some(*path)).count();
        let name = path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("/");
        Ok((
            json!({
                "id": idx.to_string(), "name": name, "path": path, "parent_path": parent_of(path).unwrap_or(""),
                "note": "", "user_num": users.to_string(), "subgroup_num": subgroups.to_string(),
            }),
            "查询用户组成功",
        ))
    }

    fn existing_group(&self, form: &BTreeMap<&str, &str>) -> Result<String, (i64, String)> {
        let group = form.get("parent_group").copied().unwrap_or_default();
        if self.groups.iter().any(|g| g == group) {
            Ok(group.to_string())
        } else {
            Err(refuse(-13, "parent_group参数错误/该用户组不存在"))
        }
    }
}

/// Refuse fields an action does not take (besides `timestamp` and the token).
fn only(form: &BTreeMap<&str, &str>, fields: &[&str]) -> Result<(), (i64, String)> {
    match form.keys().find(|k| !fields.contains(k) && !COMMON.contains(k)) {
        Some(k) => Err((-2, format!("参数错误: 未知参数 {k}"))),
        None => Ok(()),
    }
}

/// `names` as a JSON array of strings (seed) or `u1,u2` (the vendor's later form).
fn names_of(form: &BTreeMap<&str, &str>) -> Result<Vec<String>, (i64, String)> {
    let raw = form.get("names").map(|v| v.trim()).filter(|v| !v.is_empty()).ok_or(refuse(-2, "参数错误"))?;
    let names: Vec<String> = if raw.starts_with('[') {
        serde_json::from_str(raw).map_err(|_| refuse(-2, "参数错误"))?
    } else {
        raw.split(',').map(|n| n.trim().to_string()).collect()
    };
    if names.is_empty() || names.iter().any(String::is_empty) {
        return Err(refuse(-2, "参数错误"));
    }
    Ok(names)
}

/// `group` is `path` or below it.
fn within(path: &str, group: &str) -> bool {
    path == "/" || group == path || group.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'))
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rsplit_once('/') {
        Some(("", _)) => Some("/"),
        Some((p, _)) => Some(p),
        None => None,
    }
}

/// A user as `ExGetUserInfo` shows it: every value a string, the password
/// scrambled into symbols as the seed's example shows.
fn user_json(u: &SimUser, groups: &[String]) -> Value {
    let b = |v: bool| if v { "1" } else { "0" };
    let grpid = groups.iter().position(|g| *g == u.parent_group).map(|i| i.to_string()).unwrap_or("-1".into());
    json!({
        "id": u.id.to_string(), "name": u.name, "note": u.note, "passwd": scramble(&u.passwd), "phone": u.phone,
        "cert_sn": "", "grpid": grpid, "grpname": u.parent_group, "parent_path": u.parent_group, "roleid": "",
        "role_name": u.role_name, "crypto_key": "", "allocateip": "0", "b_inherit_auth": b(u.b_inherit_auth),
        "b_inherit_grpolicy": b(u.b_inherit_grpolicy), "auth_methods": "1", "auth_type": "0", "ext_auth_id": "0",
        "expire": "0", "attributes": "1", "is_enable": b(u.is_enable), "pwd_last_change": u.create_time.to_string(),
        "token_svr_id": "0", "is_first_login": "1", "lastlogin_time": "0", "last_active_time": "0",
        "grpolicy_id": "0", "caid": "-1", "create_time": u.create_time.to_string(), "sec_key": sec_key(u), "is_bind_key": "0",
    })
}

/// A per-user key in the seed's shape (32 upper-case hex digits); the
/// seed does not say how the console derives it.
fn sec_key(u: &SimUser) -> String {
    crate::wire::sha256_hex(format!("{}:{}", u.id, u.name).as_bytes()).get(..32).unwrap_or_default().to_ascii_uppercase()
}

fn scramble(p: &str) -> String {
    const SYMBOLS: [char; 8] = ['\u{2642}', '\u{2640}', '\u{263a}', '\u{266a}', '\u{266b}', '\u{25d9}', '\u{263c}', '\u{25ba}'];
    p.bytes().map(|b| SYMBOLS[(b % 8) as usize]).collect()
}

/// The console's answer, serialised the PHP way (non-ASCII as `\uXXXX`).
fn answer(status: u16, outcome: Outcome) -> SimResponse {
    let v = match outcome {
        Ok((result, message)) => json!({"code": 0, "success": true, "result": result, "message": message, "readOnlyInfo": null}),
        Err((code, message)) => json!({"code": code, "success": false, "result": null, "message": message, "readOnlyInfo": null}),
    };
    SimResponse { status, content_type: "application/json; charset=utf-8".into(), body: ascii_json(&v).into_bytes() }
}

/// JSON text with every non-ASCII character escaped (`json_encode` style).
pub fn ascii_json(v: &Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_php() {
        assert_eq!(ascii_json(&json!({"m": "添加用户成功"})), r#"{"m":"\u6dfb\u52a0\u7528\u6237\u6210\u529f"}"#);
        assert_eq!(ascii_json(&json!("😀")), r#""\ud83d\ude00""#);
    }

    #[test]
    fn names_both_forms() {
        let form = |v: &'static str| BTreeMap::from([("names", v)]);
        assert_eq!(names_of(&form(r#"["u1","u2"]"#)), Ok(vec!["u1".to_string(), "u2".to_string()]));
        assert_eq!(names_of(&form("u1, u2")), Ok(vec!["u1".to_string(), "u2".to_string()]));
        assert!(names_of(&form("[1]")).is_err());
        assert!(names_of(&form("u1,,u2")).is_err());
        assert!(names_of(&BTreeMap::new()).is_err());
        assert!(within("/sales", "/sales/north") && !within("/sales", "/salesx") && within("/", "/it"));
    }

    #[test]
    fn group_parents() {
        assert_eq!(parent_of("/"), None);
        assert_eq!(parent_of("/sales"), Some("/"));
        assert_eq!(parent_of("/sales/north"), Some("/sales"));
    }
}
