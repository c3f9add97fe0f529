//! The `procs` report: RSS and CPU % of the agent and of watched processes,
//! read from /proc.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Instant;

/// (rss KiB, utime+stime ticks) of one pid.
fn stat_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some((rss, ut + st))
}

/// The process name as `ps` shows it: comm, or argv[0]'s base name.
fn names_of(pid: u32) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        v.push(c.trim().to_string());
    }
    if let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline")) {
        if let Some(a0) = c.split(|b| *b == 0).next() {
            let a0 = String::from_utf8_lossy(a0);
            if let Some(base) = a0.rsplit('/').next() {
                v.push(base.to_string());
            }
        }
    }
    v
}

fn pids_named(name: &str) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| names_of(*pid).iter().any(|n| n == name))
        .collect()
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[derive(Debug, Default)]
pub struct ProcSampler {
    prev: HashMap<u32, (u64, Instant)>,
}

impl ProcSampler {
    fn cpu(&mut self, pid: u32, ticks: u64) -> f64 {
        let now = Instant::now();
        let pct = match self.prev.get(&pid) {
            Some((t0, at)) => {
                let secs = now.duration_since(*at).as_secs_f64();
                if secs > 0.0 {
                    ticks.saturating_sub(*t0) as f64 / clk_tck() / secs * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.prev.insert(pid, (ticks, now));
        (pct * 10.0).round() / 10.0
    }

    /// The `d` of the procs message: the agent first, then each watched
    /// name (all its processes summed; `running: false` when none).
    pub fn sample(&mut self, watch: &[String]) -> Value {
        let mut out = Vec::new();
        let me = std::process::id();
        let (rss, ticks) = stat_of(me).unwrap_or((0, 0));
        let cpu = self.cpu(me, ticks);
        // The agent's own peak RSS too: the figure that matters on a 64 MB router.
        let peak = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
            .unwrap_or(rss);
        out.push(json!({"n": "dma-agent", "mem": rss, "peak": peak, "cpu": cpu, "pid": me, "running": true}));
        let mut seen = vec![me];
        for name in watch {
            let pids = pids_named(name);
            let (mut mem, mut cpu) = (0u64, 0f64);
            for pid in &pids {
                if let Some((r, t)) = stat_of(*pid) {
                    mem += r;
                    cpu += self.cpu(*pid, t);
                }
                seen.push(*pid);
            }
            out.push(json!({"n": name, "mem": mem, "cpu": (cpu * 10.0).round() / 10.0,
                            "count": pids.len(), "running": !pids.is_empty()}));
        }
        self.prev.retain(|pid, _| seen.contains(pid));
        Value::Array(out)
    }
}
