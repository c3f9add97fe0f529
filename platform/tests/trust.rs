//! What the platform believes and what it signs (docs/PROTOCOL.md v2,
//! issue 19 A1, C11, C12), through a real mosquitto with plain MQTT
//! clients posing as devices (so it does not depend on the agent's layout):
//! a device speaking for another is dropped, a serial seen on its own
//! topics is no longer believed on the shared ones (also after a restart),
//! forged answers change no command, and commands go out signed with the
//! key `keygen` made.

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const A: &str = "DEVA00000001";
const B: &str = "DEVB00000002";
const V1: &str = "DEVV10000003";

fn birth(sn: &str, signed: Option<bool>) -> String {
    let mut b = json!({"sn": sn, "online": true, "time": 1, "bootTime": 1, "ver": "0.1.0"});
    if let Some(s) = signed {
        b["signed"] = json!(s);
    }
    b.to_string()
}

fn sys(sn: &str, load: f64) -> String {
    json!({"sn": sn, "time": 1, "d": {"free": 1000, "used": 2000, "load": load, "uptime": 5}}).to_string()
}

fn answer(id: u64, sn: &str, marker: &str) -> String {
    json!({"id": id, "sn": sn, "from": "test", "command": "sh", "method": "", "status": "ok", "time": 1,
           "d": {"exestatus": "ok", "status": "ok", "msg": "", "result": marker, "code": 0}})
    .to_string()
}

fn device(p: &Platform, sn: &str) -> Value {
    p.get(&format!("monitor/devices?sn={sn}"))["list"][0].clone()
}

/// The `load` of the device's last `sys` the platform stored.
fn load(p: &Platform, sn: &str) -> Option<f64> {
    let d = device(p, sn);
    let sys: Value = serde_json::from_str(d["sys"].as_str()?).ok()?;
    sys["d"]["load"].as_f64()
}

/// Wait until the v1 device's stored load is `l`: every message published
/// before it (each publish waits for the broker's ack) has been handled.
fn barrier(p: &Platform, port: u16, l: f64) {
    publish(port, "dma/sys", &sys(V1, l));
    wait_for(T, || (load(p, V1) == Some(l)).then_some(())).unwrap_or_else(|| panic!("v1 device's sys {l} not stored\n{}", p.log()));
}

/// SQLite by default; `database`: a PostgreSQL URL.
fn platform(port: u16, database: Option<&str>) -> Platform {
    match database {
        None => Platform::start(port),
        Some(url) => Platform::start_with(temp_dir("platform"), &platform_config(free_port(), url, port, "platform-trust-pg", json!({}))),
    }
}

/// Both backends: `f` with SQLite, then with a throwaway PostgreSQL (when installed).
fn both(name: &str, f: fn(Option<&str>)) {
    f(None);
    match common::pg::Postgres::start() {
        Ok(pg) => f(Some(&pg.url())),
        Err(e) => eprintln!("SKIPPED {name} on PostgreSQL: {e}"),
    }
}

#[test]
fn a_device_speaks_only_for_itself_and_per_device_serials_leave_the_shared_topics() {
    both("a_device_speaks_only_for_itself", speaks_only_for_itself);
}

fn speaks_only_for_itself(database: Option<&str>) {
    let broker = Broker::start();
    let port = broker.port;
    let mut p = platform(port, database);

    publish(port, &format!("dma/state/{B}"), &birth(B, Some(true)));
    publish(port, &format!("dma/sys/{B}"), &sys(B, 0.5));
    wait_for(T, || (load(&p, B) == Some(0.5)).then_some(())).expect("B's own sys stored");
    // A v1 device (shared topics, a birth without "signed") is believed as before.
    publish(port, &format!("dma/state/{V1}"), &birth(V1, None));
    barrier(&p, port, 0.1);
    let (db, dv) = (device(&p, B), device(&p, V1));
    assert_eq!((db["signed"].as_bool(), db["online"].as_bool()), (Some(true), Some(true)), "{db}");
    assert!(dv["signed"].is_null() && dv["online"] == true, "v1 birth: signed unknown: {dv}");

    // A, on its own topic, speaks for B: dropped.
    publish(port, &format!("dma/sys/{A}"), &sys(B, 99.9));
    // A will for B on A's state topic: dropped (B stays online).
    publish(port, &format!("dma/state/{A}"), &json!({"sn": B, "online": false}).to_string());
    // Anyone on the shared topic, for B (seen per-device): ignored.
    publish(port, "dma/sys", &sys(B, 42.0));
    // A serial that is no serial (a forged log line in it; mosquitto refuses
    // control characters in topics, not in payloads): dropped, logged escaped.
    publish(port, "dma/sys", &sys("X\n[ERROR] forged line", 1.0));
    barrier(&p, port, 0.2);
    assert_eq!(load(&p, B), Some(0.5), "B's load unchanged: {}", device(&p, B));
    assert_eq!(device(&p, B)["online"], true);
    assert!(device(&p, A).is_null(), "nothing stored for A either: {}", device(&p, A));

    // The fact that B speaks per-device survives a restart (it is in the database).
    p.kill9();
    p.spawn();
    p.token = p.login(USER, PASSWORD).expect("login after restart");
    publish(port, "dma/sys", &sys(B, 43.0));
    barrier(&p, port, 0.3);
    assert_eq!(load(&p, B), Some(0.5), "after a restart, B on the shared topic is still ignored");
    // B on its own topic is still believed.
    publish(port, &format!("dma/sys/{B}"), &sys(B, 0.75));
    wait_for(T, || (load(&p, B) == Some(0.75)).then_some(())).expect("B's own sys after the restart");

    // A v2 device in migration mode says so.
    publish(port, &format!("dma/state/{A}"), &birth(A, Some(false)));
    wait_for(T, || (device(&p, A)["signed"] == false).then_some(())).expect("signed: false");

    let log = p.log();
    for why in ["snMismatch", "sharedIgnored"] {
        assert!(log.contains("trust: dropped") && log.contains(why), "{why} logged:\n{log}");
    }
    assert!(log.contains("badSerial") && !log.contains("\n[ERROR] forged line"), "control characters escaped:\n{log}");
}

#[test]
fn forged_answers_change_no_command() {
    both("forged_answers_change_no_command", forged_answers);
}

fn forged_answers(database: Option<&str>) {
    let broker = Broker::start();
    let port = broker.port;
    let p = platform(port, database);
    publish(port, &format!("dma/state/{V1}"), &birth(V1, None));
    barrier(&p, port, 0.1);

    // A command held back for a device that never came online: never sent.
    let held_sn = "DEVH00000004";
    let held = p.send(sh(held_sn, "id", json!({"publishNow": false})));
    // Its forged ok, on the shared answer topic and on the device's own.
    publish(port, "dma/resp/cmd", &answer(held, held_sn, "forged-held-1"));
    publish(port, &format!("dma/resp/cmd/{held_sn}"), &answer(held, held_sn, "forged-held-2"));

    // B: online, seen per-device, one command in flight to it.
    let cmds_b = Watch::start(port, &format!("dma/cmd/{B}"));
    publish(port, &format!("dma/state/{B}"), &birth(B, Some(true)));
    publish(port, &format!("dma/sys/{B}"), &sys(B, 0.5));
    p.wait_device(B, true, T);
    let id = p.send(sh(B, "id", json!({"maxRetries": 1})));
    wait_for(T, || cmds_b.all().iter().any(|(_, m)| m["id"].as_u64() == Some(id)).then_some(())).expect("B received its command");
    p.wait_state(id, 1, T);
    // A answers B's command: as itself, as B on A's topic, as B on the shared topic.
    publish(port, &format!("dma/resp/cmd/{A}"), &answer(id, A, "forged-1"));
    publish(port, &format!("dma/resp/cmd/{A}"), &answer(id, B, "forged-2"));
    publish(port, "dma/resp/cmd", &answer(id, B, "forged-3"));
    barrier(&p, port, 0.2);

    let c = p.command(held);
    assert_eq!((c["state"].as_i64(), c["tryTimes"].as_i64()), (Some(0), Some(0)), "held-back command untouched: {c}");
    assert_eq!(p.call("GET", &format!("remotectl/commands/responses?id={held}"), None).0, 404, "no response stored for it");
    let c = p.command(id);
    assert_eq!((c["state"].as_i64(), c["tryTimes"].as_i64()), (Some(1), Some(1)), "in-flight command untouched by the forgeries: {c}");

    // B's real answer on its own topic: accepted.
    publish(port, &format!("dma/resp/cmd/{B}"), &answer(id, B, "real"));
    p.wait_state(id, 2, T);
    let r = p.get(&format!("remotectl/commands/responses?id={id}"));
    assert_eq!((r["sn"].as_str(), r["d"]["result"].as_str()), (Some(B), Some("real")), "{r}");

    let log = p.log();
    for why in ["answerNotSent", "answerWrongDevice", "snMismatch", "sharedIgnored"] {
        assert!(log.contains(why), "{why} logged:\n{log}");
    }
}

/// Decode and check one published try; returns (inner command, outer tryTimes).
fn verified(public: &str, msg: &Value) -> (Value, i64) {
    let outer = msg.as_object().expect("object");
    assert!(outer.keys().all(|k| k == "signed" || k == "tryTimes"), "only signed and tryTimes outside: {msg}");
    let s = &msg["signed"];
    assert_eq!((s["v"].as_i64(), s["alg"].as_str()), (Some(1), Some("ed25519")), "{msg}");
    let (kid, key) = public.split_once(':').expect("kid:BASE64");
    assert_eq!(s["kid"].as_str(), Some(kid));
    let pk = B64.decode(key).expect("public key base64");
    let cmd = B64.decode(s["cmd"].as_str().expect("cmd")).expect("cmd base64");
    let sig = B64.decode(s["sig"].as_str().expect("sig")).expect("sig base64");
    let verify = |cmd: &[u8]| {
        let msg = [b"dma-cmd-v1\n".as_slice(), cmd].concat();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &pk).verify(&msg, &sig).is_ok()
    };
    assert!(verify(&cmd), "the signature verifies with keygen's public key: {msg}");
    for i in [0, cmd.len() / 2, cmd.len() - 1] {
        let mut forged = cmd.clone();
        forged[i] ^= 0x01;
        assert!(!verify(&forged), "one byte changed at {i}: refused");
    }
    (serde_json::from_slice(&cmd).expect("inner command is JSON"), msg["tryTimes"].as_i64().expect("tryTimes"))
}

#[test]
fn commands_are_signed_anew_for_every_try_with_the_keygen_key() {
    let keys = temp_dir("keys");
    let key = keys.join("platform.pem");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dma-platform"))
        .args(["keygen", "--out", key.to_str().unwrap(), "--kid", "fleet-1"])
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{out:?}");
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(public.starts_with("fleet-1:") && public.len() == "fleet-1:".len() + 44, "{public}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{}", pem.lines().next().unwrap_or(""));
    let secret = pem.lines().nth(1).unwrap().to_string();
    // keygen never overwrites a key.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_dma-platform")).args(["keygen", "--out", key.to_str().unwrap()]).output().unwrap();
    assert!(!again.status.success() && std::fs::read_to_string(&key).unwrap() == pem);

    let broker = Broker::start();
    let port = broker.port;
    let dir = temp_dir("platform");
    let db = dir.join("platform.db").to_string_lossy().into_owned();
    let cfg = platform_config(
        free_port(),
        &db,
        port,
        "platform-signed",
        json!({"signing_key": {"file": key.to_str().unwrap(), "kid": "fleet-1"}, "answer_timeout": 2}),
    );
    let p = Platform::start_with(dir, &cfg);
    let sn = "DEVS00000005";
    let cmds = Watch::start(port, &format!("dma/cmd/{sn}"));
    publish(port, &format!("dma/state/{sn}"), &birth(sn, Some(true)));
    p.wait_device(sn, true, T);
    let id = p.send(sh(sn, "id", json!({"maxRetries": 2, "expires": 600})));
    // No answer: after answer_timeout (2 s) the second try goes out.
    let tries = wait_for(Duration::from_secs(20), || Some(cmds.all()).filter(|m| m.len() >= 2)).unwrap_or_else(|| panic!("two tries: {:?}\n{}", cmds.all(), p.log()));
    let (i1, t1) = verified(&public, &tries[0].1);
    let (i2, t2) = verified(&public, &tries[1].1);
    assert_eq!((t1, t2), (1, 2));
    for i in [&i1, &i2] {
        assert_eq!((i["sn"].as_str(), i["id"].as_u64(), i["command"].as_str(), i["d"]["shcmd"].as_str()), (Some(sn), Some(id), Some("sh"), Some("id")), "{i}");
    }
    let (p1, p2) = (i1["publishTime"].as_i64().unwrap(), i2["publishTime"].as_i64().unwrap());
    assert!(p2 > p1, "the retry is signed anew, later: {p1} then {p2}");
    let (e1, e2) = (i1["expires"].as_i64().unwrap(), i2["expires"].as_i64().unwrap());
    assert!(e1 <= 600 && e1 > 590 && e2 < e1 && e2 > 0, "expires = seconds left: {e1} then {e2}");
    assert_ne!(tries[0].1["signed"]["sig"], tries[1].1["signed"]["sig"]);
    // The admin endpoint serves the public key for provisioning, never the private one.
    let served = p.get("platform/key");
    assert_eq!((served["kid"].as_str(), served["publicKey"].as_str()), (Some("fleet-1"), Some(public.as_str())), "{served}");
    assert!(!served.to_string().contains(&secret));
    let figures = p.get("platform/trust");
    assert!(figures.get("snMismatch").is_some(), "{figures}");
    let log = p.log();
    assert!(!log.contains(&secret), "the private key is never logged");
    assert!(log.contains(&public), "the public key is logged at start");
    let _ = std::fs::remove_dir_all(&keys);
}

#[test]
fn without_a_signing_key_commands_go_out_unsigned_with_a_warning() {
    let broker = Broker::start();
    let p = Platform::start(broker.port);
    let sn = "DEVU00000006";
    let cmds = Watch::start(broker.port, &format!("dma/cmd/{sn}"));
    publish(broker.port, &format!("dma/state/{sn}"), &birth(sn, Some(false)));
    p.wait_device(sn, true, T);
    let id = p.send(sh(sn, "id", json!({})));
    let m = wait_for(T, || cmds.all().first().cloned()).expect("the command");
    assert_eq!((m.1["id"].as_u64(), m.1.get("signed"), m.1["tryTimes"].as_i64()), (Some(id), None, Some(1)), "v1 command: {}", m.1);
    assert!(p.log().contains("UNSIGNED"), "warned at start");
}
