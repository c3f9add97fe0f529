//! `topic_layout` (PROTOCOL.md, Topics): an agent in each layout publishes
//! exactly where the document says, and only there. (`event` needs a LAN
//! simulator to happen: its topic name is covered by the unit tests of
//! src/mqtt/topics.rs, which builds every topic the agent writes.)

mod common;
use common::*;
use serde_json::json;
use std::collections::BTreeSet;

/// Start an agent in `layout`, get sys, procs, versions and an answer out
/// of it, and return every topic it published on (as the platform saw them).
fn topics_of(sn: &str, layout: &str) -> BTreeSet<String> {
    let broker = Broker::start();
    let p = Platform::connect(broker.port, "dma");
    let extra = format!("\toption topic_layout '{layout}'\n\toption sys_interval '1'\n\toption procs_interval '1'\n\toption device_failures '1'\n");
    // A LAN device nobody answers for: its (offline) periph status.
    let dead = free_port();
    let device = format!("\nconfig device 'iad1'\n\toption type 'iad'\n\toption address 'http://127.0.0.1:{dead}'\n\toption poll_interval '1'\n");
    let a = Agent::start(sn, &format!("{}{device}", agent_section(sn, broker.port, std::path::Path::new("{state}"), &extra)));
    p.wait(&format!("dma/state/{sn}"), T, |m| m.json["online"] == true).unwrap_or_else(|| panic!("no birth:\n{}", a.log()));
    let ans = p.command("dma", sn, json!({"id": 7, "command": "report", "d": {"what": "all"}}), T);
    assert_eq!(ans["status"], "ok", "{ans}");
    for kind in ["dma/sys", "dma/procs", "dma/versions", "dma/periph"] {
        p.wait(kind, T, |m| m.json["sn"] == sn).unwrap_or_else(|| panic!("no {kind}:\n{}", a.log()));
    }
    let seen: BTreeSet<String> = p.all("dma/state").into_iter().map(|m| m.topic).collect();
    assert!(seen.is_empty(), "nothing on a bare state topic: {seen:?}");
    p.topics()
}

#[test]
fn device_layout_puts_the_serial_in_every_topic() {
    let sn = "TL0000000001";
    let seen = topics_of(sn, "device");
    let want: BTreeSet<String> = ["cmd", "state", "resp/cmd", "sys", "procs", "versions", "periph"].iter().map(|k| format!("dma/{k}/{sn}")).collect();
    assert_eq!(seen, want);
}

#[test]
fn shared_layout_is_the_v1_one() {
    let sn = "TL0000000002";
    let seen = topics_of(sn, "shared");
    let want: BTreeSet<String> = [format!("dma/cmd/{sn}"), format!("dma/state/{sn}"), "dma/resp/cmd".into(), "dma/sys".into(), "dma/procs".into(), "dma/versions".into(), "dma/periph".into()]
        .into_iter()
        .collect();
    assert_eq!(seen, want);
}
