//! A fake responder: answers every command published on `{p}/cmd/+` with
//! `ok` on the target's own answer topic `{p}/resp/cmd/{sn}`, as an agent
//! would (unsigned v1 commands: the platform runs without a signing key).

use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn start(port: u16, prefix: &str) -> Arc<AtomicU64> {
    start_with(port, prefix, |_| false)
}

/// As `start`, but the serials `fails` names answer `err` ("refused by the test").
pub fn start_with(port: u16, prefix: &str, fails: fn(&str) -> bool) -> Arc<AtomicU64> {
    let answered = Arc::new(AtomicU64::new(0));
    let mut o = MqttOptions::new(format!("fleet-responder-{}", std::process::id()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(200);
    let (client, mut conn) = Client::new(o, 20_000);
    let (p, n) = (prefix.to_string(), answered.clone());
    let sub = format!("{p}/cmd/+");
    // Answers are published from another thread: the event loop must keep polling.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(String, Vec<u8>)>(20_000);
    let pubc = client.clone();
    std::thread::spawn(move || {
        for (topic, body) in rx.iter() {
            if pubc.publish(topic, QoS::AtLeastOnce, false, body).is_ok() {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let _ = client.try_subscribe(sub.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Incoming::Publish(m))) => {
                    let Some(sn) = m.topic.rsplit('/').next().map(str::to_string) else { continue };
                    let Ok(cmd) = serde_json::from_slice::<Value>(&m.payload) else { continue };
                    let Some(id) = cmd.get("id").cloned() else { continue };
                    let body = if fails(&sn) {
                        json!({"id": id, "sn": sn, "status": "err", "d": {"msg": "refused by the test"}})
                    } else {
                        json!({"id": id, "sn": sn, "status": "ok", "d": {"result": "bench"}})
                    };
                    let body = body.to_string().into_bytes();
                    let _ = tx.try_send((format!("{p}/resp/cmd/{sn}"), body));
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    });
    answered
}
