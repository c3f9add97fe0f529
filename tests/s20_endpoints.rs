//! Issue 21 item 10: every endpoint of the S20 document reached once
//! through `s20 get|set`, with the method the document gives, each
//! answered with success by the simulator; credentials in answers masked.

use dma_agent::devices::s20::S20Client;
use dma_agent::devices::{DeviceConfig, DeviceKind, LanDevice};
use dma_sims::s20::{S20Sim, S20SimConfig};
use serde_json::{json, Value};
use std::time::Duration;

/// `(method in the document, path, agent method, data)`, in an order that
/// works on one device (destructive calls last).
fn calls() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let none = json!({});
    vec![
        ("GET", "/ui/check_initialized", "get", none.clone()),
        ("GET", "/otbr/get_status", "get", none.clone()),
        ("GET", "/otbr/scan", "get", none.clone()),
        ("POST", "/otbr/join", "set", json!({"CredentialType": "pskdType", "PSKd": "J01NME"})),
        ("POST", "/otbr/get_join_status", "get", json!({"CredentialType": "pskdType"})),
        ("POST", "/otbr/set_config", "set", json!({"NetworkName": "Plant-7", "Channel": 20})),
        ("POST", "/otbr/stop", "set", none.clone()),
        ("POST", "/otbr/start", "set", none.clone()),
        ("GET", "/otbr/generate_thread_network", "get", none.clone()),
        ("POST", "/otbr/set_txpower", "set", json!({"TXPower": 10})),
        ("POST", "/otbr/set_commissioning", "set", json!({"Enable": true})),
        ("GET", "/otbr/get_commissioning_status", "get", none.clone()),
        ("POST", "/otbr/add_joiner", "set", json!({"PSKd": "ABCDEF12", "EUI64": "0011223344556677", "Timeout": 60})),
        ("POST", "/otbr/rejoin_all", "set", json!({"Type": 3, "Timeout": 60})),
        ("GET", "/otbr/get_joiner_list", "get", none.clone()),
        ("GET", "/otbr/export_joiner_list", "get", none.clone()),
        ("POST", "/otbr/import_joiner_list", "set", json!({"joiner_list_version": "1.0", "DeviceList": [{"EUI64": "*", "PSKd": "PSKD42"}]})),
        ("POST", "/otbr/commit_joiner_list", "set", json!({"Timeout": 60})),
        ("POST", "/otbr/remove_joiner_list", "set", json!({"DeviceList": ["*"]})),
        ("GET", "/otbr/get_bbr_status", "get", none.clone()),
        ("POST", "/otbr/disable_bbr", "set", none.clone()),
        ("POST", "/otbr/enable_bbr", "set", none.clone()),
        ("GET", "/eth/get_status", "get", none.clone()),
        ("GET", "/eth/get_config", "get", none.clone()),
        ("POST", "/eth/set_config", "set", json!({"protocol": "dhcp"})),
        ("GET", "/wifi/scan", "get", none.clone()),
        ("POST", "/wifi/start", "set", json!({"ssid": "office", "pwd": "wifi-secret-99", "auth_mode": 3, "enable_wifi_save": true, "protocol": "dhcp"})),
        ("GET", "/wifi/get_status", "get", none.clone()),
        ("GET", "/wifi/get_save_wifi", "get", none.clone()),
        ("POST", "/wifi/delete_save_wifi", "set", json!({"ssid": "office", "auth_mode": 3})),
        ("POST", "/wifi/stop", "set", none.clone()),
        ("POST", "/wifi/set_reconn_to_saved_wifi", "set", json!({"enable": true})),
        ("GET", "/wifi/get_reconn_to_saved_wifi", "get", none.clone()),
        ("GET", "/wan_failover/get_config", "get", none.clone()),
        ("POST", "/wan_failover/set_config", "set", json!({"eth": {"check": true, "priority": 1}, "wifi": {"check": false, "priority": 2}})),
        ("GET", "/sys/get_info", "get", none.clone()),
        ("GET", "/sys/get_status", "get", none.clone()),
        ("GET", "/sys/get_time_config", "get", none.clone()),
        ("POST", "/sys/set_time_config", "set", json!({"timezone": "UTC+1", "sntp": "pool.ntp.org"})),
        ("GET", "/sys/check_current_firmware", "get", none.clone()),
        ("GET", "/sys/check_online_firmware", "get", none.clone()),
        ("POST", "/sys/upgrade_online_firmware", "set", json!({"official": {"type": "2c", "version": "1.3.0-release2", "save_config": true}})),
        ("GET", "/sys/check_upgrade_status", "get", none.clone()),
        ("POST", "/sys/upgrade_online_certificate", "set", json!({"url": "http://127.0.0.1/ca.pem"})),
        ("POST", "/sys/upgrade_local_certificate", "set", none.clone()),
        ("GET", "/sys/get_log", "get", none.clone()),
        ("POST", "/sys/export_sys_config", "get", none.clone()),
        ("POST", "/sys/import_sys_config", "set", json!({"cfg_ver": 1, "otbr_cfg": {"nwk_name": "Imported", "channel": 21}})),
        ("POST", "/sys/set_admin_pwd", "set", json!({"new_pwd": "rotated-pass-1"})),
        ("POST", "/sys/restart", "set", none.clone()),
        ("POST", "/sys/reset", "set", none.clone()),
        ("POST", "/ui/set_init", "set", json!({"lang": "en"})),
    ]
}

#[test]
fn every_documented_endpoint_is_reachable_with_its_method() {
    let sim = S20Sim::start("127.0.0.1:0", S20SimConfig { attach_time: Duration::ZERO, ..S20SimConfig::default() }).unwrap();
    let mut c = S20Client::new(&DeviceConfig {
        name: "s20".into(),
        kind: DeviceKind::S20,
        address: sim.url(),
        username: "root".into(),
        password: "goodlife123".into(),
        poll_interval: Duration::from_secs(60),
        timeout: Duration::from_millis(800),
        enabled: true,
        options: Default::default(),
    })
    .unwrap();
    let before = sim.firmware_version();
    for (_, path, method, data) in calls() {
        if path == "/sys/check_upgrade_status" {
            std::thread::sleep(Duration::from_millis(1100));
        }
        if path == "/otbr/get_join_status" {
            std::thread::sleep(Duration::from_millis(1100));
        }
        let r = c.command(method, &json!({"api": path, "data": data})).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(r["code"], 0, "{path}: {r}");
        match path {
            "/otbr/scan" => assert_eq!(r["result"]["ScanList"][0]["Channel"], 15),
            "/otbr/get_join_status" => assert_eq!(r["result"]["status"], 2, "joined"),
            "/otbr/get_joiner_list" => {
                assert_eq!(r["result"]["DeviceList"][0]["EUI64"], "0011223344556677");
                assert_eq!(r["result"]["DeviceList"][0]["PSKd"], "******", "a joiner credential is masked");
            }
            "/wifi/get_save_wifi" => {
                assert_eq!(r["result"]["list"][0]["ssid"], "office");
                assert_eq!(r["result"]["list"][0]["pwd"], "******");
            }
            "/sys/check_upgrade_status" => assert_eq!(r["result"]["status"], 0),
            "/sys/get_log" => assert!(r["result"]["log"].as_str().unwrap().contains("otbr-agent")),
            "/sys/export_sys_config" => {
                assert!(r["result"]["otbr_cfg"]["nwk_name"].as_str().is_some_and(|n| n.starts_with("OpenThread-")), "{r}");
                assert_eq!(r["result"]["otbr_cfg"]["nwk_key"], "******");
                assert_eq!(r["result"]["otbr_cfg"]["passphrase"], "******");
                assert!(!r.to_string().contains("wifi-secret-99"));
            }
            "/otbr/get_status" => assert_eq!(r["result"]["Network"]["NetworkKey"], "******"),
            _ => {}
        }
    }
    assert_eq!(sim.firmware_version(), "1.3.0-release2", "the online upgrade took (was {before})");
    let reached = sim.reached();
    for (doc_method, path, _, _) in calls() {
        assert!(reached.iter().any(|(m, p)| m == doc_method && p == path), "{doc_method} {path} not reached with its documented method");
    }
    // The document's table: 52 rows besides /ui/challenge, /ui/login and
    // /ui/logout, which are the agent's own session (reached by every login).
    assert_eq!(calls().len(), 52, "the document's table, every row");
    assert!(reached.iter().any(|(m, p)| m == "GET" && p == "/ui/challenge") && reached.iter().any(|(m, p)| m == "POST" && p == "/ui/login"));
}
