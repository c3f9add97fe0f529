//! The `sys` report: memory, load, uptime, disk of the state dir, CPU %.

use serde_json::{json, Value};

/// CPU time counters from /proc/stat (total, idle) in ticks.
pub fn cpu_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total, idle))
}

/// (free KiB, used KiB, total KiB) — "free" is what programs can still
/// get (MemAvailable, or free + buffers + cache on old kernels).
pub fn memory() -> Option<(u64, u64, u64)> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let get = |k: &str| -> Option<u64> {
        s.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse().ok())
    };
    let total = get("MemTotal:")?;
    let free = get("MemAvailable:").unwrap_or_else(|| {
        get("MemFree:").unwrap_or(0) + get("Buffers:").unwrap_or(0) + get("Cached:").unwrap_or(0)
    });
    Some((free, total.saturating_sub(free), total))
}

pub fn load1() -> Option<f64> {
    crate::util::decimal(std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?)
}

/// (total KiB, used KiB, available KiB) of the filesystem holding `path`.
pub fn disk(path: &str) -> Option<(u64, u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size() as u64;
    let total = st.blocks() as u64 * frag / 1024;
    let free = st.blocks_free() as u64 * frag / 1024;
    let avail = st.blocks_available() as u64 * frag / 1024;
    Some((total, total.saturating_sub(free), avail))
}

/// Keeps the previous CPU sample so each report shows the CPU % since the
/// last one.
#[derive(Debug, Default)]
pub struct SysSampler {
    prev: Option<(u64, u64)>,
}

impl SysSampler {
    pub fn cpu_percent(&mut self) -> Option<f64> {
        let now = cpu_ticks()?;
        let (pt, pi) = self.prev.unwrap_or((0, 0));
        self.prev = Some(now);
        let dt = now.0.saturating_sub(pt);
        let di = now.1.saturating_sub(pi);
        if dt == 0 {
            return Some(0.0);
        }
        Some(((dt - di.min(dt)) as f64 * 1000.0 / dt as f64).round() / 10.0)
    }

    /// The `d` of the sys message.
    pub fn sample(&mut self, state_dir: &str) -> Value {
        let (free, used, total) = memory().unwrap_or((0, 0, 0));
        let mut d = json!({
            "free": free, "used": used, "total": total,
            "load": load1().unwrap_or(0.0),
            "uptime": crate::agent::clock::uptime(),
            "cpu": self.cpu_percent().unwrap_or(0.0),
        });
        // The state dir may not exist yet on first run: report its parent.
        let mut p = std::path::Path::new(state_dir);
        while !p.exists() {
            match p.parent() {
                Some(pp) => p = pp,
                None => break,
            }
        }
        if let Some((t, u, a)) = disk(&p.to_string_lossy()) {
            d["disk"] = json!({"path": state_dir, "total": t, "used": u, "avail": a,
                               "pct": if t > 0 { (u as f64 * 1000.0 / t as f64).round() / 10.0 } else { 0.0 }});
        }
        d
    }
}
