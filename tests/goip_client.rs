//! The GoIP client against the simulated GoIP (127.0.0.1 only).

#[path = "common/lan_faults.rs"]
mod lan_faults;

use dma_agent::devices::goip::api::{CmdOp, SendSms, SmsTask, StatsPeriod, StatsQuery};
use dma_agent::devices::goip::crypt::{self, CryptMode};
use dma_agent::devices::goip::ports::PortSpec;
use dma_agent::devices::goip::push::{parse_push, Push};
use dma_agent::devices::goip::GoipClient;
use dma_agent::devices::{DeviceConfig, DeviceError, DeviceKind, LanDevice};
use dma_sims::goip::vendor::{self, Cipher};
use dma_sims::goip::{AuthOrder, GoipSim, GoipSimConfig, TaskState};
use dma_sims::{Fault, SimResponse, SimServer};
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn cfg(url: &str, password: &str, opts: &[(&str, &str)]) -> DeviceConfig {
    DeviceConfig {
        name: "goip1".into(),
        kind: DeviceKind::Goip,
        address: url.into(),
        username: "root".into(),
        password: password.into(),
        poll_interval: Duration::from_secs(30),
        timeout: Duration::from_millis(1000),
        enabled: true,
        options: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }
}

fn sim_with(c: GoipSimConfig) -> GoipSim {
    GoipSim::start("127.0.0.1:0", c).expect("sim")
}

fn sim() -> GoipSim {
    sim_with(GoipSimConfig::default())
}

fn client(sim: &GoipSim, opts: &[(&str, &str)]) -> GoipClient {
    GoipClient::new(&cfg(&sim.url(), "root", opts)).expect("client")
}

/// Wait until `f` holds (or fail after `secs`).
fn wait_until(secs: f64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while !f() {
        assert!(Instant::now() < end, "condition not met in {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A push receiver: records (path, parsed push).
struct Receiver {
    server: SimServer,
    got: Arc<Mutex<Vec<(String, Push)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let got: Arc<Mutex<Vec<(String, Push)>>> = Arc::default();
        let g = got.clone();
        let server = SimServer::start("127.0.0.1:0", move |req| {
            match parse_push(&req.body) {
                Ok(p) => g.lock().unwrap().push((req.path.clone(), p)),
                Err(e) => panic!("push not readable: {e}"),
            }
            SimResponse::json(&json!({"code": 0}))
        })
        .unwrap();
        Receiver { server, got }
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }
    fn find(&self, path: &str, kind: &str) -> Vec<Push> {
        self.got.lock().unwrap().iter().filter(|(p, x)| p == path && x.kind() == kind).map(|(_, x)| x.clone()).collect()
    }
    fn wait(&self, path: &str, kind: &str) -> Push {
        wait_until(5.0, || !self.find(path, kind).is_empty());
        self.find(path, kind).remove(0)
    }
}

fn wait_registered(sim: &GoipSim, ports: u16) {
    wait_until(3.0, || (1..=ports).all(|p| sim.port_state(p) == Some(3)));
}

#[test]
fn status_and_poll() {
    let sim = sim_with(GoipSimConfig { empty_ports: vec![4], ..GoipSimConfig::default() });
    let mut c = client(&sim, &[]);
    // Right after power-on the SIMs are still registering.
    let st = c.status().unwrap();
    assert_eq!(st.ports.len(), 4);
    assert_eq!(st.ports[3].state, Some(0));
    assert!(st.ports[2].state == Some(2) || st.ports[2].state == Some(3));
    wait_registered(&sim, 3);
    let st = c.status().unwrap();
    assert_eq!(st.max_ports, Some(4));
    assert_eq!(st.version.as_deref(), Some("532-604-924-041-100-000"));
    let p1 = &st.ports[0];
    assert_eq!((p1.port.as_str(), p1.port_no, p1.slot, p1.state, p1.registered), ("1A", Some(1), Some(1), Some(3), true));
    assert_eq!(p1.imei.as_deref(), Some("860000000000001"));
    assert_eq!(p1.iccid.as_deref(), Some("89860000000000000001"));
    assert_eq!(p1.operator.as_deref(), Some("46000 CHINA MOBILE"));
    assert_eq!(p1.balance, Some(12.5));
    assert_eq!(p1.signal, Some(19));

    let d = c.poll().unwrap();
    assert_eq!(d.serial.as_deref(), Some("0030F1006C55"));
    assert_eq!(d.firmware.as_deref(), Some("532-604-924-041-100-000"));
    assert_eq!(d.msg["model"], "Ejoin GoIP");
    assert_eq!(d.msg["registered"], 3);
    assert_eq!(d.msg["ports"][0]["state_text"], "registered");
    assert_eq!(d.msg["ports"][3]["state_text"], "no SIM");
    assert_eq!(d.msg["ports"][3]["registered"], false);
    assert_eq!(d.msg["device"]["mac"], "00-30-f1-00-6c-55");
    assert_eq!(c.kind(), DeviceKind::Goip);

    // all_sims lists every slot.
    let sim2 = sim_with(GoipSimConfig { ports: 2, slots: 4, ..GoipSimConfig::default() });
    let mut c2 = client(&sim2, &[("all_sims", "1")]);
    let st = c2.status().unwrap();
    assert_eq!(st.ports.len(), 8);
    assert_eq!(st.ports[5].port, "2B");
    assert_eq!(st.ports[5].state, Some(1));
}

#[test]
fn status_push_and_port_status() {
    let sim = sim();
    let rx = Receiver::start();
    let mut c = client(&sim, &[]);
    c.set_status_push(&rx.url("/status"), 1).unwrap();
    assert_eq!(sim.last_status_url(), Some(rx.url("/status")));
    assert_eq!(sim.status_period(), 1);
    // SIMs registering push port-status; the period pushes dev-status.
    let Push::PortStatus(p) = rx.wait("/status", "port-status") else { unreachable!() };
    assert_eq!(p.state, Some(3));
    assert!(p.registered);
    let Push::DevStatus(d) = rx.wait("/status", "dev-status") else { unreachable!() };
    assert_eq!(d.ports.len(), 4);
    assert_eq!(d.mac.as_deref(), Some("00-30-f1-00-6c-55"));
    assert!(matches!(c.set_status_push("", 60), Err(DeviceError::BadRequest(_))));
}

#[test]
fn port_commands() {
    let sim = sim_with(GoipSimConfig { slots: 2, ..GoipSimConfig::default() });
    let rx = Receiver::start();
    let mut c = client(&sim, &[]);
    wait_registered(&sim, 4);
    c.set_status_push(&rx.url("/st"), 0).unwrap();
    let none = Map::new();
    let v = c.send_cmd(CmdOp::Lock, Some(&PortSpec::parse("2A").unwrap()), &none).unwrap();
    // The seed's example answer of goip_send_cmd.html (§6.4.2).
    assert_eq!(v["code"], 0);
    assert_eq!(sim.port_state(2), Some(12));
    assert_eq!(sim.commands().last().unwrap(), &json!({"type": "command", "op": "lock", "ports": "2A"}));
    let locked =
        || rx.find("/st", "port-status").into_iter().any(|p| matches!(p, Push::PortStatus(s) if s.port == "2A" && s.state == Some(12)));
    wait_until(3.0, locked);

    c.send_cmd(CmdOp::Unlock, Some(&PortSpec::parse("2").unwrap()), &none).unwrap();
    assert_ne!(sim.port_state(2), Some(12));
    let mut extra = Map::new();
    extra.insert("auto_fail_sim_switch".into(), json!("0"));
    c.send_cmd(CmdOp::Switch, Some(&PortSpec::parse("3B").unwrap()), &extra).unwrap();
    assert_eq!(sim.commands().last().unwrap()["auto_fail_sim_switch"], "0");
    wait_until(3.0, || c.status().unwrap().ports[2].port == "3B");
    c.send_cmd(CmdOp::Reset, Some(&PortSpec::parse("1-2").unwrap()), &none).unwrap();
    c.send_cmd(CmdOp::Save, None, &none).unwrap();

    // A device-side refusal is a device error with its reason.
    let err = c.send_cmd(CmdOp::Switch, Some(&PortSpec::parse("1D").unwrap()), &none).unwrap_err();
    assert!(matches!(&err, DeviceError::Device { code: 400, msg } if msg.contains("Invalid Port")), "{err:?}");
    // Caught before sending.
    assert!(matches!(c.send_cmd(CmdOp::Switch, Some(&PortSpec::parse("1").unwrap()), &none), Err(DeviceError::BadRequest(_))));
    assert!(matches!(c.send_cmd(CmdOp::Lock, None, &none), Err(DeviceError::BadRequest(_))));
    assert!(matches!(c.send_cmd(CmdOp::Get, None, &none), Err(DeviceError::BadRequest(_))));

    // get / set parameters.
    let mut set = Map::new();
    set.insert("sms_url".into(), json!("http://127.0.0.1:9/sms"));
    c.send_cmd(CmdOp::Set, None, &set).unwrap();
    assert_eq!(sim.param("sms_url").as_deref(), Some("http://127.0.0.1:9/sms"));
    let got = c.send_cmd(CmdOp::Get, None, &set).unwrap();
    assert_eq!(got["sms_url"], "http://127.0.0.1:9/sms");

    // multiple
    let mut m = Map::new();
    m.insert("ops".into(), json!([{"op": "lock", "ports": "1A"}, {"op": "lock", "ports": "4A"}]));
    c.send_cmd(CmdOp::Multiple, None, &m).unwrap();
    assert_eq!((sim.port_state(1), sim.port_state(4)), (Some(12), Some(12)));
    m.insert("ops".into(), json!([{"op": "save"}]));
    assert!(matches!(c.send_cmd(CmdOp::Multiple, None, &m), Err(DeviceError::BadRequest(_))));

    c.send_cmd(CmdOp::Reboot, None, &none).unwrap();
    assert_eq!(sim.boots(), 2);
}

#[test]
fn send_sms_and_status_report() {
    let sim = sim();
    let rx = Receiver::start();
    let mut c = client(&sim, &[]);
    let mut t1 = SmsTask::new(1223, "13686876620,000999", "hello123");
    t1.sdr = Some(1);
    let req = SendSms { tasks: vec![t1.clone(), SmsTask::new(1224, "10010", "CYFE")], sr_url: Some(rx.url("/sr")), ..SendSms::default() };
    let st = c.send_sms(&req).unwrap();
    assert_eq!(st.len(), 2);
    assert!(st.iter().all(|s| s.accepted()), "{st:?}");
    assert_eq!((st[0].tid, st[0].reason.as_str()), (1223, "OK"));

    // The same tid again is refused as a duplicate; a bad port likewise.
    let again = c.send_sms(&SendSms { tasks: vec![t1], ..SendSms::default() }).unwrap();
    assert_eq!((again[0].code, again[0].reason.as_str()), (13, "Duplicated TaskId"));
    let mut bad_port = SmsTask::new(1300, "1", "x");
    bad_port.from = Some("9".into());
    let r = c.send_sms(&SendSms { tasks: vec![bad_port], ..SendSms::default() }).unwrap();
    assert_eq!(r[0].code, 2);
    // Validation happens before sending.
    assert!(matches!(c.send_sms(&SendSms::default()), Err(DeviceError::BadRequest(_))));

    wait_until(5.0, || rx.find("/sr", "status-report").len() >= 2);
    let reports: Vec<_> = rx
        .find("/sr", "status-report")
        .into_iter()
        .flat_map(|p| match p {
            Push::StatusReport(s) => s.reports,
            _ => vec![],
        })
        .collect();
    let r = reports.iter().find(|r| r.tid == 1223).unwrap();
    assert_eq!((r.sent, r.failed, r.unsent), (1, 1, 0));
    assert_eq!(r.sdr[0].number, "13686876620");
    assert_eq!(r.fdr[0].number, "000999");
    assert_eq!(r.fdr[0].reason_code, Some(1));
    let tasks = sim.tasks();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].to, vec!["13686876620", "000999"]);
    assert!(tasks.iter().all(|t| t.state == TaskState::Sent));
}

#[test]
fn task_control_and_listing() {
    let sim = sim_with(GoipSimConfig { send_delay: Duration::from_secs(30), ..GoipSimConfig::default() });
    let mut c = client(&sim, &[]);
    let mut t2 = SmsTask::new(11, "10086", "two");
    t2.from = Some("1".into());
    c.send_sms(&SendSms { tasks: vec![SmsTask::new(10, "10010", "one"), t2], ..SendSms::default() }).unwrap();
    let l = c.get_tasks(1, 0, 10, true).unwrap();
    assert_eq!(l.total, 2);
    assert_eq!(l.tasks.iter().map(|t| t.tid).collect::<Vec<_>>(), vec![10, 11]);
    assert_eq!(l.tasks[1].sms.as_deref(), Some("two"));
    assert!(!l.tasks[0].paused);
    assert_eq!(c.get_tasks(2, 0, 10, false).unwrap().tasks.len(), 1, "task 11 is on port 1 only");

    let p = c.pause_tasks(Some(&[10, 99])).unwrap();
    assert!(p[0].accepted());
    assert_eq!((p[1].tid, p[1].code), (99, 11));
    assert!(c.get_tasks(1, 0, 10, false).unwrap().tasks[0].paused);
    assert!(c.resume_tasks(Some(&[10])).unwrap()[0].accepted());
    assert!(!c.get_tasks(1, 0, 1, false).unwrap().tasks[0].paused);
    assert!(c.remove_tasks(Some(&[11])).unwrap()[0].accepted());
    assert_eq!(sim.tasks()[1].state, TaskState::Removed);
    assert!(c.pause_tasks(None).unwrap().is_empty());
    assert_eq!(sim.tasks()[0].state, TaskState::Paused);
    c.remove_tasks(None).unwrap();
    assert_eq!(c.get_tasks(1, 0, 10, false).unwrap().total, 0);
    assert!(matches!(c.get_tasks(0, 0, 10, false), Err(DeviceError::BadRequest(_))));
}

#[test]
fn inbox_paging_restart_and_push() {
    let sim = sim();
    let rx = Receiver::start();
    let mut c = client(&sim, &[("sms_page", "2")]);
    let mut set = Map::new();
    set.insert("sms_url".into(), json!(rx.url("/sms")));
    c.send_cmd(CmdOp::Set, None, &set).unwrap();
    for (i, text) in ["first", "你好", "third"].iter().enumerate() {
        assert_eq!(sim.deliver_sms("1A", &format!("1001{i}"), text), i as i64 + 1);
    }
    let Push::RecvSms(r) = rx.wait("/sms", "recv-sms") else { unreachable!() };
    assert_eq!(r.sms[0].text, "first");
    assert_eq!(r.sms[0].port, "1A");

    let p1 = c.get_sms(None, 1).unwrap();
    assert_eq!(p1.sms.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(), vec!["first", "你好"]);
    assert_eq!(p1.sms[0].from, "10010");
    assert_eq!(p1.next_sms, 3);
    assert!(!p1.ssrc_changed);
    let p2 = c.get_sms(Some(&p1.ssrc), p1.next_sms as u64).unwrap();
    assert_eq!(p2.sms.len(), 1);
    assert_eq!(p2.sms[0].text, "third");
    assert_eq!(p2.next_sms, 4);
    let empty = c.get_sms(Some(&p1.ssrc), 4).unwrap();
    assert!(empty.sms.is_empty());
    assert_eq!(empty.next_sms, 4);

    // After a restart the ids start again under a new ssrc.
    sim.restart();
    sim.deliver_sms("2A", "10086", "after restart");
    let p3 = c.get_sms(Some(&p1.ssrc), 4).unwrap();
    assert!(p3.ssrc_changed);
    assert_ne!(p3.ssrc, p1.ssrc);
    assert_eq!(p3.ssrc, sim.ssrc());
    assert_eq!(p3.sms[0].text, "after restart");
    assert_eq!(p3.next_sms, 2);

    let removed = c.remove_sms(1, 1).unwrap();
    assert_eq!(removed.sms.len(), 1);
    assert_eq!(sim.inbox_len(), 0);
}

#[test]
fn delivery_reports_reach_inbox_and_push() {
    let sim = sim();
    let rx = Receiver::start();
    let mut c = client(&sim, &[]);
    let mut t = SmsTask::new(7, "13900000001", "ping");
    t.dr = Some(1);
    c.send_sms(&SendSms { tasks: vec![t], sms_url: Some(rx.url("/sms")), ..SendSms::default() }).unwrap();
    let Push::RecvSms(r) = rx.wait("/sms", "recv-sms") else { unreachable!() };
    assert!(r.sms[0].is_report);
    assert_eq!(r.sms[0].to, "13900000001");
    assert_eq!(r.sms[0].report_code, Some(0));
    assert!(c.get_sms(None, 1).unwrap().sms[0].is_report);
}

#[test]
fn statistics() {
    let sim = sim();
    let mut c = client(&sim, &[]);
    sim.deliver_sms("1A", "10010", "x");
    c.send_sms(&SendSms { tasks: vec![SmsTask::new(1, "123,000", "x")], ..SendSms::default() }).unwrap();
    wait_until(3.0, || sim.tasks()[0].state == TaskState::Sent);
    let s = c.sms_stats(&StatsQuery { ports: Some("1".into()), slots: None, period: StatsPeriod::Total }).unwrap();
    assert_eq!(s.rows.len(), 1);
    let r = &s.rows[0];
    assert_eq!((r.port, r.slot), (1, Some(1)));
    assert_eq!(
        (r.counters["received"].clone(), r.counters["sent"].clone(), r.counters["sent_failed"].clone()),
        (json!(1), json!(2), json!(1))
    );
    let calls = c.call_stats(&StatsQuery::default()).unwrap();
    assert_eq!(calls.rows.len(), 4);
    assert_eq!(calls.rows[1].counters["calls"], 20);
    assert_eq!(calls.rows[1].counters["nc"], "10/20");
}

#[test]
fn goip_get_set_commands() {
    let sim = sim();
    let mut c = client(&sim, &[]);
    wait_registered(&sim, 4);
    let s = c.command("get", &json!({"op": "status"})).unwrap();
    assert_eq!(s["registered"], 4);
    sim.deliver_sms("3A", "10010", "hi there");
    let inbox = c.command("get", &json!({"op": "sms_inbox"})).unwrap();
    assert_eq!(inbox["code"], 0);
    assert_eq!(inbox["messages"][0]["text"], "hi there");
    assert_eq!(inbox["messages"][0]["port"], "3A");
    let v = c.command("set", &json!({"op": "lock", "ports": "1A"})).unwrap();
    assert_eq!(v, json!({"code": 0, "reason": "OK"}));
    assert_eq!(sim.port_state(1), Some(12));
    c.command("set", &json!({"op": "set", "params": {"sr_url": "http://127.0.0.1:9/sr"}})).unwrap();
    assert_eq!(c.command("get", &json!({"op": "get", "names": ["sr_url"]})).unwrap()["sr_url"], "http://127.0.0.1:9/sr");
    c.send_sms(&SendSms { tasks: vec![SmsTask::new(5, "1", "x")], ..SendSms::default() }).unwrap();
    let paused = c.command("set", &json!({"op": "pause", "tids": [5]})).unwrap();
    assert_eq!(paused["results"][0]["status"], "0 OK");
    assert_eq!(paused["tasks"], json!([{"tid": 5, "ok": true, "code": 0, "reason": "OK"}]));
    assert_eq!(c.command("get", &json!({"op": "tasks", "port": 1, "content": true})).unwrap()["tasks"][0]["sms"], "x");
    assert_eq!(c.command("get", &json!({"op": "sms_stats", "ports": "1-2", "type": 3})).unwrap()["count"], 2);
    assert_eq!(c.command("get", &json!({"op": "call_stats"})).unwrap()["count"], 4);
    let del = c.command("set", &json!({"op": "sms_delete", "sms_id": 1, "sms_num": 10})).unwrap();
    assert_eq!(del["sms_num"], 1);
    assert_eq!(sim.inbox_len(), 0);
    let sp = c.command("set", &json!({"op": "status_push", "url": "http://127.0.0.1:9/st", "period": 60})).unwrap();
    assert_eq!(sp["type"], "dev-status");
    assert_eq!(sim.status_period(), 60);

    for (m, body) in [
        ("set", json!({"op": "status"})),
        ("get", json!({"op": "lock", "ports": "1A"})),
        ("get", json!({"op": "fly"})),
        ("get", json!({})),
        ("set", json!("lock")),
        ("set", json!({"op": "lock"})),
        ("set", json!({"op": "lock", "ports": "1Q9"})),
        ("set", json!({"op": "set", "params": {"a": {"b": 1}}})),
        ("set", json!({"op": "pause", "tids": ["x"]})),
        ("get", json!({"op": "sms_stats", "type": 9})),
        ("get", json!({"op": "get", "names": []})),
    ] {
        assert!(matches!(c.command(m, &body), Err(DeviceError::BadRequest(_))), "{m} {body}");
    }
}

fn session_round_trip(crypt: &str) {
    let sim = sim_with(GoipSimConfig { send_delay: Duration::from_secs(30), ..GoipSimConfig::default() });
    let mut c = client(&sim, &[("crypt", crypt), ("session", "1")]);
    let st = c.status().unwrap();
    assert_eq!(st.ports.len(), 4);
    let r = c.send_sms(&SendSms { tasks: vec![SmsTask::new(42, "10010", "sealed body")], ..SendSms::default() }).unwrap();
    assert!(r[0].accepted(), "{r:?}");
    assert_eq!(sim.tasks()[0].sms, "sealed body");
    assert!(c.pause_tasks(Some(&[42])).unwrap()[0].accepted());
    c.send_cmd(CmdOp::Lock, Some(&PortSpec::parse("2A").unwrap()), &Map::new()).unwrap();
    assert_eq!(sim.port_state(2), Some(12));
    assert_eq!((sim.handshakes(), c.handshakes()), (1, 1));
    // The device forgets the session: the client renews it and carries on.
    sim.expire_sessions();
    assert!(c.remove_tasks(Some(&[42])).unwrap()[0].accepted());
    assert_eq!((sim.handshakes(), c.handshakes()), (2, 2));
    assert_eq!(sim.tasks()[0].state, TaskState::Removed);
}

#[test]
fn secure_session_rc4() {
    session_round_trip("rc4");
}

#[test]
fn secure_session_aes() {
    session_round_trip("aes");
}

#[test]
fn secure_session_without_cipher() {
    session_round_trip("none");
}

#[test]
fn session_renewed_before_expiry() {
    let sim = sim();
    let mut c = client(&sim, &[("crypt", "aes"), ("expires", "1")]);
    c.status().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    c.status().unwrap();
    assert_eq!(c.handshakes(), 2);
    assert_eq!(sim.login_failures(), 0, "renewed before the device refused");
}

/// Issue 21 item 9: the seed's order (resource then seq) is the default on
/// both sides; the lab script's order stays selectable.
#[test]
fn auth_order_selectable() {
    let seed = sim();
    client(&seed, &[("crypt", "rc4")]).status().expect("the seed's order by default");
    assert!(matches!(client(&seed, &[("crypt", "rc4"), ("auth_order", "seq")]).status(), Err(DeviceError::Auth(_))));
    let script = sim_with(GoipSimConfig { auth_order: AuthOrder::SeqFirst, ..GoipSimConfig::default() });
    let mut wrong = client(&script, &[("crypt", "rc4")]);
    assert!(matches!(wrong.status(), Err(DeviceError::Auth(_))));
    let mut right = client(&script, &[("crypt", "rc4"), ("auth_order", "seq")]);
    right.status().unwrap();
}

/// Issue 21 item 9: the seed's `xor` cipher.
#[test]
fn secure_session_xor() {
    session_round_trip("xor");
}

/// Issue 21 item 9: parameters of a POST in its JSON body (seed §6.3.1.2)
/// when configured; the simulator takes both places.
#[test]
fn post_parameters_in_the_body_or_the_query() {
    let sim = sim_with(GoipSimConfig { send_delay: Duration::from_secs(30), ..GoipSimConfig::default() });
    let mut body = client(&sim, &[("post_params", "body")]);
    let r = body.send_sms(&SendSms { tasks: vec![SmsTask::new(7, "10010", "in the body")], ..SendSms::default() }).unwrap();
    assert!(r[0].accepted(), "{r:?}");
    assert_eq!(sim.body_credentials(), 1, "the credentials came in the body");
    body.status().expect("a GET keeps the query");
    let mut query = client(&sim, &[]);
    assert!(query.pause_tasks(Some(&[7])).unwrap()[0].accepted());
    assert_eq!(sim.body_credentials(), 1, "the default stays the query");
    assert!(GoipClient::new(&cfg(&sim.url(), "root", &[("post_params", "header")])).is_err());
}

/// Issue 21 item 9: field names as the seed's tables spell them (`Stats`,
/// `Port`) are read like the examples' (`stats`, `port`).
#[test]
fn statistics_field_names_any_case() {
    let srv = SimServer::start("127.0.0.1:0", |_req| {
        SimResponse::json(&json!({"Code": 200, "Reason": "OK", "Count": 1, "Stats": [{"Port": 2, "Slot": 1, "sent": 5}]}))
    })
    .unwrap();
    let mut c = GoipClient::new(&cfg(&srv.url(), "root", &[])).unwrap();
    let st = c.sms_stats(&StatsQuery::default()).expect("stats");
    assert_eq!(st.rows.len(), 1, "{st:?}");
    assert_eq!((st.rows[0].port, st.rows[0].slot), (2, Some(1)));
}

#[test]
fn wrong_password_is_auth_error() {
    let sim = sim();
    for opts in [&[][..], &[("crypt", "aes")][..]] {
        let mut c = GoipClient::new(&cfg(&sim.url(), "wr0ng-pa55", opts)).unwrap();
        let e = c.status().unwrap_err();
        assert!(matches!(e, DeviceError::Auth(_)), "{e:?}");
        assert!(!e.to_string().contains("wr0ng-pa55"));
        let e = c.command("get", &json!({"op": "status"})).unwrap_err();
        assert!(matches!(e, DeviceError::Auth(_)), "{e:?}");
    }
    assert!(sim.login_failures() >= 4);
    assert!(GoipClient::new(&cfg(&sim.url(), "root", &[("crypt", "des")])).is_err());
    assert!(GoipClient::new(&cfg("ftp://x", "root", &[])).is_err());
}

#[test]
fn faults_map_to_errors() {
    let sim = sim();
    let mut c = GoipClient::new(&DeviceConfig { timeout: Duration::from_millis(300), ..cfg(&sim.url(), "root", &[]) }).unwrap();
    lan_faults::faults_map_to_errors(&mut c, sim.endpoint(), Duration::from_millis(1000));
    // The SMS inbox's reader and the errors' texts (the password is in the URL).
    sim.set_fault(Fault::Garbage);
    assert!(matches!(c.get_sms(None, 1), Err(DeviceError::Protocol(_))));
    sim.set_fault(Fault::Drop);
    let e = c.poll().unwrap_err();
    assert!(!e.to_string().contains("password=root"), "{e}");
}

/// DEVICE-NOTES' vector (u = p = root, cnonce 123456, session
/// 0123456789abcdef, seq 10, /goip_remove_sms.html), checked against the
/// client and, separately, the simulator's own implementation.
#[test]
fn session_vectors_hold_on_both_sides() {
    let (u, p, cnonce, session, seq, res) = ("root", "root", "123456", "0123456789abcdef", 10, "/goip_remove_sms.html");
    let (initial, auth, key) = ("8e064d3cea40fb69afc5be4760b67925", "22839fda5ddce7c5f0759284e21e4192", "abfd5a2e273b4eb25cf069394edf298a");
    assert_eq!(crypt::initial_auth(u, p, cnonce, "/crypt_sess.json"), initial, "client");
    assert_eq!(crypt::request_auth(crypt::AuthOrder::SeqFirst, u, p, session, res, seq), auth, "client");
    assert_eq!(crypt::body_key(u, p, initial, session, seq), key, "client");
    assert_eq!(vendor::handshake_auth(u, p, cnonce, "/crypt_sess.json"), initial, "simulator");
    assert_eq!(vendor::request_auth(AuthOrder::SeqFirst, u, p, session, res, seq), auth, "simulator");
    assert_eq!(vendor::body_key(u, p, initial, session, seq), key, "simulator");
    // The seed's order is a different hash on both sides alike.
    assert_eq!(
        crypt::request_auth(crypt::AuthOrder::ResourceFirst, u, p, session, res, seq),
        vendor::request_auth(AuthOrder::ResourceFirst, u, p, session, res, seq)
    );
    // What the client seals, the simulator's own ciphers open.
    let plain = br#"{"tids":[2,3]}"#;
    for (mode, cipher) in [(CryptMode::Xor, Cipher::Xor), (CryptMode::Rc4, Cipher::Rc4), (CryptMode::AesEcb, Cipher::Aes256Ecb)] {
        let sealed = crypt::seal(mode, key, plain).unwrap();
        assert_ne!(&sealed[..plain.len().min(sealed.len())], &plain[..], "{mode:?} leaves the body in clear");
        assert_eq!(vendor::decrypt_body(cipher, key, &sealed).unwrap(), plain, "{mode:?}");
    }
    assert_eq!(crypt::seal(CryptMode::AesEcb, key, plain).unwrap().len(), 16, "zero-padded to one block");
}

/// Issue 10 item 10: pause/resume/remove answer per task; any failed task
/// fails the command, naming it with the device's reason.
#[test]
fn task_control_reports_per_task() {
    let sim = sim_with(GoipSimConfig { send_delay: Duration::from_secs(60), ..GoipSimConfig::default() });
    let mut c = client(&sim, &[]);
    let tasks = vec![SmsTask::new(21, "10086", "a"), SmsTask::new(22, "10086", "b"), SmsTask::new(23, "10086", "c")];
    c.send_sms(&SendSms { tasks, ..SendSms::default() }).unwrap();

    let ok = c.command("set", &json!({"op": "pause", "tids": [21, 22]})).unwrap();
    assert_eq!(ok["tasks"].as_array().map(Vec::len), Some(2));
    assert_eq!(ok["failed"], json!([]));
    let state = |tid| sim.tasks().into_iter().find(|t| t.tid == tid).map(|t| t.state);
    assert_eq!((state(21), state(22)), (Some(TaskState::Paused), Some(TaskState::Paused)));

    // 23 is not paused: resuming it fails while 21 is resumed.
    let e = c.command("set", &json!({"op": "resume", "tids": [21, 23]})).unwrap_err();
    let DeviceError::Device { code, msg } = &e else { panic!("device error expected, got {e:?}") };
    assert_eq!(*code, 11);
    assert!(msg.contains("1 of 2 tasks failed") && msg.contains("task 23: 11 TID Expected") && msg.ends_with("done: 21"), "{msg}");
    assert_eq!(state(21), Some(TaskState::Queued));

    let e = c.command("set", &json!({"op": "remove", "tids": [22, 99]})).unwrap_err();
    assert!(e.to_string().contains("task 99") && !e.to_string().contains("task 22:"), "{e}");
    assert_eq!(state(22), Some(TaskState::Removed));
    // Without tids every task is acted on and the device reports none singly.
    let all = c.command("set", &json!({"op": "remove"})).unwrap();
    assert!(all.get("tasks").is_none(), "{all}");
    assert!(sim.tasks().iter().all(|t| t.state == TaskState::Removed));
    assert!(matches!(c.command("set", &json!({"op": "pause", "tids": []})), Err(DeviceError::BadRequest(_))));
}

/// Command answers come as `"code": 0` (the seed's example, and the
/// simulator) or `"code": 200` (the code the rest of the API uses): the
/// client takes both, and still refuses anything else.
#[test]
fn command_answers_with_code_0_or_200() {
    for (code, ok) in [(0, true), (200, true), (400, false)] {
        let dev = SimServer::start("127.0.0.1:0", move |_req| SimResponse::json(&json!({"code": code, "reason": "OK"}))).unwrap();
        let mut c = GoipClient::new(&cfg(&dev.url(), "root", &[])).unwrap();
        let r = c.command("set", &json!({"op": "save"}));
        assert_eq!(r.is_ok(), ok, "code {code}: {r:?}");
    }
}
