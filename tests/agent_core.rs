//! The agent core end to end: real mosquitto, the real binary, a platform
//! client (issue "Agent core").

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn setup(sn: &str, extra: &str) -> (Broker, Platform, Agent) {
    let broker = Broker::start();
    let platform = Platform::connect(broker.port, "dma");
    let cfg = agent_section(sn, broker.port, std::path::Path::new("{state}"), extra);
    let agent = Agent::start(sn, &cfg);
    platform
        .wait(&format!("dma/state/{sn}"), T, |m| m.json["online"] == true)
        .unwrap_or_else(|| panic!("no birth message; agent log:\n{}", agent.log()));
    (broker, platform, agent)
}

fn sh(id: Value, script: &str) -> Value {
    json!({"id": id, "from": "test", "command": "sh", "method": "", "d": {"shcmd": script}})
}

#[test]
fn a_succeeded_id_redelivered_after_its_expiry_gets_its_stored_answer() {
    // Issue 21 item 7: expiry forbids running, not answering.
    let (_b, p, _a) = setup("AA0000000010", "");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut c = sh(json!(300), "echo ran-once");
    c["publishTime"] = json!(now);
    c["expires"] = json!(2);
    let r1 = p.command("dma", "AA0000000010", c.clone(), T);
    assert_eq!(r1["status"], "ok", "{r1}");
    std::thread::sleep(Duration::from_secs(3));
    let r2 = p.command("dma", "AA0000000010", c, T);
    assert_eq!((r2["status"].clone(), r2["d"].clone()), (json!("ok"), r1["d"].clone()), "the stored answer, not 'expired': {r2}");
    // A new id past its expiry is still refused.
    let mut late = sh(json!(301), "echo never");
    late["publishTime"] = json!(now);
    late["expires"] = json!(2);
    let r3 = p.command("dma", "AA0000000010", late, T);
    assert!(r3["d"]["msg"].as_str().unwrap_or("").starts_with("expired"), "{r3}");
}

#[test]
fn birth_will_and_clean_stop() {
    let (_b, p, mut a) = setup("AA0000000001", "");
    let birth = p.wait("dma/state/AA0000000001", T, |m| m.json["online"] == true).unwrap().json;
    assert_eq!(birth["sn"], "AA0000000001");
    assert!(birth["bootTime"].as_u64().unwrap() > 1_000_000_000);
    assert!(birth["time"].as_u64().unwrap() >= birth["bootTime"].as_u64().unwrap());
    assert_eq!(birth["ver"], env!("CARGO_PKG_VERSION"));
    // Retained: a platform client that connects later still sees it.
    let late = Platform::connect(_b.port, "dma");
    let m = late.wait("dma/state/AA0000000001", T, |m| m.json["online"] == true).expect("retained birth");
    assert!(m.retain);
    // kill -9: the broker publishes the will.
    a.kill9();
    let will = p.wait("dma/state/AA0000000001", T, |m| m.json["online"] == false).expect("will published");
    assert_eq!(will.json, json!({"sn": "AA0000000001", "online": false}));
    // Restart, then SIGTERM: the agent publishes the offline state itself.
    let from = p.count();
    a.spawn();
    p.wait_from(from, "dma/state/AA0000000001", T, |m| m.json["online"] == true).expect("birth again");
    let from = p.count();
    let st = a.stop().expect("exited");
    assert!(st.success(), "clean exit: {st:?}");
    p.wait_from(from, "dma/state/AA0000000001", T, |m| m.json["online"] == false).expect("offline on SIGTERM");
    assert!(a.log().contains("stopped"));
}

#[test]
fn telemetry_payloads() {
    let (_b, p, _a) = setup("AA0000000002", "\toption sys_interval '1'\n\toption procs_interval '1'\n\tlist watch 'mosquitto'\n");
    let sys = p.wait("dma/sys", T, |m| m.json["sn"] == "AA0000000002").expect("sys").json;
    let d = &sys["d"];
    assert!(d["free"].as_u64().unwrap() > 0 && d["used"].as_u64().unwrap() > 0);
    assert!(d["load"].as_f64().is_some());
    assert!(d["uptime"].as_u64().unwrap() > 0);
    assert!(d["disk"]["total"].as_u64().unwrap() > 0);
    assert!(d["cpu"].as_f64().unwrap() >= 0.0);
    let procs = p.wait("dma/procs", T, |m| m.json["sn"] == "AA0000000002").expect("procs").json;
    let list = procs["d"].as_array().unwrap();
    assert_eq!(list[0]["n"], "dma-agent");
    let rss = list[0]["mem"].as_u64().unwrap();
    assert!(rss > 100 && rss < 200_000, "agent RSS {rss} KiB");
    assert!(list[0]["peak"].as_u64().unwrap() >= rss, "peak RSS reported");
    let mosq = list.iter().find(|e| e["n"] == "mosquitto").expect("watched process listed");
    assert_eq!(mosq["running"], true);
    assert!(mosq["mem"].as_u64().unwrap() > 0);
    let v = p.wait("dma/versions", T, |m| m.json["sn"] == "AA0000000002").expect("versions").json;
    let agent_v = v["d"][0]["v"].as_str().unwrap();
    assert!(agent_v.starts_with(&format!("{} ", env!("CARGO_PKG_VERSION"))), "{agent_v}");
    // The build time in the platform's form: `YYYYMMDD-HHMMSS`.
    let stamp = agent_v.rsplit(' ').next().unwrap();
    assert_eq!(stamp.len(), 15, "{agent_v}");
    assert!(stamp.chars().enumerate().all(|(i, c)| if i == 8 { c == '-' } else { c.is_ascii_digit() }), "{agent_v}");
    assert!(v["d"].as_array().unwrap().len() >= 2, "OS release listed");
    // On demand.
    let from = p.count();
    let r = p.command("dma", "AA0000000002", json!({"id": 7, "command": "report", "d": {"what": "versions"}}), T);
    assert_eq!(r["status"], "ok");
    p.wait_from(from, "dma/versions", T, |_| true).expect("versions on demand");
}

#[test]
fn sh_output_errors_cap_and_timeout() {
    let extra = "\toption shell_output_cap '1000'\n\toption shell_timeout '5'\n";
    let (_b, p, a) = setup("AA0000000003", extra);
    let r = p.command("dma", "AA0000000003", sh(json!(1), "echo hello; echo oops >&2"), T);
    assert_eq!(r["status"], "ok");
    assert_eq!(r["d"]["exestatus"], "ok");
    assert_eq!(unb64(&r["d"]["result"]), "hello\n");
    assert_eq!(unb64(&r["d"]["stderr"]), "oops\n");
    assert_eq!(r["d"]["code"], 0);
    assert_eq!(r["sn"], "AA0000000003");

    let r = p.command("dma", "AA0000000003", sh(json!(2), "echo partial; exit 7"), T);
    assert_eq!(r["status"], "err");
    assert_eq!(r["d"]["exestatus"], "ok", "the process ran");
    assert_eq!(r["d"]["code"], 7);
    assert_eq!(unb64(&r["d"]["result"]), "partial\n");

    let r = p.command("dma", "AA0000000003", sh(json!(3), "head -c 5000 /dev/zero | tr '\\0' x"), T);
    assert_eq!(unb64(&r["d"]["result"]).len(), 1000);
    assert_eq!(r["d"]["stdoutTruncated"], true);
    assert_eq!(r["d"]["cap"], 1000);

    // Timeout kills the whole group, grandchildren included.
    let pidfile = a.dir.join("grandchild.pid");
    let script = format!("sh -c 'sleep 300 & echo $! > {}; wait' ; echo never", pidfile.display());
    let cmd = json!({"id": 4, "command": "sh", "d": {"shcmd": script, "timeout": 1}});
    let r = p.command("dma", "AA0000000003", cmd, T);
    assert_eq!(r["status"], "err");
    assert_eq!(r["d"]["timedOut"], true);
    assert!(r["d"]["msg"].as_str().unwrap().contains("timed out"));
    let gpid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let alive = std::fs::read_to_string(format!("/proc/{gpid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false);
    assert!(!alive, "grandchild {gpid} survived the timeout");
    // Bad body.
    let r = p.command("dma", "AA0000000003", json!({"id": 5, "command": "sh", "d": {}}), T);
    assert_eq!(r["status"], "err");
    assert!(r["d"]["msg"].as_str().unwrap().contains("shcmd"));
}

#[test]
fn sh_disabled_by_config() {
    let (_b, p, _a) = setup("AA0000000004", "\toption shell_enabled '0'\n");
    let r = p.command("dma", "AA0000000004", sh(json!(1), "true"), T);
    assert_eq!(r["status"], "err");
    assert_eq!(r["d"]["exestatus"], "err");
    assert!(r["d"]["msg"].as_str().unwrap().starts_with("disabled"));
}

#[test]
fn bad_input_gets_clear_errors_and_ids_are_exact() {
    let (_b, p, _a) = setup("AA0000000005", "");
    let from = p.count();
    p.publish_raw("dma/cmd/AA0000000005", "{this is not json");
    let m = p.wait_from(from, "dma/resp/cmd", T, |m| m.json["d"]["msg"].as_str().unwrap_or("").contains("malformed JSON")).expect("answer to malformed JSON");
    assert_eq!(m.json["status"], "err");
    assert_eq!(m.json["id"], Value::Null);

    let r = p.command("dma", "AA0000000005", json!({"id": 10, "command": "frobnicate", "d": {}}), T);
    assert_eq!(r["status"], "err");
    assert_eq!(r["d"]["msg"], "unknown command 'frobnicate'");

    // Body as a JSON string, and `body` as the synonym of `d`.
    let r = p.command("dma", "AA0000000005", json!({"id": 11, "command": "sh", "body": "{\"shcmd\": \"echo via-string\"}"}), T);
    assert_eq!(unb64(&r["d"]["result"]), "via-string\n");

    // A 64-bit id, echoed exactly as written (no float rounding).
    let from = p.count();
    p.publish_raw("dma/cmd/AA0000000005", r#"{"id": 201811260000000001, "command": "sh", "d": {"shcmd": "echo big"}}"#);
    let m = p.wait_from(from, "dma/resp/cmd", T, |m| m.raw.contains("201811260000000001")).expect("answer");
    assert!(m.raw.contains("\"id\":201811260000000001"), "{}", m.raw);
    let r = p.command("dma", "AA0000000005", json!({"id": "str-id-1", "command": "sh", "d": {"shcmd": "true"}}), T);
    assert_eq!(r["id"], "str-id-1");
}

#[test]
fn exactly_once_redelivery_retry_and_conflict() {
    let (_b, p, mut a) = setup("AA0000000006", "");
    let count = a.dir.join("count");
    let script = format!("echo x >> {}; wc -l < {}", count.display(), count.display());
    let lines = || std::fs::read_to_string(&count).map(|s| s.lines().count()).unwrap_or(0);

    let r1 = p.command("dma", "AA0000000006", sh(json!(100), &script), T);
    assert_eq!(r1["status"], "ok");
    // Redelivered: same answer, no second run.
    let r2 = p.command("dma", "AA0000000006", sh(json!(100), &script), T);
    assert_eq!(r2["d"], r1["d"]);
    assert_eq!(lines(), 1);
    // Across an agent restart too.
    a.stop();
    a.spawn();
    let r3 = p.command("dma", "AA0000000006", sh(json!(100), &script), T);
    assert_eq!(r3["d"], r1["d"]);
    assert_eq!(lines(), 1, "a succeeded command never runs again");

    // A failed command is retried when redelivered.
    let flag = a.dir.join("flag");
    let flaky = format!("echo x >> {}; test -e {}", count.display(), flag.display());
    let f1 = p.command("dma", "AA0000000006", sh(json!(101), &flaky), T);
    assert_eq!(f1["status"], "err");
    std::fs::write(&flag, "").unwrap();
    let f2 = p.command("dma", "AA0000000006", sh(json!(101), &flaky), T);
    assert_eq!(f2["status"], "ok", "the retry ran");
    assert_eq!(lines(), 3);

    // Same id, different payload: conflict, nothing runs.
    let c = p.command("dma", "AA0000000006", sh(json!(100), "echo other >> /dev/null"), T);
    assert_eq!(c["status"], "err");
    assert!(c["d"]["msg"].as_str().unwrap().starts_with("conflict"));
    assert_eq!(lines(), 3);
}

#[test]
fn reboot_runs_once_across_a_reboot() {
    let dir = temp_dir("reboot");
    let boot = dir.join("boot_id");
    let count = dir.join("reboots");
    std::fs::write(&boot, "boot-1\n").unwrap();
    let extra = format!("\toption boot_id_file '{}'\n\toption reboot_command 'echo r >> {}'\n", boot.display(), count.display());
    let (_b, p, mut a) = setup("AA0000000007", &extra);
    let cmd = json!({"id": 555, "command": "reboot", "d": {}});
    let r = p.command("dma", "AA0000000007", cmd.clone(), T);
    assert_eq!(r["status"], "ok");
    assert_eq!(r["d"]["result"]["rebooting"], true);
    let reboots = || std::fs::read_to_string(&count).map(|s| s.lines().count()).unwrap_or(0);
    // The reboot action runs after the PUBACK and a sync().
    let deadline = std::time::Instant::now() + T;
    while reboots() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(reboots(), 1);
    // The router "reboots": new boot id, agent starts again, the platform
    // redelivers the command.
    a.kill9();
    std::fs::write(&boot, "boot-2\n").unwrap();
    a.spawn();
    let from = p.count();
    p.publish_raw("dma/cmd/AA0000000007", &cmd.to_string());
    let again = p.wait_from(from, "dma/resp/cmd", T, |m| m.json["id"] == 555).expect("answered from the journal");
    assert_eq!(again.json["status"], "ok");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(reboots(), 1, "no second reboot");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn broker_outage_commands_run_exactly_once() {
    let (mut b, p, a) = setup("AA0000000008", "");
    let count = a.dir.join("count");
    let r = p.command("dma", "AA0000000008", sh(json!(1), "true"), T);
    assert_eq!(r["status"], "ok");
    b.stop();
    std::thread::sleep(Duration::from_millis(1500));
    b.restart();
    // The platform reconnects first and publishes while the agent is still
    // away; the broker holds the commands for the agent's persistent session.
    let p2 = Platform::connect(b.port, "dma");
    for i in 0..5 {
        p2.publish_raw("dma/cmd/AA0000000008", &sh(json!(1000 + i), &format!("echo {i} >> {}", count.display())).to_string());
    }
    for i in 0..5 {
        let id = json!(1000 + i);
        p2.wait("dma/resp/cmd", Duration::from_secs(30), |m| m.json["id"] == id)
            .unwrap_or_else(|| panic!("no answer for {id}; agent log:\n{}", a.log()));
    }
    std::thread::sleep(Duration::from_secs(1));
    let text = std::fs::read_to_string(&count).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["0", "1", "2", "3", "4"], "each ran exactly once");
    p2.wait("dma/state/AA0000000008", T, |m| m.json["online"] == true).expect("birth after reconnect");
    drop(p);
}

/// docs/PROTOCOL.md "Commands": a command that changes something is run at
/// most once and answered at least once (journalled before it runs, its
/// answer stored before it is published, across kill -9); a read-only one
/// (`agent get`, `report`, a device `get`) leaves no record and no fsync,
/// and after a crash its redelivery simply runs again.
#[test]
fn read_only_commands_leave_no_journal_record_and_changing_ones_survive_kill_9() {
    let sn = "AA0000000012";
    let (_b, p, mut a) = setup(sn, "");
    let journal = a.state_dir().join("journal.log");
    let keys = || -> Vec<String> {
        std::fs::read_to_string(&journal).unwrap_or_default().lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).map(|v| v["k"].as_str().unwrap_or("").to_string()).collect()
    };
    let get = json!({"id": "ro-1", "from": "test", "command": "agent", "method": "get", "d": {"keys": ["sn"]}});
    let report = json!({"id": "ro-2", "from": "test", "command": "report", "method": "", "d": {"what": "sys"}});
    let g1 = p.command("dma", sn, get.clone(), T);
    assert_eq!((g1["status"].as_str(), g1["d"]["result"]["config"]["sn"].as_str()), (Some("ok"), Some(sn)), "{g1}");
    assert_eq!(p.command("dma", sn, report.clone(), T)["status"], "ok");
    // A device get with no such device: answered err, not journalled either.
    let iad = p.command("dma", sn, json!({"id": "ro-3", "command": "iad", "method": "get", "d": {"api": "sys_info/oem"}}), T);
    assert_eq!(iad["status"], "err", "{iad}");
    let count = a.dir.join("count");
    let rw = sh(json!("rw-1"), &format!("echo x >> {}", count.display()));
    let w1 = p.command("dma", sn, rw.clone(), T);
    assert_eq!(w1["status"], "ok", "{w1}");
    let k = keys();
    assert!(k.iter().all(|k| !k.starts_with("s:ro-")), "a read-only command left a journal record: {k:?}");
    assert!(k.iter().any(|k| k == "s:rw-1"), "the changing command was not journalled: {k:?}");
    let state = p.command("dma", sn, json!({"id": "ro-4", "command": "agent", "method": "get", "d": {"keys": ["state"]}}), T);
    assert_eq!(state["d"]["result"]["state"]["journal"]["size"], 1, "{state}");

    // kill -9 and a redelivery of all of them.
    a.kill9();
    let from = p.count();
    a.spawn();
    p.wait_from(from, &format!("dma/state/{sn}"), T, |m| m.json["online"] == true).expect("birth after restart");
    let w2 = p.command("dma", sn, rw, T);
    assert_eq!(w2, w1, "the stored answer of the changing command");
    let g2 = p.command("dma", sn, get, T);
    assert_eq!((g2["status"].as_str(), g2["id"].as_str()), (Some("ok"), Some("ro-1")), "the read-only one runs again: {g2}");
    assert_eq!(p.command("dma", sn, report, T)["status"], "ok");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1, "the changing command ran once");
    let k = keys();
    assert!(k.iter().all(|k| !k.starts_with("s:ro-")), "{k:?}");

    // Arrival order stands although a read-only command may be answered on
    // the MQTT thread: a get sent right behind a set sees the set's value.
    for (i, v) in [(1, 77), (2, 78), (3, 79)] {
        let set = json!({"id": format!("set-{i}"), "command": "agent", "method": "set", "d": {"sys_interval": v}});
        let get = json!({"id": format!("get-{i}"), "command": "agent", "method": "get", "d": {"keys": ["sys_interval"]}});
        let from = p.count();
        p.publish_raw(&format!("dma/cmd/{sn}"), &set.to_string());
        p.publish_raw(&format!("dma/cmd/{sn}"), &get.to_string());
        let g = p.wait_from(from, "dma/resp/cmd", T, |m| m.json["id"] == format!("get-{i}")).unwrap_or_else(|| panic!("no answer to get-{i}:\n{}", a.log())).json;
        assert_eq!(g["d"]["result"]["config"]["sys_interval"], v, "the get overtook the set: {g}");
    }
}

#[test]
fn agent_get_masks_secrets_and_set_persists() {
    let extra = "\toption username 'dev'\n\toption password 'TopSecret99'\n";
    // The broker allows anonymous logins, so the credentials are accepted.
    let (_b, p, a) = setup("AA0000000009", extra);
    let r = p.command("dma", "AA0000000009", json!({"id": 1, "command": "agent", "method": "get", "d": {}}), T);
    assert_eq!(r["status"], "ok");
    let raw = r.to_string();
    assert!(!raw.contains("TopSecret99"), "password leaked: {raw}");
    assert_eq!(r["d"]["result"]["config"]["password"], "******");
    assert_eq!(r["d"]["result"]["config"]["sn"], "AA0000000009");
    assert_eq!(r["d"]["result"]["state"]["connected"], true);
    assert_eq!(r["d"]["result"]["state"]["journal"]["size"], 0, "a read-only command is not journalled");
    let r = p.command("dma", "AA0000000009", json!({"id": 2, "command": "agent", "method": "get", "d": {"keys": ["sys_interval"]}}), T);
    assert_eq!(r["d"]["result"]["config"], json!({"sys_interval": 60}));

    let r = p.command("dma", "AA0000000009", json!({"id": 3, "command": "agent", "method": "set", "d": {"sys_interval": 1, "watch": ["mosquitto"]}}), T);
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["d"]["result"]["restart"], false);
    let text = std::fs::read_to_string(&a.config).unwrap();
    assert!(text.contains("option sys_interval '1'") && text.contains("list watch 'mosquitto'"), "{text}");
    assert!(text.contains("option password 'TopSecret99'"), "other options kept");
    // Applied without a restart: sys now comes every second.
    let from = p.count();
    p.wait_from(from, "dma/sys", Duration::from_secs(5), |_| true).expect("sys at the new interval");
    let r = p.command("dma", "AA0000000009", json!({"id": 4, "command": "agent", "method": "set", "d": {"sys_interval": "soon"}}), T);
    assert_eq!(r["status"], "err");
    assert!(r["d"]["msg"].as_str().unwrap().contains("sys_interval"));
    let r = p.command("dma", "AA0000000009", json!({"id": 5, "command": "agent", "method": "set", "d": {"colour": "red"}}), T);
    assert_eq!(r["status"], "err");
    assert!(!a.log().contains("TopSecret99"), "password in the log");
}

#[test]
fn overflow_is_answered_not_dropped() {
    let (_b, p, _a) = setup("AA0000000010", "\toption max_running '1'\n\toption queue_size '1'\n");
    for i in 0..6 {
        p.publish_raw("dma/cmd/AA0000000010", &json!({"id": 300 + i, "command": "sh", "detached": true, "d": {"shcmd": "sleep 1"}}).to_string());
    }
    let mut busy = 0;
    let mut ok = 0;
    for i in 0..6 {
        let id = json!(300 + i);
        let m = p.wait("dma/resp/cmd", T, |m| m.json["id"] == id).expect("every command is answered");
        if m.json["status"] == "ok" {
            ok += 1;
        } else {
            assert!(m.json["d"]["msg"].as_str().unwrap().starts_with("busy"), "{}", m.json);
            busy += 1;
        }
    }
    assert!(ok >= 2 && busy >= 1, "ok {ok} busy {busy}");
    // The engine's counters in `agent get` say the same (the get itself is
    // answered on the dispatcher, not on a command thread: not running).
    std::thread::sleep(Duration::from_millis(300));
    let r = p.command("dma", "AA0000000010", json!({"id": 400, "command": "agent", "method": "get", "d": {}}), T);
    let c = &r["d"]["result"]["state"]["commands"];
    assert_eq!((c["running"].as_u64(), c["queued"].as_u64()), (Some(0), Some(0)), "{c}");
    assert_eq!(c["done"].as_u64(), Some(ok), "{c}");
    assert_eq!(c["rejected"].as_u64(), Some(busy), "{c}");
}

#[test]
fn sighup_reloads_and_a_bad_file_is_refused() {
    let (_b, p, a) = setup("AA0000000011", "\toption sys_interval '3600'\n");
    std::thread::sleep(Duration::from_millis(500));
    let text = std::fs::read_to_string(&a.config).unwrap();
    // A broken file: refused, the agent keeps running on the old one.
    std::fs::write(&a.config, format!("{text}\toption sys_interval 'often'\n")).unwrap();
    a.signal(nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(800));
    assert!(a.log().contains("reload refused"), "{}", a.log());
    let r = p.command("dma", "AA0000000011", json!({"id": 1, "command": "agent", "method": "get", "d": {"keys": ["sys_interval"]}}), T);
    assert_eq!(r["d"]["result"]["config"]["sys_interval"], 3600);
    // A good change applies without a restart.
    std::fs::write(&a.config, text.replace("option sys_interval '3600'", "option sys_interval '1'")).unwrap();
    let from = p.count();
    a.signal(nix::sys::signal::Signal::SIGHUP);
    p.wait_from(from, "dma/sys", Duration::from_secs(5), |m| m.json["sn"] == "AA0000000011").expect("sys at the reloaded interval");
    let r = p.command("dma", "AA0000000011", json!({"id": 2, "command": "agent", "method": "get", "d": {"keys": ["sys_interval"]}}), T);
    assert_eq!(r["d"]["result"]["config"]["sys_interval"], 1);
    assert!(a.log().contains("configuration reloaded"));
}

#[test]
fn a_command_cut_off_by_a_crash_is_not_run_again() {
    let (_b, p, mut a) = setup("AA0000000012", "");
    let count = a.dir.join("count");
    let cmd = sh(json!(900), &format!("echo x >> {}; sleep 30", count.display()));
    p.publish_raw("dma/cmd/AA0000000012", &cmd.to_string());
    let deadline = std::time::Instant::now() + T;
    while !count.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(count.exists(), "the command started");
    a.kill9();
    a.spawn();
    let r = p.command("dma", "AA0000000012", cmd, T);
    assert_eq!(r["status"], "err");
    assert!(r["d"]["msg"].as_str().unwrap().starts_with("interrupted"), "{r}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1, "not run a second time");
}

/// procd's stop (SIGTERM) while the agent waits out its random start-up
/// delay: it exits at once, without connecting (found under the real
/// procd: the signal's wake-up was used up by the delay and the main loop
/// then slept a minute, past procd's term_timeout and into a SIGKILL).
#[test]
fn a_stop_during_the_start_up_delay_is_prompt() {
    let broker = Broker::start();
    let cfg = agent_section("AA0000000031", broker.port, std::path::Path::new("{state}"), "\toption startup_delay '3600'\n");
    let mut a = Agent::start("AA0000000031", &cfg);
    assert!(wait_until(T, || a.log().contains("start-up delay")), "log:\n{}", a.log());
    let t0 = Instant::now();
    let st = a.stop().expect("exit status");
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    assert!(st.success(), "{st:?}");
    let log = a.log();
    assert!(log.contains("stopped before start-up") && !log.contains("connected to broker"), "{log}");
}
