//! `ctl devices`: the devices the broker knows, from the retained
//! `{p}/state/+`, refreshed by whatever they publish during `--wait`.

use super::connect::Conn;
use super::{render, Failure};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// At most this many devices are listed (bounded memory).
const MAX_DEVICES: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Device {
    pub online: bool,
    /// Device time of the latest payload seen (birth or telemetry).
    pub last_seen: Option<u64>,
    pub ver: String,
}

pub fn collect(conn: &mut Conn, prefix: &str, wait: Duration) -> Result<BTreeMap<String, Device>, Failure> {
    let state = format!("{prefix}/state/");
    let mut filters = vec![format!("{state}+")];
    for t in dma_agent::mqtt::topics::DEVICE_KINDS {
        filters.extend(dma_agent::mqtt::topics::filters(prefix, t, None));
    }
    conn.subscribe(&filters)?;
    let mut list: BTreeMap<String, Device> = BTreeMap::new();
    let deadline = Instant::now() + wait;
    while let Some(m) = conn.next(Some(deadline))? {
        let Ok(v) = serde_json::from_slice::<Value>(&m.payload) else { continue };
        let time = v.get("time").and_then(Value::as_u64);
        let sn = match m.topic.strip_prefix(&state) {
            Some(sn) => sn.to_string(),
            None => match v.get("sn").and_then(Value::as_str) {
                Some(sn) => sn.to_string(),
                None => continue,
            },
        };
        if !list.contains_key(&sn) && list.len() >= MAX_DEVICES {
            continue;
        }
        let d = list.entry(sn).or_default();
        if m.topic.starts_with(&state) {
            d.online = v.get("online") == Some(&Value::Bool(true));
            if let Some(ver) = v.get("ver").and_then(Value::as_str) {
                d.ver = ver.to_string();
            }
        } else {
            // Publishing now: it is online whatever the retained state says.
            d.online = true;
        }
        if let Some(t) = time {
            d.last_seen = Some(d.last_seen.map_or(t, |x| x.max(t)));
        }
    }
    Ok(list)
}

pub fn print(list: &BTreeMap<String, Device>, as_json: bool) {
    if as_json {
        for (sn, d) in list {
            println!("{}", json!({"sn": sn, "online": d.online, "lastSeen": d.last_seen, "ver": d.ver}));
        }
        return;
    }
    if list.is_empty() {
        println!("no devices known to the broker under this prefix");
        return;
    }
    println!("{:<16} {:<8} {:<22} VERSION", "SN", "STATE", "LAST SEEN");
    for (sn, d) in list {
        let seen = d.last_seen.map(render::fmt_time).unwrap_or_else(|| "-".into());
        println!("{sn:<16} {:<8} {seen:<22} {}", if d.online { "online" } else { "offline" }, d.ver);
    }
}
