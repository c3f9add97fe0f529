//! The S20 client against the S20 simulator over real HTTP on 127.0.0.1.

#[path = "common/lan_faults.rs"]
mod lan_faults;

use dma_agent::devices::s20::auth::login_hash;
use dma_agent::devices::s20::S20Client;
use dma_agent::devices::{DeviceConfig, DeviceError, DeviceKind, LanDevice};
use dma_sims::s20::{S20Sim, S20SimConfig};
use serde_json::{json, Value};
use std::time::Duration;

fn sim_with(cfg: S20SimConfig) -> S20Sim {
    S20Sim::start("127.0.0.1:0", cfg).expect("sim starts")
}

fn sim() -> S20Sim {
    sim_with(S20SimConfig { attach_time: Duration::ZERO, ..S20SimConfig::default() })
}

fn config(url: &str, password: &str) -> DeviceConfig {
    DeviceConfig {
        name: "s20".into(),
        kind: DeviceKind::S20,
        address: url.into(),
        username: "root".into(),
        password: password.into(),
        poll_interval: Duration::from_secs(60),
        timeout: Duration::from_millis(400),
        enabled: true,
        options: Default::default(),
    }
}

fn client(sim: &S20Sim) -> S20Client {
    S20Client::new(&config(&sim.url(), "goodlife123")).expect("client")
}

/// DEVICE-NOTES' vector, checked against the client and, separately,
/// against the simulator's own implementation (neither uses the other's code).
#[test]
fn login_vector_from_device_notes() {
    let (pw, salt, nonce, want) = ("goodlife123", "ZmVhMjk5", "N2E1NDAwNjIzZGMzY2QxYjQyY2VlZTEx", "a12adb1f585455d809ff3ca5a31935ca");
    assert_eq!(login_hash(pw, salt, nonce), want, "client");
    assert_eq!(dma_sims::s20::login_hash(pw, salt, nonce), want, "simulator");
    assert_eq!(dma_agent::devices::s20::auth::password_hmac(pw, salt), "6t3zc/0Bysrm/76WHRMMgCNXw12PTf+YtS6tSQnSqMk=");
}

/// Issue 10 item 9: after a remote factory reset the S20 is uninitialised
/// (no password: the agent cannot log in); `get /ui/check_initialized`
/// says so and `set /ui/set_init` brings it back with the agent's password.
#[test]
fn factory_reset_then_set_init_brings_it_back() {
    let sim = sim();
    let mut c = client(&sim);
    c.poll().expect("poll");
    assert_eq!(c.command("get", &json!({"api": "/ui/check_initialized"})).unwrap()["result"]["initialized"], true);
    // set_init on an initialised device: the device refuses, nothing changes.
    let e = c.command("set", &json!({"api": "/ui/set_init", "data": {"password": "other-pass"}})).unwrap_err();
    assert!(matches!(e, DeviceError::Device { .. }), "{e:?}");
    c.command("set", &json!({"api": "/sys/reset"})).expect("factory reset");
    assert_eq!((sim.resets(), sim.initialized()), (1, false));

    let e = c.poll().unwrap_err();
    assert!(matches!(e, DeviceError::Auth(_)), "{e:?}");
    assert!(e.to_string().contains("not initialised") && e.to_string().contains("/ui/set_init"), "{e}");
    let logins = sim.login_count();
    let st = c.command("get", &json!({"api": "/ui/check_initialized"})).expect("no login needed");
    assert_eq!(st["result"]["initialized"], false);
    assert_eq!(st["result"]["model"], "S20");
    assert_eq!(sim.login_count(), logins, "check_initialized is made without a session");

    let done = c.command("set", &json!({"api": "/ui/set_init", "data": {"lang": "zh-cn"}})).expect("set_init");
    assert_eq!(done["code"], 0);
    assert!(!done.to_string().contains("goodlife123"), "the password is not in the answer: {done}");
    assert_eq!((sim.initialized(), sim.lang()), (true, "zh-cn".to_string()));
    c.poll().expect("the agent logs in again with its configured password");
    assert_eq!(c.command("get", &json!({"api": "/ui/check_initialized"})).unwrap()["result"]["initialized"], true);
    // Both are refused with the other method, before anything is sent.
    assert!(matches!(c.command("get", &json!({"api": "/ui/set_init"})), Err(DeviceError::BadRequest(_))));
    assert!(matches!(c.command("set", &json!({"api": "/ui/set_init", "data": {"lang": "de"}})), Err(DeviceError::BadRequest(_))));
}

#[test]
fn logs_in_once_and_reuses_the_sid() {
    let sim = sim();
    let mut c = client(&sim);
    c.poll().expect("poll 1");
    c.poll().expect("poll 2");
    assert_eq!(sim.login_count(), 1);
}

#[test]
fn logs_in_again_after_the_sid_expires() {
    let sim = sim_with(S20SimConfig { sid_idle: Duration::from_millis(150), attach_time: Duration::ZERO, ..S20SimConfig::default() });
    let mut c = client(&sim);
    c.poll().expect("poll");
    std::thread::sleep(Duration::from_millis(250));
    c.poll().expect("poll after idle expiry");
    assert_eq!(sim.login_count(), 2);
    sim.expire_sessions();
    c.command("get", &json!({"api": "/sys/get_info"})).expect("call after expiry");
    assert_eq!(sim.login_count(), 3);
}

#[test]
fn status_decodes_system_and_thread() {
    let sim = sim();
    sim.set_wifi(Some("lab-wifi"));
    let mut c = client(&sim);
    let st = c.poll().expect("poll");
    assert_eq!(st.serial.as_deref(), Some("S2024A0B1C2D3E4"));
    assert_eq!(st.firmware.as_deref(), Some("1.2.0"));
    let m = &st.msg;
    assert_eq!(m["model"], "S20");
    assert_eq!(m["mac"], "94:83:C4:A0:B1:C2");
    assert_eq!(m["firmware_type"], "2c");
    assert_eq!(m["memory"]["total"], 8_388_608);
    assert_eq!(m["wan"], "available");
    let t = &m["thread"];
    assert_eq!(t["role"], "leader");
    assert_eq!(t["state"], 4);
    assert_eq!(t["network"], true);
    assert_eq!(t["network_name"], "OpenThread-5938");
    assert_eq!(t["channel"], 15);
    assert_eq!(t["panid"], "0x5938");
    assert_eq!(t["ext_panid"], "dead00beef00cafe");
    assert_eq!(t["tx_power"], 20);
    assert_eq!(m["eth"]["status"], "connected");
    assert_eq!(m["eth"]["ipv4"], "192.0.2.20");
    assert_eq!(m["wifi"]["status"], "connected");
    assert_eq!(m["wifi"]["ssid"], "lab-wifi");
    assert!(m.get("errors").is_none());
    // Thread credentials never go out in a status report.
    assert_eq!(m["raw"]["otbr"]["Network"]["NetworkKey"], "***");
    assert_eq!(m["raw"]["otbr"]["Network"]["Passphrase"], "***");
    assert!(!m.to_string().contains("00112233445566778899aabbccddeeff"));

    // The Thread state moves.
    sim.set_thread_enabled(false);
    let t = c.poll().expect("poll 2").msg["thread"].clone();
    assert_eq!((t["role"].as_str(), t["network"].as_bool()), (Some("disabled"), Some(false)));
}

#[test]
fn thread_attaches_after_a_while() {
    let sim = sim_with(S20SimConfig { attach_time: Duration::from_millis(200), ..S20SimConfig::default() });
    let mut c = client(&sim);
    c.command("set", &json!({"api": "/otbr/set_config", "data": {"NetworkName": "plant-1", "Channel": 20, "PanId": 4660}})).expect("set");
    assert_eq!(c.poll().expect("poll").msg["thread"]["role"], "detached");
    std::thread::sleep(Duration::from_millis(250));
    let t = c.poll().expect("poll").msg["thread"].clone();
    assert_eq!(t["role"], "leader");
    assert_eq!((t["network_name"].as_str(), t["channel"].as_i64(), t["panid"].as_str()), (Some("plant-1"), Some(20), Some("0x1234")));
}

#[test]
fn get_set_round_trips() {
    let sim = sim();
    let mut c = client(&sim);
    c.command("set", &json!({"api": "/sys/set_time_config", "data": {"sntp": "ntp.example", "timezone": "UTC+2"}})).expect("set time");
    let got = c.command("get", &json!({"api": "/sys/get_time_config"})).expect("get time");
    assert_eq!((got["code"].as_i64(), got["result"]["timezone"].as_i64(), got["result"]["sntp"].as_str()), (Some(0), Some(2), Some("ntp.example")));

    c.command("set", &json!({"api": "/otbr/set_txpower", "data": {"TXPower": -4}})).expect("txpower");
    let otbr = c.command("get", &json!({"api": "/otbr/get_status"})).expect("otbr");
    assert_eq!(otbr["result"]["RCP"]["TXPower"], -4);

    let eth = json!({"protocol": "static", "ipv4": {"ip": "192.0.2.3", "netmask": "255.255.255.0", "gateway": "192.0.2.1"}});
    c.command("set", &json!({"api": "/eth/set_config", "data": eth})).expect("eth set");
    assert_eq!(c.command("get", &json!({"api": "/eth/get_config"})).expect("eth get")["result"], eth);
    assert_eq!(c.poll().expect("poll").msg["eth"]["ipv4"], "192.0.2.3");

    let err = c.command("set", &json!({"api": "/otbr/set_txpower", "data": {"TXPower": 99}})).expect_err("range");
    assert_eq!(err, DeviceError::Device { code: -1, msg: "invalid TXPower".into() });
    let err = c.command("get", &json!({"api": "/no/such_call"})).expect_err("unknown");
    assert!(matches!(err, DeviceError::Device { code: -1, .. }));
    assert!(matches!(c.command("get", &json!({"api": "/sys/restart"})), Err(DeviceError::BadRequest(_))));
    assert!(matches!(c.command("get", &json!({"api": "/ui/login"})), Err(DeviceError::BadRequest(_))));
}

#[test]
fn restart_ends_the_session() {
    let sim = sim();
    let mut c = client(&sim);
    c.command("set", &json!({"api": "/sys/restart"})).expect("restart");
    c.poll().expect("poll after restart");
    assert_eq!(sim.login_count(), 2);
}

#[test]
fn wrong_password_is_an_auth_error_without_secrets() {
    let sim = sim();
    let mut c = S20Client::new(&config(&sim.url(), "not-the-pass")).expect("client");
    let err = c.poll().expect_err("refused");
    assert!(matches!(err, DeviceError::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("not-the-pass"));
    assert_eq!(sim.login_count(), 0);
}

/// The device refuses a hash computed for a nonce older than its lifetime.
#[test]
fn stale_nonce_is_refused() {
    let sim = sim_with(S20SimConfig { nonce_ttl: Duration::from_millis(100), ..S20SimConfig::default() });
    let http = ureq::Agent::new_with_defaults();
    let challenge = |http: &ureq::Agent| -> Value {
        let text = http.get(format!("{}/ui/challenge", sim.url())).call().expect("challenge").into_body().read_to_string().expect("body");
        serde_json::from_str(&text).expect("json")
    };
    let login = |http: &ureq::Agent, ch: &Value| -> Value {
        let hash = login_hash("goodlife123", ch["result"]["salt"].as_str().unwrap_or(""), ch["result"]["nonce"].as_str().unwrap_or(""));
        let body = json!({"username": "root", "hash": hash}).to_string();
        let text = http.post(format!("{}/ui/login", sim.url())).send(body).expect("login").into_body().read_to_string().expect("body");
        serde_json::from_str(&text).expect("json")
    };
    let ch = challenge(&http);
    std::thread::sleep(Duration::from_millis(200));
    let late = login(&http, &ch);
    assert_eq!(late["code"], -1);
    assert!(late["err_msg"].as_str().unwrap_or("").contains("nonce"));
    let ch = challenge(&http);
    let fresh = login(&http, &ch);
    assert_eq!(fresh["code"], 0);
    assert!(fresh["result"]["sid"].is_string());
    // A nonce is good for one login only.
    assert_eq!(login(&http, &ch)["code"], -1);
}

#[test]
fn faults_map_to_errors() {
    let sim = sim();
    lan_faults::faults_map_to_errors(&mut client(&sim), sim.endpoint(), Duration::from_millis(1200));
}

#[test]
fn nothing_listening_is_a_transport_error() {
    let url = sim().url(); // the simulator is dropped here: the port is closed
    let mut c = S20Client::new(&config(&url, "goodlife123")).expect("client");
    assert!(matches!(c.poll(), Err(DeviceError::Transport(_))));
}
