//! Two platform instances on one machine share the work through MQTT
//! shared subscriptions (`$share/<group>/…`) on one mosquitto and one
//! database file: each answer is handled by one instance, each command
//! sent once per try, each status change called back once.

mod common;

use common::hooks::Receiver;
use common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn two_instances_share_one_broker_and_one_sqlite_file() {
    let dir = temp_dir("scale");
    let db = dir.join("shared.db").to_string_lossy().into_owned();
    two_instances(&dir, &db);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn two_instances_share_one_broker_and_one_postgresql() {
    let pg = match common::pg::Postgres::start() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("SKIPPED two_instances_share_one_broker_and_one_postgresql: {e}");
            return;
        }
    };
    let dir = temp_dir("scale-pg");
    two_instances(&dir, &pg.url());
    let _ = std::fs::remove_dir_all(dir);
}

fn two_instances(dir: &std::path::Path, db: &str) {
    let broker = Broker::start();
    let cfg = |client: &str| platform_config(free_port(), db, broker.port, client, json!({"broker": {"share_group": "dma-platform"}}));
    let a = Platform::start_with(dir.to_path_buf(), &cfg("platform-a"));
    let b = Platform::start_with(dir.to_path_buf(), &cfg("platform-b"));
    let hooks = Receiver::start();
    // Set through one instance, seen by the other (one database; a token from one works on both).
    a.post("monitor/devices/callbacks", &json!({"type": "device", "url": hooks.url("/cb"), "enabled": true}));
    assert_eq!(b.call_as(&a.token, "GET", "monitor/devices/callbacks", None).1["data"]["count"], 1);

    let sn = "SCALE0000001";
    let mut agent = Agent::start(sn, broker.port, "");
    a.wait_device(sn, true, T);
    b.wait_device(sn, true, T);
    let runs = agent.dir.join("runs.txt");
    // Commands posted alternately to each instance.
    let ids: Vec<u64> = (0..8).map(|i| (if i % 2 == 0 { &a } else { &b }).send(sh(sn, &format!("echo {i} >> {}", runs.display()), json!({})))).collect();
    for id in &ids {
        let st = a.wait_state(*id, 2, T);
        assert_eq!(st["tryTimes"].as_i64(), Some(1), "sent once: {st}");
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids unique across instances: {ids:?}");
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 8, "each command ran once");
    // Both instances took a share of the answers.
    let handled = |p: &Platform| p.log().lines().filter(|l| l.contains("on SCALE0000001: state 2")).count();
    let (ha, hb) = (handled(&a), handled(&b));
    assert_eq!(ha + hb, 8, "each answer handled by exactly one instance (a {ha}, b {hb})");
    assert!(ha > 0 && hb > 0, "both instances took answers (a {ha}, b {hb})");

    // One callback per change, whichever instance saw it.
    hooks.wait("/cb", 1, T, |h| h.json()["online"] == true);
    agent.kill9();
    hooks.wait("/cb", 1, T, |h| h.json()["online"] == false);
    std::thread::sleep(Duration::from_secs(3));
    let hits = hooks.hits("/cb");
    assert_eq!(hits.len(), 2, "one POST per change: {hits:?}");

    // One instance dies: the other takes all the work at once (no answer
    // waits for the dead one; tryTimes stays 1).
    let mut b = b;
    b.kill9();
    agent.spawn();
    a.wait_device(sn, true, T);
    let more: Vec<u64> = (8..12).map(|i| a.send(sh(sn, &format!("echo {i} >> {}", runs.display()), json!({})))).collect();
    for id in &more {
        let st = a.wait_state(*id, 2, Duration::from_secs(15));
        assert_eq!(st["tryTimes"].as_i64(), Some(1), "{st}");
    }
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 12);
}
