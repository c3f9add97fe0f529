//! `fleet-bench`: the platform at fleet scale, one command
//! (`scripts/fleet-bench.sh N` or `cargo run --release -p dma-platform
//! --bin fleet-bench -- --devices N`). Starts its own mosquitto and
//! dma-platform on 127.0.0.1, then: births of N devices; `sys` + `procs`
//! every period from each, spread evenly; REST timings (device list,
//! count, a device's commands) all along; steady ingest lag as seen in the
//! device list; one command to many targets answered by a fake responder;
//! then a burst of one marker `sys` from every device, timed at the
//! platform (device list) and at a bare subscriber (the floor). Figures
//! are printed and kept as JSON in `--out` (bench/results/).

use dma_platform::bench::probe::{pt_of, Api};
use dma_platform::bench::{fleet, floor::Floor, now_ms, quantile, responder};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    devices: usize,
    conns: usize,
    period: u64,
    steady: u64,
    targets: usize,
    db: String,
    out: String,
    /// The platform's `ingest` settings (JSON object), when given.
    ingest: Option<Value>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args { devices: 10_000, conns: 4, period: 60, steady: 120, targets: 0, db: "sqlite".into(), out: "bench/results".into(), ingest: None };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = || v.parse::<usize>().map_err(|_| format!("{k}: not a number"));
        match k.as_str() {
            "--devices" => a.devices = num()?,
            "--conns" => a.conns = num()?,
            "--period" => a.period = num()? as u64,
            "--steady" => a.steady = num()? as u64,
            "--targets" => a.targets = num()?,
            "--db" => a.db = v.clone(),
            "--out" => a.out = v.clone(),
            "--ingest" => a.ingest = Some(serde_json::from_str(v).map_err(|e| format!("--ingest: {e}"))?),
            _ => return Err(format!("unknown argument {k} (--devices N --conns C --period S --steady S --targets N --db sqlite|postgres://… --out DIR --ingest JSON)")),
        }
    }
    if a.targets == 0 {
        a.targets = a.devices.min(10_000);
    }
    Ok(a)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").ok().and_then(|l| l.local_addr().ok()).map_or(0, |a| a.port())
}

fn wait_port(port: u16) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// One 5 s sample of the soak: (seconds since the load started, telemetry
/// `waiting`, the platform's RSS KiB, the 1-minute load average, the
/// SQLite write-ahead log's bytes).
type Sample = (f64, u64, u64, f64, u64);

/// The machine's 1-minute load average (the 2 cores are shared: said with every result).
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok())).unwrap_or(0.0)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("fleet-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let a = parse()?;
    let dir = std::env::temp_dir().join(format!("fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // The broker: queues deep enough that it never drops what the platform reads late.
    let mport = free_port();
    let mconf = dir.join("mosquitto.conf");
    std::fs::write(&mconf, format!("listener {mport} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nmax_inflight_messages 100\nset_tcp_nodelay true\n")).map_err(|e| e.to_string())?;
    let _mosq = Kill(Command::new("mosquitto").arg("-c").arg(&mconf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("mosquitto: {e}"))?);
    if !wait_port(mport) {
        return Err("mosquitto did not start".into());
    }
    let hport = free_port();
    let database = if a.db == "sqlite" { dir.join("bench.db").to_string_lossy().into_owned() } else { a.db.clone() };
    let password = "bench-pass-1";
    let hash = dma_platform::auth::hash_password(password)?;
    let mut cfg = json!({
        "listen": format!("127.0.0.1:{hport}"), "database": database,
        "broker": {"host": "127.0.0.1", "port": mport, "client_id": "dma-platform-bench", "prefix": "dma"},
        "users": [{"user": "bench", "password_hash": hash, "roles": ["admin"]}],
        "command_history": 200_000,
    });
    if let Some(i) = &a.ingest {
        cfg["ingest"] = i.clone();
    }
    let pconf = dir.join("platform.json");
    std::fs::write(&pconf, cfg.to_string()).map_err(|e| e.to_string())?;
    let bin = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("dma-platform");
    let log = std::fs::File::create(dir.join("platform.log")).map_err(|e| e.to_string())?;
    let plat = Kill(
        Command::new(&bin)
            .args(["--config", &pconf.to_string_lossy(), "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?,
    );
    let pid = plat.0.id();
    if !wait_port(hport) {
        return Err("dma-platform did not start".into());
    }
    let base = format!("http://127.0.0.1:{hport}/");
    let api = Arc::new(Api::login(&base, "bench", password)?);
    let floor = Floor::start(mport, "dma");
    let answered = responder::start(mport, "dma");
    let n = a.devices;
    let fl = Arc::new(fleet::Fleet::connect(mport, "dma", n, a.conns));
    std::thread::sleep(Duration::from_secs(1));
    let running = Arc::new(AtomicBool::new(true));
    let rss_max = Arc::new(AtomicU64::new(0));
    {
        let (r, m) = (running.clone(), rss_max.clone());
        std::thread::spawn(move || {
            while r.load(Ordering::Relaxed) {
                m.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(500));
            }
        });
    }
    println!("fleet-bench: {n} devices, {} connections, period {} s, steady {} s", a.conns, a.period, a.steady);

    // 1. Births.
    let t = Instant::now();
    fl.births();
    let births_s = loop {
        let (c, _) = api.get("monitor/devices/count")?;
        if c["online"].as_u64() == Some(n as u64) {
            break Some(t.elapsed().as_secs_f64());
        }
        if t.elapsed() > Duration::from_secs(600) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    println!("births online: {births_s:?} s");

    // 2. Steady load, with REST timings and the lag seen in sweeps.
    let steady = fl.steady(Duration::from_secs(a.period));
    let timings: Arc<Mutex<HashMap<&'static str, Vec<f64>>>> = Arc::default();
    let probe_run = Arc::new(AtomicBool::new(true));
    let prober = {
        let (api, t, r) = (api.clone(), timings.clone(), probe_run.clone());
        std::thread::spawn(move || {
            let mut k = 0usize;
            while r.load(Ordering::Relaxed) {
                k += 1;
                let page = 1 + (k * 7919) % (n / 100).max(1);
                let calls: [(&'static str, String); 3] = [
                    ("devices", format!("monitor/devices?page={page}&limit=100")),
                    ("count", "monitor/devices/count".into()),
                    ("commands", format!("remotectl/commands?sn={}&limit=20", fleet::sn(k % n.max(1)))),
                ];
                for (name, path) in calls {
                    if let Ok((_, d)) = api.get(&path) {
                        t.lock().unwrap_or_else(|p| p.into_inner()).entry(name).or_default().push(d.as_secs_f64() * 1000.0);
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let lags: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sweeps = Arc::new(AtomicU64::new(0));
    // The steady lag is sampled until the marker burst starts (the burst's
    // own figure is the marker's); the REST timings go on through it.
    let lag_run = Arc::new(AtomicBool::new(true));
    let sweeper = {
        let (api, lags, r, sw) = (api.clone(), lags.clone(), lag_run.clone(), sweeps.clone());
        std::thread::spawn(move || {
            // Each device's last `sys` publish time seen (None: not seen yet;
            // 0: seen without a `sys`): a lag is taken when it changes, so
            // a short run counts each device's first `sys` too.
            let mut last: Vec<Option<i64>> = vec![None; n];
            // Up to 30,000 devices: the whole list each time. Beyond, a full
            // sweep takes seconds and loads the platform: 10 fixed pages of
            // 100 spread over the fleet, polled in turn, are the sample.
            let pages = n.div_ceil(100).max(1);
            let sample: Vec<usize> = (0..10).map(|k| 1 + k * pages / 10).collect();
            let mut turn = 0usize;
            while r.load(Ordering::Relaxed) {
                let all = if n <= 30_000 {
                    api.sweep()
                } else {
                    turn += 1;
                    let page = sample.get(turn % sample.len()).copied().unwrap_or(1);
                    api.get(&format!("monitor/devices?page={page}&limit=100")).map(|(d, _)| {
                        d["list"].as_array().map(|l| l.iter().map(|v| (v["sn"].as_str().unwrap_or("").to_string(), true, v["sys"].as_str().unwrap_or("").to_string())).collect()).unwrap_or_default()
                    })
                };
                if n > 30_000 {
                    // A page every 50 ms is resolution enough; polling flat out
                    // (150 calls/s once reads got fast) loaded the machine.
                    std::thread::sleep(Duration::from_millis(50));
                }
                let Ok(all) = all else { continue };
                let seen = now_ms();
                sw.fetch_add(1, Ordering::Relaxed);
                for (sn, _, sys) in all {
                    let Some(i) = fleet::index(&sn) else { continue };
                    let Some(prev) = last.get_mut(i) else { continue };
                    let pt = pt_of(&sys).unwrap_or(0);
                    if prev.is_some_and(|p| pt > p) {
                        lags.lock().unwrap_or_else(|p| p.into_inner()).push((seen - pt) as f64 / 1000.0);
                    }
                    *prev = Some(pt);
                }
            }
        })
    };
    // The backlog and RSS over the steady load (a soak: neither may grow):
    // the telemetry queue's `waiting` and the platform's RSS every 5 s.
    let trend: Arc<Mutex<Vec<Sample>>> = Arc::default();
    // SQLite: the size of the write-ahead log (a log that is never reset grows, and every read walks it).
    let wal = std::path::PathBuf::from(format!("{database}-wal"));
    let trend_run = Arc::new(AtomicBool::new(true));
    let trender = {
        let (api, tr, r, wal) = (api.clone(), trend.clone(), trend_run.clone(), wal.clone());
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while r.load(Ordering::Relaxed) {
                if let Ok((f, _)) = api.get("platform/ingest") {
                    let waiting = f["telemetry"]["waiting"].as_u64().unwrap_or(0);
                    tr.lock().unwrap_or_else(|p| p.into_inner()).push((t0.elapsed().as_secs_f64(), waiting, rss_kib(pid), loadavg(), std::fs::metadata(&wal).map_or(0, |m| m.len())));
                }
                std::thread::sleep(Duration::from_secs(5));
            }
        })
    };
    let steady_start = Instant::now();
    std::thread::sleep(Duration::from_secs(20.min(a.steady)));

    // 3. One command to many targets.
    let to: Vec<Value> = (0..a.targets).map(|i| json!({"sn": fleet::sn(i)})).collect();
    let t = Instant::now();
    let r = api.post("remotectl/commands", &json!({"to": to, "command": "sys", "method": "get", "from": "fleet-bench"}))?;
    let post_s = t.elapsed().as_secs_f64();
    if r["status"] != "ok" {
        return Err(format!("command post: {}", r.to_string().chars().take(300).collect::<String>()));
    }
    let (cmd_s, states) = loop {
        let s = api.command_states("fleet-bench")?;
        if s[2] == a.targets {
            break (Some(t.elapsed().as_secs_f64()), s);
        }
        if t.elapsed() > Duration::from_secs(180) {
            break (None, s);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("command to {} targets: posted in {post_s:.2} s, all state 2 in {cmd_s:?} s ({states:?}, {} answers sent)", a.targets, answered.load(Ordering::Relaxed));
    let left = Duration::from_secs(a.steady).saturating_sub(steady_start.elapsed());
    std::thread::sleep(left);

    // 4. The marker burst, on top of the steady load (the trend ends before it).
    trend_run.store(false, Ordering::Relaxed);
    lag_run.store(false, Ordering::Relaxed);
    let _ = trender.join();
    let _ = sweeper.join();
    let before_burst = api.get("platform/ingest").map(|v| v.0).unwrap_or(Value::Null);
    let mark = now_ms() as u64;
    floor.watch(mark);
    let t_m = now_ms();
    let t = Instant::now();
    let burst_end = Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
    let burst = {
        let (f, end) = (fl.clone(), burst_end.clone());
        std::thread::spawn(move || {
            f.marker(mark);
            end.store(now_ms(), Ordering::Relaxed);
        })
    };
    let (plat_s, plat_seen) = api.wait_marker(&fl, t, Duration::from_secs(600), &|i| floor.got_marker(i))?;
    let _ = burst.join();
    let floor_n = floor.marked.load(Ordering::Relaxed);
    let floor_s = (floor_n as usize >= n).then(|| (floor.last_ms.load(Ordering::Relaxed) - t_m) as f64 / 1000.0);
    println!("marker {mark}: burst published in {} ms", burst_end.load(Ordering::Relaxed) - t_m);
    println!("marker from {n} devices: platform {plat_s:?} s ({plat_seen} seen), floor {floor_s:?} s ({floor_n})");
    let out_of_order = floor.out_of_order.load(Ordering::Relaxed);
    println!("floor: {out_of_order} sys out of their device's publish order (must be 0)");

    probe_run.store(false, Ordering::Relaxed);
    fl.stop.store(true, Ordering::Relaxed);
    let _ = prober.join();
    for h in steady {
        let _ = h.join();
    }
    let figures = api.get("platform/ingest").map(|v| v.0).unwrap_or(Value::Null);
    running.store(false, Ordering::Relaxed);
    let mut rest = serde_json::Map::new();
    for (k, v) in timings.lock().unwrap_or_else(|p| p.into_inner()).iter_mut() {
        rest.insert((*k).into(), json!({"n": v.len(), "p50_ms": quantile(v, 0.5), "p99_ms": quantile(v, 0.99), "max_ms": quantile(v, 1.0)}));
    }
    let mut lag = lags.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let offered = 2.0 * n as f64 / a.period as f64;
    // Backlog and RSS in the first and the second half of the steady load.
    let tr = trend.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let half = tr.last().map_or(0.0, |l| l.0 / 2.0);
    let part = |second: bool| {
        let v: Vec<&Sample> = tr.iter().filter(|s| (s.0 >= half) == second).collect();
        let load: Vec<f64> = v.iter().map(|s| s.3).collect();
        json!({"samples": v.len(), "waiting_max": v.iter().map(|s| s.1).max(), "rss_max_mib": v.iter().map(|s| s.2).max().map(|k| k as f64 / 1024.0),
               "loadavg_1m_mean": load.iter().sum::<f64>() / load.len().max(1) as f64, "loadavg_1m_max": load.iter().copied().fold(0.0, f64::max),
               "sqlite_wal_max_mib": v.iter().map(|s| s.4).max().map(|b| b as f64 / 1048576.0)})
    };
    let trend_json = json!({"every_s": 5, "first_half": part(false), "second_half": part(true), "waiting_last": tr.last().map(|s| s.1)});
    let result = json!({
        "devices": n, "db": if a.db == "sqlite" { "sqlite" } else { "postgresql" }, "connections": a.conns, "period_s": a.period,
        "offered_msg_s": offered, "steady_s": a.steady, "ingest_config": a.ingest, "time": now_ms() / 1000,
        "births_online_s": births_s,
        "steady_lag_s": {"samples": lag.len(), "p50": quantile(&mut lag, 0.5), "p99": quantile(&mut lag, 0.99), "max": quantile(&mut lag, 1.0), "sweeps": sweeps.load(Ordering::Relaxed), "note": if n <= 30_000 { "upper bound: seen by sweeping the whole device list, until the marker burst" } else { "upper bound: 10 fixed pages of 100 devices polled in turn, until the marker burst" }},
        "command": {"targets": a.targets, "post_s": post_s, "all_state2_s": cmd_s, "states": states},
        "marker": {"platform_s": plat_s, "platform_msg_s": plat_s.map(|s| n as f64 / s), "floor_s": floor_s, "floor_msg_s": floor_s.map(|s| n as f64 / s.max(0.001)),
                   "ratio": match (plat_s, floor_s) { (Some(p), Some(f)) => Some(f.max(0.001) / p), _ => None },
                   "floor_out_of_order": out_of_order},
        "steady_trend": trend_json, "machine": format!("2 cores shared with other builds and tests while this ran (figures are not from an idle machine); 1-minute load average {:.1} at the end (each half's mean and max in steady_trend)", loadavg()),
        "rest": rest, "rss_max_mib": rss_max.load(Ordering::Relaxed) as f64 / 1024.0, "ingest": figures, "ingest_before_burst": before_burst,
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
    std::fs::create_dir_all(&a.out).map_err(|e| e.to_string())?;
    let file = format!("{}/fleet-{n}-{}-{}.json", a.out, result["db"].as_str().unwrap_or("db"), now_ms() / 1000);
    std::fs::write(&file, serde_json::to_string_pretty(&result).unwrap_or_default()).map_err(|e| format!("{file}: {e}"))?;
    println!("kept in {file}");
    drop(plat);
    if std::env::var_os("FLEET_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
