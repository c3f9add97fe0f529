//! Sangfor SSL-VPN console client (`seeds/sangfor-vpn-webapi.txt`,
//! DEVICE-NOTES "Sangfor").
//!
//! Every call is an HTTPS form POST to
//! `WebApi.php?controler=<C>&action=<A>` signed with `sinfor_apitoken`
//! (see [`sign`]). Changes (add/update/delete) only take effect on the
//! console after the "take effect now" call ([`VpnClient::commit`]); the
//! typed operations never commit by themselves so that a batch of changes
//! costs one commit, as the seed advises. The `vpn set` command commits
//! by default (`"commit": false` to batch) and its answer says
//! `"committed"`.
//!
//! Secrets in the console's answers (`passwd`, `sec_key`, …, see
//! [`api::SECRET_FIELDS`]) are masked before anything leaves the client:
//! command answers and the `periph` status alike.
//!
//! Options (UCI, besides `address` = `https://host:4430`):
//! - `api_secret` (secret): the WebApi shared secret. When empty, the
//!   section's `password` is used instead; one of them is required.
//! - `fingerprint`: SHA-256 of the console's certificate (hex, colons
//!   allowed) — the usual choice, consoles use self-signed certificates.
//! - `ca_file`: PEM file of CA certificates to verify the console against.
//!   Without `fingerprint` or `ca_file`, the system CA bundle applies.
//! - `commit_api`: the "take effect now" call, `Updater/UpdaterCloud`
//!   (the seed's, default) or `Updater/DataSyncCloud` (the vendor's
//!   current document), or any other `Controller/Action`.
//! - `poll_group`: the group whose information the status poll reads
//!   (default `/`, the root group).
//!
//! `username` is not used: the WebApi has no login, only the signature.
//! `timeout` bounds the connection and each read; a whole call gets twice
//! that. A refused token (code 4) is [`DeviceError::Auth`]: a wrong secret,
//! or the router's clock more than 5 minutes off the console's.
//!
//! The seed documents no system-information call, so the status carries no
//! firmware or serial; the poll proves the console answers signed calls and
//! reports the group's information as the console gives it.
//!
//! The secret and the tokens are never logged nor returned.

pub mod api;
pub mod command;
pub mod https;
pub mod sign;
pub mod tls;

use super::{DeviceConfig, DeviceError, DeviceKind, DeviceStatus, LanDevice};
use crate::util::{unix_now, url_encode};
use api::{Answer, Call, UserSpec};
use command::VpnCommand;
use https::Endpoint;
use rustls::ClientConfig;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tls::Trust;

pub const EXTRA_OPTIONS: &[(&str, bool)] =
    &[("api_secret", true), ("fingerprint", false), ("ca_file", false), ("commit_api", false), ("poll_group", false)];

/// A client of one VPN console.
pub struct VpnClient {
    endpoint: Endpoint,
    tls: Arc<ClientConfig>,
    secret: String,
    timeout: Duration,
    commit_call: Call,
    poll_group: String,
}

impl std::fmt::Debug for VpnClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpnClient")
            .field("endpoint", &self.endpoint)
            .field("commit_call", &self.commit_call)
            .field("poll_group", &self.poll_group)
            .finish_non_exhaustive()
    }
}

impl VpnClient {
    pub fn new(cfg: &DeviceConfig) -> Result<Self, String> {
        let endpoint = Endpoint::parse(&cfg.address)?;
        let secret = cfg
            .opt("api_secret")
            .or_else(|| Some(cfg.password.as_str()).filter(|p| !p.is_empty()))
            .ok_or("vpn needs api_secret (or password)")?
            .to_string();
        let tls = Trust::from_options(cfg.opt("fingerprint"), cfg.opt("ca_file"))?.client_config()?;
        let commit_call = Call::parse(cfg.opt("commit_api").unwrap_or(api::COMMIT_DEFAULT)).map_err(|e| format!("commit_api: {e}"))?;
        let poll_group = cfg.opt("poll_group").unwrap_or("/").to_string();
        Ok(VpnClient { endpoint, tls, secret, timeout: cfg.timeout, commit_call, poll_group })
    }

    /// One signed call. `params` go in the body, with `timestamp` (now)
    /// and `sinfor_apitoken`.
    pub fn call(&self, call: &Call, params: &[(&str, &str)]) -> Result<Answer, DeviceError> {
        let timestamp = unix_now().to_string();
        let mut body: Vec<(&str, &str)> = params.to_vec();
        body.push((sign::TIMESTAMP_FIELD, &timestamp));
        let query = [("controler", call.controler.as_str()), ("action", call.action.as_str())];
        let token = sign::token(query.iter().chain(body.iter()).copied(), &timestamp, &self.secret);
        body.push((sign::TOKEN_FIELD, &token));
        let form = encode_form(&body);
        let target = format!("{}?{}", api::PATH, encode_form(&query));
        log::debug!("vpn {}: {call}", self.endpoint.host);
        let resp = https::post_form(&self.tls, &self.endpoint, &target, &form, self.timeout)?;
        api::parse_answer(call, resp.status, &resp.body)
    }

    /// `User/ExGetUserInfo`: the user's fields as the console gives them.
    pub fn query_user(&self, name: &str) -> Result<Value, DeviceError> {
        Ok(self.call(&known(api::USER, api::QUERY_USER), &[("username", name)])?.result)
    }

    /// `User/AddUserCloud` (takes effect after [`commit`](Self::commit)).
    pub fn add_user(&self, user: &UserSpec) -> Result<Answer, DeviceError> {
        let extra = user.optional_fields();
        let mut params = vec![("name", user.name.as_str()), ("parent_group", user.parent_group.as_str())];
        params.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.call(&known(api::USER, api::ADD_USER), &params)
    }

    /// `User/UpdateUserCloud`: `old_name` becomes `user` (takes effect after commit).
    pub fn update_user(&self, old_name: &str, user: &UserSpec) -> Result<Answer, DeviceError> {
        let extra = user.optional_fields();
        let mut params = vec![("old_name", old_name), ("new_name", user.name.as_str()), ("parent_group", user.parent_group.as_str())];
        params.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.call(&known(api::USER, api::UPDATE_USER), &params)
    }

    /// `User/DelUserByNameCloud` (takes effect after commit).
    pub fn delete_users(&self, names: &[&str]) -> Result<Answer, DeviceError> {
        let names = Value::from(names.to_vec()).to_string();
        self.call(&known(api::USER, api::DELETE_USERS), &[("names", &names)])
    }

    /// `Group/GetGroupInfo` for a full group path (`/` is the root group).
    pub fn query_group(&self, path: &str) -> Result<Value, DeviceError> {
        Ok(self.call(&known(api::GROUP, api::QUERY_GROUP), &[("group_name", path)])?.result)
    }

    /// The "take effect now" call (`commit_api`).
    pub fn commit(&self) -> Result<Answer, DeviceError> {
        self.call(&self.commit_call, &[])
    }

    /// The configured "take effect now" call.
    pub fn commit_call(&self) -> &Call {
        &self.commit_call
    }
}

impl LanDevice for VpnClient {
    fn kind(&self) -> DeviceKind {
        DeviceKind::Vpn
    }

    fn poll(&mut self) -> Result<DeviceStatus, DeviceError> {
        let call = known(api::GROUP, api::QUERY_GROUP);
        let answer = self.call(&call, &[("group_name", &self.poll_group)])?;
        Ok(DeviceStatus { serial: None, firmware: None, msg: status_msg(&self.poll_group, &self.commit_call, &answer) })
    }

    /// The console's answer (secrets masked) with `"committed"`: true when
    /// the "take effect now" call followed (its answer in `"commit_answer"`),
    /// or when the call was that commit itself.
    fn command(&mut self, method: &str, body: &Value) -> Result<Value, DeviceError> {
        let cmd = VpnCommand::parse(method, body)?;
        let params: Vec<(&str, &str)> = cmd.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let answer = self.call(&cmd.call, &params)?;
        let is_commit = is_commit_call(&cmd.call, &self.commit_call);
        let commit_answer = if cmd.commit && !is_commit {
            Some(self.commit().map_err(|e| not_committed(&cmd.call, &self.commit_call, e))?)
        } else {
            None
        };
        let mut out = match api::mask_secrets(&answer.raw) {
            Value::Object(m) => m,
            other => Map::from_iter([("answer".to_string(), other)]),
        };
        out.insert("committed".into(), Value::Bool(is_commit || commit_answer.is_some()));
        if let Some(c) = commit_answer {
            out.insert("commit_answer".into(), api::mask_secrets(&c.raw));
        }
        Ok(Value::Object(out))
    }
}

/// The normalised `periph` message: common keys plus the console's answer.
fn status_msg(group: &str, commit_call: &Call, answer: &Answer) -> Value {
    let mut msg = Map::new();
    msg.insert("online".into(), Value::Bool(true));
    msg.insert("vendor".into(), "Sangfor".into());
    msg.insert("model".into(), "SSL VPN console".into());
    msg.insert("commit_api".into(), commit_call.to_string().into());
    msg.insert("group".into(), group.into());
    for (key, names) in [("users", ["user_num", "user_count", "users"]), ("groups", ["subgroup_num", "group_num", "groups"])] {
        if let Some(n) = names.iter().find_map(|k| count(&answer.result[*k])) {
            msg.insert(key.into(), n.into());
        }
    }
    msg.insert("group_info".into(), api::mask_secrets(&answer.raw));
    Value::Object(msg)
}

/// The configured commit, or either name of the "take effect now" call.
fn is_commit_call(call: &Call, configured: &Call) -> bool {
    call == configured || [api::COMMIT_DEFAULT, api::COMMIT_DATASYNC].iter().any(|c| call.to_string() == *c)
}

/// A count given as a number or a numeric string.
fn count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The change went through but did not take effect: say so, keep the kind.
fn not_committed(change: &Call, commit: &Call, e: DeviceError) -> DeviceError {
    e.map_text(|m| format!("{change} saved on the console but {commit} failed, the change is not in effect: {m}"))
}

/// A call built from the API's own names (always valid identifiers).
fn known(controler: &str, action: &str) -> Call {
    Call { controler: controler.to_string(), action: action.to_string() }
}

fn encode_form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v))).collect::<Vec<_>>().join("&")
}
