//! The operator CLI against a real mosquitto and a running agent
//! (issue "First run and the operator's CLI").

mod common;
use common::*;
use serde_json::Value;
use std::process::{Command, Output};

fn ctl(port: u16, args: &[&str]) -> Output {
    bins::ctl_command()
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .output()
        .expect("run dma-ctl")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn setup(sn: &str) -> (Broker, Platform, Agent) {
    setup_with(sn, "")
}

fn setup_with(sn: &str, extra: &str) -> (Broker, Platform, Agent) {
    let broker = Broker::start();
    let platform = Platform::connect(broker.port, "dma");
    let agent = Agent::start(sn, &agent_section(sn, broker.port, std::path::Path::new("{state}"), extra));
    platform
        .wait(&format!("dma/state/{sn}"), T, |m| m.json["online"] == true)
        .unwrap_or_else(|| panic!("no birth message; agent log:\n{}", agent.log()));
    (broker, platform, agent)
}

#[test]
fn send_sh_decodes_output_and_maps_exit_codes() {
    let (b, _p, _a) = setup("CC0000000001");
    let o = ctl(b.port, &["send", "CC0000000001", "sh", "--body", r#"{"shcmd":"echo hi; echo bad >&2; exit 3"}"#, "--timeout", "20"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "err answer -> 1\n{out}\n{err}");
    assert!(out.lines().any(|l| l.trim() == "| hi"), "stdout decoded: {out}");
    assert!(out.lines().any(|l| l.trim() == "| bad"), "stderr decoded: {out}");
    assert!(out.contains("exit code: 3"), "{out}");

    let o = ctl(b.port, &["send", "CC0000000001", "sh", "--body", r#"{"shcmd":"echo fine"}"#, "--id", "18446744073709551615"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("answer 18446744073709551615 from CC0000000001"), "{out}");

    // --json: one document, the answer as the agent sent it.
    let o = ctl(b.port, &["--json", "send", "CC0000000001", "sh", "--body", r#"{"shcmd":"echo json"}"#]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let v: Value = serde_json::from_str(lines[0]).expect("JSON answer");
    assert_eq!(v["status"], "ok");
    assert_eq!(unb64(&v["d"]["result"]), "json\n");

    // An agent command with get.
    let o = ctl(b.port, &["send", "CC0000000001", "agent", "--method", "get"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

#[test]
fn usage_timeout_and_unreachable_exit_codes() {
    let (b, _p, _a) = setup("CC0000000002");
    let o = ctl(b.port, &["send", "CC0000000002", "sh", "--body", "{not json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--body is not valid JSON"));

    let o = ctl(b.port, &["send", "NOSUCHDEVICE", "sh", "--body", r#"{"shcmd":"true"}"#, "--timeout", "1.5"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("no answer from device NOSUCHDEVICE") && err.contains("serial may be wrong"), "{err}");

    let dead = free_port();
    let o = ctl(dead, &["send", "CC0000000002", "sh", "--body", r#"{"shcmd":"true"}"#]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("cannot reach the broker at 127.0.0.1"), "{err}");
}

#[test]
fn watch_prints_device_topics() {
    // No periodic telemetry: the three messages are the birth and two answers.
    let (b, p, _a) = setup_with("CC0000000003", "\toption sys_interval '0'\n\toption procs_interval '0'\n");
    let mut child = bins::ctl_command()
        .args(["--port", &b.port.to_string(), "--json", "watch", "CC0000000003", "--count", "3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ctl watch");
    // The retained birth arrives at once; two answers make up the count.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    for id in [11, 12] {
        p.command("dma", "CC0000000003", serde_json::json!({"id": id, "command": "sh", "d": {"shcmd": "true"}}), T);
    }
    let deadline = std::time::Instant::now() + T;
    while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let o = child.wait_with_output().expect("watch output");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let docs: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(docs.len(), 3, "{out}");
    assert_eq!(docs[0]["topic"], "dma/state/CC0000000003");
    assert_eq!(docs[0]["payload"]["online"], true);
    assert!(docs.iter().any(|d| d["topic"] == "dma/resp/cmd/CC0000000003" && d["payload"]["id"] == 11), "{out}");
}

#[test]
fn devices_lists_online_then_offline_after_kill() {
    let (b, p, mut a) = setup("CC0000000004");
    let o = ctl(b.port, &["devices", "--wait", "1"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    let line = out.lines().find(|l| l.starts_with("CC0000000004")).unwrap_or_else(|| panic!("listed: {out}"));
    assert!(line.contains(" online "), "{line}");

    a.kill9();
    p.wait("dma/state/CC0000000004", T, |m| m.json["online"] == false).expect("will published");
    let o = ctl(b.port, &["--json", "devices", "--wait", "1"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    let dev: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["sn"] == "CC0000000004")
        .unwrap_or_else(|| panic!("listed: {out}"));
    assert_eq!(dev["online"], false, "{out}");
}

/// `dma-agent ctl ...` runs `dma-ctl` where it is on PATH, and says where
/// the CLI went where it is not (the router binary no longer carries it).
#[test]
fn agent_ctl_runs_dma_ctl_or_says_where_it_went() {
    let ctl = bins::workspace_bin("dma-ctl", "dma-ctl");
    let dir = ctl.parent().expect("dma-ctl's directory");
    let o = Command::new(env!("CARGO_BIN_EXE_dma-agent")).args(["ctl", "--help"]).env("PATH", dir).output().expect("run dma-agent ctl");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("usage: dma-ctl"), "{out}");
    let empty = temp_dir("no-ctl");
    let o = Command::new(env!("CARGO_BIN_EXE_dma-agent")).args(["ctl", "--help"]).env("PATH", &empty).output().expect("run dma-agent ctl");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("dma-ctl binary"), "{err}");
}
