//! Local faults (issue 9, items 2, 7, 9, 11, 12): a full or read-only
//! state dir, children that escape `sh`, LAN commands the engine gave up
//! on, a second agent on the same state dir, and configuration writes.
//! Real mosquitto, the real agent, real tmpfs mounts and simulators.

mod common;
use common::fsfault::Tmpfs;
use common::*;
use dma_sims::iad::IadSim;
use dma_sims::Fault;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Extra slack for timing bounds when the agent runs under QEMU.
fn slack() -> Duration {
    if std::env::var("DMA_AGENT_RUNNER").map(|r| !r.is_empty()).unwrap_or(false) {
        Duration::from_secs(10)
    } else {
        Duration::ZERO
    }
}

fn online(p: &Platform, sn: &str, from: usize, a: &Agent) {
    p.wait_from(from, &format!("dma/state/{sn}"), T, |m| m.json["online"] == true)
        .unwrap_or_else(|| panic!("no birth; agent log:\n{}", a.log()));
}

fn sh(id: u64, script: &str) -> Value {
    json!({"id": id, "from": "test", "command": "sh", "method": "", "d": {"shcmd": script}})
}

// ---- item 11: one agent per state dir ----

#[test]
fn a_second_agent_on_the_same_state_dir_refuses_to_start() {
    let b = Broker::start();
    let p = Platform::connect(b.port, "dma");
    let sn = "FA0000000011";
    let a = Agent::start(sn, &agent_section(sn, b.port, Path::new("{state}"), ""));
    online(&p, sn, 0, &a);
    let t = Instant::now();
    let out = agent_command()
        .arg("--config")
        .arg(&a.config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("second agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second agent must exit non-zero; stderr:\n{err}");
    assert!(t.elapsed() < Duration::from_secs(10) + slack(), "refused at once, not after {:?}", t.elapsed());
    let pid = a.pid().unwrap().to_string();
    assert!(err.contains("already running") && err.contains(&format!("pid {pid}")), "names the holder: {err}");
    assert!(err.contains(&a.state_dir().display().to_string()), "names the dir: {err}");
    // The first one is untouched and still answers.
    let r = p.command("dma", sn, sh(1, "echo still here"), T);
    assert_eq!(unb64(&r["d"]["result"]), "still here\n", "{r}");
}

// ---- item 7: escaping children ----

fn escaped_pid(answer: &Value) -> Option<i32> {
    unb64(&answer["d"]["result"]).lines().find_map(|l| l.strip_prefix("pid ").and_then(|p| p.trim().parse().ok()))
}

fn kill_pid(pid: Option<i32>) {
    if let Some(pid) = pid {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

#[test]
fn children_that_leave_the_group_hold_neither_the_answer_nor_the_lane() {
    let b = Broker::start();
    let p = Platform::connect(b.port, "dma");
    let sn = "FA0000000007";
    let a = Agent::start(sn, &agent_section(sn, b.port, Path::new("{state}"), ""));
    online(&p, sn, 0, &a);

    // No timeout hit: the shell ends at once, the escaped child keeps stdout.
    let t = Instant::now();
    let r = p.command("dma", sn, sh(1, "setsid sleep 100000 & echo pid $!; echo done"), T);
    kill_pid(escaped_pid(&r));
    let took = t.elapsed();
    assert_eq!(r["status"], "ok", "{r}");
    assert!(unb64(&r["d"]["result"]).ends_with("done\n"), "{r}");
    assert!(took < Duration::from_secs(5) + slack(), "answered in {took:?}");

    // The timeout hits while the escaped child holds stdout: answered
    // within timeout + 5 s, flagged as timed out.
    let t = Instant::now();
    let cmd = json!({"id": 2, "command": "sh", "d": {"shcmd": "setsid sleep 100000 & echo pid $!; sleep 1000", "timeout": 2}});
    let r = p.command("dma", sn, cmd, T + slack());
    kill_pid(escaped_pid(&r));
    let took = t.elapsed();
    assert_eq!(r["d"]["timedOut"], true, "{r}");
    assert_eq!(r["status"], "err");
    assert!(took < Duration::from_secs(2 + 5) + slack(), "answered in {took:?}");

    // The serial lane is free: a later non-detached command is answered promptly.
    let t = Instant::now();
    let r = p.command("dma", sn, sh(3, "echo next"), T);
    assert_eq!(unb64(&r["d"]["result"]), "next\n");
    assert!(t.elapsed() < Duration::from_secs(3) + slack(), "answered in {:?}", t.elapsed());
}

// ---- item 2: a full or read-only state dir ----

/// Commands until one is refused; returns (refused answer, ids answered ok).
fn until_refused(p: &Platform, sn: &str, first_id: u64) -> (Value, Vec<u64>) {
    let mut ok = Vec::new();
    for id in first_id..first_id + 60 {
        let r = p.command("dma", sn, sh(id, "echo x"), T);
        if r["status"] == "ok" {
            ok.push(id);
            continue;
        }
        return (r, ok);
    }
    panic!("no command was refused on a full state dir");
}

#[test]
fn a_full_state_dir_refuses_commands_with_the_cause_and_recovers_when_freed() {
    let Some(fs) = Tmpfs::mount("full", "1m") else { return };
    let b = Broker::start();
    let p = Platform::connect(b.port, "dma");
    let sn = "FA0000000002";
    let cfg = agent_section(sn, b.port, fs.dir(), "\toption sys_interval '1'\n");
    let mut a = Agent::start(sn, &cfg);
    online(&p, sn, 0, &a);
    let first = p.command("dma", sn, sh(1, "echo before"), T);
    assert_eq!(first["status"], "ok");

    let filler = fs.fill();
    // The journal's last page may still take a record or two; then a
    // command it cannot journal is refused, naming the cause.
    let (refused, _) = until_refused(&p, sn, 100);
    let msg = refused["d"]["msg"].as_str().unwrap_or("");
    assert!(msg.contains("journal") && msg.contains("No space left on device"), "{refused}");
    assert_eq!(refused["d"]["exestatus"], "err");
    // A read-only command needs no journal: answered while full.
    let g = p.command("dma", sn, json!({"id": 150, "command": "agent", "method": "get", "d": {"keys": ["sn"]}}), T);
    assert_eq!(g["status"], "ok", "{g}");
    // Still reporting while full.
    let from = p.count();
    p.wait_from(from, "dma/sys", T, |_| true).unwrap_or_else(|| panic!("no sys report while full; log:\n{}", a.log()));

    // Space freed: commands run again, no restart.
    std::fs::remove_file(&filler).unwrap();
    let r = p.command("dma", sn, sh(200, "echo after"), T);
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(unb64(&r["d"]["result"]), "after\n");

    // The journal the failed appends left behind is whole: after a crash
    // and a restart, a redelivery of the first command gets the stored
    // answer (not a second run), the refused id runs now.
    a.kill9();
    let from = p.count();
    a.spawn();
    online(&p, sn, from, &a);
    let again = p.command("dma", sn, sh(1, "echo before"), T);
    assert_eq!(again["time"], first["time"], "the stored answer: {again}");
    let retried = p.command("dma", sn, sh(refused["id"].as_u64().unwrap(), "echo x"), T);
    assert_eq!(retried["status"], "ok", "a refused command was never started; its retry runs: {retried}");
    let journal = std::fs::read_to_string(fs.dir().join("journal.log")).unwrap();
    for line in journal.lines() {
        assert!(serde_json::from_str::<Value>(line).is_ok(), "a torn record in the journal: {line:?}");
    }
}

#[test]
fn a_read_only_state_dir_keeps_the_agent_online_and_recovers_on_remount() {
    let Some(fs) = Tmpfs::mount("ro", "1m") else { return };
    let b = Broker::start();
    let p = Platform::connect(b.port, "dma");
    let sn = "FA0000000003";
    let cfg = agent_section(sn, b.port, fs.dir(), "\toption sys_interval '1'\n");
    let mut a = Agent::start(sn, &cfg);
    online(&p, sn, 0, &a);
    assert_eq!(p.command("dma", sn, sh(1, "echo rw"), T)["status"], "ok");

    fs.remount_ro();
    let r = p.command("dma", sn, sh(2, "echo ro"), T);
    assert_eq!(r["status"], "err", "{r}");
    assert!(r["d"]["msg"].as_str().unwrap_or("").contains("Read-only file system"), "names the cause: {r}");

    // A restart on the read-only dir: starts, connects, reports, answers.
    a.kill9();
    let from = p.count();
    a.spawn();
    online(&p, sn, from, &a);
    p.wait_from(from, "dma/sys", T, |_| true).unwrap_or_else(|| panic!("no sys report; log:\n{}", a.log()));
    let r = p.command("dma", sn, sh(3, "echo ro"), T);
    assert!(r["d"]["msg"].as_str().unwrap_or("").contains("Read-only file system"), "{r}");
    // The command journalled before the remount is still known.
    let again = p.command("dma", sn, sh(1, "echo rw"), T);
    assert_eq!(unb64(&again["d"]["result"]), "rw\n", "{again}");

    // Writable again: commands run, without a restart.
    fs.remount_rw();
    let r = p.command("dma", sn, sh(4, "echo back"), T);
    assert_eq!(r["status"], "ok", "{r}; log:\n{}", a.log());
    let r = p.command("dma", sn, sh(2, "echo ro"), T);
    assert_eq!(unb64(&r["d"]["result"]), "ro\n", "the refused command runs on retry: {r}");
}

// ---- item 9: LAN commands the engine stopped waiting for ----

#[test]
fn a_lan_command_given_up_on_is_never_sent_and_a_retry_runs_once() {
    let b = Broker::start();
    let p = Platform::connect(b.port, "dma");
    let iad = IadSim::start("127.0.0.1:0", Default::default()).unwrap();
    let sn = "FA0000000009";
    // HTTP calls may take 10 s; a command waits 2 s for its turn, then 2 s for its result.
    let cfg = format!(
        "{}\nconfig device 'iad1'\n\toption type 'iad'\n\toption address '{}'\n\toption username 'admin'\n\toption password 'admin'\n\toption poll_interval '3600'\n\toption timeout '10'\n\toption command_timeout '2'\n",
        agent_section(sn, b.port, Path::new("{state}"), ""),
        iad.url()
    );
    let a = Agent::start(sn, &cfg);
    online(&p, sn, 0, &a);
    p.wait("dma/periph", T, |m| m.json["kind"] == "iad" && m.json["online"] == true)
        .unwrap_or_else(|| panic!("IAD never polled; log:\n{}", a.log()));

    // A occupies the device's thread for `slow`; B, sent `gap` later, waits
    // behind it past its 2 s. (The gap keeps A first on a loaded machine.)
    let gap = Duration::from_secs(1) + slack() / 5;
    let slow = gap + Duration::from_secs(5);
    iad.set_fault(Fault::Slow(slow));
    let set_a = json!({"id": 91, "command": "iad", "method": "set", "detached": true, "d": {"api": "test_cfg/a_set", "data": {"v": 1}}});
    let set_b = json!({"id": 92, "command": "iad", "method": "set", "detached": true, "d": {"api": "test_cfg/b_set", "data": {"v": 2}}});
    let from = p.count();
    p.publish_raw(&format!("dma/cmd/{sn}"), &set_a.to_string());
    std::thread::sleep(gap);
    p.publish_raw(&format!("dma/cmd/{sn}"), &set_b.to_string());
    let ans = |id: u64| p.wait_from(from, "dma/resp/cmd", T + slack(), |m| m.json["id"] == id).map(|m| m.json);
    let b_ans = ans(92).unwrap_or_else(|| panic!("no answer to B; log:\n{}", a.log()));
    assert_eq!(b_ans["status"], "err", "{b_ans}");
    assert!(b_ans["d"]["msg"].as_str().unwrap_or("").contains("cancelled"), "{b_ans}");
    let a_ans = ans(91).unwrap_or_else(|| panic!("no answer to A; log:\n{}", a.log()));
    assert_eq!(a_ans["status"], "err", "A started but did not answer within 2 s: {a_ans}");

    // Long after A finished, B was never sent; A was sent once. (Fault
    // off: a B that leaked through would now be answered at once.)
    iad.set_fault(Fault::None);
    let deadline = Instant::now() + slow + Duration::from_secs(5);
    while iad.call_count("test_cfg/a_set") < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(iad.call_count("test_cfg/b_set"), 0, "a cancelled command must never be sent");
    assert_eq!(iad.call_count("test_cfg/a_set"), 1);

    // Retries: B runs now, once; A's retry gets the earlier attempt's result, no second request.
    let r = p.command("dma", sn, set_b.clone(), T);
    assert_eq!(r["status"], "ok", "{r}");
    let r = p.command("dma", sn, set_a.clone(), T);
    assert_eq!(r["status"], "ok", "{r}");
    let r = p.command("dma", sn, set_b, T);
    assert_eq!(r["status"], "ok", "the stored answer: {r}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(iad.call_count("test_cfg/b_set"), 1, "B applied exactly once");
    assert_eq!(iad.call_count("test_cfg/a_set"), 1, "A applied exactly once");
}

// ---- item 12: configuration writes ----

#[test]
fn agent_set_refuses_a_file_it_cannot_read_whole_and_serialises_sets() {
    let b = Broker::start();
    let p = Platform::connect(b.port, "dma");
    let sn = "FA0000000012";
    let a = Agent::start(sn, &agent_section(sn, b.port, Path::new("{state}"), ""));
    online(&p, sn, 0, &a);
    let set = |id: u64, body: Value| p.command("dma", sn, json!({"id": id, "command": "agent", "method": "set", "d": body}), T);

    // Concurrent sets (detached: they run at once): every one lands in the file.
    let keys = ["sys_interval", "procs_interval", "versions_interval", "periph_interval", "device_failures", "shell_timeout"];
    let from = p.count();
    for (i, k) in keys.iter().enumerate() {
        let cmd = json!({"id": 10 + i, "command": "agent", "method": "set", "detached": true, "d": {*k: 7}});
        p.publish_raw(&format!("dma/cmd/{sn}"), &cmd.to_string());
    }
    for i in 0..keys.len() {
        let r = p.wait_from(from, "dma/resp/cmd", T, |m| m.json["id"] == 10 + i).expect("answer");
        assert_eq!(r.json["status"], "ok", "{}", r.raw);
    }
    let text = std::fs::read_to_string(&a.config).unwrap();
    for k in keys {
        assert!(text.contains(&format!("option {k} '7'")), "{k} lost by a concurrent set:\n{text}");
    }

    // A file that no longer parses: refused, untouched.
    let broken = format!("{text}\nconfig agent 'again'\n\toption sn 'X\n");
    std::fs::write(&a.config, &broken).unwrap();
    let r = set(20, json!({"sys_interval": 9}));
    assert_eq!(r["status"], "err", "{r}");
    assert!(r["d"]["msg"].as_str().unwrap_or("").contains("not applied"), "{r}");
    assert_eq!(std::fs::read_to_string(&a.config).unwrap(), broken, "file untouched");

    // A file that cannot be read (gone): refused, not re-created from nothing.
    std::fs::remove_file(&a.config).unwrap();
    let r = set(21, json!({"sys_interval": 9}));
    assert_eq!(r["status"], "err", "{r}");
    assert!(r["d"]["msg"].as_str().unwrap_or("").contains("cannot read"), "{r}");
    assert!(!a.config.exists(), "no file written from an empty read");
}

#[test]
fn secrets_changed_by_set_or_sighup_are_scrubbed_from_then_on() {
    let b = Broker::start();
    let p = Platform::connect(b.port, "dma");
    let iad = IadSim::start("127.0.0.1:0", Default::default()).unwrap();
    let sn = "FA0000000013";
    let device = |pw: &str| {
        format!(
            "config device 'iad1'\n\toption type 'iad'\n\toption address '{}'\n\toption username 'admin'\n\toption password '{pw}'\n\toption poll_interval '3600'\n",
            iad.url()
        )
    };
    // Signed commands: the broker password is a trust setting (docs/PROTOCOL.md).
    let key = common::signer::Key::new("k1");
    let cfg = format!("{}\n{}", agent_section(sn, b.port, Path::new("{state}"), &key.uci()), device("admin"));
    let mut a = Agent::start(sn, &cfg);
    online(&p, sn, 0, &a);
    // A command name is logged as received: the way a secret reaches the log here.
    let probe = |id: u64, word: &str| {
        let r = p.signed_command("dma", sn, &key, json!({"id": id, "command": word}), T);
        assert_eq!(r["status"], "err");
    };

    // SIGHUP with a new device password (applied live, no restart).
    let hup_secret = "Hup-Secret-4711";
    let text = std::fs::read_to_string(&a.config).unwrap().replace("option password 'admin'", &format!("option password '{hup_secret}'"));
    std::fs::write(&a.config, text).unwrap();
    a.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + T;
    while !a.log().contains("configuration reloaded") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(a.log().contains("configuration reloaded"), "{}", a.log());
    probe(1, hup_secret);

    // agent set with a new broker password (the agent restarts to apply it:
    // it execs itself, which a foreign-arch binary under qemu-user cannot do
    // without binfmt_misc; the SIGHUP half above has run).
    if !slack().is_zero() {
        eprintln!("SKIP (under {}): the agent set half needs the agent to exec itself", std::env::var("DMA_AGENT_RUNNER").unwrap_or_default());
        let log = a.log();
        assert!(!log.contains(hup_secret), "SIGHUP secret in the log:\n{log}");
        let _ = a.stop();
        return;
    }
    let set_secret = "Set-Secret-0815";
    let from = p.count();
    let r = p.signed_command("dma", sn, &key, json!({"id": 2, "command": "agent", "method": "set", "d": {"password": set_secret}}), T);
    assert_eq!(r["status"], "ok", "{r}");
    assert!(!r.to_string().contains(set_secret), "not in the answer: {r}");
    online(&p, sn, from, &a);
    probe(3, set_secret);
    probe(4, hup_secret);

    let log = a.log();
    assert!(log.contains("'******'"), "the probes were logged, masked:\n{log}");
    assert!(!log.contains(hup_secret), "SIGHUP secret in the log:\n{log}");
    assert!(!log.contains(set_secret), "set secret in the log:\n{log}");
    let _ = a.stop();
}

/// The event queue on a full disk: an SMS push it cannot store is refused
/// (503, the cause named; the GoIP keeps it), nothing accepted is lost, and
/// freeing space recovers without a restart.
#[test]
fn a_full_state_dir_refuses_sms_pushes_and_loses_nothing() {
    use dma_sims::goip::{GoipSim, GoipSimConfig};
    let Some(fs) = Tmpfs::mount("full-sms", "1m") else { return };
    let b = Broker::start();
    let p = Platform::connect(b.port, "dma");
    let sim = GoipSim::start("127.0.0.1:0", GoipSimConfig::default()).expect("sim");
    let rx = free_port();
    let sn = "FA0000000022";
    let cfg = format!(
        "{}\nconfig sms_receiver\n\toption enabled '1'\n\toption listen '127.0.0.1:{rx}'\n\toption rate '5000'\n\toption reconcile_interval '2'\n\toption status_period '0'\n\nconfig device 'gw1'\n\toption type 'goip'\n\toption address '{}'\n\toption username 'root'\n\toption password 'root'\n\toption poll_interval '60'\n",
        agent_section(sn, b.port, fs.dir(), ""),
        sim.url()
    );
    let a = Agent::start(sn, &cfg);
    online(&p, sn, 0, &a);
    let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let url = common::sms_rig::registered_push_url(&sim);
    let push = |i: u32| -> (u16, String) {
        let body = json!({"type": "recv-sms", "sms_num": 1, "sms": [[0, "1A", 1_700_000_000u64 + u64::from(i), "10010", "13800000001", b64(&format!("f{i:03}"))]]});
        let deadline = Instant::now() + T;
        loop {
            match http.post(&url).header("Content-Type", "application/json").send(body.to_string().as_bytes()) {
                Ok(mut r) => return (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
                Err(e) if Instant::now() > deadline => panic!("receiver unreachable: {e}; log:\n{}", a.log()),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    };
    // At start-up the agent reads the GoIP's inbox before it takes pushes
    // (503 "catching up"; slow under QEMU): the GoIP pushes again.
    let deadline = Instant::now() + T;
    let mut first = push(0);
    while first.0 == 503 && first.1.contains("catching up") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        first = push(0);
    }
    assert_eq!(first.0, 200, "first push: {}", first.1);
    let filler = fs.fill();
    let mut accepted = vec![0u32];
    let mut refused = None;
    for i in 1..200 {
        match push(i) {
            (200, _) => accepted.push(i),
            (code, body) => {
                refused = Some((i, code, body));
                break;
            }
        }
    }
    let (i, code, body) = refused.expect("no push was refused on a full state dir");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("No space left on device"), "names the cause: {body}");
    std::fs::remove_file(&filler).unwrap();
    // The GoIP pushes it again until accepted (the agent may first catch
    // up with the GoIP's inbox after a refusal): no restart needed.
    let deadline = Instant::now() + T;
    let mut last = push(i);
    while last.0 != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        last = push(i);
    }
    assert_eq!(last.0, 200, "after freeing space: {}", last.1);
    accepted.push(i);
    let want: Vec<String> = accepted.iter().map(|i| format!("f{i:03}")).collect();
    let deadline = Instant::now() + T;
    let texts = || -> Vec<String> {
        p.all("dma/event").into_iter().filter(|m| m.json["type"] == "sms-received").filter_map(|m| m.json["text"].as_str().map(String::from)).collect()
    };
    while texts().len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(texts(), want, "every accepted SMS once, in order; log:\n{}", a.log());
}

/// Every part that keeps state (journal, event queue, the SMS service's
/// files, the lock) starts on a read-only state dir: the agent comes up,
/// reports and answers; what needs the disk is refused with the cause.
#[test]
fn the_agent_starts_on_a_read_only_state_dir_with_every_service_configured() {
    use dma_sims::goip::{GoipSim, GoipSimConfig};
    let Some(fs) = Tmpfs::mount("ro-start", "1m") else { return };
    let b = Broker::start();
    let p = Platform::connect(b.port, "dma");
    let sim = GoipSim::start("127.0.0.1:0", GoipSimConfig::default()).expect("sim");
    let sn = "FA0000000023";
    let cfg = format!(
        "{}\nconfig sms_receiver\n\toption enabled '1'\n\toption listen '127.0.0.1:{}'\n\nconfig device 'gw1'\n\toption type 'goip'\n\toption address '{}'\n\toption username 'root'\n\toption password 'root'\n\toption poll_interval '1'\n",
        agent_section(sn, b.port, fs.dir(), "\toption sys_interval '1'\n"),
        free_port(),
        sim.url()
    );
    // First run on a writable dir leaves its files; then the dir goes read-only.
    let mut a = Agent::start(sn, &cfg);
    online(&p, sn, 0, &a);
    assert_eq!(p.command("dma", sn, sh(1, "echo rw"), T)["status"], "ok");
    a.stop();
    fs.remount_ro();
    let from = p.count();
    a.spawn();
    online(&p, sn, from, &a);
    p.wait_from(from, "dma/sys", T, |_| true).unwrap_or_else(|| panic!("no sys; log:\n{}", a.log()));
    p.wait_from(from, "dma/periph", T, |m| m.json["kind"] == "goip" && m.json["online"] == true)
        .unwrap_or_else(|| panic!("no GoIP status; log:\n{}", a.log()));
    let r = p.command("dma", sn, sh(2, "echo ro"), T);
    assert!(r["d"]["msg"].as_str().unwrap_or("").contains("Read-only file system"), "{r}");
    assert_eq!(unb64(&p.command("dma", sn, sh(1, "echo rw"), T)["d"]["result"]), "rw\n", "stored answer");
    fs.remount_rw();
    assert_eq!(p.command("dma", sn, sh(3, "echo back"), T)["status"], "ok");
}
