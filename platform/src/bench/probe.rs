//! The REST side of the benchmark: log in, time calls, sweep the device
//! list (all pages) for what it shows, wait for commands' states.

use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn read(b: &mut ureq::Body) -> Result<Value, String> {
    let text = b.with_config().limit(256 << 20).read_to_string().map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

pub struct Api {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn login(base: &str, user: &str, password: &str) -> Result<Api, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(60))).http_status_as_error(false).build().into();
        let mut r = agent
            .post(&format!("{base}iot/api/v1/auth/login"))
            .header("Content-Type", "application/json")
            .send(json!({"user": user, "password": password}).to_string())
            .map_err(|e| format!("login: {e}"))?;
        let v = read(r.body_mut()).map_err(|e| format!("login: {e}"))?;
        let token = v["data"]["token"].as_str().ok_or(format!("login: {v}"))?.to_string();
        Ok(Api { base: base.to_string(), token, agent })
    }

    /// GET `path` (under /iot/api/v1/): its `data` and how long it took.
    pub fn get(&self, path: &str) -> Result<(Value, Duration), String> {
        let t = Instant::now();
        let mut r = self.agent.get(&format!("{}iot/api/v1/{path}", self.base)).header("Authorization", &format!("Bearer {}", self.token)).call().map_err(|e| format!("GET {path}: {e}"))?;
        let v = read(r.body_mut()).map_err(|e| format!("GET {path}: {e}"))?;
        let el = t.elapsed();
        if v.get("data").is_none() {
            return Err(format!("GET {path}: {v}"));
        }
        Ok((v["data"].clone(), el))
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let mut r = self
            .agent
            .post(&format!("{}iot/api/v1/{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| format!("POST {path}: {e}"))?;
        let v = read(r.body_mut()).map_err(|e| format!("POST {path}: {e}"))?;
        Ok(v)
    }

    /// Every device in the list: (sn, online, sys text), page by page.
    pub fn sweep(&self) -> Result<Vec<(String, bool, String)>, String> {
        let mut out = Vec::new();
        for page in 1.. {
            let (d, _) = self.get(&format!("monitor/devices?page={page}&limit=1000"))?;
            let list = d["list"].as_array().cloned().unwrap_or_default();
            for v in &list {
                out.push((v["sn"].as_str().unwrap_or("").to_string(), v["online"] == true, v["sys"].as_str().unwrap_or("").to_string()));
            }
            if list.len() < 1000 {
                break;
            }
        }
        Ok(out)
    }

    /// Counts of the commands from `origin` by state, page by page.
    pub fn command_states(&self, origin: &str) -> Result<[usize; 4], String> {
        let mut by = [0usize; 4];
        for page in 1.. {
            let (d, _) = self.get(&format!("remotectl/commands?from={origin}&page={page}&limit=1000"))?;
            let list = d["list"].as_array().cloned().unwrap_or_default();
            for c in &list {
                if let Some(slot) = c["state"].as_u64().and_then(|s| by.get_mut(s as usize)) {
                    *slot += 1;
                }
            }
            if list.len() < 1000 {
                break;
            }
        }
        Ok(by)
    }
}

/// The `pt` (publish time, ms) of a bench `sys` text.
pub fn pt_of(sys: &str) -> Option<i64> {
    number_of(sys, "\"pt\":")
}

/// The `seq` (the fleet's publish order) of a bench `sys` text.
pub fn seq_of(sys: &str) -> Option<u64> {
    number_of(sys, "\"seq\":")
}

fn number_of<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    let rest = text.get(text.find(key)? + key.len()..)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Whether a device's shown `sys` is its marker (`seq` = `marker_seq`) or
/// one it published after the marker (a higher `seq`: the fleet stamps and
/// sends each connection's messages in `seq` order). Not by `pt`: a
/// regular `sys` stamped in the marker's millisecond, published after it,
/// is the device's last message too.
pub fn shows_marker(sys: &str, marker_seq: u64) -> bool {
    marker_seq > 0 && seq_of(sys).is_some_and(|s| s >= marker_seq)
}

impl Api {
    /// Sweep the device list until every device of `fleet` showed its
    /// marker, or a `sys` published after it (`shows_marker`), or `timeout`
    /// passed: (seconds since `t` when the last device was seen, devices
    /// seen). The first pass reads every page; later passes only the parts
    /// of the list (in serial order: the fleet's serials are the whole
    /// list) that still have a device not seen: a page of 1,000 while more
    /// than a few of its blocks of 100 have one, else just those blocks, so
    /// the watching does not load the platform it measures with 100 MB
    /// sweeps, and the last few devices are checked often (the time is
    /// the probe's resolution as much as the platform's). A part is read
    /// only once `delivered` says the broker has handed every one of its
    /// markers to a subscriber (the floor): the platform cannot show a
    /// marker before, and reading the whole list while the markers are
    /// still on their way took as much of the platform's CPU (serving
    /// pages) as the ingest it timed.
    pub fn wait_marker(&self, fleet: &super::fleet::Fleet, t: Instant, timeout: Duration, delivered: &dyn Fn(usize) -> bool) -> Result<(Option<f64>, usize), String> {
        const PAGE: usize = 1000;
        const BLOCK: usize = 100;
        let mut seen = vec![false; fleet.n];
        let pages = fleet.n.div_ceil(PAGE).max(1);
        let left = |seen: &[bool], from: usize, len: usize| seen.get(from..(from + len).min(fleet.n)).is_some_and(|s| s.iter().any(|x| !*x));
        let ready = |from: usize| (from..(from + BLOCK).min(fleet.n)).all(delivered);
        loop {
            let mut any_left = false;
            let mut reads_done = 0;
            for page in 0..pages {
                let from = page * PAGE;
                if !left(&seen, from, PAGE) {
                    continue;
                }
                any_left = true;
                let blocks: Vec<usize> = (0..PAGE / BLOCK).map(|b| from + b * BLOCK).filter(|&b| b < fleet.n && left(&seen, b, BLOCK) && ready(b)).collect();
                if blocks.is_empty() {
                    continue;
                }
                reads_done += 1;
                // (offset, limit) of the reads: the page, or its blocks with a device left.
                let reads: Vec<(usize, usize)> = if blocks.len() > 3 { vec![(from, PAGE)] } else { blocks.iter().map(|&b| (b, BLOCK)).collect() };
                for (offset, limit) in reads {
                    let (d, _) = self.get(&format!("monitor/devices?page={}&limit={limit}", offset / limit + 1))?;
                    for v in d["list"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                        let (Some(sn), Some(sys)) = (v["sn"].as_str(), v["sys"].as_str()) else { continue };
                        let Some(i) = super::fleet::index(sn) else { continue };
                        let marker_seq = fleet.marker_seq.get(i).map_or(0, |m| m.load(std::sync::atomic::Ordering::Relaxed));
                        if shows_marker(sys, marker_seq) {
                            if let Some(s) = seen.get_mut(i) {
                                *s = true;
                            }
                        }
                    }
                    if seen.iter().all(|s| *s) {
                        return Ok((Some(t.elapsed().as_secs_f64()), fleet.n));
                    }
                }
            }
            let count = seen.iter().filter(|s| **s).count();
            if reads_done == 0 {
                // Nothing delivered yet that is not seen: wait for the broker.
                std::thread::sleep(Duration::from_millis(20));
            }
            if !any_left {
                return Ok((Some(t.elapsed().as_secs_f64()), count));
            }
            if t.elapsed() > timeout {
                return Ok((None, count));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::fleet::sys_payload;

    #[test]
    fn a_report_published_after_the_marker_shows_it_even_in_the_same_millisecond() {
        let marker = sys_payload("FB00000001", 77, 10);
        // Stamped in the marker's millisecond (the case `pt` could not order), published after it.
        let after = sys_payload("FB00000001", 0, 11);
        let after = after.replace(&format!("\"pt\":{}", pt_of(&after).unwrap_or(0)), &format!("\"pt\":{}", pt_of(&marker).unwrap_or(0)));
        assert_eq!(pt_of(&after), pt_of(&marker), "{after}");
        assert!(shows_marker(&marker, 10));
        assert!(shows_marker(&after, 10), "a sys published after the marker is the device's last: {after}");
        assert!(!shows_marker(&sys_payload("FB00000001", 0, 9), 10), "published before the marker");
        assert!(!shows_marker(&marker, 0), "no marker sent yet");
        assert_eq!(seq_of(r#"{"d":{},"mark":0,"pt":5,"revtime":6,"seq":123456,"sn":"X"}"#), Some(123_456), "keys as the platform stores them (sorted)");
    }
}
