//! The IAD client against the IAD simulator over real HTTP on 127.0.0.1.

#[path = "common/lan_faults.rs"]
mod lan_faults;

use dma_agent::devices::iad::IadClient;
use dma_agent::devices::{DeviceConfig, DeviceError, DeviceKind, LanDevice};
use dma_sims::iad::{IadSim, IadSimConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

fn sim() -> IadSim {
    sim_with(IadSimConfig::default())
}

fn sim_with(cfg: IadSimConfig) -> IadSim {
    IadSim::start("127.0.0.1:0", cfg).expect("sim starts")
}

fn config(sim: &IadSim, password: &str, options: &[(&str, &str)]) -> DeviceConfig {
    DeviceConfig {
        name: "iad1".into(),
        kind: DeviceKind::Iad,
        address: sim.url(),
        username: "admin".into(),
        password: password.into(),
        poll_interval: Duration::from_secs(60),
        timeout: Duration::from_millis(400),
        enabled: true,
        options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }
}

fn client(sim: &IadSim) -> IadClient {
    IadClient::new(&config(sim, "admin", &[])).expect("client")
}

fn port(msg: &Value, n: i64) -> Value {
    msg["ports"].as_array().and_then(|ps| ps.iter().find(|p| p["port"] == n)).cloned().unwrap_or(Value::Null)
}

#[test]
fn logs_in_once_and_reuses_the_token() {
    let sim = sim();
    let mut c = client(&sim);
    c.poll().expect("poll 1");
    c.poll().expect("poll 2");
    assert_eq!(sim.login_count(), 1);
}

#[test]
fn logs_in_again_when_the_token_is_gone() {
    let sim = sim();
    let mut c = client(&sim);
    c.poll().expect("poll");
    sim.expire_tokens();
    c.poll().expect("poll after expiry");
    assert_eq!(sim.login_count(), 2);
}

#[test]
fn logs_in_again_when_the_token_lifetime_runs_out() {
    let sim = sim_with(IadSimConfig { token_ttl: Duration::from_millis(150), ..IadSimConfig::default() });
    let mut c = client(&sim);
    c.command("get", &json!({"api": "sys_info/performance"})).expect("call");
    std::thread::sleep(Duration::from_millis(250));
    let perf = c.command("get", &json!({"api": "sys_info/performance"})).expect("call after expiry");
    assert_eq!(perf["memory_total"], 120608);
    assert_eq!(sim.login_count(), 2);
}

#[test]
fn status_decodes_device_and_ports() {
    let sim = sim();
    sim.set_offhook(5, true);
    sim.set_line_connected(2, true);
    sim.set_line_in_use(2, true);
    sim.set_sip_registered(5, Some(true));
    let mut c = client(&sim);
    let st = c.poll().expect("poll");
    assert_eq!(st.serial.as_deref(), Some("AG10S1234596"));
    assert_eq!(st.firmware.as_deref(), Some("r0-4bdc68d4"));
    let m = &st.msg;
    assert_eq!(m["model"], "iAG800 V2-4S4O");
    assert_eq!(m["mac"], "A09F7A1B2C3D");
    assert!(m["uptime"].as_i64().unwrap_or(0) >= 380);
    assert_eq!(m["cpu"], 0.5);
    assert_eq!(m["memory"]["total_kb"], 120608);
    assert_eq!(m["slots"][0]["model"], "iac-v14");

    let p1 = port(m, 1);
    assert_eq!((p1["type"].as_str(), p1["in_use"].as_bool(), p1["alarm"].as_str()), (Some("FXO"), Some(false), Some("RED")));
    assert_eq!(p1["voltage"], 1.0);
    let p2 = port(m, 2);
    assert_eq!((p2["in_use"].as_bool(), p2["alarm"].is_null(), p2["voltage"].as_f64()), (Some(true), true, Some(48.0)));
    let p5 = port(m, 5);
    assert_eq!(p5["type"], "FXS");
    assert_eq!(p5["in_use"], true);
    assert_eq!(p5["hook"], "offhook");
    assert_eq!(p5["voltage"], 8.0);
    assert_eq!(p5["sip"]["registered"], true);
    let p6 = port(m, 6);
    assert_eq!((p6["hook"].as_str(), p6["in_use"].as_bool()), (Some("onhook"), Some(false)));
    assert_eq!(p6["sip"]["state"], "Rejected");
    assert_eq!(m["lines"], json!({"total": 8, "fxs": 4, "fxo": 4, "in_use": 2, "offhook": 1, "alarm": 3, "sip_registered": 1}));
    assert!(m.get("cdr").is_none(), "cdr is off by default");
    assert!(m.get("errors").is_none());
    assert_eq!(m["raw"]["oem"]["sn"], "AG10S1234596");

    // The line state moves between polls.
    sim.set_offhook(5, false);
    let st = c.poll().expect("poll 2");
    let p5 = port(&st.msg, 5);
    assert_eq!((p5["in_use"].as_bool(), p5["hook"].as_str()), (Some(false), Some("onhook")));
}

#[test]
fn cdr_is_read_when_enabled() {
    let sim = sim();
    sim.push_cdr("8002", "10086", "NO ANSWER", 0);
    let mut c = IadClient::new(&config(&sim, "admin", &[("cdr", "1"), ("cdr_limit", "1")])).expect("client");
    let st = c.poll().expect("poll");
    let rows = st.msg["cdr"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "limit 1 keeps the newest");
    assert_eq!(rows[0]["to"], "10086");
    assert_eq!(rows[0]["disposition"], "NO ANSWER");
    assert!(IadClient::new(&config(&sim, "admin", &[("cdr", "maybe")])).is_err());
}

#[test]
fn get_set_round_trip_and_device_errors() {
    let sim = sim();
    let mut c = client(&sim);
    let data = json!({"enabled": 0, "versions": "v2c", "ip": "192.0.2.9", "port": 1161});
    assert_eq!(c.command("set", &json!({"api": "sys_snmp/set", "data": data})).expect("set"), json!([]));
    let got = c.command("get", &json!({"api": "sys_snmp/get"})).expect("get");
    assert_eq!(got, data);
    let oem = c.command("get", &json!({"api": "/controller/sys_info/oem"})).expect("oem");
    assert_eq!(oem["maxchannels"], 8);

    let err = c.command("get", &json!({"api": "sys_info/interface", "data": {"slotnum": 3}})).expect_err("bad slot");
    assert_eq!(err, DeviceError::Device { code: 400, msg: "invalid slotnum".into() });
    let err = c.command("set", &json!({"api": "nope/nothing"})).expect_err("unknown api");
    assert!(matches!(err, DeviceError::Device { code: 404, .. }));
    // An API the document does not list is not a read: get refuses it unsent.
    let err = c.command("get", &json!({"api": "nope/nothing"})).expect_err("not a read");
    assert!(matches!(err, DeviceError::BadRequest(_)));
    assert_eq!(sim.call_count("nope/nothing"), 1);
}

#[test]
fn bad_commands_send_nothing() {
    let sim = sim();
    let mut c = client(&sim);
    for body in [json!({"api": "../x"}), json!({"api": "auth/login"}), json!({"action": "explode"}), json!([1])] {
        assert!(matches!(c.command("set", &body), Err(DeviceError::BadRequest(_))), "{body}");
    }
    assert_eq!(sim.login_count(), 0);
}

#[test]
fn reboot_action() {
    let sim = sim();
    let mut c = client(&sim);
    sim.set_offhook(5, true);
    c.command("set", &json!({"action": "reboot"})).expect("reboot");
    assert_eq!(sim.reboot_count(), 1);
    assert_eq!(sim.call_count("sys_maintain/sys_reboot"), 1);
    let st = c.poll().expect("poll after reboot");
    assert_eq!(port(&st.msg, 5)["in_use"], false);
    assert_eq!(sim.login_count(), 2);
}

#[test]
fn wrong_password_is_an_auth_error_without_the_password() {
    let sim = sim();
    let mut c = IadClient::new(&config(&sim, "s3cret-wrong", &[])).expect("client");
    let err = c.poll().expect_err("refused");
    assert!(matches!(err, DeviceError::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret-wrong"));
    assert_eq!(sim.login_count(), 0);
}

#[test]
fn faults_map_to_errors() {
    let sim = sim();
    lan_faults::faults_map_to_errors(&mut client(&sim), sim.endpoint(), Duration::from_millis(1200));
}


#[test]
fn nothing_listening_is_a_transport_error() {
    let s = sim();
    let cfg = config(&s, "admin", &[]);
    drop(s); // the port is closed now
    let mut c = IadClient::new(&cfg).expect("client");
    assert!(matches!(c.poll(), Err(DeviceError::Transport(_))));
}

/// Issue 10 item 8: `get` runs only the IAD's read APIs; a `get` of a call
/// that changes the device is refused before anything is sent, naming why.
#[test]
fn get_runs_only_read_apis() {
    let sim = sim();
    let mut c = client(&sim);
    for api in ["sys_maintain/sys_reset", "sys_maintain/sys_reboot", "sys_snmp/set", "sys_analysis/ping_do"] {
        let e = c.command("get", &json!({"api": api})).unwrap_err();
        assert!(matches!(e, DeviceError::BadRequest(_)), "{api}: {e:?}");
        assert!(e.to_string().contains("use method set"), "{e}");
        assert_eq!(sim.call_count(api), 0, "{api} was sent");
    }
    let e = c.command("get", &json!({"api": "sys_maintain/sys_reset"})).unwrap_err().to_string();
    assert!(e.contains("factory"), "{e}");
    assert_eq!((sim.reset_count(), sim.reboot_count()), (0, 0));
    // Reads run.
    assert_eq!(c.command("get", &json!({"api": "sys_info/oem"})).unwrap()["sn"], "AG10S1234596");
    // The change runs with set.
    c.command("set", &json!({"api": "sys_maintain/sys_reset"})).expect("reset with set");
    assert_eq!(sim.reset_count(), 1);
    // The accounts' password hashes are never fetched.
    assert!(matches!(c.command("set", &json!({"api": "sys_user/export"})), Err(DeviceError::BadRequest(_))));
}

/// Issue 10 item 12: before any set, the getters answer the defaults the
/// controller document gives (the DEF column of each `*_set`).
#[test]
fn getters_answer_documented_defaults() {
    let sim = sim();
    let mut c = client(&sim);
    let get = |c: &mut IadClient, api: &str| c.command("get", &json!({"api": api})).unwrap_or_else(|e| panic!("{api}: {e}"));
    assert_eq!(get(&mut c, "sys_snmp/get"), json!({"enabled": 0, "ip": "", "port": 161, "versions": "v2c"}));
    assert_eq!(get(&mut c, "sys_option/syslog_get"), json!({"log_ip": "", "log_port": 0, "conloglevel": 0}));
    assert_eq!(get(&mut c, "sys_option/http_get"), json!({"mode": 0, "http_port": 80, "https_port": 443, "https_pem": 0}));
    assert_eq!(get(&mut c, "sys_ocloudclient/get"), json!({"disabled": 0, "server_addr": "openvox.cloud", "server_port": 7000}));
    assert_eq!(get(&mut c, "sys_provision/get")["auto_switch"], "no");
    assert_eq!(get(&mut c, "sys_analysis/ping_result"), json!({"status": 0, "result": ""}));
    let dt = get(&mut c, "sys_option/datetime_get");
    assert_eq!((dt["timezone"].clone(), dt["ntp_enable"].clone()), (json!("UTC"), json!(1)));
    assert!(dt["timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000), "{dt}");
    assert_eq!(dt["datetime_str"].as_str().map(str::len), Some(19), "{dt}");
    c.command("set", &json!({"api": "sys_snmp/set", "data": {"enabled": 1, "ip": "192.0.2.0/24"}})).unwrap();
    assert_eq!(get(&mut c, "sys_snmp/get"), json!({"enabled": 1, "ip": "192.0.2.0/24", "port": 161, "versions": "v2c"}));
    // A factory reset brings the defaults back.
    c.command("set", &json!({"api": "sys_maintain/sys_reset"})).unwrap();
    assert_eq!(get(&mut c, "sys_snmp/get")["enabled"], 0);
}

/// The login's MD5 on both sides against the seed's own value
/// (sys_user/export shows admin's password MD5).
#[test]
fn login_md5_matches_the_seed_on_both_sides() {
    assert_eq!(dma_agent::util::md5_hex(b"admin"), "21232f297a57a5a743894a0e4a801fc3", "client");
    assert_eq!(dma_sims::wire::md5_hex("admin"), "21232f297a57a5a743894a0e4a801fc3", "simulator");
}
