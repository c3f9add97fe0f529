//! The fleet benchmark's small run as a test (`fleet-bench` does the full
//! figures): 5,000 simulated devices on 4 MQTT connections, births, `sys`
//! + `procs` every 60 s each, a 1,000-target command answered by a fake
//! responder, and a burst of one marker `sys` from every device on top.
//! Loose bounds that still fail when batching breaks: the burst must be
//! visible in the device list within 10 s, nothing shed, and the telemetry
//! written in batches (on average many messages per transaction).

mod common;

use common::*;
use dma_platform::bench::{fleet::Fleet, floor::Floor, now_ms, probe::Api, responder};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: usize = 5_000;
const TARGETS: usize = 1_000;

#[test]
fn five_thousand_devices_keep_up() {
    let broker = Broker::start();
    let p = Platform::start(broker.port);
    let api = Api::login(&p.url("/"), USER, PASSWORD).expect("login");
    let floor = Floor::start(broker.port, "dma");
    let answered = responder::start(broker.port, "dma");
    let fleet = Arc::new(Fleet::connect(broker.port, "dma", N, 4));
    std::thread::sleep(Duration::from_millis(500));

    let t = Instant::now();
    fleet.births();
    let online = wait_for(Duration::from_secs(60), || (api.get("monitor/devices/count").ok()?.0["online"].as_u64() == Some(N as u64)).then_some(()));
    assert!(online.is_some(), "births of {N} devices not all online after 60 s: {:?}", api.get("monitor/devices/count").map(|v| v.0));
    eprintln!("births online in {:.1} s", t.elapsed().as_secs_f64());
    let steady = fleet.steady(Duration::from_secs(60));

    // One call, 1,000 targets, every one answered and shown state 2.
    let to: Vec<Value> = (0..TARGETS).map(|i| json!({"sn": dma_platform::bench::fleet::sn(i)})).collect();
    let r = api.post("remotectl/commands", &json!({"to": to, "command": "sys", "method": "get", "from": "fleet-test"})).expect("post");
    assert_eq!(r["status"], "ok", "{}", r.to_string().chars().take(300).collect::<String>());
    let t = Instant::now();
    let done = wait_for(Duration::from_secs(60), || (api.command_states("fleet-test").ok()?[2] == TARGETS).then_some(()));
    assert!(done.is_some(), "not all {TARGETS} answered: {:?} ({} answers sent)", api.command_states("fleet-test"), answered.load(Ordering::Relaxed));
    eprintln!("{TARGETS}-target command all state 2 in {:.1} s", t.elapsed().as_secs_f64());

    // The marker burst on top of the steady load.
    let mark = now_ms() as u64;
    floor.watch(mark);
    let t = Instant::now();
    fleet.marker(mark);
    let (took, seen) = api.wait_marker(&fleet, mark, t, Duration::from_secs(10)).expect("sweep");
    assert!(took.is_some(), "marker sys of {N} devices: only {seen} visible after 10 s (floor got {})", floor.marked.load(Ordering::Relaxed));
    eprintln!("marker from {N} devices visible in {:.1} s (floor {} received)", took.unwrap_or(0.0), floor.marked.load(Ordering::Relaxed));

    // Let the steady load run on for a while, then read the figures.
    std::thread::sleep(Duration::from_secs(15));
    fleet.stop.store(true, Ordering::Relaxed);
    for h in steady {
        let _ = h.join();
    }
    let f = api.get("platform/ingest").expect("figures").0;
    let tel = &f["telemetry"];
    let (written, batches) = (tel["written"].as_u64().unwrap_or(0), tel["batches"].as_u64().unwrap_or(0));
    assert_eq!(tel["shed"].as_u64(), Some(0), "{f}");
    assert!(written >= N as u64, "{f}");
    assert!(batches > 0 && written / batches >= 5, "telemetry not batched: {written} messages in {batches} transactions: {f}");
    assert_eq!(f["writeErrors"].as_u64(), Some(0), "{f}");
    eprintln!("ingest figures: {f}");
}
