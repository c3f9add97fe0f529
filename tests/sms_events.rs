//! Events that lose nothing: unreadable and oversized SMS, delivery
//! reports carrying the id of the command that sent the message (across a
//! restart), port-status events that agree with `periph`, and IAD call
//! records as events once each. Real mosquitto, the agent binary, the
//! GoIP and IAD simulators.

mod common;
use common::*;
use common::sms_rig::{SmsRig, SmsRigConfig};
use dma_sims::iad::{IadSim, IadSimConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// No status pushes; `device_extra` sets the GoIP's poll interval.
fn rig(sn: &str, device_extra: &str) -> SmsRig {
    SmsRig::start(sn, SmsRigConfig { status_period: 0, device: device_extra, agent: "" })
}

/// Let a few reconciliations pass, then count.
fn settle() {
    std::thread::sleep(Duration::from_secs(5));
}

#[test]
fn undecodable_and_oversized_sms_are_published_and_block_nothing() {
    let mut r = rig("DD0000000001", "\toption poll_interval '30'\n");
    let now = 1_700_000_100i64;
    // Pushed: not base64, with ICCID and IMSI after the documented six;
    // a row too short to read; a base64 one; an oversized one; a normal one after it.
    let big = "x".repeat(150 * 1024);
    let body = json!({"type": "recv-sms", "sms_num": 5, "sms": [
        [0, "1A", now, "10010", "1326", "%% not base64 %%", "89860116289910033431", "460014978212473"],
        [0, "1A"],
        [0, "1A", now + 1, "10010", "1326", b64("decoded fine")],
        [0, "1A", now + 2, "10010", "1326", b64(&big)],
        [0, "1A", now + 3, "10010", "1326", b64("after the big one")]]});
    let (code, v) = r.post(&body);
    assert_eq!(code, 200, "{v}; log:\n{}", r.agent.log());
    let raw = r.wait_event("sms-received", T * 2, |e| e["text"] == "%% not base64 %%");
    assert_eq!(raw["encoding"], "raw");
    assert_eq!(raw["extra"], json!(["89860116289910033431", "460014978212473"]));
    assert_eq!(raw["source"], "push");
    let short = r.wait_event("sms-received", T * 2, |e| e["raw"] == json!([0, "1A"]));
    assert_eq!(short["encoding"], "raw");
    assert!(short["reason"].as_str().unwrap_or("").contains("elements"), "{short}");
    let fine = r.wait_event("sms-received", T * 2, |e| e["text"] == "decoded fine");
    assert_eq!(fine["encoding"], "base64");
    let cut = r.wait_event("sms-received", T * 2, |e| e["truncated"] == true);
    assert_eq!(cut["textLength"], 150 * 1024);
    assert!(cut["text"].as_str().unwrap().starts_with("xxxx"));
    assert!(cut.to_string().len() <= 64 * 1024);
    r.wait_event("sms-received", T * 2, |e| e["text"] == "after the big one");

    // From the inbox, while the agent was down: the same kinds of rows.
    r.agent.stop();
    r.sim.deliver_row(json!([0, "2A", now + 10, "10086", "1326", "plain text, not base64", "8986ICCID"]));
    r.sim.deliver_row(json!({"not": "a row"}));
    r.sim.deliver_row(json!([0, "2A", now + 11, "10086", "1326", b64(&"y".repeat(120 * 1024))]));
    r.sim.deliver_sms("2A", "10086", "last from the inbox");
    r.agent.spawn();
    let last = r.wait_event("sms-received", T * 2, |e| e["text"] == "last from the inbox");
    assert_eq!(last["source"], "inbox");
    let plain = r.wait_event("sms-received", T * 2, |e| e["text"] == "plain text, not base64");
    assert_eq!((plain["encoding"].as_str(), plain["source"].as_str()), (Some("raw"), Some("inbox")));
    assert_eq!(plain["extra"], json!(["8986ICCID"]));
    let odd = r.wait_event("sms-received", T * 2, |e| e["raw"] == json!({"not": "a row"}));
    assert_eq!(odd["encoding"], "raw");
    let cut = r.wait_event("sms-received", T * 2, |e| e["truncated"] == true && e["source"] == "inbox");
    assert_eq!(cut["textLength"], 120 * 1024);
    settle();
    // Each taken in once. Delivery is at least once (an event sent but not
    // yet acknowledged when the agent stopped is sent again after the
    // start, with its `eid`, which the platform drops): count distinct eids.
    let all = r.events(&r.platform, "sms-received");
    let eids = |pred: &dyn Fn(&Value) -> bool| {
        let mut v: Vec<u64> = all.iter().filter(|e| pred(e)).map(|e| e["eid"].as_u64().expect("eid")).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    for t in ["%% not base64 %%", "decoded fine", "after the big one", "plain text, not base64", "last from the inbox"] {
        assert_eq!(eids(&|e: &Value| e["text"] == t).len(), 1, "{t} once: {all:?}");
    }
    assert_eq!(eids(&|e: &Value| e["truncated"] == true).len(), 2);
}

#[test]
fn delivery_reports_carry_the_command_id_across_a_restart() {
    let mut r = rig("DD0000000002", "\toption poll_interval '30'\n");
    let cmd = json!({"id": 7001, "command": "sms", "method": "", "d": {"to": "13800000001,13800000002", "sms": "hello", "dr": 1}});
    let a = r.platform.command("dma", &r.sn, cmd, T);
    assert_eq!(a["status"], "ok", "{a}");
    // The GoIP's delivery reports name no task: matched by port, number, time.
    let d1 = r.wait_event("sms-delivery", T * 2, |e| e["to"] == "13800000001");
    assert_eq!(d1["id"], 7001, "{d1}");
    assert_eq!(d1["delivered"], true);
    let port = d1["port"].as_str().expect("port").to_string();
    let report = r.wait_event("sms-report", T * 2, |e| e["id"] == 7001);
    assert_eq!(report["sent"], 2);
    // A restart, and a later report of the same message (from the inbox).
    r.agent.stop();
    let now = dma_agent::util::unix_now() as i64;
    r.sim.deliver_row(json!([1, port, now + 1, "+8613800100500", "+8613800000002", "0 261123101011"]));
    r.sim.deliver_row(json!([1, port, now + 1, "+8613800100500", "13900000009", "0 261123101011"]));
    r.agent.spawn();
    let d2 = r.wait_event("sms-delivery", T * 2, |e| e["to"] == "+8613800000002");
    assert_eq!(d2["id"], 7001, "matched after the restart: {d2}");
    assert_eq!(d2["source"], "inbox");
    let other = r.wait_event("sms-delivery", T * 2, |e| e["to"] == "13900000009");
    assert_eq!(other["id"], Value::Null, "a number no command sent to: {other}");
}

#[test]
fn port_status_events_and_periph_agree() {
    let r = rig("DD0000000003", "\toption poll_interval '300'\n");
    let from = r.platform.count();
    let body = json!({"type": "port-status", "port": "2A", "seq": 7, "status": "6 Register Failed", "bal": "12.50",
                      "imei": "860000000000002", "sig": "17", "opr": "46000 CMCC", "sn": "13800000002",
                      "iccid": "89860000000000000002", "imsi": "460000000000002"});
    let (code, v) = r.post(&body);
    assert_eq!(code, 200, "{v}");
    let ev = r.wait_event("port-status", T * 2, |e| e["port"] == "2A" && e["seq"] == 7);
    assert_eq!(ev["state"], 6);
    assert_eq!(ev["state_text"], "Register Failed");
    assert_eq!(ev["status"], "6 Register Failed");
    assert_eq!(ev["bal"], "12.50");
    assert_eq!(ev["balance"], 12.5);
    assert_eq!(ev["imei"], "860000000000002");
    let periph = r
        .platform
        .wait_from(from, "dma/periph", T, |m| {
            m.json["kind"] == "goip"
                && m.json["msg"]["ports"].as_array().is_some_and(|ps| ps.iter().any(|p| p["port"] == "2A" && p["seq"] == 7))
        })
        .unwrap_or_else(|| panic!("no periph with the pushed port; log:\n{}", r.agent.log()))
        .json;
    let entry = periph["msg"]["ports"].as_array().unwrap().iter().find(|p| p["port"] == "2A").unwrap().clone();
    let mut from_event = ev.as_object().unwrap().clone();
    for k in ["sn", "time", "type", "device", "eid"] {
        from_event.remove(k);
    }
    assert_eq!(Value::Object(from_event), entry, "the event and periph.msg.ports say the same");
}

#[test]
fn iad_call_records_become_events_once_each() {
    let broker = Broker::start();
    let platform = Platform::connect(broker.port, "dma");
    let iad = IadSim::start("127.0.0.1:0", IadSimConfig::default()).expect("iad sim");
    let sn = "DD0000000004";
    let cfg = format!(
        "{}\nconfig device 'iad1'\n\toption type 'iad'\n\toption address '{}'\n\toption username 'admin'\n\toption password 'admin'\n\toption poll_interval '1'\n\toption cdr '1'\n",
        agent_section(sn, broker.port, std::path::Path::new("{state}"), ""),
        iad.url()
    );
    let mut agent = Agent::start(sn, &cfg);
    let cdrs = || -> Vec<Value> { platform.all("dma/event").into_iter().map(|m| m.json).filter(|j| j["type"] == "cdr").collect() };
    let wait_count = |n: usize, agent: &Agent| {
        let deadline = Instant::now() + T * 2;
        while cdrs().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(cdrs().len() >= n, "{} of {n} cdr events; log:\n{}", cdrs().len(), agent.log());
    };
    // The simulator starts with one record.
    wait_count(1, &agent);
    let first = &cdrs()[0];
    assert_eq!((first["device"].as_str(), first["from"].as_str(), first["disposition"].as_str()), (Some("iad1"), Some("8001"), Some("ANSWERED")));
    // Two calls between polls.
    iad.push_cdr("8002", "13800000002", "NO ANSWER", 0);
    iad.push_cdr("8003", "13800000003", "ANSWERED", 7);
    wait_count(3, &agent);
    // Many polls later: nothing twice.
    let polls = iad.call_count("sys_info/cdr");
    let deadline = Instant::now() + T;
    while iad.call_count("sys_info/cdr") < polls + 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cdrs().len(), 3, "no duplicates across polls");
    // A call while the agent is down, and a restart: that one once, no other again.
    agent.stop();
    iad.push_cdr("8004", "13800000004", "BUSY", 0);
    agent.spawn();
    wait_count(4, &agent);
    let polls = iad.call_count("sys_info/cdr");
    let deadline = Instant::now() + T;
    while iad.call_count("sys_info/cdr") < polls + 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let froms: Vec<String> = cdrs().iter().map(|e| e["from"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(froms, ["8001", "8002", "8003", "8004"], "each record once, in order");
    assert_eq!(cdrs()[3]["billsec"], "0");
    // Still in periph too.
    let p = platform.wait("dma/periph", T, |m| m.json["kind"] == "iad" && m.json["msg"]["cdr"].as_array().is_some_and(|a| a.len() == 4));
    assert!(p.is_some(), "cdr rows also in periph");
}

#[test]
fn an_sms_too_large_to_read_is_published_as_unreadable_and_skipped() {
    let r = rig("DD0000000005", "\toption poll_interval '30'\n");
    r.sim.deliver_sms("1A", "10010", "before the giant");
    // Larger than any answer the agent reads (1 MiB): neither the push (413)
    // nor any inbox page holding it can be read.
    let giant = "z".repeat(1100 * 1024);
    r.sim.deliver_row(json!([0, "1A", 1_700_000_300i64, "10010", "1326", b64(&giant)]));
    r.sim.deliver_sms("1A", "10010", "after the giant");
    let after = r.wait_event("sms-received", T * 2, |e| e["text"] == "after the giant");
    assert_eq!(after["source"], "inbox");
    let marker = r.wait_event("sms-received", T * 2, |e| e["inboxId"].is_u64());
    assert_eq!(marker["encoding"], "raw");
    assert!(marker["reason"].as_str().unwrap_or("").contains("larger than"), "{marker}");
    settle();
    let all = r.events(&r.platform, "sms-received");
    for t in ["before the giant", "after the giant"] {
        assert_eq!(all.iter().filter(|e| e["text"] == t).count(), 1, "{t} once");
    }
    assert_eq!(all.iter().filter(|e| e["inboxId"].is_u64()).count(), 1, "the unreadable one once");
    let texts: Vec<&str> = all.iter().filter_map(|e| e["text"].as_str()).collect();
    let (b, a) = (texts.iter().position(|t| *t == "before the giant"), texts.iter().position(|t| *t == "after the giant"));
    assert!(b < a, "in order: {texts:?}");
}
