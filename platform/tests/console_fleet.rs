//! The console for a fleet in a real headless Chromium, at 10,000 devices
//! (births from the fleet generator): search by serial, filter by
//! online/offline and by peripheral kind with server-side paging, the
//! events view (an SMS with its text, a delivery report with its command
//! id), and one command to every device matching a filter with its
//! progress (counts by state, the failure listed). Screenshots are kept
//! under `target/artifacts/`.

mod common;

use common::browser::Browser;
use common::*;
use dma_platform::bench::{fleet::Fleet, responder};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const N: usize = 10_000;

fn artifact(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target")).join("artifacts").join(name)
}

fn shot(b: &Browser, name: &str) {
    let path = artifact(name);
    b.screenshot(&path);
    let png = std::fs::read(&path).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot {} bytes", png.len());
    eprintln!("screenshot: {}", path.display());
}

#[test]
fn a_fleet_console_searches_filters_shows_events_and_runs_a_bulk_command() {
    let browser = match Browser::start() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("SKIPPED a_fleet_console_searches_filters_shows_events_and_runs_a_bulk_command: {e} (apt-get install chromium chromium-driver)");
            return;
        }
    };
    let broker = Broker::start();
    let p = Platform::start(broker.port);
    let _answers = responder::start_with(broker.port, "dma", |sn| sn == "FB00000017");
    let fleet = Fleet::connect(broker.port, "dma", N, 4);
    // In steps: the harness's mosquitto queues at most 5,000 messages for a slow subscriber.
    for k in (0..N).step_by(2_000) {
        fleet.births_range(k..(k + 2_000).min(N));
        let want = (k + 2_000).min(N) as i64;
        wait_for(Duration::from_secs(60), || (p.get("monitor/devices/count")["online"].as_i64() >= Some(want)).then_some(())).expect("births");
    }
    // Five go offline, one has a GoIP, one sends an SMS and a delivery report.
    for i in [3, 5, 7, 9, 11] {
        let sn = format!("FB{i:08}");
        publish(broker.port, &format!("dma/state/{sn}"), &json!({"sn": sn, "online": false}).to_string());
    }
    let g = "FB00000042";
    publish(broker.port, &format!("dma/periph/{g}"), &json!({"sn": g, "time": 1, "gwId": g, "nId": "goip1", "kind": "goip", "online": true, "msg": {"model": "GoIP-8"}}).to_string());
    publish(broker.port, &format!("dma/event/{g}"), &json!({"sn": g, "time": 100, "eid": 1, "type": "sms", "from": "+4915112345", "text": "hello fleet"}).to_string());
    publish(broker.port, &format!("dma/event/{g}"), &json!({"sn": g, "time": 101, "eid": 2, "type": "sms_report", "cmdId": "202612030000000077", "status": "delivered"}).to_string());
    wait_for(T, || (p.get("monitor/devices/events")["total"].as_i64() == Some(2)).then_some(())).expect("two events stored");
    assert_eq!(p.get("monitor/devices/count")["offline"].as_i64(), Some(5));

    browser.goto(&p.url("/"));
    browser.type_text(&browser.wait("#user", T), USER);
    browser.type_text(&browser.wait("#password", T), PASSWORD);
    browser.click(&browser.wait("#login-btn", T));
    browser.wait_text("#pg-info", T, |t| t.contains("page 1 of 200") && t.contains("10000 devices"));
    // Search by serial: FB00000040..49.
    browser.type_text(&browser.wait("#f-q", T), "FB0000004");
    browser.wait_text("#pg-info", T, |t| t.contains("10 devices"));
    browser.wait_text("#devices", T, |t| t.contains("FB00000042") && !t.contains("FB00000050"));
    // Filters: offline; then peripheral kind goip.
    browser.exec("document.getElementById('f-q').value=''; const s=document.getElementById('f-online'); s.value='0'; s.onchange();");
    browser.wait_text("#pg-info", T, |t| t.contains("5 devices"));
    browser.wait_text("#devices", T, |t| t.contains("FB00000003") && t.contains("offline") && !t.contains("FB00000004"));
    browser.exec("document.getElementById('f-online').value=''; const k=document.getElementById('f-kind'); k.value='goip'; k.onchange();");
    browser.wait_text("#pg-info", T, |t| t.contains("1 devices"));
    browser.wait_text("#devices", T, |t| t.contains("FB00000042"));
    // Events, newest first: the report with its command id, then the SMS text.
    let ev = browser.wait_text("#events", T, |t| t.contains("hello fleet") && t.contains("202612030000000077"));
    assert!(ev.find("202612030000000077") < ev.find("hello fleet"), "newest first: {ev}");
    shot(&browser, "console-fleet.png");

    // One command to every device matching a search (FB00000010..19); one fails.
    browser.exec("document.getElementById('f-kind').value=''; const q=document.getElementById('f-q'); q.value='FB0000001'; q.oninput();");
    browser.wait_text("#pg-info", T, |t| t.contains("10 devices"));
    browser.click(&browser.wait("#bulk-send-filter", T));
    browser.wait_text("#bulk-status", T, |t| t.contains("sent to 10 devices"));
    browser.wait_text("#bulk-progress", Duration::from_secs(60), |t| t.contains("ok 9") && t.contains("failed 1"));
    let fails = browser.wait_text("#bp-failures", T, |t| t.contains("FB00000017"));
    assert!(fails.contains("refused by the test"), "{fails}");
    shot(&browser, "console-bulk.png");
}
