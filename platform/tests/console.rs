//! The web console in a real headless Chromium (Debian's `chromium` +
//! `chromium-driver`, driven over WebDriver): log in, open the device, send
//! an `sh` command and read its decoded output; the screenshot is kept as
//! `target/artifacts/console.png`.

mod common;

use common::browser::Browser;
use common::*;
use std::path::PathBuf;

const SN: &str = "8CFCA0107D1B";

fn artifact(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target")).join("artifacts").join(name)
}

#[test]
fn console_logs_in_shows_the_device_and_runs_sh() {
    let browser = match Browser::start() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("SKIPPED console_logs_in_shows_the_device_and_runs_sh: {e} (apt-get install chromium chromium-driver)");
            return;
        }
    };
    let broker = Broker::start();
    let p = Platform::start(broker.port);
    let _agent = Agent::start(SN, broker.port, "");
    p.wait_device(SN, true, T);
    // On the device's own topic: its shared-topic messages are ignored once
    // it has spoken per-device (the agent already has).
    publish(
        broker.port,
        &format!("dma/periph/{SN}"),
        &serde_json::json!({"sn": SN, "time": 1, "gwId": SN, "nId": "goip1", "kind": "goip", "online": true, "msg": {"model": "GoIP-8", "firmware": "GHSFVT-1.1-68-11"}}).to_string(),
    );

    browser.goto(&p.url("/"));
    let user = browser.wait("#user", T);
    browser.type_text(&user, USER);
    let pw = browser.wait("#password", T);
    browser.type_text(&pw, PASSWORD);
    browser.click(&browser.wait("#login-btn", T));
    // The device list: online, with its telemetry.
    let row = format!("#devices tr[data-sn='{SN}']");
    browser.wait_text(&row, T, |t| t.contains(SN) && t.contains("online") && t.contains("load") && t.contains("dma-agent"));
    browser.click(&browser.wait(&row, T));
    browser.wait_text("#periph", T, |t| t.contains("goip1") && t.contains("GoIP-8"));
    // Send an sh command; its answer appears decoded from base64.
    let body = browser.wait("#cmd-body", T);
    browser.type_text(&body, r#"{"shcmd": "echo console-says-hello; uname -s"}"#);
    browser.click(&browser.wait("#cmd-send", T));
    let out = browser.wait_text("#answer-stdout", T, |t| t.contains("console-says-hello"));
    assert!(out.contains("Linux"), "{out}");
    browser.wait_text("#history", T, |t| t.contains("sh") && t.contains("ok") && t.contains("1 / 1"));
    // The platform agrees.
    let list = p.get(&format!("remotectl/commands?sn={SN}"));
    assert_eq!((list["total"].as_i64(), list["list"][0]["state"].as_i64(), list["list"][0]["from"].as_str()), (Some(1), Some(2), Some("iot_web_console")), "{list}");
    // The header's broker figures (mosquitto's $SYS) once they are in.
    browser.wait_text("#broker", T, |t| t.contains("connections"));
    let shot = artifact("console.png");
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot {} bytes", png.len());
    eprintln!("console screenshot: {}", shot.display());
}
