//! The simulated console's WebApi: signature and timestamp checks, users
//! and groups in memory, and the "take effect now" call.
//!
//! Like the real console, changes are written to the database at once (the
//! queries see them) but only reach the running service ("memory": the
//! users who can log in) with `Updater/UpdaterCloud` or
//! `Updater/DataSyncCloud`.
//!
//! Choices where the seed is silent or truncated: a timestamp more than
//! `max_skew` away from the simulator's clock answers code 4, like a wrong
//! token (the seed lists no other code for it); `Group/GetGroupInfo`
//! answers `id`, `name`, `path`, `parent_path`, `note`, `user_num` (users
//! in the group and below) and `subgroup_num`, or -13 for an unknown group.

use crate::devices::vpn::api::{self, CODE_AUTH};
use crate::devices::vpn::sign;
use crate::sim::{SimRequest, SimResponse};
use crate::util::unix_now;
use serde_json::{json, Value};
use std::collections::BTreeMap;

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
    commits: u64,
    next_id: u64,
}

type Outcome = Result<(Value, &'static str), (i64, &'static str)>;

impl Console {
    pub fn new(secret: &str, max_skew: u64, groups: &[String]) -> Console {
        let mut all: Vec<String> = vec!["/".into()];
        all.extend(groups.iter().filter(|g| g.as_str() != "/").cloned());
        Console { secret: secret.into(), max_skew, groups: all, users: BTreeMap::new(), active: BTreeMap::new(), commits: 0, next_id: 1 }
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

    /// Answer one request.
    pub fn handle(&mut self, req: &SimRequest) -> SimResponse {
        if req.path != api::PATH {
            return answer(404, Err((404, "请求地址错误")));
        }
        if req.method != "POST" {
            return SimResponse::text(405, "POST only");
        }
        let query = req.query_pairs();
        let body = crate::util::parse_form(&req.body_text());
        if let Err(e) = self.check_token(&query, &body) {
            return answer(200, Err(e));
        }
        let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str()).unwrap_or_default();
        let form: BTreeMap<&str, &str> = body.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let outcome = match (get("controler"), get("action")) {
            ("Updater", "UpdaterCloud" | "DataSyncCloud") => self.commit(),
            (api::USER, api::QUERY_USER) => self.query_user(&form),
            (api::USER, api::ADD_USER) => self.add_user(&form),
            (api::USER, api::UPDATE_USER) => self.update_user(&form),
            (api::USER, api::DELETE_USERS) => self.delete_users(&form),
            (api::GROUP, api::QUERY_GROUP) => self.query_group(&form),
            _ => Err((1, "请求地址的中的action或者controller不存在")),
        };
        answer(200, outcome)
    }

    fn check_token(&self, query: &[(String, String)], body: &[(String, String)]) -> Result<(), (i64, &'static str)> {
        let field = |k: &str| body.iter().find(|(b, _)| b == k).map(|(_, v)| v.as_str());
        let refused = (CODE_AUTH, "sinfor_apitoken接口认证错误");
        let (Some(token), Some(ts)) = (field(sign::TOKEN_FIELD), field(sign::TIMESTAMP_FIELD)) else {
            return Err(refused);
        };
        let pairs = query.iter().chain(body.iter()).map(|(k, v)| (k.as_str(), v.as_str()));
        if !sign::tokens_equal(&sign::token(pairs, ts, &self.secret), token) {
            return Err(refused);
        }
        let ts: u64 = ts.parse().map_err(|_| refused)?;
        if unix_now().abs_diff(ts) > self.max_skew {
            return Err((CODE_AUTH, "sinfor_apitoken接口认证错误:时间戳已过期"));
        }
        Ok(())
    }

    fn commit(&mut self) -> Outcome {
        self.active = self.users.clone();
        self.commits += 1;
        Ok((Value::Null, "数据同步成功"))
    }

    fn query_user(&self, form: &BTreeMap<&str, &str>) -> Outcome {
        let name = form.get("username").filter(|n| !n.is_empty()).ok_or((-2, "参数错误"))?;
        let user = self.users.get(*name).ok_or((-10, "用户不存在"))?;
        Ok((user_json(user, &self.groups), "查询用户成功"))
    }

    fn add_user(&mut self, form: &BTreeMap<&str, &str>) -> Outcome {
        let name = form.get("name").copied().unwrap_or_default();
        if name.is_empty() {
            return Err((-2, "用户名不能为空"));
        }
        if self.users.contains_key(name) {
            return Err((-9, "用户已存在"));
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
            create_time: unix_now(),
        };
        self.next_id += 1;
        self.users.insert(name.into(), user);
        Ok((Value::Null, "添加用户成功"))
    }

    fn update_user(&mut self, form: &BTreeMap<&str, &str>) -> Outcome {
        let old = form.get("old_name").copied().unwrap_or_default();
        let new = form.get("new_name").copied().unwrap_or_default();
        let mut user = self.users.get(old).cloned().ok_or((10, "oldname不存在"))?;
        if new.is_empty() {
            return Err((-2, "用户名不能为空"));
        }
        if new != old && self.users.contains_key(new) {
            return Err((-2, "用户名已存在"));
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
        let names: Vec<String> = form.get("names").and_then(|v| serde_json::from_str(v).ok()).ok_or((-2, "参数错误"))?;
        for n in &names {
            self.users.remove(n);
        }
        Ok((Value::Null, "删除用户成功"))
    }

    fn query_group(&self, form: &BTreeMap<&str, &str>) -> Outcome {
        let path = form.get("group_name").filter(|n| !n.is_empty()).ok_or((-2, "参数错误"))?;
        let idx = self.groups.iter().position(|g| g == path).ok_or((-13, "该用户组不存在"))?;
        let within = |g: &str| *path == "/" || g == *path || g.starts_with(&format!("{path}/"));
        let users = self.users.values().filter(|u| within(&u.parent_group)).count();
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

    fn existing_group(&self, form: &BTreeMap<&str, &str>) -> Result<String, (i64, &'static str)> {
        let group = form.get("parent_group").copied().unwrap_or_default();
        if self.groups.iter().any(|g| g == group) {
            Ok(group.to_string())
        } else {
            Err((-13, "parent_group参数错误/该用户组不存在"))
        }
    }
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
        "grpolicy_id": "0", "caid": "-1", "create_time": u.create_time.to_string(), "sec_key": "", "is_bind_key": "0",
    })
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
    fn group_parents() {
        assert_eq!(parent_of("/"), None);
        assert_eq!(parent_of("/sales"), Some("/"));
        assert_eq!(parent_of("/sales/north"), Some("/sales"));
    }
}
