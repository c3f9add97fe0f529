//! Request handling of the simulated IAD: routing, auth, answers shaped as
//! the seed's examples.
//!
//! The seed documents only code 200 (success); the error codes here are
//! the simulator's choice, stated: 400 for a malformed body or slot, 401
//! for a missing/unknown/expired token (DEVICE-NOTES only says the answer
//! "says the token is invalid or expired"), 403 for a refused login, 404
//! for a call the simulator does not model (`sys_info/api`,
//! `sys_ocloudclient/status`, `msglog_*`). Any other `…set` call is stored
//! as given and answered by its `…get`. The network tests are in `diag`,
//! the firmware upload in `firmware`; while the IAD reboots after an
//! upload every request answers HTTP 503 (the seed does not say what a
//! rebooting IAD answers: a real one answers nothing).

use super::datetime::utc_text;
use super::state::{PortKind, State};
use crate::{SimRequest, SimResponse};
use serde_json::{json, Map, Value};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Calls the device answers without a token (after a random delay).
const WHITELIST: &[&str] = &["sys_info/device_info", "sys_info/oem_web"];

pub fn handle(state: &Mutex<State>, req: &SimRequest) -> SimResponse {
    {
        let mut s = lock(state);
        match s.down_until {
            Some(t) if Instant::now() < t => return SimResponse::text(503, "rebooting"),
            Some(_) => s.down_until = None,
            None => {}
        }
        if req.path == "/upload" {
            return upload(&mut s, req);
        }
        if let Some(name) = req.path.strip_prefix("/download/") {
            return download(&s, req, name);
        }
        if s.core_down && req.path.starts_with("/controller/") {
            return SimResponse::text(503, "core service stopped (low memory upload mode)");
        }
    }
    let Some(api) = req.path.strip_prefix("/controller/").map(str::to_string) else {
        return SimResponse::text(404, "Not Found");
    };
    if req.method != "POST" {
        return SimResponse::text(405, "Method Not Allowed");
    }
    let body: Map<String, Value> = if req.body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(Value::Object(m)) => m,
            _ => return answer(&api, 400, "invalid json", json!([])),
        }
    };
    if WHITELIST.contains(&api.as_str()) {
        let max = lock(state).cfg.whitelist_max_delay;
        std::thread::sleep(random_below(max));
    }
    let mut s = lock(state);
    *s.calls.entry(api.clone()).or_insert(0) += 1;
    if api == "auth/login" {
        return login(&mut s, &body);
    }
    if !WHITELIST.contains(&api.as_str()) {
        let token = body.get("token").and_then(Value::as_str).unwrap_or("");
        if !s.check_token(token) {
            return answer(&api, 401, "token invalid or expired", json!([]));
        }
    }
    route(&mut s, &api, &body)
}

fn login(s: &mut State, body: &Map<String, Value>) -> SimResponse {
    let user = body.get("username").and_then(Value::as_str).unwrap_or("");
    let pass = body.get("password").and_then(Value::as_str).unwrap_or("");
    let known = s.accounts.get(user).is_some_and(|md5| pass.eq_ignore_ascii_case(md5));
    if !known {
        return answer("auth/login", 403, "username or password error", json!([]));
    }
    s.login_count += 1;
    let token = s.new_token();
    answer("auth/login", 200, "", json!({"level": "admin", "token": token}))
}

fn route(s: &mut State, api: &str, body: &Map<String, Value>) -> SimResponse {
    let slot = body.get("slotnum").and_then(Value::as_i64);
    match api {
        "sys_info/oem" => answer(api, 200, "", oem(s)),
        "sys_info/performance" => {
            // Memory moves a little with every call.
            let wobble = (s.calls.values().sum::<usize>() % 13) as u64 * 64;
            answer(api, 200, "", json!({"uptime": s.uptime(), "processor_total": 391, "processor_idle": 389, "memory_total": 120608, "memory_idle": 37172 - wobble}))
        }
        "sys_info/interface" | "sys_info/cdr" if slot != Some(0) => answer(api, 400, "invalid slotnum", json!([])),
        "sys_info/interface" => answer(api, 200, "", interface(s)),
        "sys_info/cdr" => {
            let rows: Vec<Value> = if s.cfg.cdr_enabled { s.cdr.clone() } else { Vec::new() };
            let limit = body.get("limit").and_then(Value::as_str).and_then(|l| l.parse::<usize>().ok());
            let skip = limit.map(|l| rows.len().saturating_sub(l)).unwrap_or(0);
            answer(api, 200, "", Value::Array(rows.into_iter().skip(skip).collect()))
        }
        "sys_info/device_info" => answer(api, 200, "", device_info(s)),
        "sys_info/oem_web" => answer(api, 200, "", json!({"device_model": s.cfg.model, "vendor": "OpenVox", "vendor_cn": "深圳市开源通信有限公司", "style": "blue", "i18n_user": "zh en fr pt th ru", "web_name": ""})),
        "sys_info/package" => {
            let name = body.get("name").and_then(Value::as_str).unwrap_or("");
            let found = matches!(name, "icvp-snmp" | "icvp-provision");
            answer(api, 200, "", json!({"name": if found { name } else { "" }, "version": if found { "1.0-1\n" } else { "" }}))
        }
        "sys_maintain/sys_reboot" => {
            s.reboot();
            answer(api, 200, "", json!([]))
        }
        "sys_user/set" => set_user(s, api, body),
        "sys_maintain/sys_reset" => {
            s.factory_reset();
            answer(api, 200, "", json!([]))
        }
        // 4.5: a test that was never started is status 0 ("None") with
        // an empty result (the DEF column); see `diag` for the rest.
        "sys_analysis/ping_do" | "sys_analysis/tracert_do" | "sys_analysis/dns_do" | "sys_analysis/capture_do"
        | "sys_analysis/record_do" => diag_do(s, api, body),
        "sys_analysis/ping_result" | "sys_analysis/tracert_result" | "sys_analysis/dns_result" | "sys_analysis/capture_result"
        | "sys_analysis/record_result" => {
            let test = api.trim_start_matches("sys_analysis/").trim_end_matches("_result");
            answer(api, 200, "", super::diag::result(test, s.diag.get(test), s.cfg.diag_time))
        }
        "sys_maintain/upload_permission" => {
            s.upload_permission = true;
            s.upgrade_log.push("permission".into());
            if s.cfg.low_memory {
                s.core_down = true;
                s.upgrade_log.push("core down".into());
            }
            answer(api, 200, "", json!([]))
        }
        "sys_option/datetime_get" => {
            // 4.4.2: the stored settings plus the current time.
            let mut data = s.settings.get("sys_option/datetime_").cloned().unwrap_or_default();
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            data.insert("timestamp".into(), json!(now));
            data.insert("datetime_str".into(), json!(utc_text(now)));
            answer(api, 200, "", Value::Object(data))
        }
        _ => settings(s, api, body),
    }
}

/// `*_do`: start (or, capture/record, stop) a network test.
fn diag_do(s: &mut State, api: &str, body: &Map<String, Value>) -> SimResponse {
    let test = api.trim_start_matches("sys_analysis/").trim_end_matches("_do").to_string();
    let Some(file) = super::diag::file_name(&test) else { return answer(api, 404, "api not found", json!([])) };
    match super::diag::start(&test, body) {
        Err(e) => answer(api, 400, &e, json!([])),
        Ok(Some(content)) => {
            let run = super::diag::Run { started: Instant::now(), stopped: None, file: file.to_string(), content };
            s.diag.insert(test, run);
            answer(api, 200, "", json!([]))
        }
        Ok(None) => {
            if let Some(run) = s.diag.get_mut(&test) {
                run.stopped.get_or_insert_with(Instant::now);
            }
            answer(api, 200, "", json!([]))
        }
    }
}

/// `GET /download/<file>`: a finished test's result file.
fn download(s: &State, req: &SimRequest, name: &str) -> SimResponse {
    if req.method != "GET" {
        return SimResponse::text(405, "Method Not Allowed");
    }
    let ready = s.diag.iter().find(|(test, run)| run.file == name && super::diag::result(test, Some(run), s.cfg.diag_time)["result"] != "");
    match ready {
        Some((_, run)) => SimResponse { status: 200, content_type: "application/octet-stream".into(), body: run.content.clone() },
        None => SimResponse::text(404, "Not Found"),
    }
}

/// `POST /upload` (see `firmware`).
fn upload(s: &mut State, req: &SimRequest) -> SimResponse {
    let reply = |status: u16, code: i64, msg: &str| SimResponse::json_status(status, &json!({"msg": msg, "code": code}));
    if req.method != "POST" {
        return SimResponse::text(405, "Method Not Allowed");
    }
    if !s.upload_permission {
        s.upgrade_log.push("refused: no permission".into());
        return reply(403, 403, "no upload permission: call sys_maintain/upload_permission first");
    }
    let Some(boundary) = req.header("content-type").and_then(super::firmware::boundary) else {
        s.upgrade_log.push("refused: not multipart".into());
        return reply(400, 400, "multipart/form-data required");
    };
    let Some(parts) = super::firmware::parse(&req.body, &boundary) else {
        s.upgrade_log.push("refused: malformed multipart".into());
        return reply(400, 400, "malformed multipart body");
    };
    let field = |n: &str| parts.iter().find(|p| p.name == n);
    let text = |n: &str| field(n).map(|p| String::from_utf8_lossy(&p.data).into_owned());
    if text("type").as_deref() != Some("controller") {
        s.upgrade_log.push("refused: type".into());
        return reply(400, 400, "type must be controller");
    }
    let keep = text("keep_sys").unwrap_or_else(|| "no".into());
    if keep != "yes" && keep != "no" {
        return reply(400, 400, "keep_sys must be yes or no");
    }
    let Some(binary) = field("binary").filter(|p| !p.data.is_empty()) else {
        s.upgrade_log.push("refused: no binary".into());
        return reply(400, 400, "binary file required");
    };
    if binary.data.len() > s.cfg.max_upload_bytes {
        s.upgrade_log.push("refused: too large".into());
        return reply(413, 413, "file exceeds the maximum upload size");
    }
    let version = format!("r0-{}", crate::wire::sha256_hex(&binary.data).get(..8).unwrap_or_default());
    s.upgrade_log.push(format!("upload {} keep_sys={keep}", binary.data.len()));
    s.upload_permission = false;
    if s.core_down {
        s.core_down = false;
        s.upgrade_log.push("core up".into());
    }
    s.upgrade_log.push("rebooting".into());
    s.cfg.firmware_version = version;
    if keep == "no" {
        s.settings = super::state::default_settings();
    }
    s.reboot();
    s.down_until = Some(Instant::now() + s.cfg.reboot_time);
    reply(200, 200, "Upgrading Firmware")
}

/// 4.3.1 `sys_user/set`: the simulator's sessions are all admin, so "the
/// original password can be filled in arbitrarily"; the MD5 fields must be
/// 4–32 characters, the confirmation equal, the new name free. Afterwards
/// the original user's logins are invalidated (every token: the seed does
/// not say whose tokens belong to whom; the simulator keeps no owner).
fn set_user(s: &mut State, api: &str, body: &Map<String, Value>) -> SimResponse {
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    let (user, new_user, new_pw) = (field("username"), field("new_username"), field("new_password"));
    let sized = |v: &str| (4..=32).contains(&v.len());
    if ![user, field("password"), new_user, new_pw, field("new_password_confirm")].iter().all(|v| sized(v)) {
        return answer(api, 400, "invalid parameter: 4-32 characters", json!([]));
    }
    if new_pw != field("new_password_confirm") {
        return answer(api, 400, "password confirmation does not match", json!([]));
    }
    if !s.accounts.contains_key(user) {
        return answer(api, 400, "user does not exist", json!([]));
    }
    if new_user != user && s.accounts.contains_key(new_user) {
        return answer(api, 400, "user already exists", json!([]));
    }
    if !s.ignore_password_change {
        s.accounts.remove(user);
        s.accounts.insert(new_user.to_string(), new_pw.to_ascii_lowercase());
        s.tokens.clear();
    }
    answer(api, 200, "", json!([]))
}

/// `<class>/<x>set` stores its body, `<class>/<x>get` answers it.
fn settings(s: &mut State, api: &str, body: &Map<String, Value>) -> SimResponse {
    if let Some(prefix) = api.strip_suffix("set") {
        let mut stored = s.settings.get(prefix).cloned().unwrap_or_default();
        for (k, v) in body.iter().filter(|(k, _)| k.as_str() != "token") {
            stored.insert(k.clone(), v.clone());
        }
        s.settings.insert(prefix.to_string(), stored);
        return answer(api, 200, "", json!([]));
    }
    if let Some(prefix) = api.strip_suffix("get") {
        if let Some(stored) = s.settings.get(prefix) {
            return answer(api, 200, "", Value::Object(stored.clone()));
        }
    }
    answer(api, 404, "api not found", json!([]))
}

fn oem(s: &State) -> Value {
    let fxs = s.ports.iter().any(|p| p.kind == PortKind::Fxs);
    let fxo = s.ports.iter().any(|p| p.kind == PortKind::Fxo);
    json!({
        "vendor": "OpenVox", "website": "www.openvox.cn", "product": "OpenVox IAD Series", "region": "zh", "language": "cn",
        "model2": s.cfg.model, "sn": s.cfg.serial, "address": "", "tel": "", "fax": "", "email": "",
        "maxslots": 1, "interface": "analog", "maxspans": 1, "maxchannels": s.ports.len(),
        "firmware_model": "iac-v14", "firmware_version": s.cfg.firmware_version, "platform": "combined", "maxprofiles": 4,
        "fxs_enable": if fxs { "yes" } else { "no" }, "fxo_enable": if fxo { "yes" } else { "no" },
        "maxacls": 16, "maxlocalswitchlist": 64, "maxdigitmaprule": 64, "maxcallrouterule": 64, "maxroutelist": 64,
        "maxfirewallrules": 64, "maxdomainparselist": 0, "fxo_groupstart": 4, "fxo_groupmax": 60, "mac_str": s.cfg.mac,
        "extraface": "", "maxsiptrunk": 6, "product_id": "2", "vendor_cn": "深圳市开源通信有限公司", "style": "blue",
    })
}

fn device_info(s: &State) -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    json!({
        "device_sn": s.cfg.serial, "product": "OpenVox IAD Series", "product_id": "2", "vendor": "OpenVox",
        "website": "www.openvox.cn", "region": "zh", "language": "cn", "platform": "combined",
        "device_model": s.cfg.model, "firmware_model": "iac-v14", "firmware_version": s.cfg.firmware_version,
        "mac_str": s.cfg.mac.to_ascii_lowercase(), "device_ip": "127.0.0.1", "interface": "analog",
        "os_time": now.to_string(), "uptime": s.uptime().to_string(), "use_cpu": "5%", "use_memory": "70%", "use_storage": "4%",
    })
}

/// `sys_info/interface`: the board's port documents as JSON strings.
fn interface(s: &State) -> Value {
    let (mut types, mut slic, mut status, mut hooks, mut volts, mut sip) = (Map::new(), Map::new(), Map::new(), Map::new(), Map::new(), Map::new());
    for (i, p) in s.ports.iter().enumerate() {
        let ch = (i + 1).to_string();
        let in_use = if p.in_use { " (In use)" } else { "" };
        match p.kind {
            PortKind::Fxo => {
                types.insert(ch.clone(), json!("FXO"));
                slic.insert(ch.clone(), json!("O0"));
                let red = if p.line_connected { "" } else { " RED" };
                status.insert(ch.clone(), json!(format!("FXSLS{in_use}{red} (EC: G168V2 - INACTIVE)")));
                volts.insert(ch.clone(), json!(if p.line_connected { "48" } else { "1" }));
            }
            PortKind::Fxs => {
                types.insert(ch.clone(), json!("FXS"));
                slic.insert(ch.clone(), json!("S1"));
                status.insert(ch.clone(), json!(format!("FXOLS{in_use} (EC: G168V2 - INACTIVE)")));
                hooks.insert(ch.clone(), json!(if p.offhook { "Offhook" } else { "Onhook" }));
                volts.insert(ch.clone(), json!(if p.offhook { "8" } else { "48" }));
            }
        }
        if let Some(reg) = p.sip_registered {
            let text = if reg { "Registered (exp. 3600s)" } else { "Rejected (exp. 11597s ago)" };
            sip.insert(format!("{ch}reg"), json!(text));
        }
    }
    let n = s.ports.len().to_string();
    let scan = json!({"1": {"basechan": "1", "totchans": n, "type": "analog", "port": types, "slic": slic}});
    let uptime = s.uptime();
    json!({
        "uptime": uptime,
        "interface": [{
            "slotnum": 0, "uptime": uptime.saturating_sub(1), "model": "iac-v14", "version": s.cfg.firmware_version,
            "product_id": "2", "interface": "analog",
            "dahdi_scan": scan.to_string(),
            "dahdi_port": json!({"1": status}).to_string(),
            "sip_register": Value::Object(sip).to_string(),
            "dahdi_analog": Value::Object(hooks).to_string(),
            "macaddr": "",
            "voltage": Value::Object(volts).to_string(),
            "dahdi_digital": [],
        }],
        "voip_port": {"sip_start": 30000, "sip_end": 30071, "sip_channel_start": 30000, "sip_group_start": 30008,
            "sip_other_start": 30068, "sip_anonymous": 30068, "rtp_start": 10000, "rtp_end": 10023, "udptl_start": 10024, "udptl_end": 10031},
    })
}

fn answer(api: &str, code: i64, msg: &str, data: Value) -> SimResponse {
    SimResponse::json(&json!({"uri": api, "msg": msg, "code": code, "data": data}))
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A delay in `[0, max)` from the clock's nanoseconds (no RNG dependency).
fn random_below(max: Duration) -> Duration {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let ms = max.as_millis() as u64;
    if ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(u64::from(nanos) % ms)
    }
}
