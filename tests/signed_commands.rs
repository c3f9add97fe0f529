//! Signed commands end to end (issue 19 A and B8; docs/PROTOCOL.md
//! "Signed commands (v2)"): a real mosquitto, the real agent with trusted
//! keys, and the test-side signer of tests/common/signer.rs (`ring`
//! directly, not the agent's trust module).
//! Every refusal is checked by its reason and by a marker file that `sh`
//! would have created.

mod common;
use base64::Engine as _;
use common::signer::{now, Key, B64};
use common::*;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(1000);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::SeqCst)
}

/// An inner command addressed to `sn`, signed now.
fn inner(sn: &str, id: u64, command: &str, method: &str, d: Value) -> Value {
    json!({"id": id, "from": "test", "command": command, "method": method, "d": d, "sn": sn, "publishTime": now(), "expires": 0})
}

fn touch(marker: &Path) -> Value {
    json!({"shcmd": format!("echo ran >> {}", marker.display())})
}

/// Publish a raw payload and wait for the answer with `id`.
fn send(p: &Platform, sn: &str, payload: &str, id: u64) -> Value {
    let from = p.count();
    p.publish_raw(&format!("dma/cmd/{sn}"), payload);
    p.wait_from(from, "dma/resp/cmd", T, |m| m.json["id"] == json!(id))
        .unwrap_or_else(|| panic!("no answer to id {id} ({payload})"))
        .json
}

/// Assert an `err` answer whose `d.msg` starts with `reason`.
fn assert_refused(a: &Value, reason: &str) {
    assert_eq!(a["status"], "err", "{a}");
    assert_eq!(a["d"]["exestatus"], "err", "{a}");
    let msg = a["d"]["msg"].as_str().unwrap_or("");
    assert!(msg.starts_with(reason), "expected '{reason}…', got {a}");
}

fn lines(f: &Path) -> usize {
    std::fs::read_to_string(f).map(|s| s.lines().count()).unwrap_or(0)
}

fn setup(sn: &str, keys: &[&Key], extra: &str) -> (Broker, Platform, Agent) {
    let broker = Broker::start();
    let platform = Platform::connect(broker.port, "dma");
    let mut more: String = keys.iter().map(|k| k.uci()).collect();
    more.push_str(extra);
    let agent = Agent::start(sn, &agent_section(sn, broker.port, Path::new("{state}"), &more));
    platform
        .wait(&format!("dma/state/{sn}"), T, |m| m.json["online"] == true)
        .unwrap_or_else(|| panic!("no birth message; agent log:\n{}", agent.log()));
    (broker, platform, agent)
}

fn markers(a: &Agent) -> PathBuf {
    let d = a.dir.join("markers");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `agent get` signed with `k`: the agent's state.
fn state(p: &Platform, sn: &str, k: &Key) -> Value {
    let id = next_id();
    let a = send(p, sn, &k.seal(&inner(sn, id, "agent", "get", json!({}))), id);
    assert_eq!(a["status"], "ok", "{a}");
    a["d"]["result"]["state"].clone()
}

#[test]
fn forged_commands_are_refused_and_never_run() {
    let sn = "SG0000000001";
    let (k1, k2) = (Key::new("k1"), Key::new("k2"));
    let (_b, p, a) = setup(sn, &[&k1], "");
    let birth = p.wait(&format!("dma/state/{sn}"), T, |m| m.json["online"] == true).unwrap().json;
    assert_eq!(birth["signed"], true, "{birth}");
    let dir = markers(&a);
    let mut case = 0;
    let mut check = |payload: &dyn Fn(u64, &Path) -> String, reason: &str| {
        case += 1;
        let (id, m) = (next_id(), dir.join(format!("case{case}")));
        let ans = send(&p, sn, &payload(id, &m), id);
        assert_refused(&ans, reason);
        assert_eq!(ans["sn"], sn);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!m.exists(), "{reason}: sh ran ({ans})");
    };
    // Unsigned: the v1 command the seed's console sends.
    check(&|id, m| json!({"id": id, "from": "test", "command": "sh", "method": "", "d": touch(m)}).to_string(), "unsigned");
    // Signed by a key the router does not trust, under a trusted key's id.
    check(&|id, m| k2.seal_as("k1", inner(sn, id, "sh", "", touch(m)).to_string().as_bytes()), "bad signature");
    // Under an id the router does not know.
    check(&|id, m| k2.seal(&inner(sn, id, "sh", "", touch(m))), "unknown key");
    // Signed for another router.
    check(&|id, m| k1.seal(&inner("SG0000000999", id, "sh", "", touch(m))), "wrong serial");
    // No sn at all.
    check(
        &|id, m| {
            let mut c = inner(sn, id, "sh", "", touch(m));
            c.as_object_mut().unwrap().remove("sn");
            k1.seal(&c)
        },
        "wrong serial",
    );
    // One byte of the body changed after signing ("echo ran" -> "echo rbn").
    check(
        &|id, m| {
            let good: Value = serde_json::from_str(&k1.seal(&inner(sn, id, "sh", "", touch(m)))).unwrap();
            let bytes = B64.decode(good["signed"]["cmd"].as_str().unwrap()).unwrap();
            let text = String::from_utf8(bytes).unwrap().replace("echo ran", "echo rbn");
            let mut forged = good.clone();
            forged["signed"]["cmd"] = json!(B64.encode(text.as_bytes()));
            forged.to_string()
        },
        "bad signature",
    );
    // Stale on a trusted clock (the test agent's clock_trust is `always`): two days old, an hour ahead.
    for skew in [-2 * 86400i64, 3600] {
        check(
            &|id, m| {
                let mut c = inner(sn, id, "sh", "", touch(m));
                c["publishTime"] = json!(now().saturating_add_signed(skew));
                k1.seal(&c)
            },
            "stale",
        );
    }
    // No publishTime; a bad envelope.
    check(
        &|id, m| {
            let mut c = inner(sn, id, "sh", "", touch(m));
            c.as_object_mut().unwrap().remove("publishTime");
            k1.seal(&c)
        },
        "malformed signed command",
    );
    check(&|id, m| k1.seal(&inner(sn, id, "sh", "", touch(m))).replace("ed25519", "rsa"), "malformed signed command");
    // A read-only command refused on the MQTT thread (an idle agent answers
    // `agent get` there) is counted like any other.
    let id = next_id();
    assert_refused(&send(&p, sn, &inner(sn, id, "agent", "get", json!({})).to_string(), id), "unsigned");
    // Sanity: the same command, signed properly, runs.
    let (id, ok) = (next_id(), dir.join("ok"));
    let ans = send(&p, sn, &k1.seal(&inner(sn, id, "sh", "", touch(&ok))), id);
    assert_eq!(ans["status"], "ok", "{ans}");
    assert_eq!(lines(&ok), 1);
    // Counted by reason; none of them journalled (only the good sh: the
    // get is read-only, never journalled).
    let st = state(&p, sn, &k1);
    let r = &st["refused"];
    assert_eq!((r["unsigned"].as_u64(), r["badSignature"].as_u64(), r["unknownKey"].as_u64()), (Some(2), Some(2), Some(1)), "{st}");
    assert_eq!((r["wrongSerial"].as_u64(), r["stale"].as_u64(), r["malformed"].as_u64()), (Some(2), Some(2), Some(2)), "{st}");
    assert_eq!(st["journal"]["size"], 1, "refused commands are not journalled: {st}");
    // Nor is a read-only command recorded in the replay guard (no fsync):
    // only the sh's id is there.
    let guard = std::fs::read_to_string(a.state_dir().join("replay.json")).unwrap();
    let ids = serde_json::from_str::<Value>(&guard).unwrap()["keys"]["k1"]["ids"].as_array().map(|a| a.len());
    assert_eq!(ids, Some(1), "{guard}");
    assert_eq!(st["signed"], true);
}

#[test]
fn replays_are_refused_after_success_compaction_and_restart() {
    let sn = "SG0000000002";
    let k1 = Key::new("k1");
    // The smallest journal: 16 commands, so a command is compacted away soon.
    let (_b, p, mut a) = setup(sn, &[&k1], "\toption journal_size '16'\n");
    let dir = markers(&a);
    let counter = dir.join("count");
    let id = next_id();
    let captured = k1.seal(&inner(sn, id, "sh", "", touch(&counter)));
    let first = send(&p, sn, &captured, id);
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(lines(&counter), 1);
    // Replayed after success: the stored answer again, not a second run.
    let again = send(&p, sn, &captured, id);
    assert_eq!(again, first, "the stored answer is published again");
    // A second id, still in the journal, for the restart case below.
    let (id2, counter2) = (next_id(), dir.join("count2"));
    let captured2 = k1.seal(&inner(sn, id2, "sh", "", touch(&counter2)));
    let first2 = send(&p, sn, &captured2, id2);
    assert_eq!(first2["status"], "ok");
    // Compaction: 16 more commands push `id` out of the journal.
    for _ in 0..16 {
        let i = next_id();
        assert_eq!(send(&p, sn, &k1.seal(&inner(sn, i, "sh", "", json!({"shcmd": "true"}))), i)["status"], "ok");
    }
    let st = state(&p, sn, &k1);
    assert_eq!(st["journal"]["size"], 16, "{st}");
    let replayed = send(&p, sn, &captured, id);
    assert_refused(&replayed, "replayed");
    assert_eq!(lines(&counter), 1, "a compacted id never runs again");
    // After a restart: the guard is on disk.
    a.stop();
    let from = p.count();
    a.spawn();
    p.wait_from(from, &format!("dma/state/{sn}"), T, |m| m.json["online"] == true).expect("birth after restart");
    assert_refused(&send(&p, sn, &captured, id), "replayed");
    assert_eq!(lines(&counter), 1);
    // `id2` was compacted too (16 newer commands): refused as well; none ran twice.
    assert_refused(&send(&p, sn, &captured2, id2), "replayed");
    assert_eq!(lines(&counter2), 1);
    let st = state(&p, sn, &k1);
    assert_eq!(st["refused"]["replayed"], 2, "counted (per run): {st}");
    // A fresh command still in the journal: its stored answer after the restart.
    let (id3, counter3) = (next_id(), dir.join("count3"));
    let captured3 = k1.seal(&inner(sn, id3, "sh", "", touch(&counter3)));
    let first3 = send(&p, sn, &captured3, id3);
    a.stop();
    let from = p.count();
    a.spawn();
    p.wait_from(from, &format!("dma/state/{sn}"), T, |m| m.json["online"] == true).expect("birth after restart");
    assert_eq!(send(&p, sn, &captured3, id3), first3);
    assert_eq!(lines(&counter3), 1);
}

#[test]
fn key_rotation_and_trust_settings() {
    let sn = "SG0000000003";
    let (k1, k2) = (Key::new("k1"), Key::new("k2"));
    let (_b, p, a) = setup(sn, &[&k1, &k2], "");
    let dir = markers(&a);
    // Both keys of a rotation are accepted.
    for k in [&k1, &k2] {
        let (id, m) = (next_id(), dir.join(format!("by-{}", k.kid)));
        assert_eq!(send(&p, sn, &k.seal(&inner(sn, id, "sh", "", touch(&m))), id)["status"], "ok");
        assert_eq!(lines(&m), 1);
    }
    // Trust settings unsigned: refused (every command must be signed here).
    let id = next_id();
    let unsigned = json!({"id": id, "command": "agent", "method": "set", "d": {"reboot_command": "touch /tmp/pwned"}});
    assert_refused(&send(&p, sn, &unsigned.to_string(), id), "unsigned");
    // Signed: accepted and persisted.
    let reboot = format!("echo reboot >> {}", dir.join("reboot").display());
    let id = next_id();
    let ans = send(&p, sn, &k2.seal(&inner(sn, id, "agent", "set", json!({"reboot_command": reboot, "shell_enabled": 0}))), id);
    assert_eq!(ans["status"], "ok", "{ans}");
    let conf = std::fs::read_to_string(&a.config).unwrap();
    assert!(conf.contains("reboot_command") && conf.contains("option shell_enabled '0'"), "{conf}");
    let (id, m) = (next_id(), dir.join("shell-off"));
    assert_eq!(send(&p, sn, &k1.seal(&inner(sn, id, "sh", "", touch(&m))), id)["status"], "err");
    assert!(!m.exists());
    let id = next_id();
    assert_eq!(send(&p, sn, &k1.seal(&inner(sn, id, "agent", "set", json!({"shell_enabled": 1}))), id)["status"], "ok");
    // Removing every key by a command is refused: enforcement cannot be turned off remotely.
    for none in [json!([]), Value::Null, json!("")] {
        let id = next_id();
        let ans = send(&p, sn, &k2.seal(&inner(sn, id, "agent", "set", json!({"trusted_key": none}))), id);
        assert_refused(&ans, "trusted_key: the last trusted key cannot be removed");
    }
    let id = next_id();
    assert_refused(&send(&p, sn, &k2.seal(&inner(sn, id, "agent", "set", json!({"trusted_key": ["k3:AAAA"]}))), id), "bad value for trusted_key");
    // K1 removed by a K2-signed set: K1 is refused from then on, K2 works.
    let id = next_id();
    let ans = send(&p, sn, &k2.seal(&inner(sn, id, "agent", "set", json!({"trusted_key": [k2.public()]}))), id);
    assert_eq!(ans["status"], "ok", "{ans}");
    assert_eq!(ans["d"]["result"]["applied"]["trusted_key"], json!([k2.public()]), "public keys are shown, not masked: {ans}");
    let (id, m) = (next_id(), dir.join("k1-after"));
    assert_refused(&send(&p, sn, &k1.seal(&inner(sn, id, "sh", "", touch(&m))), id), "unknown key");
    assert!(!m.exists());
    let (id, m) = (next_id(), dir.join("k2-after"));
    assert_eq!(send(&p, sn, &k2.seal(&inner(sn, id, "sh", "", touch(&m))), id)["status"], "ok");
    assert_eq!(lines(&m), 1);
    let conf = std::fs::read_to_string(&a.config).unwrap();
    assert!(!conf.contains(&k1.public()) && conf.contains(&k2.public()), "{conf}");
}

#[test]
fn migration_mode_accepts_unsigned_and_says_so() {
    let sn = "SG0000000004";
    let k1 = Key::new("k1");
    let (_b, p, a) = setup(sn, &[], "");
    let birth = p.wait(&format!("dma/state/{sn}"), T, |m| m.json["online"] == true).unwrap().json;
    assert_eq!(birth["signed"], false, "{birth}");
    assert!(a.log().contains("accepting UNSIGNED commands"), "warning at start");
    let dir = markers(&a);
    let (id, m) = (next_id(), dir.join("v1"));
    let ans = send(&p, sn, &json!({"id": id, "command": "sh", "d": touch(&m)}).to_string(), id);
    assert_eq!(ans["status"], "ok", "{ans}");
    assert_eq!(lines(&m), 1);
    // Trust settings need a signature even here.
    for set in [
        json!({"shell_enabled": 0}),
        json!({"reboot_command": "touch /tmp/pwned"}),
        json!({"trusted_key": [k1.public()]}),
        json!({"device": "iad1", "options": {"address": "http://127.0.0.1:9/"}}),
    ] {
        let id = next_id();
        let ans = send(&p, sn, &json!({"id": id, "command": "agent", "method": "set", "d": set}).to_string(), id);
        assert_refused(&ans, "signature required");
    }
    // A signed command whose key the router cannot check.
    let (id, m) = (next_id(), dir.join("signed"));
    assert_refused(&send(&p, sn, &k1.seal(&inner(sn, id, "sh", "", touch(&m))), id), "unknown key");
    assert!(!m.exists());
    let id = next_id();
    let ans = send(&p, sn, &json!({"id": id, "command": "agent", "method": "get"}).to_string(), id);
    let st = &ans["d"]["result"]["state"];
    assert_eq!(st["signed"], false);
    assert_eq!(st["refused"]["signatureRequired"], 4, "{st}");
    assert_eq!(st["refused"]["unknownKey"], 1, "{st}");
    let conf = std::fs::read_to_string(&a.config).unwrap();
    assert!(!conf.contains("shell_enabled") && !conf.contains("pwned"), "{conf}");
}

#[test]
fn ctl_keygen_and_signed_send() {
    let sn = "SG0000000005";
    let base = temp_dir("ctl-keys");
    let key_file = base.join("platform.pem");
    let out = bins::ctl_command().args(["keygen", "--out"]).arg(&key_file).args(["--kid", "ops1"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(public.starts_with("ops1:") && public.ends_with('='), "{public}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let again = bins::ctl_command().args(["keygen", "--out"]).arg(&key_file).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "an existing key is never overwritten");
    // The key `ctl keygen` wrote is a standard PKCS#8 document ring reads.
    let pem = std::fs::read_to_string(&key_file).unwrap();
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&B64.decode(der).unwrap()).unwrap();
    assert_eq!(format!("ops1:{}", B64.encode(pair.public_key().as_ref())), public);

    let broker = Broker::start();
    let p = Platform::connect(broker.port, "dma");
    let a = Agent::start(sn, &agent_section(sn, broker.port, Path::new("{state}"), &format!("\tlist trusted_key '{public}'\n")));
    p.wait(&format!("dma/state/{sn}"), T, |m| m.json["online"] == true).expect("birth");
    let ctl = |extra: &[&str]| {
        let mut c = bins::ctl_command();
        c.args(["--port", &broker.port.to_string(), "--json", "send", sn, "sh", "--body", r#"{"shcmd":"echo signed"}"#, "--timeout", "20"]);
        c.args(extra);
        let o = c.output().unwrap();
        serde_json::from_slice::<Value>(&o.stdout).unwrap_or(Value::Null)
    };
    let ans = ctl(&["--sign-key", key_file.to_str().unwrap(), "--kid", "ops1"]);
    assert_eq!(ans["status"], "ok", "{ans}\n{}", a.log());
    assert_eq!(unb64(&ans["d"]["result"]), "signed\n");
    assert_refused(&ctl(&[]), "unsigned");
    // The signed payload as published: inner sn and publishTime, verified by the test's own code.
    let sent = p.all(&format!("dma/cmd/{sn}")).into_iter().find(|m| m.json.get("signed").is_some()).expect("signed payload").json;
    let cmd = B64.decode(sent["signed"]["cmd"].as_str().unwrap()).unwrap();
    let mut msg = b"dma-cmd-v1\n".to_vec();
    msg.extend_from_slice(&cmd);
    let sig = B64.decode(sent["signed"]["sig"].as_str().unwrap()).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, pair.public_key().as_ref()).verify(&msg, &sig).expect("verifies");
    let inner: Value = serde_json::from_slice(&cmd).unwrap();
    assert_eq!(inner["sn"], sn);
    assert!(inner["publishTime"].as_u64().unwrap().abs_diff(now()) < 60);
    let _ = std::fs::remove_dir_all(base);
}

#[test]
fn a_failed_command_runs_again_only_when_signed_anew() {
    let sn = "SG0000000006";
    let k1 = Key::new("k1");
    let (_b, p, a) = setup(sn, &[&k1], "");
    let counter = markers(&a).join("tries");
    let id = next_id();
    let mut c = inner(sn, id, "sh", "", json!({"shcmd": format!("echo try >> {}; exit 1", counter.display())}));
    let captured = k1.seal(&c);
    assert_eq!(send(&p, sn, &captured, id)["status"], "err");
    assert_eq!(lines(&counter), 1);
    // The captured bytes of the failed try: refused, not run.
    assert_refused(&send(&p, sn, &captured, id), "replayed");
    assert_eq!(lines(&counter), 1);
    // The platform's retry, signed anew with a later publishTime: runs again (a retry).
    c["publishTime"] = json!(c["publishTime"].as_u64().unwrap() + 1);
    let retry = k1.seal(&c);
    assert_eq!(send(&p, sn, &retry, id)["status"], "err");
    assert_eq!(lines(&counter), 2);
    assert_refused(&send(&p, sn, &retry, id), "replayed");
    assert_eq!(lines(&counter), 2);
}
