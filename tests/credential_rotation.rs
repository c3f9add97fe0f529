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

/// `agent set {"device": …, "options": …}`: a device section's options set
/// from the platform. Unsigned it is refused even in migration mode (the
/// section says where the device's credentials go); signed it is validated,
/// written to the UCI file and applied at once: the S20 configured with a
/// wrong password comes online with the right one; the answer and the log
/// never show it.
#[test]
fn a_signed_agent_set_changes_a_device_section() {
    let s20 = S20Sim::start("127.0.0.1:0", Default::default()).unwrap();
    let key = common::signer::Key::new("ops");
    let broker = Broker::start();
    let p = Platform::connect(broker.port, "dma");
    let sn = "BB0000000022";
    let devices = format!(
        "config device 's20'\n\toption type 's20'\n\toption address '{}'\n\toption username 'root'\n\toption password 'wrong-one'\n\toption poll_interval '1'\n\toption timeout '1'\n",
        s20.url()
    );
    let extra = format!("\toption device_failures '2'\n\toption periph_interval '2'\n{}", key.uci());
    let a = Agent::start(sn, &format!("{}\n{}", agent_section(sn, broker.port, std::path::Path::new("{state}"), &extra), devices));
    assert!(
        p.wait("dma/periph", Duration::from_secs(15), |m| m.json["kind"] == "s20" && m.json["online"] == false).is_some(),
        "offline with the wrong password; log:\n{}",
        a.log()
    );
    let set = |id: u64, d: Value| json!({"id": id, "command": "agent", "method": "set", "d": d});
    let good = json!({"device": "s20", "options": {"password": "goodlife123", "poll_interval": 1}});

    // Unsigned: refused, nothing written.
    let r = p.command("dma", sn, set(1, good.clone()), T);
    assert_eq!(r["status"], "err", "{r}");
    assert!(r["d"]["msg"].as_str().unwrap_or("").starts_with("unsigned"), "{r}");
    // Signed but wrong: each refused with its reason, nothing written.
    for (id, d, why) in [
        (2, json!({"device": "nope", "options": {"password": "x"}}), "bad body: no device section named 'nope'"),
        (3, json!({"device": "s20", "options": {"address": "ftp://127.0.0.1/"}}), "bad value for address"),
        (4, json!({"device": "s20", "options": {"colour": "red"}}), "bad value for colour: unknown option"),
        (5, json!({"device": "s20", "options": {"type": "iad"}}), "bad value for type"),
        (6, json!({"device": "s20", "options": {"password": "goodlife123"}, "shell_enabled": 1}), "bad body: 'shell_enabled'"),
        (7, json!({"device": "s20", "options": {}}), "bad body: no options"),
        (8, json!({"device": "s20", "options": {"password": ["x"]}}), "bad value for password"),
    ] {
        let r = p.signed_command("dma", sn, &key, set(id, d), T);
        assert_eq!(r["status"], "err", "{r}");
        let msg = r["d"]["msg"].as_str().unwrap_or("");
        assert!(msg.starts_with(why), "expected '{why}…', got {r}");
    }
    let text = std::fs::read_to_string(&a.config).unwrap();
    assert!(text.contains("option password 'wrong-one'") && !text.contains("goodlife123") && !text.contains("red"), "{text}");

    // Signed and right: written, applied, masked in the answer.
    let from = p.count();
    let r = p.signed_command("dma", sn, &key, set(9, good), T);
    assert_eq!(r["status"], "ok", "{r}\n{}", a.log());
    assert_eq!(r["d"]["result"]["device"]["password"], "******", "{r}");
    assert_eq!(r["d"]["result"]["applied"], json!(["password", "poll_interval"]), "{r}");
    assert!(!r.to_string().contains("goodlife123"), "{r}");
    let text = std::fs::read_to_string(&a.config).unwrap();
    assert!(text.contains("option password 'goodlife123'") && !text.contains("wrong-one"), "{text}");
    assert!(online_after(&p, from, "s20"), "online with the new password; log:\n{}", a.log());
    assert!(!a.log().contains("goodlife123"), "the password in the log");
}
