//! The simulated S20's remaining endpoints of the seed's table: Thread
//! scan/join, the joiner list, Wi-Fi start/stop/scan/saved networks, the
//! online upgrade, certificates, the log and the configuration
//! export/import. Each answers with the fields the seed lists, in
//! `result` (DEVICE-NOTES).
//!
//! Where the seed is silent, stated:
//! - scans answer a fixed neighbourhood (two Thread networks, two APs);
//! - `/otbr/join` needs the Thread network stopped? The seed does not
//!   say; the simulator accepts a join at any time, validates the
//!   credential as the seed describes (PSKd: 6–32 of `0-9A-Y` without
//!   I, O, Q, Z; NetworkKey: 32 characters plus `Channel` and `PanId`)
//!   and `/otbr/get_join_status` answers `status` 1 (joining) for a second,
//!   then 2 (joined) — the seed gives no status codes;
//! - joiners: `add_joiner` adds (EUI64 `*` by default, `Timeout` 120),
//!   status 0; `rejoin_all` sets the selected back to 0; `commit_joiner_list`
//!   marks the ready ones joined (2) with `JoinedTime`;
//! - the online upgrade: `check_online_firmware` offers one newer version;
//!   `upgrade_online_firmware` (official or custom, not both) makes
//!   `check_upgrade_status` answer 2 (upgrading) for a second, then 0
//!   (successful), and the firmware version changes; no restart is
//!   simulated (sessions stay);
//! - certificates: `upgrade_online_certificate` needs an http(s) `url`;
//!   `upgrade_local_certificate` takes no parameters (the seed's) and
//!   answers success;
//! - `/sys/get_log`: the seed lists no response field; the simulator
//!   answers `{"log": "<text>"}`;
//! - export/import: the export is built from the simulator's state in the
//!   seed's shape (`cfg_ver` 1); an import needs `cfg_ver` and applies the
//!   Thread name/channel/key/passphrase, SNTP and language it carries,
//!   then ends the sessions like a restart.

use super::state::State;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// PSKd as the seed defines it.
fn valid_pskd(p: &str) -> bool {
    (6..=32).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"IOQZ".contains(&b)))
}

/// `Ok(result)` or `Err(err_msg)`; `None` when `(method, path)` is not one of these.
pub fn route(s: &mut State, method: &str, path: &str, body: &Map<String, Value>) -> Option<Result<Value, String>> {
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Some(match (method, path) {
        ("GET", "/otbr/scan") => Ok(json!({"ScanList": [
            {"Channel": 15, "Rssi": -58, "Lqi": 3, "NetworkName": "OpenThread-5938", "ExtPanId": "dead00beef00cafe", "PanId": 0x5938},
            {"Channel": 20, "Rssi": -77, "Lqi": 1, "NetworkName": "Neighbour-1a2b", "ExtPanId": "1a2b3c4d5e6f7081", "PanId": 0x1a2b},
        ]})),
        ("POST", "/otbr/get_join_status") => match text("CredentialType").as_str() {
            "pskdType" => {
                let status = match s.extra.joining {
                    None => 0,
                    Some(t) if t.elapsed() < Duration::from_secs(1) => 1,
                    Some(_) => 2,
                };
                Ok(json!({"status": status}))
            }
            _ => Err("invalid CredentialType: only pskdType".into()),
        },
        ("POST", "/otbr/join") => {
            let ok = match text("CredentialType").as_str() {
                "pskdType" => valid_pskd(&text("PSKd")),
                "networkKeyType" => text("NetworkKey").len() == 32 && body.get("Channel").and_then(Value::as_i64).is_some_and(|c| (11..=26).contains(&c)) && body.get("PanId").and_then(Value::as_u64).is_some(),
                _ => false,
            };
            if !ok {
                return Some(Err("invalid join parameters".into()));
            }
            s.extra.joining = Some(Instant::now());
            Ok(json!({}))
        }
        ("GET", "/otbr/generate_thread_network") => {
            let hex = s.random_hex();
            s.thread.name = format!("OpenThread-{}", hex.get(..4).unwrap_or("0000"));
            s.thread.ext_panid = hex.get(..16).unwrap_or_default().to_string();
            s.thread.network_key = hex.clone();
            s.thread.panid = u64::from_str_radix(hex.get(4..8).unwrap_or("1234"), 16).unwrap_or(0x1234).clamp(1, 0xfffe);
            s.thread.started = Instant::now();
            Ok(json!({}))
        }
        ("POST", "/otbr/add_joiner") => {
            let pskd = text("PSKd");
            if !valid_pskd(&pskd) {
                return Some(Err("invalid PSKd".into()));
            }
            let eui = Some(text("EUI64")).filter(|e| !e.is_empty()).unwrap_or_else(|| "*".into());
            let timeout = body.get("Timeout").and_then(Value::as_i64).unwrap_or(120);
            s.extra.joiners.retain(|j| j["EUI64"] != eui.as_str());
            s.extra.joiners.push(json!({"EUI64": eui, "Status": 0, "PSKd": pskd, "Timeout": timeout, "AddTime": now(), "JoinedTime": 0}));
            Ok(json!({}))
        }
        ("POST", "/otbr/rejoin_all") => {
            let which = body.get("Type").and_then(Value::as_i64).unwrap_or(3);
            if !(1..=3).contains(&which) {
                return Some(Err("invalid Type".into()));
            }
            let timeout = body.get("Timeout").and_then(Value::as_i64).unwrap_or(120);
            for j in s.extra.joiners.iter_mut() {
                let st = j["Status"].as_i64().unwrap_or(0);
                if which == 3 || (which == 1 && st == 3) || (which == 2 && st == 2) {
                    j["Status"] = json!(0);
                    j["Timeout"] = json!(timeout);
                }
            }
            Ok(json!({}))
        }
        ("GET", "/otbr/get_joiner_list") => Ok(json!({"DeviceList": s.extra.joiners})),
        ("POST", "/otbr/remove_joiner_list") => {
            let Some(list) = body.get("DeviceList").and_then(Value::as_array) else { return Some(Err("DeviceList required".into())) };
            let gone: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            s.extra.joiners.retain(|j| !gone.iter().any(|g| j["EUI64"] == *g));
            Ok(json!({}))
        }
        ("GET", "/otbr/export_joiner_list") => {
            let list: Vec<Value> = s.extra.joiners.iter().map(|j| json!({"EUI64": j["EUI64"], "PSKd": j["PSKd"]})).collect();
            Ok(json!({"joiner_list_version": "1.0", "DeviceList": list}))
        }
        ("POST", "/otbr/import_joiner_list") => {
            let Some(list) = body.get("DeviceList").and_then(Value::as_array) else { return Some(Err("DeviceList required".into())) };
            let mut new = Vec::new();
            for d in list {
                let (eui, pskd) = (d["EUI64"].as_str().unwrap_or("*"), d["PSKd"].as_str().unwrap_or(""));
                if !valid_pskd(pskd) {
                    return Some(Err(format!("invalid PSKd for {eui}")));
                }
                new.push(json!({"EUI64": eui, "Status": 0, "PSKd": pskd, "Timeout": 120, "AddTime": now(), "JoinedTime": 0}));
            }
            s.extra.joiners = new;
            Ok(json!({}))
        }
        ("POST", "/otbr/commit_joiner_list") => {
            for j in s.extra.joiners.iter_mut().filter(|j| j["Status"] == 0) {
                j["Status"] = json!(2);
                j["JoinedTime"] = json!(now());
            }
            Ok(json!({}))
        }
        ("POST", "/wifi/stop") => {
            s.wifi_ssid = None;
            Ok(json!({}))
        }
        ("POST", "/wifi/start") => {
            let ssid = text("ssid");
            let auth = body.get("auth_mode").and_then(Value::as_i64).unwrap_or(3);
            if ssid.is_empty() || ssid.len() > 32 || !(0..=9).contains(&auth) || auth == 5 {
                return Some(Err("invalid ssid or auth_mode".into()));
            }
            if body.get("enable_wifi_save").and_then(Value::as_bool) == Some(true) {
                let entry = json!({"ssid": ssid, "bssid": text("bssid"), "lock_bssid": body.get("lock_bssid").and_then(Value::as_bool).unwrap_or(false),
                    "auth_mode": auth, "pwd": text("pwd"), "protocol": Some(text("protocol")).filter(|p| !p.is_empty()).unwrap_or_else(|| "dhcp".into()),
                    "ipv4": body.get("ipv4").cloned().unwrap_or_else(|| json!({"ip": "", "netmask": "", "gateway": ""}))});
                s.extra.saved_wifi.retain(|w| w["ssid"] != ssid.as_str());
                s.extra.saved_wifi.push(entry);
                // "with a maximum of 3 saved": the oldest goes.
                while s.extra.saved_wifi.len() > 3 {
                    s.extra.saved_wifi.remove(0);
                }
            }
            s.wifi_ssid = Some(ssid);
            Ok(json!({}))
        }
        ("GET", "/wifi/get_save_wifi") => Ok(json!({"list": s.extra.saved_wifi})),
        ("POST", "/wifi/delete_save_wifi") => {
            let (ssid, auth) = (text("ssid"), body.get("auth_mode").and_then(Value::as_i64));
            let before = s.extra.saved_wifi.len();
            s.extra.saved_wifi.retain(|w| !(w["ssid"] == ssid.as_str() && auth.is_none_or(|a| w["auth_mode"] == a)));
            if s.extra.saved_wifi.len() == before {
                return Some(Err("wifi not found".into()));
            }
            Ok(json!({}))
        }
        ("GET", "/wifi/scan") => Ok(json!({"list": [
            {"ssid": "office", "bssid": "94:83:c4:00:00:01", "auth_mode": 3, "rssi": -48},
            {"ssid": "guest", "bssid": "94:83:c4:00:00:02", "auth_mode": 0, "rssi": -71},
        ]})),
        ("GET", "/sys/check_online_firmware") => Ok(json!({"online_firmware_list": [{"type": "2c", "version": s.extra.online_version}]})),
        ("POST", "/sys/upgrade_online_firmware") => {
            let (official, custom) = (body.get("official").and_then(Value::as_object), body.get("custom").and_then(Value::as_object));
            let version = match (official, custom) {
                (Some(o), None) => match o.get("version").and_then(Value::as_str) {
                    Some(v) if v == s.extra.online_version => v.to_string(),
                    _ => return Some(Err("no such official firmware".into())),
                },
                (None, Some(c)) => match c.get("url").and_then(Value::as_str) {
                    Some(u) if u.starts_with("http://") || u.starts_with("https://") => format!("{}-custom", s.cfg.firmware_version),
                    _ => return Some(Err("invalid custom.url".into())),
                },
                _ => return Some(Err("one of official or custom".into())),
            };
            s.extra.upgrade = Some((Instant::now(), version));
            Ok(json!({}))
        }
        ("GET", "/sys/check_upgrade_status") => match s.extra.upgrade.clone() {
            None => Err("no upgrade in progress".into()),
            Some((t, _)) if t.elapsed() < Duration::from_secs(1) => Ok(json!({"status": 2})),
            Some((_, v)) => {
                s.cfg.firmware_version = v;
                Ok(json!({"status": 0}))
            }
        },
        ("POST", "/sys/upgrade_online_certificate") => {
            let url = text("url");
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Some(Err("invalid url".into()));
            }
            s.extra.certificates += 1;
            Ok(json!({}))
        }
        ("POST", "/sys/upgrade_local_certificate") => {
            s.extra.certificates += 1;
            Ok(json!({}))
        }
        ("GET", "/sys/get_log") => Ok(json!({"log": format!(
            "Thu Jan  1 00:00:01 1970 daemon.info otbr-agent: Thread started\nThu Jan  1 00:00:02 1970 daemon.info otbr-agent: role {}\n",
            s.role()
        )})),
        ("POST", "/sys/export_sys_config") => Ok(export(s)),
        ("POST", "/sys/import_sys_config") => {
            if body.get("cfg_ver").and_then(Value::as_i64).is_none() {
                return Some(Err("invalid cfg_ver".into()));
            }
            let otbr = body.get("otbr_cfg").cloned().unwrap_or(Value::Null);
            if let Some(n) = otbr["nwk_name"].as_str().filter(|n| (1..=16).contains(&n.len())) {
                s.thread.name = n.to_string();
            }
            if let Some(c) = otbr["channel"].as_i64().filter(|c| (11..=26).contains(c)) {
                s.thread.channel = c;
            }
            if let Some(k) = otbr["nwk_key"].as_str().filter(|k| k.len() == 32) {
                s.thread.network_key = k.to_string();
            }
            if let Some(p) = otbr["passphrase"].as_str().filter(|p| (6..=255).contains(&p.len())) {
                s.thread.passphrase = p.to_string();
            }
            if let Some(srv) = body.get("sntp_cfg").and_then(|v| v.get("sntp_srv")).and_then(Value::as_str) {
                s.sntp = srv.to_string();
            }
            if let Some(l) = body.get("ui_cfg").and_then(|v| v.get("language")).and_then(Value::as_str).filter(|l| matches!(*l, "en" | "zh-cn")) {
                s.lang = l.to_string();
            }
            s.restart();
            Ok(json!({}))
        }
        _ => return None,
    })
}

fn export(s: &State) -> Value {
    let t = &s.thread;
    json!({
        "cfg_ver": 1,
        "ui_cfg": {"language": s.lang},
        "sntp_cfg": {"sntp_srv": s.sntp, "time_zone": format!("UTC{:+}", s.timezone)},
        "otbr_cfg": {"nwk_on_off": i64::from(t.enabled), "txpower": t.tx_power, "passphrase": t.passphrase, "bbr_on_off": i64::from(t.bbr),
            "channel": t.channel, "pan_id": t.panid, "nwk_key": t.network_key, "ext_pan_id": t.ext_panid, "nwk_name": t.name},
        "wifi_cfg": {"wifi_on_off": i64::from(s.wifi_ssid.is_some()), "ssid": s.wifi_ssid.clone().unwrap_or_default(),
            "password": s.extra.saved_wifi.iter().find(|w| Some(w["ssid"].as_str().unwrap_or("")) == s.wifi_ssid.as_deref()).map(|w| w["pwd"].clone()).unwrap_or(json!("")),
            "lock_bssid": false, "bssid": "", "authmode": 3},
        "eth_failover_cfg": {"check": false, "priority": 1, "check_interval": 1, "check_success_time": 3, "check_fail_time": 3, "check_ipv4": ["8.8.8.8"], "check_ipv6": []},
        "wifi_failover_cfg": {"check": false, "priority": 2, "check_interval": 1, "check_success_time": 3, "check_fail_time": 3, "check_ipv4": ["8.8.8.8"], "check_ipv6": []},
        "eth_dhcp_cfg": {"enable": true, "static_ipv4": {"ip": "", "netmask": "", "gateway": ""}},
        "wifi_dhcp_cfg": {"enable": true, "static_ipv4": {"ip": "", "netmask": "", "gateway": ""}},
        "wifi_saved": {"list": s.extra.saved_wifi},
    })
}
