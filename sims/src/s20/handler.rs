//! Request handling of the simulated S20: routing, the login handshake,
//! the `Token` check and answers shaped as the seed's, wrapped in `result`.

use super::state::State;
use crate::{SimRequest, SimResponse};
use base64::prelude::{Engine, BASE64_STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn handle(state: &Mutex<State>, req: &SimRequest) -> SimResponse {
    let resp = answer(state, req);
    let succeeded = resp.status == 200 && serde_json::from_slice::<Value>(&resp.body).is_ok_and(|v| v["code"] == 0);
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    if succeeded && s.reached.len() < 256 {
        s.reached.insert((req.method.clone(), req.path.clone()));
    }
    resp
}

fn answer(state: &Mutex<State>, req: &SimRequest) -> SimResponse {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.requests += 1;
    let body: Map<String, Value> = if req.method != "POST" || req.body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(Value::Object(m)) => m,
            _ => return fail(400, "invalid json"),
        }
    };
    let path = req.path.as_str();
    match (req.method.as_str(), path) {
        ("GET", "/ui/challenge") => {
            let nonce = s.new_challenge();
            return ok(json!({"alg": 66, "salt": s.cfg.salt, "nonce": nonce}));
        }
        ("POST", "/ui/login") => return login(&mut s, &body),
        ("GET", "/ui/check_initialized") => {
            return ok(json!({"firmware_category": "2c", "firmware_version": s.cfg.firmware_version, "hostname": "GL-S20",
                "initialized": s.initialized(), "mac": s.cfg.eth_mac, "model": s.cfg.model}))
        }
        ("POST", "/ui/set_init") => return set_init(&mut s, &body),
        _ => {}
    }
    let sid = req.header("Token").unwrap_or("");
    if !s.check_sid(sid) {
        return fail(401, "invalid token");
    }
    route(&mut s, req.method.as_str(), path, &body)
}

/// `/ui/set_init` (seed: `lang` "zh-cn"|"en", `password`). The seed does not
/// say whether it needs a sid nor what an initialised device answers: an
/// uninitialised S20 has no password to log in with, so the simulator takes
/// it without one, and refuses it once initialised (otherwise anyone on the
/// LAN could set the password).
fn set_init(s: &mut State, body: &Map<String, Value>) -> SimResponse {
    if s.initialized() {
        return fail(200, "device already initialized");
    }
    let lang = body.get("lang").and_then(Value::as_str).unwrap_or("");
    if !matches!(lang, "zh-cn" | "en") {
        return fail(200, "invalid lang");
    }
    let Some(password) = body.get("password").and_then(Value::as_str).filter(|p| !p.is_empty()) else {
        return fail(200, "invalid password");
    };
    s.password = Some(password.to_string());
    s.lang = lang.to_string();
    ok(json!({}))
}

fn login(s: &mut State, body: &Map<String, Value>) -> SimResponse {
    let user = body.get("username").and_then(Value::as_str).unwrap_or("");
    let hash = body.get("hash").and_then(Value::as_str).unwrap_or("");
    // The seed is silent on logins before /ui/set_init; there is no password
    // to check against, so they are refused.
    let Some(password) = s.password.clone() else {
        return fail(200, "device not initialized");
    };
    let found = s.challenges.iter().position(|(nonce, _)| expected_hash(&password, &s.cfg.salt, nonce) == hash);
    let Some(i) = found.filter(|_| user == "root") else {
        return fail(200, "invalid username or password");
    };
    let (_, issued) = s.challenges.remove(i);
    if issued.elapsed() > s.cfg.nonce_ttl {
        return fail(200, "nonce expired, request a new challenge");
    }
    s.login_count += 1;
    let sid = BASE64_STANDARD.encode(&s.random_hex().as_bytes()[..24]);
    s.sessions.insert(sid.clone(), std::time::Instant::now());
    ok(json!({"sid": sid}))
}

/// The `hash` the device expects (seed "Login and Use Steps"): MD5 of
/// `root:` + base64(HMAC-SHA256(key = salt, message = password)) + `:` + nonce.
pub fn expected_hash(password: &str, salt: &str, nonce: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(salt.as_bytes()) else { return String::new() };
    mac.update(password.as_bytes());
    let b64 = BASE64_STANDARD.encode(mac.finalize().into_bytes());
    crate::wire::md5_hex(format!("root:{b64}:{nonce}"))
}

fn route(s: &mut State, method: &str, path: &str, body: &Map<String, Value>) -> SimResponse {
    match super::extra::route(s, method, path, body) {
        Some(Ok(result)) => return ok(result),
        Some(Err(msg)) => return fail(200, &msg),
        None => {}
    }
    match (method, path) {
        ("POST", "/ui/logout") => {
            s.sessions.clear();
            ok(json!({}))
        }
        ("GET", "/sys/get_status") => {
            let wobble = (s.requests % 16) as i64 * 1024;
            ok(json!({"memory_total": 8_388_608, "memory_free": 5_242_880 - wobble, "ble_mac": "94:83:C4:A0:B1:C4",
                "wifi_mac": "94:83:C4:A0:B1:C3", "eth_mac": s.cfg.eth_mac, "model": s.cfg.model, "sn": s.cfg.serial}))
        }
        ("GET", "/sys/get_info") => ok(json!({
            "wan_status": 2,
            "thread_nwk_status": i64::from(s.thread.enabled),
            "thread_commissioner_status": i64::from(s.thread.commissioner),
        })),
        ("GET", "/sys/check_current_firmware") => ok(json!({"current_firmware_type": "2c", "current_firmware_version": s.cfg.firmware_version})),
        ("GET", "/sys/get_time_config") => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
            ok(json!({"sntp": s.sntp, "timezone": s.timezone, "localtime": now + s.timezone * 3600}))
        }
        ("POST", "/sys/set_time_config") => {
            let tz = body.get("timezone").and_then(Value::as_str).and_then(|t| t.strip_prefix("UTC")).and_then(|t| t.parse::<i64>().ok());
            match tz {
                Some(tz) if (-12..=14).contains(&tz) => {
                    s.timezone = tz;
                    if let Some(sntp) = body.get("sntp").and_then(Value::as_str) {
                        s.sntp = sntp.to_string();
                    }
                    ok(json!({}))
                }
                _ => fail(200, "invalid timezone"),
            }
        }
        ("POST", "/sys/restart") => {
            s.restart();
            ok(json!({}))
        }
        ("POST", "/sys/reset") => {
            s.factory_reset();
            ok(json!({}))
        }
        ("POST", "/sys/set_admin_pwd") => {
            let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
            if field("username") != "root" || s.password.as_deref() != Some(field("old_pwd")) {
                return fail(200, "invalid username or old password");
            }
            if field("new_pwd").is_empty() {
                return fail(200, "invalid new password");
            }
            s.password = Some(field("new_pwd").to_string());
            // The seed does not say; a new password ends the sessions, as on GL.iNet routers.
            s.sessions.clear();
            ok(json!({}))
        }
        ("GET", "/otbr/get_status") => ok(otbr_status(s)),
        ("POST", "/otbr/start") => {
            s.set_thread(true);
            ok(json!({}))
        }
        ("POST", "/otbr/stop") => {
            s.set_thread(false);
            ok(json!({}))
        }
        ("POST", "/otbr/set_config") => set_thread_config(s, body),
        ("POST", "/otbr/set_txpower") => match body.get("TXPower").and_then(Value::as_i64) {
            Some(p) if (-24..=20).contains(&p) => {
                s.thread.tx_power = p;
                ok(json!({}))
            }
            _ => fail(200, "invalid TXPower"),
        },
        ("GET", "/otbr/get_commissioning_status") => ok(json!({"State": i64::from(s.thread.commissioner)})),
        ("POST", "/otbr/set_commissioning") => match body.get("Enable").and_then(Value::as_bool) {
            Some(on) => {
                s.thread.commissioner = on;
                ok(json!({}))
            }
            None => fail(200, "invalid Enable"),
        },
        ("GET", "/otbr/get_bbr_status") => ok(json!({"State": i64::from(s.thread.bbr)})),
        ("POST", "/otbr/enable_bbr") | ("POST", "/otbr/disable_bbr") => {
            s.thread.bbr = path.ends_with("enable_bbr");
            ok(json!({}))
        }
        ("GET", "/eth/get_status") => {
            let cfg = s.stored.get("/eth/get_config").cloned().unwrap_or_default();
            let static_ip = cfg.get("protocol").and_then(Value::as_str) == Some("static");
            let ip = if static_ip { cfg["ipv4"]["ip"].clone() } else { json!("192.0.2.20") };
            let gw = if static_ip { cfg["ipv4"]["gateway"].clone() } else { json!("192.0.2.254") };
            ok(json!({"status": 1, "protocol": cfg.get("protocol").cloned().unwrap_or(json!("dhcp")),
                "ipv4": {"ip": ip, "gateway": gw}, "ipv6": {"ip": "fe80::9683:c4ff:fea0:b1c2"}}))
        }
        ("GET", "/wifi/get_status") => match &s.wifi_ssid {
            Some(ssid) => ok(json!({"status": 2, "fail_msg": "", "ssid": ssid, "bssid": "94:83:c4:00:00:01",
                "ipv4": {"ip": "198.51.100.30", "gateway": "198.51.100.1"}, "ipv6": {"ip": ""}})),
            None => ok(json!({"status": 0, "fail_msg": "", "ssid": "", "bssid": ""})),
        },
        ("POST", p) if p.contains("/set_") => {
            let get = p.replacen("/set_", "/get_", 1);
            if !s.stored.contains_key(&get) {
                return fail(404, "not found");
            }
            s.stored.insert(get, body.clone());
            ok(json!({}))
        }
        ("GET", p) => match s.stored.get(p) {
            Some(v) => ok(Value::Object(v.clone())),
            None => fail(404, "not found"),
        },
        _ => fail(405, "method not allowed"),
    }
}

fn otbr_status(s: &State) -> Value {
    let t = &s.thread;
    let ipv6 = if t.enabled { json!(["fd11:22::1", "fe80::1"]) } else { json!([]) };
    json!({
        "OpenThreadVersionAPI": "1.3", "OTBRVersion": "GL-OTBR-1.2.0", "ThreadVersion": "v1.3",
        "Network": {
            "Channel": t.channel, "ExtPanId": t.ext_panid, "NetworkKey": t.network_key, "NetworkName": t.name,
            "PanId": format!("0x{:04x}", t.panid), "PSKc": "445f2b5ca6f2a93a55ce570a70efeecb", "Passphrase": t.passphrase,
            "MeshLocalPrefix": "fd11:22::/64", "OnMeshPrefix": "fd00:db8::/64", "IPv6": ipv6,
            "ActiveDataset": format!("0e080000000000010000000300000f35060004001fffe00208{}0708fd11002200000000051000112233", t.ext_panid),
        },
        "RCP": {"State": s.role(), "RCPVersion": "OPENTHREAD/thread-reference-20230119", "ExtAddress": "5a7c3e4f6b2d1a09",
            "EUI64": "9483c4fffea0b1c5", "TXPower": t.tx_power, "Rloc16": if s.role() == 4 { 0x2c00 } else { 0xfffe }},
    })
}

fn set_thread_config(s: &mut State, body: &Map<String, Value>) -> SimResponse {
    let name = body.get("NetworkName").and_then(Value::as_str);
    if let Some(n) = name {
        if n.is_empty() || n.len() > 16 {
            return fail(200, "invalid NetworkName");
        }
    }
    let channel = body.get("Channel").and_then(Value::as_i64);
    if channel.is_some_and(|c| !(11..=26).contains(&c)) {
        return fail(200, "invalid Channel");
    }
    let panid = body.get("PanId").and_then(Value::as_u64);
    if panid.is_some_and(|p| p == 0 || p >= 0xffff) {
        return fail(200, "invalid PanId");
    }
    let t = &mut s.thread;
    if let Some(n) = name {
        t.name = n.to_string();
    }
    if let Some(c) = channel {
        t.channel = c;
    }
    if let Some(p) = panid {
        t.panid = p;
    }
    if let Some(x) = body.get("ExtPanId").and_then(Value::as_str) {
        t.ext_panid = x.to_string();
    }
    if let Some(k) = body.get("NetworkKey").and_then(Value::as_str) {
        t.network_key = k.to_string();
    }
    if let Some(p) = body.get("Passphrase").and_then(Value::as_str) {
        t.passphrase = p.to_string();
    }
    // A new dataset means attaching again.
    t.started = std::time::Instant::now();
    ok(json!({}))
}

fn ok(result: Value) -> SimResponse {
    SimResponse::json(&json!({"code": 0, "result": result}))
}

/// An error answer: `code` -1 with `err_msg`, under the given HTTP status.
/// The seed only says "0 means success" and that `err_msg` exists on
/// error; -1, and 401 for a dead sid, are the simulator's choice.
fn fail(status: u16, msg: &str) -> SimResponse {
    SimResponse::json_status(status, &json!({"code": -1, "err_msg": msg}))
}
