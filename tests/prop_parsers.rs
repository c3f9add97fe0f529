//! Property tests: every parser of outside data is fed random and mutated
//! input and must return (Ok or a clear error) without panicking — with
//! `panic = "abort"` a panic is the whole agent. A fixed number of cases
//! per property (see `CASES`), so CI time stays fixed; failures are not
//! persisted to files.
//!
//! Parsers covered: the GoIP push bodies and their rows, the GoIP inbox
//! page and other answers, the GoIP decryption, the IAD answers and
//! interface boards, the S20 answers, the whole status polls of the IAD,
//! S20 and GoIP clients against a fake device answering random documents, the VPN answers and HTTPS answer
//! reader (with its chunked decoder), the agent's own HTTP request parser
//! and chunked decoder, the UCI parser and the whole configuration, the
//! command envelope, and replay of the agent's files after a power cut:
//! journal, event queue, SMS seen set, task map, call-record cursor.

use dma_agent::devices::goip::{self, api::SmsPage};
use dma_agent::httpd::request::{decode_chunked, parse, Progress};
use dma_agent::httpd::Limits;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// Cases per in-memory property, and per property that writes files.
const CASES: u32 = 1000;
const FILE_CASES: u32 = 100;
/// Cases of whole status polls against a fake device (HTTP round trips).
const POLL_CASES: u32 = 150;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Words the parsers look for, so random documents reach deep branches.
const KEYS: &[&str] = &[
    "type", "sms", "sms_num", "rpts", "rpt_num", "tid", "sdr", "fdr", "status", "port", "st", "seq", "bal", "imei", "sig", "opr",
    "sn", "iccid", "imsi", "max-ports", "max-slot", "max-slots", "ver", "mac", "ip", "code", "reason", "desc", "ssrc", "next_sms",
    "data", "uri", "msg", "interface", "dahdi_scan", "dahdi_port", "sip_register", "dahdi_analog", "voltage", "slotnum", "uptime",
    "result", "err_msg", "err_code", "sending", "sent", "failed", "unsent", "id", "command", "method", "d", "body", "expires",
    "tryTimes", "publishTime", "from", "to", "success", "message", "tasks", "paused", "total", "end", "start", "billsec",
];
const TEXTS: &[&str] = &[
    "dev-status", "port-status", "status-report", "recv-sms", "0", "1", "3 OK", "6 Register Failed", "1A", "2B", "1.01", "-1",
    "ffffffff", "18446744073709551616", "", "\u{0}\u{0}", "99999999999999999999999", "aGVsbG8AAA==", "5L2g5aW9", "%%", "analog",
    "{\"1\":{\"port\":{\"1\":\"FXO\"}}}", "{\"1\":{\"1\":\"FXSLS (In use) RED\"}}", "{\"6reg\":\"Rejected\"}", "sh", "get", "set",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        prop::sample::select(TEXTS).prop_map(|s| json!(s)),
        "[ -~]{0,16}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(KEYS).prop_map(String::from), 1 => "[a-z_-]{1,8}"]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((key(), json_value()), 0..10).prop_map(|kv| kv.into_iter().collect())
}

/// Random edits of a valid input: flip, insert, delete, truncate.
fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for &(at, op, byte) in edits {
        let i = if b.is_empty() { 0 } else { at % (b.len() + 1) };
        match op % 4 {
            0 if i < b.len() => b[i] = byte,
            1 => b.insert(i, byte),
            2 if i < b.len() => {
                b.remove(i);
            }
            3 => b.truncate(i),
            _ => {}
        }
    }
    b
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..12)
}

/// Valid GoIP bodies (seed examples).
const GOIP_SEEDS: &[&[u8]] = &[
    br#"{"type":"dev-status","seq":3,"expires":60,"mac":"00-30-f1-00-6c-55","ip":"192.0.2.67","ver":"532-604","max-ports":32,"max-slot":4,"status":[{"port":"1.01","sim":"","seq":8,"st":3,"imei":"898610599441327","iccid":"89860116289910033431","imsi":"460014978212473","sn":"","opr":"46001 CHINA UNICOM GSM","bal":"0.00","sig":15}]}"#,
    br#"{"type":"port-status","port":"2B","seq":"1","status":"6 Register Failed","bal":100.5,"opr":46000,"sig":"20","imei":860000000000001}"#,
    br#"{"type":"recv-sms","sms_num":"2","sms":[[0,"1A",1466506477,"10010","1326","aGVsbG8AAA=="],[1,"1A",1466506700,"+8613800","1390000","0 210622101010","x",7]]}"#,
    br#"{"type":"status-report","rpt_num":1,"rpts":[{"tid":"1223","sending":0,"sent":"1","failed":1,"unsent":0,"sdr":[[0,"13686876620","1A",1466506477]],"fdr":[[1,"000123","2A",1466506478,"1 Send Failed","27 Unknown subscriber"]]}]}"#,
    br#"{"code":0,"reason":"OK","ssrc":"a1b2","next_sms":3,"data":[[0,"1A",1466506477,"10010","1326","aGVsbG8="],[0,"2A"]]}"#,
];

fn goip_body(bytes: &[u8]) {
    if let Ok(p) = goip::push::parse_push(bytes) {
        let _ = serde_json::to_string(&p);
        if let goip::push::Push::RecvSms(r) = &p {
            let rows = goip::push::rows_in_order(&r.sms, &r.bad);
            assert_eq!(rows.len(), r.sms.len() + r.bad.len(), "no row lost");
        }
        if let goip::push::Push::DevStatus(d) = &p {
            let v = goip::lenient::parse_body(bytes).unwrap_or(Value::Null);
            let _ = goip::status::normalise("g", d, v);
        }
        if let goip::push::Push::PortStatus(ps) = &p {
            let mut msg = json!({});
            goip::status::merge_port(&mut msg, goip::status::port_entry(ps));
        }
    }
    if let Ok(Value::Object(o)) = goip::lenient::parse_body(bytes) {
        goip_answer(&o);
    }
}

fn goip_answer(o: &Map<String, Value>) {
    if let Ok(page) = SmsPage::from_answer(o) {
        assert_eq!(goip::push::rows_in_order(&page.sms, &page.bad).len(), page.sms.len() + page.bad.len());
    }
    let _ = goip::api::TaskList::from_answer(o);
    let _ = goip::api::Stats::from_answer(o);
    let _ = goip::api::check_code("x", &Value::Object(o.clone()), &[0, 200]);
    let _ = goip::push::DevStatus::from_value(&Value::Object(o.clone()));
    let _ = goip::push::PortState::from_value(&Value::Object(o.clone()));
    let _ = goip::push::TaskReport::from_value(&Value::Object(o.clone()));
}

/// The SMS events built from whatever the GoIP sent always fit the queue.
fn sms_events_fit(v: &Value) {
    let rows = match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let (sms, bad) = goip::push::split_rows(&rows, goip::push::Sms::from_value);
    for s in &sms {
        let e = dma_agent::sms::ingest::sms_event("SN", "g", s, dma_agent::sms::ingest::Source::Push, None);
        assert!(e.to_string().len() <= dma_agent::events::queue::MAX_EVENT);
    }
    for b in &bad {
        let e = dma_agent::sms::ingest::raw_sms_event("SN", "g", b, dma_agent::sms::ingest::Source::Inbox);
        assert!(e.to_string().len() <= dma_agent::events::queue::MAX_EVENT);
    }
}

fn http_request(bytes: &[u8]) {
    let lim = Limits { max_body: 4096, max_head: 2048, max_line: 512, max_headers: 16, ..Limits::default() };
    match parse(bytes, &lim) {
        Ok(Progress::Done(r)) => assert!(r.body.len() <= lim.max_body && r.headers.len() <= lim.max_headers),
        Ok(Progress::Partial { .. }) => assert!(bytes.len() <= lim.max_head + lim.max_body * 2 + 64 || bytes.len() > lim.max_head),
        Err(e) => assert!((400..600).contains(&e.status) && !e.reason.is_empty()),
    }
    if let Some(t) = dma_agent::httpd::request::request_target(bytes) {
        assert!(!t.is_empty() && t.len() <= 4096);
    }
    if let Ok(Some(b)) = decode_chunked(bytes, 4096, 512) {
        assert!(b.len() <= 4096);
    }
}

fn vpn_answer(bytes: &[u8]) {
    // (The HTTP framing of the console's answers is ureq's since the VPN
    // client has no parser of its own.)
    if let Ok(call) = dma_agent::devices::vpn::api::Call::parse("User/ExtQueryUser") {
        for status in [200u16, 500] {
            let _ = dma_agent::devices::vpn::api::parse_answer(&call, status, bytes);
        }
    }
}

fn iad_answer(text: &str, v: &Value) {
    for status in [200u16, 403, 500] {
        let _ = dma_agent::devices::iad::client::parse_answer("sys_info/interface", status, text);
    }
    let _ = dma_agent::devices::iad::ports::decode_board(v);
    if let Some(list) = v.get("interface").and_then(Value::as_array) {
        for b in list {
            let _ = dma_agent::devices::iad::ports::decode_board(b);
        }
    }
    let _ = dma_agent::devices::iad::cdr::end_time(v);
    let e = dma_agent::devices::iad::cdr::cdr_event("SN", "iad1", v);
    assert!(e.to_string().len() <= dma_agent::events::queue::MAX_EVENT);
}

fn s20_answer(text: &str) {
    for status in [200u16, 401, 500] {
        if let Ok(v) = dma_agent::devices::s20::client::parse_answer("/sys/get_status", status, text) {
            let _ = dma_agent::devices::s20::client::result_of(&v);
        }
    }
}

static DIRS: AtomicU32 = AtomicU32::new(0);

fn fresh_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dma-prop-{tag}-{}-{}", std::process::id(), DIRS.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A journal written by the agent itself, as the seed for mutations.
fn journal_seed() -> Vec<u8> {
    let d = fresh_dir("jseed");
    {
        let mut j = dma_agent::commands::journal::Journal::open(&d, 8, 256 * 1024, "boot-a").expect("journal");
        let _ = j.begin("n:1", "h1", "sh");
        let _ = j.finish("n:1", dma_agent::commands::journal::State::Succeeded, &dma_wire::Answer::parse(br#"{"id": 1, "status": "ok"}"#).expect("answer"));
        let _ = j.begin("s:x", "h2", "reboot");
        let _ = j.set_data("s:x", json!({"tid": 5}));
    }
    let b = std::fs::read(d.join("journal.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&d);
    b
}

fn replay_files(journal: &[u8], queue: &[u8], cursor: &[u8], other: &[u8]) {
    let d = fresh_dir("replay");
    let _ = std::fs::write(d.join("journal.log"), journal);
    if let Ok(mut j) = dma_agent::commands::journal::Journal::open(&d, 8, 256 * 1024, "boot-b") {
        let _ = j.len();
        let _ = j.unacked();
        let _ = j.begin("n:99", "h", "sh");
    }
    let ev = d.join("events");
    let _ = std::fs::create_dir_all(&ev);
    let _ = std::fs::write(ev.join("queue.log"), queue);
    let _ = std::fs::write(ev.join("cursor"), cursor);
    if let Ok(q) = dma_agent::events::EventQueue::open(&ev, 4096) {
        let used = q.used();
        assert!(used <= queue.len() as u64);
        let _ = q.push(&json!({"type": "x"}));
        let _ = q.stats();
    }
    let sms = d.join("sms");
    let _ = std::fs::create_dir_all(&sms);
    for f in ["seen.log", "tids.json", "cursor-g.json"] {
        let _ = std::fs::write(sms.join(f), other);
    }
    if let Ok(mut s) = dma_agent::sms::seen::Seen::open(&sms, 16) {
        let _ = s.add_all(&["k".to_string()]);
    }
    if let Ok(t) = dma_agent::sms::tids::Tids::open(&sms) {
        let _ = t.match_delivery("g", "1A", "13800000000", 1_700_000_000);
        let _ = t.command_id("g", 1);
    }
    let _ = dma_agent::sms::reconcile::Cursor::load(&sms, "g");
    let cdr = d.join("cdr");
    let _ = std::fs::create_dir_all(&cdr);
    let _ = std::fs::write(cdr.join("iad1.json"), other);
    let c = dma_agent::devices::iad::cdr::CdrCursor::open(&cdr, "iad1");
    let _ = c.new_rows(&[json!({"end": "1700000000"})]);
    let _ = std::fs::remove_dir_all(&d);
}

const UCI_SEED: &str = include_str!("../openwrt/dma-agent/files/dma-agent.config");

const HTTP_SEEDS: &[&[u8]] = &[
    b"POST /goip/gw1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"type\":\"x\"}",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n3;a=b\r\nabc\r\n2\r\nde\r\n0\r\nX: y\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n3;x=1\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
];

/// Chunk sizes: any hex, and the edges (near `u64::MAX`, over 8 digits).
fn chunk_size() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fA-F]{1,20}",
        any::<u64>().prop_map(|n| format!("{n:x}")),
        (0u64..1024).prop_map(|d| format!("{:x}", u64::MAX - d)),
        (0u64..1024).prop_map(|d| format!("{:x}", u32::MAX as u64 - d)),
        Just("0".to_string()),
    ]
}

const COMMAND_SEED: &[u8] = br#"{"id":201811260000000001,"from":"platform","command":"sms","method":"","d":{"to":"10086","sms":"hi"},"expires":1700000000,"tryTimes":1,"publishTime":1700000000}"#;

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn goip_push_random_bytes(b in prop::collection::vec(any::<u8>(), 0..1024)) {
        goip_body(&b);
    }

    #[test]
    fn goip_push_mutated(i in 0..GOIP_SEEDS.len(), e in edits()) {
        goip_body(&mutate(GOIP_SEEDS[i], &e));
    }

    #[test]
    fn goip_documents(v in json_value()) {
        goip_body(v.to_string().as_bytes());
        if let Value::Object(o) = &v {
            goip_answer(o);
        }
        sms_events_fit(&v);
        let _ = goip::push::Sms::from_value(&v);
        let _ = goip::push::Detail::from_value(&v);
    }

    #[test]
    fn goip_answer_objects(o in json_object()) {
        goip_answer(&o);
        let mut typed = o.clone();
        typed.insert("type".into(), json!("recv-sms"));
        goip_body(Value::Object(typed).to_string().as_bytes());
    }

    #[test]
    fn goip_decrypt(b in prop::collection::vec(any::<u8>(), 0..256), k in "[ -~]{0,40}") {
        for mode in ["none", "rc4", "aes"] {
            if let Some(m) = goip::crypt::CryptMode::parse(mode) {
                let _ = goip::crypt::open(m, &k, &b);
            }
        }
    }

    #[test]
    fn http_request_random(b in prop::collection::vec(any::<u8>(), 0..2048)) {
        http_request(&b);
    }

    #[test]
    fn http_request_mutated(i in 0..HTTP_SEEDS.len(), e in edits()) {
        let b = mutate(HTTP_SEEDS[i], &e);
        http_request(&b);
        vpn_answer(&b);
    }

    #[test]
    fn chunk_sizes(sizes in prop::collection::vec(chunk_size(), 1..4), data in prop::collection::vec(any::<u8>(), 1..64)) {
        // A well-formed first chunk, so later sizes meet a non-empty body.
        let mut b = format!("{:x}\r\n", data.len()).into_bytes();
        b.extend_from_slice(&data);
        b.extend_from_slice(b"\r\n");
        for s in &sizes {
            b.extend_from_slice(s.as_bytes());
            b.extend_from_slice(b"\r\n");
            b.extend_from_slice(&data);
            b.extend_from_slice(b"\r\n");
        }
        if let Ok(Some(body)) = decode_chunked(&b, 1024, 256) {
            prop_assert!(body.len() <= 1024);
        }
    }


    #[test]
    fn lan_answers(v in json_value()) {
        let text = v.to_string();
        iad_answer(&text, &v);
        s20_answer(&text);
        vpn_answer(text.as_bytes());
        vpn_answer(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}", text.len()).as_bytes());
    }

    #[test]
    fn lan_answers_random_text(t in any::<String>()) {
        iad_answer(&t, &Value::String(t.clone()));
        s20_answer(&t);
        vpn_answer(t.as_bytes());
    }

    #[test]
    fn uci_mutated(e in edits(), extra in "[ -~\n\t']{0,200}") {
        let text = String::from_utf8_lossy(&mutate(UCI_SEED.as_bytes(), &e)).into_owned();
        let _ = dma_agent::config::uci::parse(&text);
        let _ = dma_agent::config::parse("prop.conf", &text);
        let more = format!("{text}\n{extra}");
        let _ = dma_agent::config::uci::parse(&more);
        let _ = dma_agent::config::parse("prop.conf", &more);
    }

    #[test]
    fn uci_random(t in any::<String>()) {
        let _ = dma_agent::config::uci::parse(&t);
        let _ = dma_agent::config::parse("prop.conf", &t);
    }

    #[test]
    fn command_envelope(v in json_value(), e in edits(), b in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = dma_agent::commands::envelope::parse(v.to_string().as_bytes());
        let _ = dma_agent::commands::envelope::parse(&mutate(COMMAND_SEED, &e));
        let _ = dma_agent::commands::envelope::parse(&b);
        if let Value::Object(mut o) = v {
            o.insert("command".into(), json!("sms"));
            o.entry("id").or_insert(json!(1));
            let _ = dma_agent::commands::envelope::parse(Value::Object(o).to_string().as_bytes());
        }
    }
}

/// A fake LAN device on 127.0.0.1 (the agent's own bounded HTTP server):
/// logins succeed, every other call is answered with the next of the
/// documents of the current case, so the clients' whole status polls (IAD,
/// S20, GoIP) and their normalisation run on random answers.
struct FakeLan {
    server: dma_agent::httpd::Server,
    bodies: std::sync::Arc<std::sync::Mutex<(Vec<Vec<u8>>, usize)>>,
}

fn fake_lan() -> FakeLan {
    use dma_agent::httpd::{Response, Server};
    let bodies: std::sync::Arc<std::sync::Mutex<(Vec<Vec<u8>>, usize)>> = Default::default();
    let b2 = bodies.clone();
    // Named as the push receiver: its threads take that stack size (stack::STACKS).
    let server = Server::start("127.0.0.1:0", "sms-rx", Limits::default(), |_| true, move |req, _| {
        let fixed = |v: Value| Response::json(200, &v);
        if req.target.contains("auth/login") {
            return fixed(json!({"code": 200, "msg": "", "data": {"token": "t0k3n"}}));
        }
        if req.target.contains("/ui/challenge") {
            return fixed(json!({"code": 0, "result": {"salt": "s", "nonce": "n"}}));
        }
        if req.target.contains("/ui/login") {
            return fixed(json!({"code": 0, "result": {"sid": "sid"}}));
        }
        let mut g = b2.lock().unwrap_or_else(|e| e.into_inner());
        let n = g.0.len().max(1);
        let i = g.1 % n;
        g.1 += 1;
        let body = g.0.get(i).cloned().unwrap_or_default();
        Response { status: 200, content_type: "application/json", body }
    }, |_, _, _| {})
    .expect("fake device");
    FakeLan { server, bodies }
}

fn poll_all(lan: &FakeLan, docs: Vec<Vec<u8>>) {
    if let Ok(mut g) = lan.bodies.lock() {
        *g = (docs, 0);
    }
    let url = format!("http://{}", lan.server.local_addr());
    for kind in [dma_agent::devices::DeviceKind::Iad, dma_agent::devices::DeviceKind::S20, dma_agent::devices::DeviceKind::Goip] {
        let mut cfg = dma_agent::config::model::device_defaults("fake", kind);
        cfg.address = url.clone();
        cfg.username = if kind == dma_agent::devices::DeviceKind::S20 { "root".into() } else { "admin".into() };
        cfg.password = "admin".into();
        cfg.timeout = std::time::Duration::from_secs(5);
        if kind == dma_agent::devices::DeviceKind::Iad {
            cfg.options.insert("cdr".into(), "1".into());
        }
        if let Ok(mut dev) = dma_agent::devices::build(&cfg) {
            if let Ok(st) = dev.poll() {
                assert!(st.msg.is_object(), "{kind}: msg is an object");
            }
        }
    }
}

/// A device answer in one of the wrappings the clients expect, or bare.
fn device_doc() -> impl Strategy<Value = Vec<u8>> {
    (0..8u8, json_value(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(w, v, junk)| match w {
        0 | 1 => json!({"code": 200, "msg": "", "data": v}).to_string().into_bytes(),
        2 | 3 => json!({"code": 0, "result": v}).to_string().into_bytes(),
        4 | 5 => match v {
            Value::Object(mut o) => {
                o.insert("code".into(), json!(if w == 4 { 0 } else { 200 }));
                Value::Object(o).to_string().into_bytes()
            }
            other => other.to_string().into_bytes(),
        },
        6 => v.to_string().into_bytes(),
        _ => junk,
    })
}

proptest! {
    #![proptest_config(config(POLL_CASES))]

    #[test]
    fn lan_device_polls(docs in prop::collection::vec(device_doc(), 1..6)) {
        static LAN: std::sync::OnceLock<std::sync::Mutex<FakeLan>> = std::sync::OnceLock::new();
        let lan = LAN.get_or_init(|| std::sync::Mutex::new(fake_lan()));
        let g = lan.lock().unwrap_or_else(|e| e.into_inner());
        poll_all(&g, docs);
    }
}

proptest! {
    #![proptest_config(config(FILE_CASES))]

    #[test]
    fn files_after_a_power_cut(
        je in edits(),
        qb in prop::collection::vec(any::<u8>(), 0..512),
        cb in prop::collection::vec(any::<u8>(), 0..24),
        other in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), json_value().prop_map(|v| v.to_string().into_bytes())],
    ) {
        let seed = journal_seed();
        replay_files(&mutate(&seed, &je), &qb, &cb, &other);
        // Valid lines with a torn tail, and a cursor past the end.
        let mut q = b"{\"n\":1}\n{\"n\":2}\n".to_vec();
        q.extend_from_slice(&qb);
        replay_files(&seed, &q, b"99999999999999999999", &other);
    }
}
