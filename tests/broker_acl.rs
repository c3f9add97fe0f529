//! The shipped mosquitto ACL (deploy/mosquitto/dma.acl) for real: devices
//! log in with username = serial, the platform as `dma-platform`. Device A
//! runs and is commanded as usual; a client holding A's credentials can
//! neither publish as B nor read B's commands, nor command B; the platform
//! account reads everything and commands both (issue 19 C13).
//!
//! mosquitto 2.0 denies silently (a refused PUBLISH is acked and dropped, a
//! refused subscription delivers nothing): every denial is asserted as an
//! absence, bounded by a positive control sent after it on the same
//! connection (one client's messages arrive in order).

mod common;
use common::*;
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use serde_json::json;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const A: &str = "ACL000000000A";
const B: &str = "ACL000000000B";
const PLATFORM: (&str, &str) = ("dma-platform", "platform-secret");

fn acl_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mosquitto/dma.acl")
}

fn start_device(sn: &str, port: u16) -> Agent {
    let login = format!("\toption username '{sn}'\n\toption password 'pw-{sn}'\n");
    Agent::start(sn, &agent_section(sn, port, Path::new("{state}"), &login))
}

/// A bare MQTT client logged in as `user`: what someone holding a device's
/// credentials can do. Every PUBLISH it receives goes to the channel.
fn client(port: u16, id: &str, user: &str, password: &str) -> (Client, Receiver<(String, String)>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(user, password);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut conn) = Client::new(o, 100);
    let (tx, rx) = channel();
    let (up_tx, up_rx) = channel();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Incoming::ConnAck(a))) => {
                    let _ = up_tx.send(a.code);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    if tx.send((p.topic.clone(), String::from_utf8_lossy(&p.payload).into_owned())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let code = up_rx.recv_timeout(T).expect("CONNACK");
    assert_eq!(code, rumqttc::ConnectReturnCode::Success, "{user} could not log in");
    (c, rx)
}

/// Wait for a message on `topic` whose payload contains `marker`.
fn recv_until(rx: &Receiver<(String, String)>, topic: &str, marker: &str, timeout: Duration) -> Vec<(String, String)> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(m) = rx.recv_timeout(left) else { break };
        let done = m.0 == topic && m.1.contains(marker);
        seen.push(m);
        if done {
            return seen;
        }
    }
    panic!("no message on {topic} with {marker} within {timeout:?}; got {seen:?}");
}

#[test]
fn each_device_speaks_and_hears_only_for_itself_and_the_platform_sees_all() {
    let users = [PLATFORM, (A, "pw-ACL000000000A"), (B, "pw-ACL000000000B")];
    let broker = Broker::start_with_acl(&users, &acl_file());
    let p = Platform::connect_with(broker.port, "dma", "platform-1", Some(PLATFORM));
    let a = start_device(A, broker.port);
    let b = start_device(B, broker.port);

    // Both devices run under the ACL: births, answers to the platform's
    // commands on their own answer topics.
    for (sn, agent) in [(A, &a), (B, &b)] {
        p.wait(&format!("dma/state/{sn}"), T, |m| m.json["online"] == true).unwrap_or_else(|| panic!("{sn} not online:\n{}", agent.log()));
        let ans = p.command("dma", sn, json!({"id": 1, "command": "sh", "d": {"shcmd": "echo hi"}}), T);
        assert_eq!(ans["status"], "ok", "{ans}");
        assert_eq!(ans["sn"], sn);
        assert!(p.all("dma/resp/cmd").iter().all(|m| m.topic != "dma/resp/cmd"), "answers on per-device topics only");
    }

    // Someone holding A's credentials (another client id, same username).
    let (spy, spy_rx) = client(broker.port, "spy-as-A", A, "pw-ACL000000000A");
    spy.subscribe("dma/cmd/#", QoS::AtLeastOnce).unwrap();
    spy.subscribe(format!("dma/cmd/{B}"), QoS::AtLeastOnce).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // Forgeries for B: telemetry, an answer, a birth, a command, and on the
    // v1 shared topics.
    let from = p.count();
    let forged = [
        (format!("dma/sys/{B}"), json!({"sn": B, "time": 1, "d": {"load": 99.9}, "forged": true})),
        (format!("dma/resp/cmd/{B}"), json!({"id": 1, "sn": B, "status": "ok", "forged": true})),
        (format!("dma/state/{B}"), json!({"sn": B, "online": false, "forged": true})),
        (format!("dma/event/{B}"), json!({"sn": B, "eid": 1, "type": "x", "forged": true})),
        ("dma/sys".to_string(), json!({"sn": B, "time": 1, "d": {"load": 99.9}, "forged": true})),
        ("dma/resp/cmd".to_string(), json!({"id": 1, "sn": B, "status": "ok", "forged": true})),
        (format!("dma/cmd/{B}"), json!({"id": 66, "command": "sh", "d": {"shcmd": "echo forged"}, "forged": true})),
    ];
    for (t, v) in &forged {
        spy.publish(t.as_str(), QoS::AtLeastOnce, false, v.to_string()).unwrap();
    }
    // Positive control, after the forgeries on the same connection: A's own
    // topic is allowed.
    spy.publish(format!("dma/sys/{A}"), QoS::AtLeastOnce, false, json!({"sn": A, "control": true}).to_string()).unwrap();
    p.wait_from(from, &format!("dma/sys/{A}"), T, |m| m.json["control"] == true).expect("A's own topic is writable");
    std::thread::sleep(Duration::from_secs(1)); // a margin beyond the ordering argument
    let leaked: Vec<Msg> = p.topics().into_iter().flat_map(|t| p.all(&t)).filter(|m| m.json["forged"] == true).collect();
    assert!(leaked.is_empty(), "forgeries reached the platform: {leaked:?}");
    assert!(p.answers("dma", &json!(66)).is_empty(), "B must not run a command published by A");

    // Commands: the platform commands B (B answers) and then A; the spy
    // subscribed to dma/cmd/# and dma/cmd/B sees A's command only.
    let ans = p.command("dma", B, json!({"id": 2, "command": "sh", "d": {"shcmd": "echo for-B"}}), T);
    assert_eq!(ans["status"], "ok", "{ans}");
    p.publish_raw(&format!("dma/cmd/{A}"), &json!({"id": 3, "command": "sh", "d": {"shcmd": "echo control-for-A"}}).to_string());
    let heard = recv_until(&spy_rx, &format!("dma/cmd/{A}"), "control-for-A", T);
    assert!(heard.iter().all(|(t, _)| t == &format!("dma/cmd/{A}")), "A's credentials read someone else's commands: {heard:?}");
    assert!(!heard.iter().any(|(_, body)| body.contains("for-B") || body.contains("forged")), "{heard:?}");
    p.wait(&format!("dma/resp/cmd/{A}"), T, |m| m.json["id"] == 3).expect("A still answers the platform");
    drop(spy);
}
