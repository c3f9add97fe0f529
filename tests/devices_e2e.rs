//! The four LAN devices end to end: mosquitto + the four simulators + the
//! agent (issue "LAN devices").

mod common;
use common::*;
use dma_sims::{goip::GoipSim, iad::IadSim, s20::S20Sim, vpn::VpnSim};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Lan {
    iad: Option<IadSim>,
    s20: S20Sim,
    goip: GoipSim,
    vpn: VpnSim,
}

fn device_sections(lan: &Lan, iad_port: u16) -> String {
    format!(
        "config device 'iad1'\n\toption type 'iad'\n\toption address 'http://127.0.0.1:{iad_port}'\n\toption username 'admin'\n\toption password 'admin'\n\toption poll_interval '1'\n\toption timeout '1'\n\n\
         config device 's20'\n\toption type 's20'\n\toption address '{}'\n\toption username 'root'\n\toption password 'goodlife123'\n\toption poll_interval '1'\n\toption timeout '1'\n\n\
         config device 'goip1'\n\toption type 'goip'\n\toption address '{}'\n\toption username 'root'\n\toption password 'root'\n\toption poll_interval '1'\n\toption timeout '1'\n\n\
         config device 'vpn'\n\toption type 'vpn'\n\toption address '{}'\n\toption api_secret 'sim-vpn-secret'\n\toption fingerprint '{}'\n\toption poll_interval '1'\n\toption timeout '1'\n",
        lan.s20.url(),
        lan.goip.url(),
        lan.vpn.url(),
        lan.vpn.cert_sha256()
    )
}

fn start() -> (Broker, Platform, Agent, Lan, u16) {
    let broker = Broker::start();
    let platform = Platform::connect(broker.port, "dma");
    let iad = IadSim::start("127.0.0.1:0", Default::default()).unwrap();
    let iad_port = iad.port();
    let lan = Lan {
        iad: Some(iad),
        s20: S20Sim::start("127.0.0.1:0", Default::default()).unwrap(),
        goip: GoipSim::start("127.0.0.1:0", Default::default()).unwrap(),
        vpn: VpnSim::start("127.0.0.1:0", Default::default()).unwrap(),
    };
    let extra = "\toption device_failures '2'\n\toption periph_interval '2'\n";
    let cfg = format!("{}\n{}", agent_section("BB0000000001", broker.port, std::path::Path::new("{state}"), extra), device_sections(&lan, iad_port));
    let agent = Agent::start("BB0000000001", &cfg);
    (broker, platform, agent, lan, iad_port)
}

fn periph(p: &Platform, from: usize, kind: &str, online: bool, timeout: Duration) -> Option<Value> {
    p.wait_from(from, "dma/periph", timeout, |m| m.json["kind"] == kind && m.json["online"] == online).map(|m| m.json)
}

#[test]
fn all_four_report_and_a_dead_one_goes_offline_alone() {
    let (_b, p, a, mut lan, iad_port) = start();
    for kind in ["iad", "s20", "goip", "vpn"] {
        let m = periph(&p, 0, kind, true, T).unwrap_or_else(|| panic!("no periph for {kind}; log:\n{}", a.log()));
        assert_eq!(m["sn"], "BB0000000001");
        assert_eq!(m["gwId"], "BB0000000001");
        assert!(m["time"].as_u64().unwrap() > 0);
        assert!(m["msg"].is_object());
    }
    let iad = periph(&p, 0, "iad", true, T).unwrap();
    assert_eq!(iad["nId"], "iad1");
    assert!(iad["msg"]["ports"].as_array().map(|a| !a.is_empty()).unwrap_or(false), "IAD ports: {}", iad["msg"]);
    let goip = periph(&p, 0, "goip", true, T).unwrap();
    assert!(goip["msg"]["ports"].as_array().map(|a| a.len() == 4).unwrap_or(false), "GoIP ports: {}", goip["msg"]);
    let s20 = periph(&p, 0, "s20", true, T).unwrap();
    assert!(s20["msg"].get("thread").is_some() || s20["msg"].get("otbr").is_some(), "S20 thread state: {}", s20["msg"]);
    // LAN firmware appears in versions.
    let v = p.wait("dma/versions", T, |m| m.raw.contains("iad:iad1")).expect("LAN firmware in versions");
    assert!(v.json["d"].as_array().unwrap().len() >= 3);

    // Kill the IAD: it goes offline with a reason; the others keep reporting.
    let from = p.count();
    drop(lan.iad.take());
    let off = periph(&p, from, "iad", false, T).unwrap_or_else(|| panic!("IAD never went offline; log:\n{}", a.log()));
    assert!(off["msg"]["error"].as_str().map(|e| !e.is_empty()).unwrap_or(false), "{off}");
    let t0 = Instant::now();
    let from_off = p.count();
    for kind in ["s20", "goip", "vpn"] {
        periph(&p, from_off, kind, true, Duration::from_secs(8)).unwrap_or_else(|| panic!("{kind} stopped reporting while the IAD was down"));
    }
    assert!(t0.elapsed() < Duration::from_secs(8));
    // It comes back on the same port.
    lan.iad = Some(IadSim::start(&format!("127.0.0.1:{iad_port}"), Default::default()).unwrap());
    periph(&p, from_off, "iad", true, Duration::from_secs(30)).expect("IAD back online");
}

#[test]
fn get_set_round_trips_through_mqtt() {
    let (_b, p, a, lan, _) = start();
    periph(&p, 0, "vpn", true, T).unwrap_or_else(|| panic!("vpn not up; log:\n{}", a.log()));
    let sn = "BB0000000001";
    let mut id = 0;
    let mut cmd = |command: &str, method: &str, d: Value| {
        id += 1;
        p.command("dma", sn, json!({"id": id, "command": command, "method": method, "d": d}), T)
    };
    let r = cmd("iad", "get", json!({"api": "sys_info/oem"}));
    assert_eq!(r["status"], "ok", "{r}");
    assert!(r["d"]["result"].is_object());
    let r = cmd("iad", "get", json!({"api": "not a path!"}));
    assert_eq!(r["status"], "err");
    assert!(!r["d"]["msg"].as_str().unwrap().is_empty());

    let r = cmd("s20", "get", json!({"api": "/otbr/get_status"}));
    assert_eq!(r["status"], "ok", "{r}");
    let r = cmd("s20", "get", json!({}));
    assert_eq!(r["status"], "err");

    let r = cmd("goip", "get", json!({"op": "status"}));
    assert_eq!(r["status"], "ok", "{r}");
    let r = cmd("goip", "set", json!({"op": "lock", "ports": "1A"}));
    assert_eq!(r["status"], "ok", "{r}");
    let r = cmd("goip", "set", json!({"op": "explode"}));
    assert_eq!(r["status"], "err");

    let r = cmd("vpn", "set", json!({"controler": "User", "action": "AddUserCloud", "params": {"name": "alice", "parent_group": "/sales", "passwd": "pw-123456"}, "commit": true}));
    assert_eq!(r["status"], "ok", "{r}");
    assert!(lan.vpn.commits() >= 1, "committed");
    assert_eq!(r["d"]["result"]["committed"], true, "{r}");
    // The answer the platform stores never carries the user's secrets.
    let r = cmd("vpn", "get", json!({"controler": "User", "action": "ExGetUserInfo", "params": {"username": "alice"}}));
    assert_eq!(r["d"]["result"]["result"]["name"], "alice", "{r}");
    assert_eq!(r["d"]["result"]["result"]["sec_key"], "******", "{r}");
    assert_eq!(r["d"]["result"]["result"]["passwd"], "******", "{r}");
    let r = cmd("vpn", "get", json!({"controler": "User", "action": "AddUserCloud", "params": {}}));
    assert_eq!(r["status"], "err", "get must not change the console");
    let r = cmd("vpn", "get", json!("not an object"));
    assert_eq!(r["status"], "err");
    // A device kind that is not configured.
    let r = cmd("iad", "set", json!({"api": "sys_info/oem", "device": "nope"}));
    assert_eq!(r["status"], "err");
    assert!(r["d"]["msg"].as_str().unwrap().contains("nope"));
    assert!(!a.log().contains("goodlife123"), "S20 password in the log");
}

/// Issue 10 items 8–10 and 13 over MQTT, one operation per new capability:
/// a refused `iad get` of a change, the S20 brought back after a remote
/// factory reset, a GoIP task command that names its failing task, and the
/// VPN console's enable/online/kick actions.
#[test]
fn new_device_operations_end_to_end() {
    let (_b, p, a, lan, _) = start();
    for kind in ["iad", "s20", "goip", "vpn"] {
        periph(&p, 0, kind, true, T).unwrap_or_else(|| panic!("{kind} not up; log:\n{}", a.log()));
    }
    let sn = "BB0000000001";
    let mut id = 100;
    let mut cmd = |command: &str, method: &str, d: Value| {
        id += 1;
        p.command("dma", sn, json!({"id": id, "command": command, "method": method, "d": d}), T)
    };

    // IAD: get runs only reads.
    let r = cmd("iad", "get", json!({"api": "sys_maintain/sys_reset"}));
    assert_eq!((r["d"]["exestatus"].as_str(), r["status"].as_str()), (Some("err"), Some("err")), "{r}");
    let msg = r["d"]["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("factory") && msg.contains("use method set"), "{r}");
    let r = cmd("iad", "get", json!({"api": "sys_option/syslog_get"}));
    assert_eq!(r["d"]["result"], json!({"log_ip": "", "log_port": 0, "conloglevel": 0}), "{r}");

    // S20: factory reset, then back with set_init (the agent's own password).
    let r = cmd("s20", "set", json!({"api": "/sys/reset"}));
    assert_eq!(r["status"], "ok", "{r}");
    assert!(!lan.s20.initialized());
    let r = cmd("s20", "get", json!({"api": "/ui/check_initialized"}));
    assert_eq!(r["d"]["result"]["result"]["initialized"], false, "{r}");
    let from = p.count();
    let r = cmd("s20", "set", json!({"api": "/ui/set_init", "data": {"lang": "en"}}));
    assert_eq!(r["status"], "ok", "{r}");
    assert!(lan.s20.initialized());
    periph(&p, from, "s20", true, T).unwrap_or_else(|| panic!("S20 not back after set_init; log:\n{}", a.log()));

    // GoIP: a task command reports per task; a failed task fails it, named.
    let r = cmd("goip", "set", json!({"op": "pause", "tids": [424242]}));
    assert_eq!((r["d"]["exestatus"].as_str(), r["status"].as_str()), (Some("ok"), Some("err")), "{r}");
    let msg = r["d"]["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("task 424242: 11 TID Expected"), "{r}");
    assert_eq!(r["d"]["result"]["code"], 11, "{r}");

    // VPN: add + commit, a client logs in, list it online, disable, kick.
    let r = cmd("vpn", "set", json!({"controler": "User", "action": "AddUserCloud", "params": {"name": "carol", "parent_group": "/it", "passwd": "pw-1"}, "commit": true}));
    assert_eq!(r["status"], "ok", "{r}");
    assert!(lan.vpn.login("carol", "198.51.100.9"));
    let r = cmd("vpn", "get", json!({"controler": "State", "action": "GetOnlineUserCloud"}));
    assert_eq!(r["d"]["result"]["result"]["data"][0]["name"], "carol", "{r}");
    let r = cmd("vpn", "set", json!({"controler": "User", "action": "ExtSetUserEnable", "params": {"names": "carol", "is_enable": 0}, "commit": true}));
    assert_eq!(r["status"], "ok", "{r}");
    let r = cmd("vpn", "set", json!({"controler": "State", "action": "KillOnlineUserCloud", "params": {"names": ["carol"]}}));
    assert_eq!(r["d"]["result"]["result"]["killed"], json!(["carol"]), "{r}");
    assert!(lan.vpn.online().is_empty() && !lan.vpn.login("carol", "198.51.100.9"));
    let r = cmd("vpn", "get", json!({"controler": "User", "action": "GetSearchData", "params": {"search": "carol"}}));
    assert_eq!(r["d"]["result"]["result"]["data"][0]["is_enable"], "0", "{r}");
    assert!(!a.log().contains("goodlife123"), "S20 password in the log");
}

/// The standalone simulators print config sections the agent accepts, and
/// serve on the ports they name.
#[test]
fn standalone_simulators_run_and_stop() {
    use std::io::Read;
    let mut child = std::process::Command::new(bins::workspace_bin("dma-sims", "dma-sim"))
        .arg("all")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dma-sim");
    let mut out = child.stdout.take().unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + T;
    let mut buf = [0u8; 4096];
    while text.matches("config device").count() < 4 && Instant::now() < deadline {
        let n = out.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let cfg = format!("config agent 'agent'\n\toption sn 'X1'\n\n{text}");
    let parsed = dma_agent::config::parse("dma-sim", &cfg).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed.devices.len(), 4);
    for d in &parsed.devices {
        assert!(d.address.contains("127.0.0.1"), "{}", d.address);
        let mut client = dma_agent::devices::build(d).unwrap_or_else(|e| panic!("{e}"));
        client.poll().unwrap_or_else(|e| panic!("{} poll: {e}", d.name));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert!(child.wait().unwrap().success());
}
