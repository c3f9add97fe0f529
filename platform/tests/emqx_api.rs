//! `monitor/brokers*` with `emqx` configured: the platform asks EMQX 5's
//! REST API (here a stand-in serving EMQX's documented JSON shapes, with
//! HTTP Basic auth by API key) and maps the answers to the seed's shapes.

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const KEY: &str = "ops-key";
const SECRET: &str = "ops-secret";

/// An EMQX 5 REST API stand-in; records the paths asked.
fn emqx_standin() -> (u16, Arc<Mutex<Vec<String>>>) {
    use base64::Engine as _;
    let server = tiny_http::Server::http("127.0.0.1:0").expect("emqx stand-in");
    let port = server.server_addr().to_ip().expect("ip").port();
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let a = asked.clone();
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}")));
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let url = req.url().to_string();
            a.lock().unwrap().push(url.clone());
            let ok = req.headers().iter().any(|h| h.field.equiv("Authorization") && h.value.as_str() == auth);
            let body: Value = if !ok {
                json!({"code": "BAD_API_KEY_OR_SECRET", "message": "Check api_key/api_secret"})
            } else if url == "/api/v5/nodes" {
                json!([{"node": "emqx@10.0.0.1", "node_status": "running", "otp_release": "26.2.5-3/14.2.5", "uptime": 3_723_000, "version": "5.8.4",
                        "connections": 2, "live_connections": 2, "sys_path": "/opt/emqx", "role": "core"}])
            } else if url == "/api/v5/stats?aggregate=true" {
                json!({"connections.count": 2, "live_connections.count": 2, "sessions.count": 3, "topics.count": 9})
            } else if url == "/api/v5/metrics?aggregate=true" {
                json!({"messages.sent": 120, "messages.received": 340, "packets.sent": 600, "packets.received": 800, "bytes.sent": 9000, "bytes.received": 12000})
            } else if url == "/api/v5/clients?page=1&limit=10" {
                json!({"data": [{"clientid": "8CFCA0107D1B", "username": "dev", "node": "emqx@10.0.0.1", "ip_address": "127.0.0.1", "port": 50312,
                                 "connected_at": "2024-05-01T10:42:57.000+00:00", "created_at": "2024-05-01T10:42:57.000+00:00", "keepalive": 60,
                                 "proto_name": "MQTT", "proto_ver": 4, "clean_start": false, "is_bridge": false, "expiry_interval": 7200,
                                 "heap_size": 376, "inflight_cnt": 0, "inflight_max": 32, "mqueue_len": 0, "mqueue_max": 1000, "mqueue_dropped": 0,
                                 "awaiting_rel_cnt": 0, "awaiting_rel_max": 100, "subscriptions_cnt": 1, "mailbox_len": 0, "reductions": 203}],
                       "meta": {"page": 1, "limit": 10, "count": 1, "hasnext": false}})
            } else {
                json!({"code": "NOT_FOUND"})
            };
            let code = if !ok { 401 } else if body.get("code").is_some() { 404 } else { 200 };
            let _ = req.respond(tiny_http::Response::from_string(body.to_string()).with_status_code(code));
        }
    });
    (port, asked)
}

#[test]
fn broker_figures_come_from_emqx_when_configured() {
    let broker = Broker::start();
    let (port, asked) = emqx_standin();
    let dir = temp_dir("emqx");
    let db = dir.join("p.db").to_string_lossy().into_owned();
    let emqx = |secret: &str| json!({"emqx": {"url": format!("http://127.0.0.1:{port}"), "api_key": KEY, "api_secret": secret}});
    let p = Platform::start_with(dir.clone(), &platform_config(free_port(), &db, broker.port, "platform-emqx", emqx(SECRET)));

    let nodes = p.get("monitor/brokers");
    assert_eq!((nodes["count"].as_u64(), nodes["list"][0]["node"].as_str(), nodes["list"][0]["version"].as_str()), (Some(1), Some("emqx@10.0.0.1"), Some("5.8.4")), "{nodes}");
    assert_eq!(nodes["list"][0]["uptime"], "0 days,1 hours, 2 minutes, 3 seconds");
    let stats = p.get("monitor/brokers/stats");
    assert_eq!(stats["metrics"]["messageReceivedCount"], 340, "{stats}");
    assert_eq!(stats["metrics"]["packetSentCount"], 600);
    assert_eq!(stats["metrics"]["byteReceivedCount"], 12000);
    assert_eq!((stats["stats"]["nodeCount"].as_u64(), stats["stats"]["sessionCount"].as_u64(), stats["stats"]["connectionCount"].as_u64()), (Some(1), Some(3), Some(2)));
    let conns = p.get("monitor/brokers/connections?page=1&limit=10");
    assert_eq!((conns["total"].as_u64(), conns["list"][0]["client_id"].as_str(), conns["list"][0]["ipaddress"].as_str()), (Some(1), Some("8CFCA0107D1B"), Some("127.0.0.1")), "{conns}");
    let sess = p.get("monitor/brokers/sessions?page=1&limit=10");
    assert_eq!((sess["list"][0]["expiry_interval"].as_u64(), sess["list"][0]["max_inflight"].as_u64()), (Some(7200), Some(32)), "{sess}");
    assert!(asked.lock().unwrap().iter().any(|u| u == "/api/v5/clients?page=1&limit=10"));
    drop(p);

    // A wrong secret: an error envelope naming the broker's API, not a crash.
    let dir2 = temp_dir("emqx-bad");
    let db2 = dir2.join("p.db").to_string_lossy().into_owned();
    let bad = Platform::start_with(dir2.clone(), &platform_config(free_port(), &db2, broker.port, "platform-emqx2", emqx("wrong")));
    let (code, v) = bad.call("GET", "monitor/brokers/stats", None);
    assert_eq!((code, v["status"].as_str(), v["code"].as_str()), (502, Some("err"), Some("broker_api")), "{v}");
    assert!(v["msg"].as_str().unwrap().contains("401"), "{v}");
    drop(bad);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(dir2);
}
