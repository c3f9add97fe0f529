//! EMQX 5's REST API (`/api/v5/…`, HTTP Basic with an API key and secret),
//! mapped to the seed's shapes (the seed's examples are EMQX's own fields).

use crate::config::EmqxConfig;
use serde_json::{json, Value};
use std::time::Duration;

fn get(cfg: &EmqxConfig, path: &str) -> Result<Value, String> {
    use base64::Engine as _;
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).http_status_as_error(false).build().into();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", cfg.api_key, cfg.api_secret));
    let url = format!("{}{path}", cfg.url.trim_end_matches('/'));
    let mut r = agent.get(&url).header("Authorization", format!("Basic {auth}")).call().map_err(|e| format!("EMQX {path}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("EMQX {path}: HTTP {}", r.status().as_u16()));
    }
    let text = r.body_mut().with_config().limit(4 << 20).read_to_string().map_err(|e| format!("EMQX {path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("EMQX {path}: {e}"))
}

fn n(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// One aggregated object (EMQX answers a list per node, or one object with `aggregate=true`).
fn first(v: Value) -> Value {
    match v {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        v => v,
    }
}

pub fn nodes(cfg: &EmqxConfig, now: i64) -> Result<Value, String> {
    Ok(map_nodes(&get(cfg, "/api/v5/nodes")?, now))
}

pub fn map_nodes(v: &Value, now: i64) -> Value {
    let list = v.as_array().cloned().unwrap_or_default();
    Value::Array(
        list.iter()
            .map(|x| {
                let up = n(x, "uptime") / 1000;
                json!({
                    "datetime": crate::time::datetime(now),
                    "node": x.get("node").cloned().unwrap_or(Value::Null),
                    "node_status": x.get("node_status").cloned().unwrap_or(Value::Null),
                    "otp_release": x.get("otp_release").cloned().unwrap_or(Value::Null),
                    "sysdescr": x.get("sysdescr").cloned().unwrap_or(json!("EMQX")),
                    "uptime": format!("{} days,{} hours, {} minutes, {} seconds", up / 86_400, up / 3600 % 24, up / 60 % 60, up % 60),
                    "version": x.get("version").cloned().unwrap_or(Value::Null),
                })
            })
            .collect(),
    )
}

pub fn stats(cfg: &EmqxConfig) -> Result<Value, String> {
    let nodes = get(cfg, "/api/v5/nodes")?;
    let s = first(get(cfg, "/api/v5/stats?aggregate=true")?);
    let m = first(get(cfg, "/api/v5/metrics?aggregate=true")?);
    Ok(map_stats(&nodes, &s, &m))
}

pub fn map_stats(nodes: &Value, s: &Value, m: &Value) -> Value {
    json!({
        "metrics": {
            "messageSentCount": n(m, "messages.sent"),
            "messageReceivedCount": n(m, "messages.received"),
            "packetSentCount": n(m, "packets.sent"),
            "packetReceivedCount": n(m, "packets.received"),
            "byteSentCount": n(m, "bytes.sent"),
            "byteReceivedCount": n(m, "bytes.received"),
        },
        "stats": {
            "nodeCount": nodes.as_array().map_or(1, |a| a.len()),
            "sessionCount": n(s, "sessions.count"),
            "connectionCount": n(s, "connections.count"),
        }
    })
}

/// `connections` and `sessions` both come from `/api/v5/clients` (EMQX 5
/// has one record per client holding both).
pub fn clients(cfg: &EmqxConfig, page: i64, limit: i64, sessions: bool) -> Result<Value, String> {
    let v = get(cfg, &format!("/api/v5/clients?page={page}&limit={limit}"))?;
    Ok(map_clients(&v, page, limit, sessions))
}

pub fn map_clients(v: &Value, page: i64, limit: i64, sessions: bool) -> Value {
    let data = v.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
    let total = v.get("meta").and_then(|m| m.get("count")).and_then(Value::as_u64).unwrap_or(data.len() as u64);
    let g = |x: &Value, k: &str| x.get(k).cloned().unwrap_or(Value::Null);
    let list: Vec<Value> = data
        .iter()
        .map(|x| {
            if sessions {
                json!({
                    "client_id": g(x, "clientid"), "username": g(x, "username"), "node": g(x, "node"),
                    "clean_start": g(x, "clean_start"), "created_at": g(x, "created_at"), "expiry_interval": g(x, "expiry_interval"),
                    "heap_size": g(x, "heap_size"), "inflight_len": g(x, "inflight_cnt"), "max_inflight": g(x, "inflight_max"),
                    "mqueue_len": g(x, "mqueue_len"), "max_mqueue": g(x, "mqueue_max"), "mqueue_dropped": g(x, "mqueue_dropped"),
                    "awaiting_rel_len": g(x, "awaiting_rel_cnt"), "max_awaiting_rel": g(x, "awaiting_rel_max"),
                    "subscriptions_count": g(x, "subscriptions_cnt"), "mailbox_len": g(x, "mailbox_len"), "reductions": g(x, "reductions"),
                })
            } else {
                json!({
                    "client_id": g(x, "clientid"), "username": g(x, "username"), "node": g(x, "node"),
                    "ipaddress": g(x, "ip_address"), "port": g(x, "port"), "connected_at": g(x, "connected_at"),
                    "keepalive": g(x, "keepalive"), "proto_name": g(x, "proto_name"), "proto_ver": g(x, "proto_ver"),
                    "clean_start": g(x, "clean_start"), "is_bridge": g(x, "is_bridge"), "zone": g(x, "zone"),
                })
            }
        })
        .collect();
    json!({"total": total, "count": list.len(), "page": page, "limit": limit, "list": list})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emqx_documents_mapped() {
        let nodes = json!([{"node": "emqx@127.0.0.1", "node_status": "running", "otp_release": "26.2.1-2/14.2.1", "uptime": 90061000, "version": "5.8.0"}]);
        let l = map_nodes(&nodes, 0);
        assert_eq!(l[0]["node"], "emqx@127.0.0.1");
        assert_eq!(l[0]["uptime"], "1 days,1 hours, 1 minutes, 1 seconds");
        let st = map_stats(&nodes, &json!({"connections.count": 2, "sessions.count": 3}), &json!({"messages.sent": 5, "bytes.received": 9}));
        assert_eq!(st["stats"]["connectionCount"], 2);
        assert_eq!(st["metrics"]["messageSentCount"], 5);
        assert_eq!(st["metrics"]["byteReceivedCount"], 9);
        let c = json!({"data": [{"clientid": "8CFCA0107D1B", "ip_address": "127.0.0.1", "port": 5000, "proto_ver": 4}], "meta": {"count": 7, "page": 1, "limit": 1}});
        let m = map_clients(&c, 1, 1, false);
        assert_eq!((m["total"].as_u64(), m["list"][0]["client_id"].as_str()), (Some(7), Some("8CFCA0107D1B")));
    }
}
