//! The real platform and real agents behind the shipped mosquitto ACL
//! (deploy/mosquitto/dma.acl; issue 19 C13): the platform logs in as
//! `dma-platform`, each agent as its own serial. The platform still sees
//! every device and commands it; a device's login cannot make the platform
//! believe anything about another device.

mod common;
use common::broker::Broker;
use common::*;
use rumqttc::{Client, MqttOptions, QoS};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const A: &str = "ACLP0000000A";
const B: &str = "ACLP0000000B";

#[test]
fn the_platform_works_behind_the_shipped_acl_and_a_device_cannot_speak_for_another() {
    let acl = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto/dma.acl");
    let broker = Broker::start_with_acl(&[("dma-platform", "platform-secret"), (A, "pw-a"), (B, "pw-b")], &acl);
    let dir = temp_dir("platform-acl");
    let db = dir.join("platform.db").to_string_lossy().into_owned();
    let cfg = platform_config(
        free_port(),
        &db,
        broker.port,
        "dma-platform-1",
        json!({"broker": {"username": "dma-platform", "password": "platform-secret"}}),
    );
    let p = Platform::start_with(dir, &cfg);
    // Reports only at connect: a forged `sys` would stay visible.
    let quiet = "\toption sys_interval '3600'\n\toption procs_interval '3600'\n";
    let _a = Agent::start(A, broker.port, &format!("\toption username '{A}'\n\toption password 'pw-a'\n{quiet}"));
    let _b = Agent::start(B, broker.port, &format!("\toption username '{B}'\n\toption password 'pw-b'\n{quiet}"));
    p.wait_device(A, true, T);
    p.wait_device(B, true, T);
    // Commands go through (published by the platform account, answered on
    // each device's own answer topic).
    for sn in [A, B] {
        let id = p.send(sh(sn, "echo behind-the-acl", json!({})));
        let c = p.wait_state(id, 2, T);
        assert_eq!(c["state"], 2, "{sn}: {c}");
    }
    // A's login publishing B's sys (on B's topic and on the shared one):
    // the broker drops it, so the platform never stores it.
    let mut o = MqttOptions::new("acl-spoofer", "127.0.0.1", broker.port);
    o.set_credentials(A, "pw-a");
    let (c, mut conn) = Client::new(o, 10);
    std::thread::spawn(move || for _ in conn.iter() {});
    let forged = json!({"sn": B, "time": 1, "d": {"load": 99.9, "free": 1, "used": 1, "uptime": 1}}).to_string();
    c.publish(format!("dma/sys/{B}"), QoS::AtLeastOnce, false, forged.clone()).unwrap();
    c.publish("dma/sys", QoS::AtLeastOnce, false, forged).unwrap();
    // A marker A may send, after the forgeries on the same connection.
    let marker = json!({"sn": A, "time": 2, "d": {"load": 12.5, "free": 1, "used": 1, "uptime": 1}}).to_string();
    c.publish(format!("dma/sys/{A}"), QoS::AtLeastOnce, false, marker).unwrap();
    let seen_marker = wait_for(T, || {
        let d = p.get(&format!("monitor/devices?sn={A}"));
        d["list"][0]["sys"].as_str().filter(|s| s.contains("12.5")).map(|_| ())
    });
    assert!(seen_marker.is_some(), "A's own marker arrives");
    std::thread::sleep(Duration::from_millis(500));
    let b = p.get(&format!("monitor/devices?sn={B}"));
    assert!(!b["list"][0]["sys"].as_str().unwrap_or("").contains("99.9"), "B's status was forged: {b}");
}
