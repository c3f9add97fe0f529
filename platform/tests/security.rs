//! The platform's doors, against the real `dma-platform` process on
//! 127.0.0.1: roles on every endpoint, login throttling, logout, the
//! callback/route URL policy, secrets masked when served, stored and
//! routed, a bounded HTTP server (a 100 MiB header, 2,000 idle
//! connections: memory, threads and descriptors of the process read from
//! /proc), security headers, and log lines that cannot be forged.

mod common;

use common::hooks::Receiver;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// admin (the harness's), `op` with `roles: ["operator"]`, `viewer` with the seed's `privileges: ["view"]`.
fn with_roles(broker_port: u16, extra: Value) -> Platform {
    let dir = temp_dir("platform");
    let db = dir.join("p.db").to_string_lossy().into_owned();
    let mut cfg = platform_config(free_port(), &db, broker_port, &format!("platform-sec-{}", free_port()), extra);
    let hash = dma_platform::auth::hash_password(PASSWORD).unwrap();
    cfg["users"] = json!([
        {"user": USER, "password_hash": hash, "roles": ["admin"]},
        {"user": "op", "password_hash": hash, "roles": ["operator"]},
        {"user": "viewer", "password_hash": hash, "privileges": ["view"]},
    ]);
    Platform::start_with(dir, &cfg)
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(20))).http_status_as_error(false).build().into()
}

/// (status, Retry-After, JSON) of a login.
fn login_raw(p: &Platform, user: &str, password: &str) -> (u16, Option<u64>, Value) {
    let mut r = http().post(&p.url("/iot/api/v1/auth/login")).send(json!({"user": user, "password": password}).to_string()).expect("login");
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (r.status().as_u16(), retry, serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap())
}

/// Every write endpoint with a valid body (`{route}` is an existing route's id).
fn writes(route: i64, cb: i64, receiver: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("POST", "remotectl/commands".into(), Some(sh("SEC000000001", "true", json!({})))),
        ("POST", "monitor/devices/callbacks".into(), Some(json!({"type": "device", "url": receiver, "enabled": true}))),
        ("POST", "monitor/devices/callbacks/enable".into(), Some(json!({"id": cb, "enabled": false}))),
        ("POST", "msgroute/configs".into(), Some(json!({"topic": "dma/event", "url": receiver}))),
        ("PUT", "msgroute/configs".into(), Some(json!({"id": route, "name": "changed"}))),
        ("DELETE", format!("msgroute/configs?id={route}"), None),
    ]
}

#[test]
fn roles_are_enforced_on_every_endpoint_and_logout_revokes() {
    let broker = Broker::start();
    let p = with_roles(broker.port, json!({}));
    let hooks = Receiver::start();
    let (view, op) = (p.login("viewer", PASSWORD).expect("viewer login"), p.login("op", PASSWORD).expect("op login"));
    let (_, _, v) = login_raw(&p, "viewer", PASSWORD);
    assert_eq!((v["data"]["user"]["role"].as_str(), &v["data"]["user"]["privileges"]), (Some("view"), &json!(["view"])), "{v}");
    let (_, _, a) = login_raw(&p, USER, PASSWORD);
    assert_eq!(a["data"]["user"]["privileges"], json!(["admin", "operator", "view"]), "{a}");

    let route = p.post("msgroute/configs", &json!({"topic": "dma/event", "name": "r", "url": hooks.url("/r")}))["id"].as_i64().unwrap();
    let cb = p.post("monitor/devices/callbacks", &json!({"type": "peripheral", "url": hooks.url("/cb"), "enabled": true}))["id"].as_i64().unwrap();
    let before = (p.get("msgroute/configs"), p.get("monitor/devices/callbacks"), p.get("remotectl/commands")["total"].clone());

    // view: 403 with a reason on every write, and nothing changed.
    for (m, path, body) in writes(route, cb, &hooks.url("/x")) {
        let (st, v) = p.call_as(&view, m, &path, body.as_ref());
        assert_eq!((st, v["status"].as_str(), v["code"].as_str()), (403, Some("err"), Some("forbidden")), "view {m} {path}: {v}");
        assert!(v["msg"].as_str().unwrap().contains("role"), "{v}");
    }
    assert_eq!((p.get("msgroute/configs"), p.get("monitor/devices/callbacks"), p.get("remotectl/commands")["total"].clone()), before, "a view user changed something");
    // view reads everything.
    for path in [
        "monitor/devices", "monitor/devices/count", "monitor/devices/peripherals", "monitor/devices/peripherals/count", "monitor/devices/callbacks",
        "monitor/devices/callbacks/device/stats", "monitor/devices/callbacks/peripheral/stats", "msgroute/configs", "remotectl/commands",
        "monitor/brokers", "monitor/brokers/stats", "monitor/brokers/connections", "monitor/brokers/sessions",
    ] {
        let (st, v) = p.call_as(&view, "GET", path, None);
        assert_eq!(st, 200, "view GET {path}: {v}");
    }

    // operator: sends commands, nothing else.
    for (m, path, body) in writes(route, cb, &hooks.url("/x")) {
        let (st, v) = p.call_as(&op, m, &path, body.as_ref());
        if path == "remotectl/commands" {
            assert_eq!(st, 200, "operator sends commands: {v}");
        } else {
            assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")), "operator {m} {path}: {v}");
        }
    }
    assert_eq!(p.get("msgroute/configs"), before.0);
    // admin: all of them.
    for (m, path, body) in writes(route, cb, &hooks.url("/x")) {
        let (st, v) = p.call(m, &path, body.as_ref());
        assert_eq!(st, 200, "admin {m} {path}: {v}");
    }

    // Logout revokes the token server-side; other tokens keep working.
    let (st, v) = p.call_as(&view, "POST", "auth/logout", Some(&json!({})));
    assert_eq!(st, 200, "{v}");
    let (st, v) = p.call_as(&view, "GET", "monitor/devices", None);
    assert_eq!((st, v["code"].as_str()), (401, Some("unauthorized")), "{v}");
    assert_eq!(p.call_as(&op, "GET", "monitor/devices", None).0, 200);
}

#[test]
fn brute_force_gets_429_and_the_right_password_works_after_the_delay() {
    let broker = Broker::start();
    let p = Platform::start(broker.port);
    let mut statuses = Vec::new();
    let mut retry = None;
    for _ in 0..8 {
        let (st, ra, v) = login_raw(&p, USER, "wrong-guess");
        statuses.push(st);
        if st == 429 {
            assert_eq!((v["status"].as_str(), v["code"].as_str()), (Some("err"), Some("too_many_requests")), "{v}");
            retry = ra;
            break;
        }
        assert_eq!(st, 401, "{v}");
    }
    let retry = retry.unwrap_or_else(|| panic!("no 429 with Retry-After after wrong passwords: {statuses:?}"));
    assert!((1..=900).contains(&retry), "{retry}");
    // While throttled, even the right password is not looked at.
    assert_eq!(login_raw(&p, USER, PASSWORD).0, 429);
    std::thread::sleep(Duration::from_secs(retry) + Duration::from_millis(300));
    let (st, _, v) = login_raw(&p, USER, PASSWORD);
    assert_eq!(st, 200, "the right password after the delay: {v}");
    // A success resets the user's count: one more wrong guess is a plain 401.
    assert_eq!(login_raw(&p, USER, "wrong-again").0, 401);
}

#[test]
fn ssrf_urls_are_refused_unless_the_allow_list_names_them() {
    let broker = Broker::start();
    let hooks = Receiver::start();
    // No allow list: every internal or malformed URL refused, for callbacks and routes.
    let p = with_roles(broker.port, json!({"hooks": {"allow": []}}));
    for url in [
        hooks.url("/cb"),
        "http://localhost:80/".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://10.0.0.8/".into(),
        "http://192.168.1.1/".into(),
        "http://[::1]:80/".into(),
        "http://[::ffff:127.0.0.1]/".into(),
        "http://[fe80::1]/".into(),
        "http://0.0.0.0:80/".into(),
        "http://user:pw@93.184.216.34/".into(),
        "ftp://93.184.216.34/".into(),
    ] {
        let (st, v) = p.call("POST", "monitor/devices/callbacks", Some(&json!({"type": "device", "url": url, "enabled": true})));
        assert_eq!((st, v["status"].as_str()), (400, Some("err")), "callback {url}: {v}");
        let (st, v) = p.call("POST", "msgroute/configs", Some(&json!({"topic": "dma/event", "url": url})));
        assert_eq!(st, 400, "route {url}: {v}");
    }
    assert_eq!(p.get("monitor/devices/callbacks")["count"], 0);
    assert_eq!(p.get("msgroute/configs")["count"], 0);
    // A loopback URL already in the database (set before this policy, or by
    // hand) is refused at send time: counted failed, never reached.
    let db = rusqlite::Connection::open(&p.db).unwrap();
    db.execute("INSERT INTO callbacks (type, url, enabled, create_time, update_time) VALUES ('device', ?1, 1, 0, 0)", [hooks.url("/old")]).unwrap();
    publish(broker.port, "dma/state/SSRF00000000", &json!({"sn": "SSRF00000000", "online": true, "time": 1, "bootTime": 1, "ver": "0.1.0"}).to_string());
    wait_for(T, || Some(p.get("monitor/devices/callbacks/device/stats")).filter(|s| s["failed"] == 1)).expect("the old callback counted failed");
    assert!(hooks.hits("/old").is_empty(), "a refused address was reached");
    // Routes that could carry commands are refused whatever the URL.
    for topic in ["dma/cmd/#", "dma/cmd/+", "#", "dma/#", "+/cmd/SN1"] {
        let (st, v) = p.call("POST", "msgroute/configs", Some(&json!({"topic": topic, "url": "http://93.184.216.34/"})));
        assert_eq!(st, 400, "route on {topic}: {v}");
        assert!(v["msg"].as_str().unwrap().contains("cmd"), "{v}");
    }
    drop(p);

    // The allow list names the receiver (host:port): that one only.
    let p = with_roles(broker.port, json!({"hooks": {"allow": [format!("127.0.0.1:{}", hooks.port)]}}));
    p.post("monitor/devices/callbacks", &json!({"type": "device", "url": hooks.url("/cb"), "enabled": true}));
    let (st, v) = p.call("POST", "msgroute/configs", Some(&json!({"topic": "dma/event", "url": format!("http://127.0.0.1:{}/", free_port())})));
    assert_eq!(st, 400, "another port on 127.0.0.1: {v}");
    // And the POST really reaches it (checked again at send time).
    publish(broker.port, "dma/state/SSRF00000001", &json!({"sn": "SSRF00000001", "online": true, "time": 1, "bootTime": 1, "ver": "0.1.0"}).to_string());
    hooks.wait("/cb", 1, T, |h| h.json()["sn"] == "SSRF00000001");
}

#[test]
fn secrets_are_masked_when_served_stored_and_routed_but_published_for_real() {
    secrets_case(None);
}

#[test]
fn secrets_are_masked_at_rest_on_postgresql_too() {
    match common::pg::Postgres::start() {
        Ok(pg) => secrets_case(Some(&pg.url())),
        Err(e) => eprintln!("SKIPPED secrets_are_masked_at_rest_on_postgresql_too: {e}"),
    }
}

/// (body, response) of a command as stored.
fn stored(p: &Platform, database: Option<&str>, id: u64) -> Option<(String, String)> {
    let q = "SELECT body, COALESCE(response, '') FROM commands WHERE id = ";
    match database {
        None => rusqlite::Connection::open(&p.db).ok()?.query_row(&format!("{q}?1"), [id as i64], |r| Ok((r.get(0)?, r.get(1)?))).ok(),
        Some(url) => {
            let mut c = postgres::Client::connect(url, postgres::NoTls).ok()?;
            c.query_opt(&format!("{q}$1"), &[&(id as i64)]).ok()?.map(|r| (r.get(0), r.get(1)))
        }
    }
}

fn secrets_case(database: Option<&str>) {
    let broker = Broker::start();
    let p = match database {
        None => Platform::start(broker.port),
        Some(url) => Platform::start_with(temp_dir("platform"), &platform_config(free_port(), url, broker.port, "platform-sec-pg", json!({}))),
    };
    let hooks = Receiver::start();
    p.post("msgroute/configs", &json!({"topic": "dma/resp/#", "name": "answers", "url": hooks.url("/answers")}));
    let sn = "SECRET000001";
    let watch = Watch::start(broker.port, &format!("dma/cmd/{sn}"));
    publish(broker.port, &format!("dma/state/{sn}"), &json!({"sn": sn, "online": true, "time": 1, "bootTime": 1, "ver": "0.1.0"}).to_string());
    p.wait_device(sn, true, T);
    let secret = "hunter2-very-secret";
    let id = p.send(json!({"to": [{"sn": sn}], "command": "agent", "method": "set", "body": {"password": secret, "sys_interval": 30}, "maxRetries": 1, "expires": 600}));
    // Published with the real value (the device needs it) ...
    let sent = wait_for(T, || watch.all().into_iter().map(|(_, v)| v).find(|v| v["id"].as_u64() == Some(id))).expect("the command was published");
    assert_eq!(sent["d"]["password"], secret, "{sent}");
    // ... served masked while pending.
    let st = p.command(id);
    assert_eq!((st["d"]["password"].as_str(), st["d"]["sys_interval"].as_i64()), (Some("******"), Some(30)), "{st}");
    let list = p.get(&format!("remotectl/commands?sn={sn}"));
    assert!(!list.to_string().contains(secret), "{list}");

    // The device's answer, carrying secrets of its own.
    let answer = json!({"id": id, "sn": sn, "status": "ok", "command": "agent", "time": 2,
        "d": {"exestatus": "ok", "result": {"password": secret, "devices": [{"name": "vpn1", "passwd": "vpn-pass-1", "sec_key": "k-123"}], "broker_host": "b"}}});
    publish(broker.port, "dma/resp/cmd", &answer.to_string());
    publish(broker.port, &format!("dma/resp/cmd/{sn}"), &answer.to_string());
    p.wait_state(id, 2, T);
    let r = p.get(&format!("remotectl/commands/responses?id={id}"));
    let text = r.to_string();
    for s in [secret, "vpn-pass-1", "k-123"] {
        assert!(!text.contains(s), "{s} served in {text}");
    }
    assert_eq!((r["id"].as_u64(), r["d"]["result"]["broker_host"].as_str(), r["d"]["result"]["password"].as_str()), (Some(id), Some("b"), Some("******")), "{r}");
    // The route forwarded the answer, masked.
    let hit = hooks.wait("/answers", 1, T, |h| h.json()["id"].as_u64() == Some(id));
    assert!(!hit[0].body.contains(secret) && !hit[0].body.contains("vpn-pass-1") && hit[0].body.contains("******"), "{:?}", hit[0]);

    // At rest: once finished, neither body nor answer holds the secret.
    let at_rest = wait_for(T, || stored(&p, database, id).filter(|(body, _)| !body.contains(secret)))
    .expect("the finished command's body masked in the database");
    assert!(at_rest.0.contains("******") && !at_rest.1.contains(secret) && !at_rest.1.contains("vpn-pass-1"), "{at_rest:?}");
}

fn proc_status(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| s.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    (field("VmRSS:"), field("Threads:"))
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_huge_header_and_2000_idle_connections_leave_the_platform_bounded() {
    let broker = Broker::start();
    let p = Platform::start(broker.port);
    let pid = p.pid().unwrap();
    p.get("monitor/devices/count");
    let (rss0, threads0) = proc_status(pid);
    let fds0 = fds(pid);

    // A 100 MiB header line: the server stops reading at its cap and answers 431.
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /iot/api/v1/monitor/devices HTTP/1.1\r\nHost: x\r\nX-Big: ").unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    while sent < 100 << 20 {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent < 100 << 20, "the server read a 100 MiB header");
    let mut answer = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
    drop(s);
    // A 20 KiB header: 431 as an answer.
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20 * 1024)).as_bytes());
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 431"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    // A body over the cap: 413 before it is read.
    let mut r = http().post(&p.url("/iot/api/v1/remotectl/commands")).header("Authorization", &format!("Bearer {}", p.token)).send(vec![b' '; 2 << 20]);
    if let Ok(r) = r.as_mut() {
        assert_eq!(r.status().as_u16(), 413);
    }

    // 2,000 idle connections (some sending half a request line).
    let conns: Vec<TcpStream> = (0..2000)
        .filter_map(|i| {
            let mut c = TcpStream::connect(("127.0.0.1", p.port)).ok()?;
            if i % 2 == 0 {
                let _ = c.write_all(b"GET /iot/api/v1/monitor/dev");
            }
            Some(c)
        })
        .collect();
    assert!(conns.len() > 1000, "only {} connections opened", conns.len());
    // The API still answers, at once.
    let t0 = Instant::now();
    let c = p.get("monitor/devices/count");
    assert!(c["total"].is_number() && t0.elapsed() < Duration::from_secs(5), "{c} after {:?}", t0.elapsed());
    // (Connections evicted to make room get up to 0.5 s to close.)
    std::thread::sleep(Duration::from_millis(1500));
    let (rss1, threads1) = proc_status(pid);
    let fds1 = fds(pid);
    eprintln!("RSS {rss0} -> {rss1} KiB, threads {threads0} -> {threads1}, fds {fds0} -> {fds1}");
    assert!(threads1 <= threads0 + 6, "threads {threads0} -> {threads1}");
    assert!(rss1 < rss0 + 64 * 1024, "RSS {rss0} -> {rss1} KiB");
    assert!(fds1 <= fds0 + 512 + 16, "descriptors {fds0} -> {fds1}: the connection cap did not hold");
    // Idle connections are closed after the head deadline (10 s).
    let closed = wait_for(Duration::from_secs(25), || (fds(pid) <= fds0 + 8).then_some(())).is_some();
    assert!(closed, "idle connections still open: {} descriptors", fds(pid));
    drop(conns);
    assert_eq!(p.get("monitor/devices/count"), c);
}

#[test]
fn console_and_api_answers_carry_the_security_headers() {
    let broker = Broker::start();
    let p = Platform::start(broker.port);
    for path in ["/", "/app.js", "/style.css", "/iot/api/v1/monitor/devices", "/nothing-here"] {
        let r = http().get(&p.url(path)).call().unwrap();
        let h = |k: &str| r.headers().get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let csp = h("content-security-policy");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!((h("x-frame-options").as_str(), h("x-content-type-options").as_str(), h("referrer-policy").as_str()), ("DENY", "nosniff", "no-referrer"), "{path}");
    }
    // No inline script or handler in the console's page.
    let html = http().get(&p.url("/")).call().unwrap().body_mut().read_to_string().unwrap();
    let lower = html.to_lowercase();
    assert!(!lower.contains("<script>") && !lower.contains("onclick=") && !lower.contains("onsubmit=") && !lower.contains("style="), "{html}");
    assert!(html.contains("<script src=\"/app.js\"></script>"));
}

#[test]
fn a_login_name_cannot_forge_a_log_line() {
    let broker = Broker::start();
    let p = Platform::start(broker.port);
    let (st, _, _) = login_raw(&p, "mallory\n[ERROR] forged line\r\nWARN x", "nope");
    assert_eq!(st, 401);
    let log = wait_for(T, || Some(p.log()).filter(|l| l.contains("failed login"))).expect("the failed login is logged");
    for line in log.lines() {
        assert!(!line.starts_with("[ERROR] forged") && !line.starts_with("WARN x"), "forged line: {line}");
    }
    let line = log.lines().find(|l| l.contains("failed login")).unwrap();
    assert!(line.contains("mallory\\n[ERROR] forged line\\r\\nWARN x"), "{line}");
}
