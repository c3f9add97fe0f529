//! The no-setup demo binary: it starts, shows the four LAN devices online,
//! completes its tour, serves the platform's console and REST API with the
//! printed login, and stops cleanly on SIGINT (issues "First run", 13).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn demo_runs_its_tour_and_exits_on_sigint() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dma-demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start dma-demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !lines.iter().any(|l| l.contains("tour complete")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!("the tour did not complete; output:\n{}", lines.join("\n"));
            }
        }
    }
    let all = lines.join("\n");
    assert!(all.contains("embedded MQTT broker"), "{all}");
    assert!(all.contains("command signing key (Ed25519)   demo:"), "the demo runs signed: {all}");
    assert!(!all.contains("unsigned"), "no command refused as unsigned: {all}");
    assert!(all.contains("ONLINE"), "birth shown: {all}");
    for kind in ["iad ", "s20 ", "goip", "vpn "] {
        assert!(
            lines.iter().any(|l| l.contains("[platform] periph") && l.contains(kind) && l.contains(" online ")),
            "periph {kind} online: {all}"
        );
    }
    assert!(all.contains("all four LAN devices online"), "{all}");
    for t in ["[platform] sys ", "[platform] procs ", "[platform] versions "] {
        assert!(all.contains(t), "{t} shown: {all}");
    }
    // The tour: each command printed with its decoded answer.
    assert!(all.contains("ctl --port") && all.contains("send DE0000C0FFEE sh"), "{all}");
    assert!(lines.iter().any(|l| l.trim().starts_with("| hello from")), "sh output decoded: {all}");
    for cmd in ["iad get -> status ok", "s20 get -> status ok", "goip get -> status ok", ": sms -> status"] {
        assert!(all.contains(cmd), "{cmd}: {all}");
    }
    // Issue 21 item 11: the tour shows the delivery report of the SMS it sent.
    let report = lines.iter().find(|l| l.starts_with("delivery report for the SMS: ")).unwrap_or_else(|| panic!("no delivery report shown: {all}"));
    assert!(report.contains("sent to 10086 via port 1A"), "{report}");
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap_or(usize::MAX);
    assert!(at("delivery report for the SMS") < at("an SMS arrives at the GSM gateway"), "shown within the SMS step: {all}");
    assert!(all.contains("an SMS arrives at the GSM gateway"), "{all}");
    console_works(&lines);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = reader.join();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(status.success(), "exit status {status:?}; tail: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("OFFLINE")), "offline state shown: {rest:?}");
    assert!(rest.iter().any(|l| l == "demo stopped"), "{rest:?}");
}

/// The printed console URL and login work: the page is served, the login
/// gives a token, and the platform lists the agent online with its four
/// peripherals.
fn console_works(lines: &[String]) {
    let line = lines.iter().find(|l| l.starts_with("platform console and REST API")).unwrap_or_else(|| panic!("no console line: {lines:?}"));
    let url = line.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:")).expect("console URL").to_string();
    let password = line.trim_end_matches(')').rsplit(" / ").next().expect("password").to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(20))).http_status_as_error(false).build().into();
    let page = agent.get(&url).call().expect("console page").body_mut().read_to_string().expect("page");
    assert!(page.contains("dma platform") && page.contains("/app.js"), "{page}");
    let api = format!("{url}iot/api/v1/");
    let login: serde_json::Value = serde_json::from_str(
        &agent.post(&format!("{api}auth/login")).send(serde_json::json!({"user": "admin", "password": password}).to_string()).expect("login").body_mut().read_to_string().expect("login body"),
    )
    .expect("login json");
    let token = login["data"]["token"].as_str().unwrap_or_else(|| panic!("login with the printed password: {login}")).to_string();
    let get = |path: &str| -> serde_json::Value {
        let mut r = agent.get(&format!("{api}{path}")).header("Authorization", format!("Bearer {token}")).call().expect("api");
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = get("monitor/devices");
        let p = get("monitor/devices/peripherals/count");
        if d["data"]["list"][0]["sn"] == "DE0000C0FFEE" && d["data"]["list"][0]["online"] == true && p["data"]["online"] == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the platform does not show the agent and its 4 peripherals online: {d} {p}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // Signed end to end: the router says it requires signatures, and a
    // command sent through the platform's REST API (signed by the platform)
    // is run.
    assert_eq!(get("monitor/devices")["data"]["list"][0]["signed"], true);
    assert_eq!(get("platform/key")["data"]["kid"], "demo");
    let sent: serde_json::Value = serde_json::from_str(
        &agent
            .post(&format!("{api}remotectl/commands"))
            .header("Authorization", format!("Bearer {token}"))
            .send(serde_json::json!({"to": [{"sn": "DE0000C0FFEE"}], "command": "sh", "method": "", "body": {"shcmd": "echo signed-by-the-platform"}}).to_string())
            .expect("post command")
            .body_mut()
            .read_to_string()
            .expect("body"),
    )
    .expect("json");
    let id = sent["data"]["to"][0]["id"].as_u64().unwrap_or_else(|| panic!("command id: {sent}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = get(&format!("remotectl/commands?id={id}"));
        if c["data"]["state"] == 2 {
            break;
        }
        assert!(c["data"]["state"] != 3 && Instant::now() < deadline, "the platform's signed command did not run: {c}");
        std::thread::sleep(Duration::from_millis(300));
    }
}
