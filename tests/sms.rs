//! SMS through the GoIP end to end: mosquitto, the GoIP simulator and the
//! agent binary, all on 127.0.0.1.

mod common;
use common::*;
use common::sms_rig::{SmsRig, SmsRigConfig};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Status pushed every second, the GoIP polled every 2 s.
fn rig(sn: &str, agent_extra: &str) -> SmsRig {
    SmsRig::start(sn, SmsRigConfig { status_period: 1, device: "\toption poll_interval '2'\n", agent: agent_extra })
}

fn texts(ev: &[Value]) -> Vec<String> {
    ev.iter().map(|e| e["text"].as_str().unwrap_or("").to_string()).collect()
}

#[test]
fn send_report_and_no_second_task_on_retry() {
    let r = rig("BB0000000001", "");
    let cmd = json!({"id": 201811260000000001u64, "from": "test", "command": "sms", "method": "",
                     "d": {"to": "10086,000123", "sms": "hello 你好"}});
    let a = r.platform.command("dma", &r.sn, cmd.clone(), T);
    assert_eq!(a["status"], "ok", "{a}");
    let tid = a["d"]["result"]["tid"].as_i64().expect("tid");
    assert_eq!(a["d"]["result"]["reason"], "OK");
    let tasks = r.sim.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].tid, tid);
    assert_eq!(tasks[0].raw["coding"], 1);
    assert_eq!(tasks[0].raw["chs"], "base64");
    let rep = r
        .platform
        .wait("dma/event", T, |m| m.json["type"] == "sms-report")
        .unwrap_or_else(|| panic!("no sms-report; log:\n{}", r.agent.log()))
        .json;
    assert!(rep.to_string().contains("\"id\":201811260000000001"), "{rep}");
    assert_eq!(rep["tid"], tid);
    assert_eq!((rep["sent"].as_i64(), rep["failed"].as_i64()), (Some(1), Some(1)));
    let d = rep["details"].as_array().unwrap();
    assert_eq!((d[0]["number"].as_str(), d[0]["ok"].as_bool()), (Some("10086"), Some(true)));
    assert_eq!((d[1]["number"].as_str(), d[1]["ok"].as_bool()), (Some("000123"), Some(false)));
    // The same id again: the journal's answer, no second task.
    let again = r.platform.command("dma", &r.sn, cmd, T);
    assert_eq!(again["d"]["result"]["tid"], tid);
    assert_eq!(r.sim.tasks().len(), 1, "a retried command creates no second task");
    // A port the GoIP lacks: err with the GoIP's reason.
    let bad = r.platform.command("dma", &r.sn, json!({"id": 2, "command": "sms", "d": {"to": "1", "sms": "x", "from": "9A"}}), T);
    assert_eq!(bad["status"], "err");
    assert!(bad["d"]["msg"].as_str().unwrap().contains("Invalid Port"), "{bad}");
    let bad = r.platform.command("dma", &r.sn, json!({"id": 3, "command": "sms", "d": {"to": "12ab", "sms": "x"}}), T);
    assert_eq!(bad["status"], "err");
    assert!(!r.agent.log().contains("password=root"), "no secrets in the log");
}

#[test]
fn malformed_rows_are_published_raw_and_good_rows_are_kept() {
    let r = rig("BB0000000002", "");
    let body = json!({"type": "recv-sms", "sms_num": 3, "sms": [
        [0, "2A", 1700000000, "10010", "13800000002", b64("good one")],
        [0, "2A"],
        [0, "3A", "1700000001", 10011, "13800000003", b64("good two\0\0"), "extra"]]});
    let (code, v) = r.post(&body);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["raw"][0]["index"], 1, "{v}");
    let got = r.wait_sms(&r.platform, 4, T);
    assert_eq!(texts(&got)[1..], ["good one".to_string(), String::new(), "good two".to_string()]);
    assert_eq!(got[2]["encoding"], "raw");
    assert_eq!(got[2]["raw"], json!([0, "2A"]));
    assert_eq!(got[3]["from"], "10011");
    assert_eq!(got[3]["encoding"], "base64");
    assert_eq!(got[3]["extra"], json!(["extra"]));
    // The GoIP sends the batch again: nothing twice.
    let (code, _) = r.post(&body);
    assert_eq!(code, 200);
    let (code, v) = r.post(&json!("garbage"));
    assert_eq!(code, 400, "{v}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(r.events(&r.platform, "sms-received").len(), 4);
    // Port status push: an event.
    let (code, _) = r.post(&json!({"type": "port-status", "port": "2A", "seq": 5, "status": "6 Register Failed"}));
    assert_eq!(code, 200);
    r.platform.wait("dma/event", T, |m| m.json["type"] == "port-status" && m.json["port"] == "2A").expect("port-status event");
}

#[test]
fn thousand_sms_through_an_outage_and_a_restart() {
    let mut r = rig("BB0000000003", "");
    r.broker.stop();
    let before = r.sim.pushes().len();
    for i in 0..500 {
        r.sim.deliver_sms("1A", "10010", &format!("m{i:04}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while r.sim.pushes().len() < before + 500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    r.agent.stop();
    // Delivered while the agent is down: only the inbox has them.
    for i in 500..1000 {
        r.sim.deliver_sms("1A", "10010", &format!("m{i:04}"));
    }
    r.agent.spawn();
    std::thread::sleep(Duration::from_secs(2));
    r.broker.restart();
    // The platform's persistent session gets what was published while it
    // reconnected; a client that connects only now could miss the first events.
    let p2 = &r.platform;
    // 1000 plus the rig's probe SMS, which this client saw at the start.
    let got = r.wait_sms(p2, 1001, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(3)); // two more reconciliations
    let got_after = r.events(p2, "sms-received");
    assert_eq!(got_after.len(), got.len(), "nothing later");
    let t: Vec<String> = texts(&got_after).into_iter().filter(|t| t != "probe").collect();
    let want: Vec<String> = (0..1000).map(|i| format!("m{i:04}")).collect();
    let unique: HashSet<&String> = t.iter().collect();
    assert_eq!(unique.len(), t.len(), "no duplicates");
    assert_eq!(t, want, "exactly the 1000, in order");
}

#[test]
fn full_queue_answers_503_and_loses_nothing() {
    let mut r = rig("BB0000000004", "\toption event_queue_bytes '4096'\n");
    r.broker.stop();
    let before = r.sim.pushes().len();
    for i in 0..40 {
        r.sim.deliver_sms("1A", "10010", &format!("q{i:02}"));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while r.sim.pushes().len() < before + 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, v) =
        r.post(&json!({"type": "recv-sms", "sms_num": 1, "sms": [[0, "1A", 1700000000, "1", "2", b64("x".repeat(3000).as_str())]]}));
    assert_eq!(code, 503, "{v}");
    r.broker.restart();
    let p2 = &r.platform;
    r.wait_sms(p2, 41, Duration::from_secs(90)); // generous: under QEMU (mipsel) the drain is slow
    std::thread::sleep(Duration::from_secs(3));
    let t: Vec<String> = texts(&r.events(p2, "sms-received")).into_iter().filter(|t| t != "probe").collect();
    let want: Vec<String> = (0..40).map(|i| format!("q{i:02}")).collect();
    assert_eq!(t, want, "all 40 once, in order; log:\n{}", r.agent.log());
    assert!(r.agent.log().contains("503"));
}

#[test]
fn sms_while_the_agent_was_down_is_published_once() {
    let mut r = rig("BB0000000005", "");
    r.agent.stop();
    r.sim.deliver_sms("2A", "10086", "while you were out");
    r.agent.spawn();
    let got = r.wait_sms(&r.platform, 2, T);
    assert_eq!(got[1]["text"], "while you were out");
    assert_eq!(got[1]["source"], "inbox");
    std::thread::sleep(Duration::from_secs(5)); // periodic reconciliations
    assert_eq!(texts(&r.events(&r.platform, "sms-received")), vec!["probe", "while you were out"]);
}

#[test]
fn goip_restart_is_noticed_and_the_agent_registers_again() {
    let r = rig("BB0000000006", "");
    assert!(r.sim.last_status_url().is_some(), "registered at start");
    r.sim.restart_forgetting_push_urls();
    assert!(r.sim.last_status_url().is_none());
    // Reconciliation (every 2 s here) sees the new ssrc and registers again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while r.sim.last_status_url().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = r.sim.last_status_url().unwrap_or_else(|| panic!("not registered again; log:\n{}", r.agent.log()));
    assert!(url.contains(&format!("127.0.0.1:{}", r.rx)), "{url}");
    // And an SMS after the restart arrives once, pushed or reconciled.
    r.sim.deliver_sms("3A", "10099", "after restart");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !texts(&r.events(&r.platform, "sms-received")).contains(&"after restart".to_string()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let n = texts(&r.events(&r.platform, "sms-received")).iter().filter(|t| *t == "after restart").count();
    assert_eq!(n, 1, "published exactly once; log:\n{}", r.agent.log());
}

/// Push tokens (issue 19 E20): a push without the token the agent gave
/// this GoIP is refused 403 and counted; a push is credited to the GoIP
/// whose token it carries, whatever name the path shows; the token is
/// never logged or published.
#[test]
fn pushes_need_the_goip_token_and_are_credited_by_it() {
    let r = rig("BB00000000T1", "");
    let url = r.push_url();
    let (base, token) = url.rsplit_once('/').expect("token in the URL");
    assert!(base.ends_with("/goip/gw1"), "{url}");
    assert!(token.len() >= 32 && token.bytes().all(|c| c.is_ascii_hexdigit()), "128+ bits: {token}");
    let sms = |i: i64, text: &str| json!({"type": "recv-sms", "sms_num": 1, "sms": [[0, "1A", 1_700_000_100 + i, "10010", "1326", b64(text)]]});
    let rx = format!("http://127.0.0.1:{}", r.rx);
    let wrong = [
        format!("{rx}/goip/gw1"),
        format!("{rx}/goip/gw1/"),
        format!("{rx}/goip/gw1/{}", "0".repeat(token.len())),
        format!("{rx}/goip/gw1/{}", &token[..token.len() - 1]),
        format!("{rx}/goip/{token}/x"),
        format!("{rx}/"),
    ];
    for (i, u) in wrong.iter().enumerate() {
        let (code, v) = r.post_to(u, &sms(i as i64, &format!("forged-{i}")));
        assert_eq!(code, 403, "{u}: {v}");
        assert_eq!(v["reason"], "push token missing or wrong", "{v}");
    }
    let st = r.platform.command("dma", &r.sn, json!({"id": 9, "command": "agent", "method": "get", "d": {}}), T);
    assert_eq!(st["d"]["result"]["state"]["sms"]["pushRefusedToken"], wrong.len(), "{st}");
    // gw1's token on a path naming another GoIP: credited to gw1.
    let (code, v) = r.post_to(&format!("{rx}/goip/gw9/{token}"), &sms(20, "via-other-path"));
    assert_eq!(code, 200, "{v}");
    assert_eq!(r.wait_event("sms-received", T, |e| e["text"] == "via-other-path")["device"], "gw1");
    // The GoIP's own pushes still go through.
    let (code, v) = r.post(&sms(21, "good-push"));
    assert_eq!(code, 200, "{v}");
    r.wait_event("sms-received", T, |e| e["text"] == "good-push");
    r.sim.deliver_sms("1A", "10010", "pushed-by-the-goip");
    r.wait_event("sms-received", T, |e| e["text"] == "pushed-by-the-goip" && e["source"] == "push");
    assert!(!r.texts(&r.platform).iter().any(|t| t.starts_with("forged-")), "a refused push was published");
    assert!(!r.agent.log().contains(token), "token in the log");
    let everything: Vec<Msg> = r.platform.topics().into_iter().flat_map(|t| r.platform.all(&t)).collect();
    assert!(!everything.iter().any(|m| m.raw.contains(token)), "token published");
}
