//! Issue 21 item 4 over MQTT with the real agent: an IAD network test that
//! runs longer than the device's `command_timeout` still gets its answer
//! (the manager bounds a started long action by its own `wait`).

mod common;
use common::*;
use dma_sims::iad::{IadSim, IadSimConfig};
use serde_json::json;
use std::time::Duration;

#[test]
fn a_long_ping_is_answered_with_its_result_file() {
    let iad = IadSim::start("127.0.0.1:0", IadSimConfig { diag_time: Duration::from_secs(8), ..IadSimConfig::default() }).unwrap();
    let broker = Broker::start();
    let p = Platform::connect(broker.port, "dma");
    // command_timeout 3 s: shorter than the test's 8 s.
    let dev = format!(
        "config device 'iad1'\n\toption type 'iad'\n\toption address '{}'\n\toption username 'admin'\n\toption password 'admin'\n\toption poll_interval '1'\n\toption timeout '1'\n\toption command_timeout '3'\n",
        iad.url()
    );
    let cfg = format!("{}\n{}", agent_section("BB0000000022", broker.port, std::path::Path::new("{state}"), ""), dev);
    let a = Agent::start("BB0000000022", &cfg);
    assert!(p.wait("dma/periph", T, |m| m.json["kind"] == "iad" && m.json["online"] == true).is_some(), "log:\n{}", a.log());
    let r = p.command(
        "dma",
        "BB0000000022",
        json!({"id": 1, "command": "iad", "method": "set", "detached": true, "d": {"action": "diagnose", "test": "ping", "data": {"host": "192.0.2.7", "count": 3}}}),
        Duration::from_secs(30),
    );
    assert_eq!(r["status"], "ok", "{r}\n{}", a.log());
    let res = &r["d"]["result"];
    assert_eq!((res["done"].as_bool(), res["truncated"].as_bool()), (Some(true), Some(false)), "{r}");
    assert!(res["text"].as_str().unwrap_or_default().contains("3 packets transmitted"), "{r}");
}
