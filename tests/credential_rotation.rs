//! Issue 21 item 6: rotating a LAN device's password from the platform.
//! The device accepts it, the agent logs in with it at once, stores it in
//! its UCI file (so a restart still logs in) and never logs it; a device
//! that then refuses the new password makes the answer say so.

mod common;
use common::*;
use dma_sims::{iad::IadSim, s20::S20Sim};
use serde_json::{json, Value};
use std::time::Duration;

const SN: &str = "BB0000000021";

fn start(iad: &IadSim, s20: &S20Sim) -> (Broker, Platform, Agent) {
    let broker = Broker::start();
    let platform = Platform::connect(broker.port, "dma");
    let devices = format!(
        // The IAD's section is anonymous: the agent names it to store the password.
        "config device\n\toption type 'iad'\n\toption address '{}'\n\toption username 'admin'\n\toption password 'admin'\n\toption poll_interval '1'\n\toption timeout '1'\n\n\
         config device 's20'\n\toption type 's20'\n\toption address '{}'\n\toption username 'root'\n\toption password 'goodlife123'\n\toption poll_interval '1'\n\toption timeout '1'\n",
        iad.url(),
        s20.url()
    );
    let extra = "\toption device_failures '2'\n\toption periph_interval '2'\n";
    let cfg = format!("{}\n{}", agent_section(SN, broker.port, std::path::Path::new("{state}"), extra), devices);
    let agent = Agent::start(SN, &cfg);
    (broker, platform, agent)
}

fn online_after(p: &Platform, from: usize, kind: &str) -> bool {
    p.wait_from(from, "dma/periph", Duration::from_secs(15), |m| m.json["kind"] == kind && m.json["online"] == true).is_some()
}

#[test]
fn s20_and_iad_rotation_keeps_the_agent_online_across_a_restart() {
    let iad = IadSim::start("127.0.0.1:0", Default::default()).unwrap();
    let s20 = S20Sim::start("127.0.0.1:0", Default::default()).unwrap();
    let (_b, p, mut a) = start(&iad, &s20);
    assert!(online_after(&p, 0, "s20") && online_after(&p, 0, "iad"), "log:\n{}", a.log());
    let mut id = 100;
    let mut cmd = |command: &str, d: Value| {
        id += 1;
        p.command("dma", SN, json!({"id": id, "command": command, "method": "set", "d": d}), T)
    };

    let r = cmd("s20", json!({"api": "/sys/set_admin_pwd", "data": {"new_pwd": "S20-rotated-7781"}}));
    assert_eq!(r["status"], "ok", "{r}\n{}", a.log());
    assert_eq!(r["d"]["result"]["credential"], json!({"changed": true, "login": "ok", "stored": true}), "{r}");
    let r = cmd("iad", json!({"action": "set_password", "password": "Iad-rotated-5523"}));
    assert_eq!(r["status"], "ok", "{r}\n{}", a.log());
    assert_eq!(r["d"]["result"]["credential"]["stored"], true, "{r}");
    assert_eq!(iad.account_md5("admin").as_deref(), Some(dma_agent::util::md5_hex(b"Iad-rotated-5523").as_str()));
    // A raw sys_user/set on the agent's own account is refused, nothing sent.
    let r = cmd("iad", json!({"api": "sys_user/set", "data": {"username": "admin", "password": "x", "new_username": "admin", "new_password": "y", "new_password_confirm": "y"}}));
    assert_eq!(r["status"], "err", "{r}");

    let text = std::fs::read_to_string(&a.config).unwrap();
    assert!(text.contains("option password 'S20-rotated-7781'") && text.contains("option password 'Iad-rotated-5523'"), "{text}");
    assert!(text.contains("config device 'iad1'"), "the anonymous section got its name: {text}");
    let from = p.count();
    assert!(online_after(&p, from, "s20") && online_after(&p, from, "iad"), "still online with the new passwords");

    // A restart reads the stored passwords.
    a.stop();
    a.spawn();
    let from = p.count();
    assert!(online_after(&p, from, "s20") && online_after(&p, from, "iad"), "online after a restart; log:\n{}", a.log());
    let log = a.log();
    assert!(!log.contains("S20-rotated-7781") && !log.contains("Iad-rotated-5523"), "a password in the log");
}

#[test]
fn a_device_that_then_refuses_the_new_password_is_an_error_answer() {
    let iad = IadSim::start("127.0.0.1:0", Default::default()).unwrap();
    let s20 = S20Sim::start("127.0.0.1:0", Default::default()).unwrap();
    let (_b, p, a) = start(&iad, &s20);
    assert!(online_after(&p, 0, "iad"), "log:\n{}", a.log());
    iad.ignore_password_change(true);
    let r = p.command("dma", SN, json!({"id": 7, "command": "iad", "method": "set", "d": {"action": "set_password", "password": "never-taken"}}), T);
    assert_eq!(r["status"], "err", "{r}");
    let msg = r["d"]["msg"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("refuses the new password") && msg.contains("keeps the old password"), "{msg}");
    assert!(!msg.contains("never-taken"));
    let text = std::fs::read_to_string(&a.config).unwrap();
    assert!(text.contains("option password 'admin'") && !text.contains("never-taken"), "nothing stored: {text}");
    let from = p.count();
    assert!(online_after(&p, from, "iad"), "still online with the old password");
}
