//! The REST API of `shared/seeds/iot-platform-api.md`, under `/iot/api/v1`.
//! Every call but `auth/login` needs a token from `auth/login`, and the
//! role `crate::roles::required` names for it (403 otherwise).

use super::reply::{ApiError, ApiResult, Reply};
use super::request::{Query, Req};
use crate::db::commands::NewCommand;
use crate::hooks::topic;
use crate::ingest::valid_sn;
use crate::logger::clean;
use crate::db::fleet::DeviceFilter;
use crate::roles::{required, Role};
use crate::time::now;
use crate::Shared;
use serde_json::{json, Map, Value};

pub const BASE: &str = "/iot/api/v1/";

/// Targets of one POST at most.
/// Targets of one command call (a bulk command to a fleet selection).
const MAX_TARGETS: usize = 10_000;
const MAX_ROUTES: i64 = 100;

pub fn handle(sh: &Shared, r: &Req) -> Reply {
    match route(sh, r) {
        Ok(reply) => reply,
        Err(e) => Reply::err(e),
    }
}

/// A caller with a live token.
struct Caller {
    user: String,
    role: Role,
    digest: String,
}

fn route(sh: &Shared, r: &Req) -> ApiResult {
    let (m, path, q) = (r.method.as_str(), r.path.as_str(), &r.query);
    if (m, path) == ("POST", "auth/login") {
        return login(sh, r);
    }
    let who = authorize(sh, r)?;
    let need = required(m, path);
    if who.role < need {
        return Err(ApiError(403, "forbidden", format!("{m} {path} needs the {need} role; user '{}' has {}", clean(&who.user), who.role)));
    }
    match (m, path) {
        ("POST", "auth/logout") => {
            sh.db.session_delete(&who.digest)?;
            Ok(Reply::ok(json!({"user": who.user})))
        }
        ("GET", "monitor/brokers") => brokers(sh),
        ("GET", "monitor/brokers/stats") => broker_stats(sh),
        ("GET", "monitor/brokers/connections") => broker_clients(sh, q, false),
        ("GET", "monitor/brokers/sessions") => broker_clients(sh, q, true),
        ("GET", "monitor/devices") => devices(sh, q),
        ("GET", "monitor/devices/events") => events(sh, q),
        ("GET", "monitor/devices/count") => counts(sh.db.devices_count()?),
        ("GET", "monitor/devices/peripherals") => peripherals(sh, q),
        ("GET", "monitor/devices/peripherals/count") => counts(sh.db.periph_count()?),
        ("GET", "monitor/devices/callbacks") => {
            let list = sh.db.callbacks_list()?;
            Ok(Reply::ok(json!({"count": list.len(), "list": list})))
        }
        ("POST", "monitor/devices/callbacks") => callback_set(sh, &r.json()?),
        ("POST", "monitor/devices/callbacks/enable") => callback_enable(sh, &r.json()?),
        ("GET", "monitor/devices/callbacks/device/stats") => callback_stats(sh, "device"),
        ("GET", "monitor/devices/callbacks/peripheral/stats") => callback_stats(sh, "peripheral"),
        ("GET", "msgroute/configs") => {
            let list = sh.db.routes_list()?;
            Ok(Reply::ok(json!({"count": list.len(), "list": list})))
        }
        ("POST", "msgroute/configs") => route_add(sh, &r.json()?),
        ("PUT", "msgroute/configs") => route_update(sh, &r.json()?),
        ("DELETE", "msgroute/configs") => {
            let id = q.get("id").and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| ApiError::bad("'id' (integer) is required"))?;
            let rows = sh.db.route_delete(id)?;
            sh.routes.invalidate();
            Ok(Reply::ok(json!({"rows": rows})))
        }
        ("POST", "remotectl/commands") => commands_post(sh, &r.json()?),
        ("GET", "remotectl/commands") => commands_get(sh, q),
        ("GET", "remotectl/commands/responses") => responses(sh, q),
        ("GET", "remotectl/commands/progress") => progress(sh, q),
        // Admin only (roles::required): the key to provision on routers, and
        // what the platform refused to believe since start.
        ("GET", "platform/key") => Ok(Reply::ok(sh.public_key_info().unwrap_or(Value::Null))),
        ("GET", "platform/trust") => Ok(Reply::ok(sh.trust.figures())),
        // Admin: the ingest queues (received, written, shed, waiting, batches).
        ("GET", "platform/ingest") => Ok(Reply::ok(sh.ingest.figures_json())),
        (_, _) => Err(ApiError::not_found(format!("no such API: {m} {}", clean(path)))),
    }
}

fn login(sh: &Shared, r: &Req) -> ApiResult {
    let b = r.json()?;
    let user = b.get("user").and_then(Value::as_str).ok_or_else(|| ApiError::bad("'user' is required"))?;
    let password = b.get("password").and_then(Value::as_str).ok_or_else(|| ApiError::bad("'password' is required"))?;
    if let Some(wait) = sh.logins.wait(user, r.peer) {
        // Refused before the password is even looked at: no guess is tried.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Ok(Reply::throttled(secs, format!("too many failed logins: try again in {secs} s")));
    }
    let known = sh.cfg.users.iter().find(|u| u.user == user);
    if known.is_none() {
        // As slow as a wrong password: the answer time does not tell which users exist.
        crate::auth::verify_password(password, crate::auth::dummy_hash());
    }
    let Some(u) = known.filter(|u| crate::auth::verify_password(password, &u.password_hash)) else {
        sh.logins.failed(user, r.peer);
        log::warn!("failed login for user '{}' from {}", clean(&user.chars().take(64).collect::<String>()), r.peer);
        return Err(ApiError(401, "login_failed", "wrong user or password".into()));
    };
    sh.logins.succeeded(user);
    let token = crate::auth::new_token();
    let t = now();
    sh.db.session_add(&crate::auth::token_digest(&token), &u.user, t + sh.cfg.token_ttl, t)?;
    let role = u.role();
    Ok(Reply::ok(json!({"user": {"user": u.user, "roles": u.roles, "role": role.as_str(), "privileges": role.privileges()}, "token": token})))
}

fn authorize(sh: &Shared, r: &Req) -> Result<Caller, ApiError> {
    let t = r.token.as_deref().ok_or_else(|| ApiError(401, "unauthorized", "log in first: auth/login gives a token (Authorization: Bearer <token>)".into()))?;
    let digest = crate::auth::token_digest(t);
    let user = sh.db.session_user(&digest, now())?.ok_or_else(|| ApiError(401, "unauthorized", "the token is unknown, expired or logged out".into()))?;
    // The role is the config's now: a user removed from it is logged out.
    let u = sh.cfg.users.iter().find(|u| u.user == user).ok_or_else(|| ApiError(401, "unauthorized", "this user no longer exists".into()))?;
    Ok(Caller { role: u.role(), user, digest })
}

fn counts((online, offline, total): (i64, i64, i64)) -> ApiResult {
    Ok(Reply::ok(json!({"offline": offline, "online": online, "total": total})))
}

fn paged(list: Vec<Value>, total: i64, page: i64, limit: i64) -> Reply {
    Reply::ok(json!({"count": list.len(), "limit": limit, "list": list, "page": page, "total": total}))
}

fn sn_filter(q: &Query) -> Result<Option<&str>, ApiError> {
    match q.get("sn") {
        Some(s) if !valid_sn(s) => Err(ApiError::bad("'sn' is not a valid serial")),
        s => Ok(s),
    }
}

fn devices(sh: &Shared, q: &Query) -> ApiResult {
    let (page, limit) = q.paging()?;
    let f = device_filter(q.get("q"), q.get("online"), q.get("kind"))?;
    let (total, list) = match f {
        Some(f) if sn_filter(q)?.is_none() => sh.db.devices_find(page, limit, &f)?,
        _ => sh.db.devices_page(page, limit, sn_filter(q)?)?,
    };
    // Serialized from the rows: up to 1,000 devices' texts, never copied into a `Value` first.
    #[derive(serde::Serialize)]
    struct Page<'a> {
        count: usize,
        limit: i64,
        list: &'a [crate::db::devices::Device],
        page: i64,
        total: i64,
    }
    Reply::ok_ser(&Page { count: list.len(), limit, list: &list, page, total })
}

/// A device search (`q`: part of a serial, `online`: 1/0/true/false,
/// `kind`: a peripheral kind); `None` when nothing is asked.
fn device_filter(q: Option<&str>, online: Option<&str>, kind: Option<&str>) -> Result<Option<DeviceFilter>, ApiError> {
    let q = q.filter(|s| !s.is_empty());
    if q.is_some_and(|s| s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))) {
        return Err(ApiError::bad("'q' must be part of a serial (up to 64 of A-Z a-z 0-9 - _ . :)"));
    }
    let online = match online.filter(|s| !s.is_empty()) {
        None => None,
        Some("1" | "true") => Some(true),
        Some("0" | "false") => Some(false),
        Some(_) => return Err(ApiError::bad("'online' must be 1, 0, true or false")),
    };
    let kind = kind.filter(|s| !s.is_empty());
    if kind.is_some_and(|k| k.len() > 32) {
        return Err(ApiError::bad("'kind' is at most 32 characters"));
    }
    if q.is_none() && online.is_none() && kind.is_none() {
        return Ok(None);
    }
    Ok(Some(DeviceFilter { q: q.map(str::to_string), online, kind: kind.map(str::to_string) }))
}

/// A device's or the fleet's events, newest first (`sn`, `type` filters).
fn events(sh: &Shared, q: &Query) -> ApiResult {
    let (page, limit) = q.paging()?;
    let kind = q.get("type").filter(|s| !s.is_empty());
    if kind.is_some_and(|k| k.len() > 64) {
        return Err(ApiError::bad("'type' is at most 64 characters"));
    }
    let (total, list) = sh.db.events_page(page, limit, sn_filter(q)?, kind)?;
    Ok(paged(list, total, page, limit))
}

/// A (bulk) command's progress: its origin's commands counted by state, the failures listed.
fn progress(sh: &Shared, q: &Query) -> ApiResult {
    let origin = q.get("from").filter(|f| !f.is_empty() && f.len() <= 64).ok_or_else(|| ApiError::bad("'from' (the command's origin) is required"))?;
    let (by, failed) = sh.db.commands_progress(origin)?;
    let total: i64 = by.iter().sum();
    Ok(Reply::ok(json!({"from": origin, "total": total, "ready": by[0], "sent": by[1], "ok": by[2], "failed": by[3], "failures": failed})))
}

fn peripherals(sh: &Shared, q: &Query) -> ApiResult {
    let (page, limit) = q.paging()?;
    let (total, list) = sh.db.periph_page(page, limit, sn_filter(q)?)?;
    Ok(paged(list, total, page, limit))
}

fn node_name(sh: &Shared) -> String {
    format!("mosquitto@{}:{}", sh.cfg.broker.host, sh.cfg.broker.port)
}

fn brokers(sh: &Shared) -> ApiResult {
    let list = match &sh.cfg.emqx {
        Some(e) => crate::brokers::emqx::nodes(e, now()).map_err(|m| ApiError(502, "broker_api", m))?,
        None => sh.sys.nodes(&node_name(sh), now()),
    };
    let count = list.as_array().map_or(0, |a| a.len());
    Ok(Reply::ok(json!({"count": count, "list": list})))
}

fn broker_stats(sh: &Shared) -> ApiResult {
    Ok(Reply::ok(match &sh.cfg.emqx {
        Some(e) => crate::brokers::emqx::stats(e).map_err(|m| ApiError(502, "broker_api", m))?,
        None => sh.sys.stats(),
    }))
}

/// EMQX: the broker's client list. Mosquitto has none: the devices whose
/// last `state` is online (each agent's client id is its serial), marked
/// `"source": "platform"`.
fn broker_clients(sh: &Shared, q: &Query, sessions: bool) -> ApiResult {
    let (page, limit) = q.paging()?;
    if let Some(e) = &sh.cfg.emqx {
        return crate::brokers::emqx::clients(e, page, limit, sessions).map(Reply::ok).map_err(|m| ApiError(502, "broker_api", m));
    }
    let all = sh.db.devices_connected()?;
    let node = node_name(sh);
    let list: Vec<Value> = all
        .iter()
        .skip(((page - 1) * limit) as usize)
        .take(limit as usize)
        .map(|(sn, since)| {
            if sessions {
                json!({"client_id": sn, "node": node, "created_at": crate::time::datetime(*since), "clean_start": false, "source": "platform"})
            } else {
                json!({"client_id": sn, "node": node, "connected_at": crate::time::datetime(*since), "proto_name": "MQTT", "source": "platform"})
            }
        })
        .collect();
    Ok(Reply::ok(json!({"total": all.len(), "count": list.len(), "page": page, "limit": limit, "list": list, "source": "platform"})))
}

/// A callback or route URL that `hooks::url`'s policy accepts.
fn http_url(sh: &Shared, v: Option<&Value>) -> Result<String, ApiError> {
    let u = v.and_then(Value::as_str).ok_or_else(|| ApiError::bad("'url' is required"))?;
    let allow = sh.cfg.hooks.allow_list().map_err(ApiError::internal)?;
    crate::hooks::url::check(u, &allow).map_err(ApiError::bad)?;
    Ok(u.to_string())
}

fn callback_set(sh: &Shared, b: &Value) -> ApiResult {
    let kind = b.get("type").and_then(Value::as_str).filter(|t| *t == "device" || *t == "peripheral").ok_or_else(|| ApiError::bad("'type' must be \"device\" or \"peripheral\""))?;
    let url = http_url(sh, b.get("url"))?;
    let enabled = b.get("enabled").map_or(Ok(true), |v| v.as_bool().ok_or_else(|| ApiError::bad("'enabled' must be a boolean")))?;
    Ok(Reply::ok(sh.db.callback_set(kind, &url, enabled, now())?))
}

fn callback_enable(sh: &Shared, b: &Value) -> ApiResult {
    let id = b.get("id").and_then(Value::as_i64).ok_or_else(|| ApiError::bad("'id' (integer) is required"))?;
    let enabled = b.get("enabled").and_then(Value::as_bool).ok_or_else(|| ApiError::bad("'enabled' (boolean) is required"))?;
    sh.db.callback_enable(id, enabled, now())?.map(Reply::ok).ok_or_else(|| ApiError::not_found(format!("no callback {id}")))
}

fn callback_stats(sh: &Shared, kind: &str) -> ApiResult {
    let (succ, failed) = sh.db.callback_stats(kind)?;
    Ok(Reply::ok(json!({"failed": failed, "succ": succ})))
}

fn text<'a>(b: &'a Value, k: &str, max: usize) -> Result<Option<&'a str>, ApiError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s)),
        _ => Err(ApiError::bad(format!("'{k}' must be a string of at most {max} bytes"))),
    }
}

fn route_topic<'a>(sh: &Shared, b: &'a Value) -> Result<Option<&'a str>, ApiError> {
    match text(b, "topic", 256)? {
        Some(t) if !topic::valid_filter(t) => Err(ApiError::bad("'topic' must be an MQTT topic (filter), not $SYS")),
        Some(t) if topic::can_match_cmd(t, &sh.cfg.broker.prefix) => {
            Err(ApiError::bad(format!("'topic' would match the command topics {}/cmd/…: commands (and their secrets) are never routed", sh.cfg.broker.prefix)))
        }
        t => Ok(t),
    }
}

fn route_add(sh: &Shared, b: &Value) -> ApiResult {
    let t = route_topic(sh, b)?.ok_or_else(|| ApiError::bad("'topic' is required"))?;
    let name = text(b, "name", 256)?.unwrap_or("");
    let url = http_url(sh, b.get("url"))?;
    let v = sh.db.route_add(name, t, &url, now(), MAX_ROUTES)?.ok_or_else(|| ApiError(409, "too_many", format!("at most {MAX_ROUTES} routes")))?;
    sh.routes.invalidate();
    sh.subscribe_routes(&[t.to_string()]);
    Ok(Reply::ok(v))
}

fn route_update(sh: &Shared, b: &Value) -> ApiResult {
    let id = b.get("id").and_then(Value::as_i64).ok_or_else(|| ApiError::bad("'id' (integer) is required"))?;
    let t = route_topic(sh, b)?;
    let url = match b.get("url") {
        None => None,
        v => Some(http_url(sh, v)?),
    };
    let v = sh.db.route_update(id, text(b, "name", 256)?, t, url.as_deref(), now())?.ok_or_else(|| ApiError::not_found(format!("no route {id}")))?;
    sh.routes.invalidate();
    if let Some(t) = t {
        sh.subscribe_routes(&[t.to_string()]);
    }
    Ok(Reply::ok(v))
}

fn flag(b: &Value, k: &str, default: bool) -> Result<bool, ApiError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(v)) => Ok(*v),
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => Ok(n.as_u64() == Some(1)),
        _ => Err(ApiError::bad(format!("'{k}' must be a boolean"))),
    }
}

fn int(b: &Value, k: &str, default: i64, max: i64) -> Result<i64, ApiError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_i64().filter(|n| (0..=max).contains(n)).ok_or_else(|| ApiError::bad(format!("'{k}' must be an integer 0..{max}"))),
    }
}

/// The body: an object, or a JSON string holding one (the seed's note).
fn body_object(b: &Value) -> Result<Map<String, Value>, ApiError> {
    match b.get("body").or_else(|| b.get("d")) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o.clone()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str(s) {
            Ok(Value::Object(o)) => Ok(o),
            _ => Err(ApiError::bad("'body' must be a JSON object (or a string holding one)")),
        },
        Some(_) => Err(ApiError::bad("'body' must be a JSON object (or a string holding one)")),
    }
}

fn commands_post(sh: &Shared, b: &Value) -> ApiResult {
    // A bulk command may name its targets by a device search instead (`toFilter`).
    let selected: Vec<Value>;
    let to = match (b.get("to"), b.get("toFilter")) {
        (None, Some(f)) => {
            let text = |k: &str| f.get(k).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Bool(x) => Some(x.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            let filter = device_filter(text("q").as_deref(), text("online").as_deref(), text("kind").as_deref())?
                .ok_or_else(|| ApiError::bad("'toFilter' needs q, online or kind"))?;
            selected = sh.db.devices_select(&filter, MAX_TARGETS as i64 + 1)?.into_iter().map(|sn| json!({"sn": sn})).collect();
            if selected.len() > MAX_TARGETS {
                return Err(ApiError::bad(format!("'toFilter' selects more than {MAX_TARGETS} devices")));
            }
            &selected
        }
        (Some(t), None) => t.as_array().ok_or_else(|| ApiError::bad("'to' must be a list of {\"sn\": …}"))?,
        _ => return Err(ApiError::bad("give either 'to' (a list of {\"sn\": …}) or 'toFilter'")),
    };
    if to.is_empty() || to.len() > MAX_TARGETS {
        return Err(ApiError::bad(format!("'to' must name 1..{MAX_TARGETS} devices")));
    }
    let command = text(b, "command", 64)?.filter(|c| !c.is_empty()).ok_or_else(|| ApiError::bad("'command' is required"))?;
    let method = text(b, "method", 8)?.unwrap_or("");
    if !["", "get", "set"].contains(&method) {
        return Err(ApiError::bad("'method' must be \"\", \"get\" or \"set\""));
    }
    let body = Value::Object(body_object(b)?).to_string();
    if body.len() > 64 * 1024 {
        return Err(ApiError::bad("'body' over 64 KiB"));
    }
    let base = NewCommand {
        sn: String::new(),
        origin: text(b, "from", 64)?.filter(|f| !f.is_empty()).unwrap_or("iot_web_console").to_string(),
        command: command.to_string(),
        method: method.to_string(),
        body,
        detached: flag(b, "detached", false)?,
        publish_now: flag(b, "publishNow", true)?,
        max_retries: int(b, "maxRetries", 1, 100)?,
        expires: int(b, "expires", 0, 10 * 365 * 86_400)?,
    };
    let mut cmds = Vec::with_capacity(to.len());
    for t in to {
        let sn = t.get("sn").and_then(Value::as_str).filter(|s| valid_sn(s)).ok_or_else(|| ApiError::bad("every 'to' entry needs a valid 'sn'"))?;
        cmds.push(NewCommand { sn: sn.to_string(), ..base.clone() });
    }
    let created = sh.db.commands_create(&cmds, now(), sh.cfg.command_history).map_err(|e| ApiError(503, "busy", e))?;
    sh.scheduler.wake();
    Ok(Reply::ok(json!({"to": created.iter().map(|(id, sn)| json!({"id": id, "sn": sn})).collect::<Vec<_>>()})))
}

/// The seed's status object, secrets in the body masked (the stored body
/// keeps them while the command may still be sent: `crate::secrets`).
fn status(c: &crate::db::commands::Cmd) -> Value {
    let mut v = c.status_json();
    if let Some(d) = v.get_mut("d") {
        crate::secrets::mask(d);
    }
    v
}

fn id_param(q: &Query) -> Result<Option<u64>, ApiError> {
    q.get("id").map(|v| v.parse::<u64>().map_err(|_| ApiError::bad("'id' must be a command id"))).transpose()
}

fn commands_get(sh: &Shared, q: &Query) -> ApiResult {
    if let Some(id) = id_param(q)? {
        let c = sh.db.command(id)?.ok_or_else(|| ApiError::not_found(format!("no command {id}")))?;
        return Ok(Reply::ok(status(&c)));
    }
    let (page, limit) = q.paging()?;
    let (total, list) = sh.db.commands_page(page, limit, q.get("from"), sn_filter(q)?)?;
    Ok(paged(list.iter().map(status).collect(), total, page, limit))
}

fn responses(sh: &Shared, q: &Query) -> ApiResult {
    let cmd = match (id_param(q)?, q.get("from")) {
        (Some(id), _) => sh.db.command(id)?.ok_or_else(|| ApiError::not_found(format!("no command {id}")))?,
        (None, Some(from)) => sh.db.command_last_answered(from)?.ok_or_else(|| ApiError::not_found(format!("no answered command from '{from}'")))?,
        (None, None) => return Err(ApiError::bad("'id' or 'from' is required")),
    };
    match cmd.response {
        // Unchanged answers byte for byte; masked ones re-serialized.
        Some(r) => Ok(Reply::ok_raw(&crate::secrets::mask_text(&r).unwrap_or(r))),
        None => Err(ApiError(404, "no_response", format!("command {} has no answer yet (state {})", cmd.id, cmd.state))),
    }
}
