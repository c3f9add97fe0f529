//! Broker credentials: accepted, and refused with a clear message (agent
//! keeps retrying, never logs the password; the CLI exits 4).

mod common;
use common::*;
use std::time::Duration;

#[test]
fn good_and_bad_credentials() {
    let b = Broker::start_with_password("router", "Right-Pass-1");
    let good = agent_section("DD0000000001", b.port, std::path::Path::new("{state}"), "\toption username 'router'\n\toption password 'Right-Pass-1'\n");
    let bad = agent_section("DD0000000002", b.port, std::path::Path::new("{state}"), "\toption username 'router'\n\toption password 'Wrong-Pass-2'\n");
    let a_good = Agent::start("DD0000000001", &good);
    let mut a_bad = Agent::start("DD0000000002", &bad);

    // The platform logs in too.
    let mut o = rumqttc::MqttOptions::new("platform-auth", "127.0.0.1", b.port);
    o.set_credentials("router", "Right-Pass-1");
    let (client, mut conn) = rumqttc::Client::new(o, 10);
    client.subscribe("dma/#", rumqttc::QoS::AtLeastOnce).unwrap();
    let deadline = std::time::Instant::now() + T;
    let mut online = false;
    while std::time::Instant::now() < deadline && !online {
        if let Ok(Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p)))) = conn.recv_timeout(Duration::from_millis(300)) {
            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
            online = p.topic == "dma/state/DD0000000001" && v["online"] == true;
        }
    }
    assert!(online, "agent with the right password is online; log:\n{}", a_good.log());

    std::thread::sleep(Duration::from_secs(3));
    let log = a_bad.log();
    assert!(log.contains("broker refused the credentials"), "{log}");
    assert!(!log.contains("Wrong-Pass-2"), "password in the log");
    assert!(a_bad.child.as_mut().unwrap().try_wait().unwrap().is_none(), "the agent keeps running and retrying");

    // The operator CLI: bad credentials exit 4 with a clear message.
    let out = bins::ctl_command()
        .args(["--port", &b.port.to_string(), "--user", "router", "--password", "nope", "devices", "--wait", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("password") || err.contains("credentials") || err.contains("refused"), "{err}");
}
