//! `upgrade`: download from a local HTTP server, verify the SHA-256,
//! answer, install with the configured command (or the router's apk / opkg),
//! restart; a redelivery is answered from the journal and installs nothing
//! again. The download survives a slow link (it times out on a stall, not on
//! total time), follows a bounded chain of redirects, and never leaves a
//! partial file behind.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the test server does for one path.
#[derive(Clone)]
enum Route {
    Body(Vec<u8>),
    /// The body in `chunk`-byte pieces, one every `every`: slow, never stalled.
    Trickle(Vec<u8>, usize, Duration),
    /// Headers for the whole body, the first `n` bytes, then nothing (until the test ends).
    Stall(Vec<u8>, usize),
    /// A redirect (status, Location).
    Redirect(u16, String),
}

/// A small HTTP/1.1 server (one thread per connection) with scripted routes.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(routes: HashMap<String, Route>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (routes, st) = (Arc::new(routes), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (routes, st) = (routes.clone(), st.clone());
                        std::thread::spawn(move || serve_one(conn, &routes, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Server { port, stop }
    }
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve_one(mut conn: TcpStream, routes: &HashMap<String, Route>, stop: &AtomicBool) {
    conn.set_nonblocking(false).ok();
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match conn.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let hdr = |status: &str, len: usize| format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    match routes.get(&path) {
        None => {
            let _ = conn.write_all(hdr("404 Not Found", 0).as_bytes());
        }
        Some(Route::Body(data)) => {
            let _ = conn.write_all(hdr("200 OK", data.len()).as_bytes());
            let _ = conn.write_all(data);
        }
        Some(Route::Trickle(data, chunk, every)) => {
            let _ = conn.write_all(hdr("200 OK", data.len()).as_bytes());
            for piece in data.chunks(*chunk) {
                std::thread::sleep(*every);
                if conn.write_all(piece).and_then(|_| conn.flush()).is_err() {
                    return;
                }
            }
        }
        Some(Route::Stall(data, n)) => {
            let _ = conn.write_all(hdr("200 OK", data.len()).as_bytes());
            let _ = conn.write_all(&data[..*n]);
            let _ = conn.flush();
            let until = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(Route::Redirect(code, to)) => {
            let reason = if *code == 301 { "Moved Permanently" } else { "Found" };
            let msg = format!("HTTP/1.1 {code} {reason}\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = conn.write_all(msg.as_bytes());
        }
    }
}

/// A package-looking body: gzip magic (an .ipk) and `n` bytes in all.
fn ipk_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0x1f, 0x8b, 0x08, 0x00];
    v.extend((0..n.saturating_sub(4)).map(|i| (i * 7 % 251) as u8));
    v
}

fn apk_bytes(n: usize) -> Vec<u8> {
    let mut v = b"ADBd".to_vec();
    v.extend((0..n.saturating_sub(4)).map(|i| (i * 13 % 253) as u8));
    v
}

fn upgrade_cmd(id: u64, url: &str, body: &[u8]) -> Value {
    json!({"id": id, "command": "upgrade", "d": {"url": url, "sha256": dma_agent::util::sha256_hex(body)}})
}

/// Files the upgrade left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.starts_with("dma-agent-upgrade")).collect())
        .unwrap_or_default()
}

fn wait_file(path: &Path, len: usize) -> Vec<u8> {
    let deadline = Instant::now() + T;
    while std::fs::read(path).map(|b| b.len()).unwrap_or(0) < len && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read(path).unwrap_or_default()
}

#[test]
fn upgrade_verifies_installs_once_and_restarts() {
    let package = ipk_bytes(3000);
    let sha = dma_agent::util::sha256_hex(&package);
    let srv = Server::start(HashMap::from([("/dma-agent.ipk".to_string(), Route::Body(package.clone()))]));
    let dir = temp_dir("upgrade");
    let (installed, names, dl) = (dir.join("installed"), dir.join("names"), dir.join("dl"));
    let extra = format!(
        "\toption upgrade_dir '{}'\n\toption upgrade_command 'cat {{file}} >> {} && echo {{file}} >> {}'\n",
        dl.display(),
        installed.display(),
        names.display()
    );
    let broker = Broker::start();
    let p = Platform::connect(broker.port, "dma");
    let mut a = Agent::start("EE0000000001", &agent_section("EE0000000001", broker.port, Path::new("{state}"), &extra));
    p.wait("dma/state/EE0000000001", T, |m| m.json["online"] == true).expect("birth");
    let url = srv.url("/dma-agent.ipk");

    // A wrong hash: refused, nothing installed, nothing left.
    let r = p.command("dma", "EE0000000001", json!({"id": 1, "command": "upgrade", "d": {"url": url, "sha256": "00".repeat(32)}}), T);
    assert_eq!(r["status"], "err");
    assert!(r["d"]["msg"].as_str().unwrap().contains("sha256 mismatch"), "{r}");
    assert!(!installed.exists());
    assert_eq!(leftovers(&dl), Vec::<String>::new());
    // Bad bodies.
    let r = p.command("dma", "EE0000000001", json!({"id": 2, "command": "upgrade", "d": {"url": "ftp://x", "sha256": sha}}), T);
    assert_eq!(r["status"], "err");

    let from = p.count();
    let cmd = json!({"id": 3, "command": "upgrade", "d": {"url": url, "sha256": sha}});
    let r = p.command("dma", "EE0000000001", cmd.clone(), T);
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["d"]["result"]["sha256"], sha);
    assert_eq!(r["d"]["result"]["format"], "ipk");
    assert_eq!(wait_file(&installed, package.len()), package, "installed the verified package");
    // Installed from upgrade_dir, under a name ending .ipk (opkg wants it), then removed.
    let name = String::from_utf8(wait_file(&names, 1)).unwrap();
    assert_eq!(name.trim(), dl.join("dma-agent-upgrade.ipk").to_string_lossy(), "{name}");
    // The agent restarts itself to run the new binary: a new birth (or,
    // where it cannot re-exec, an exit that procd would restart).
    let reborn = p.wait_from(from + 1, "dma/state/EE0000000001", T, |m| m.json["online"] == true).is_some();
    if !reborn {
        let exited = a.child.as_mut().and_then(|c| c.try_wait().ok().flatten()).is_some();
        assert!(exited, "neither restarted nor exited; log:\n{}", a.log());
        a.spawn();
    }
    assert_eq!(leftovers(&dl), Vec::<String>::new(), "the package is removed after installing");
    // Redelivered: answered from the journal, not installed again.
    let r2 = p.command("dma", "EE0000000001", cmd, T);
    assert_eq!(r2["status"], "ok");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read(&installed).unwrap().len(), package.len(), "installed once");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn package_is_removed_even_when_the_install_kills_the_agent() {
    // OpenWrt's post-install restarts the service while the installer runs:
    // the agent dies before it could remove the package. Here the install
    // command kills the agent outright, then installs.
    let package = ipk_bytes(20_000);
    let srv = Server::start(HashMap::from([("/p.ipk".to_string(), Route::Body(package.clone()))]));
    let dir = temp_dir("upgrade-killed");
    let (dl, installed) = (dir.join("dl"), dir.join("installed"));
    // A download cut by an earlier kill: removed at start-up.
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(dl.join("dma-agent-upgrade.part"), vec![0u8; 4096]).unwrap();
    let extra = format!(
        "\toption upgrade_dir '{}'\n\toption upgrade_command 'kill -9 $PPID; sleep 1; cp {{file}} {}'\n",
        dl.display(),
        installed.display()
    );
    let broker = Broker::start();
    let p = Platform::connect(broker.port, "dma");
    let mut a = Agent::start("EE0000000008", &agent_section("EE0000000008", broker.port, Path::new("{state}"), &extra));
    p.wait("dma/state/EE0000000008", T, |m| m.json["online"] == true).expect("birth");
    assert_eq!(leftovers(&dl), Vec::<String>::new(), "the leftover of a killed download stays in RAM");

    let r = p.command("dma", "EE0000000008", upgrade_cmd(1, &srv.url("/p.ipk"), &package), T);
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(wait_file(&installed, package.len()), package, "installed after the agent died");
    let deadline = Instant::now() + T;
    while !leftovers(&dl).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(leftovers(&dl), Vec::<String>::new(), "the package outlived the install");
    let dead = a.child.as_mut().and_then(|c| c.try_wait().ok().flatten()).is_some();
    assert!(dead, "the install command was to kill the agent; log:\n{}", a.log());
    let _ = std::fs::remove_dir_all(&dir);
}

/// One agent for the download tests: stall timeout 2 s, its own upgrade_dir,
/// an install command that copies the file.
fn download_agent(tag: &str, sn: &str, extra: &str) -> (Broker, Platform, Agent, PathBuf) {
    let dir = temp_dir(tag);
    let dl = dir.join("dl");
    let installed = dir.join("installed");
    let extra = format!(
        "\toption upgrade_dir '{}'\n\toption upgrade_stall_timeout '2'\n\toption upgrade_command 'cp {{file}} {}'\n{extra}",
        dl.display(),
        installed.display()
    );
    let broker = Broker::start();
    let p = Platform::connect(broker.port, "dma");
    let a = Agent::start(sn, &agent_section(sn, broker.port, Path::new("{state}"), &extra));
    p.wait(&format!("dma/state/{sn}"), T, |m| m.json["online"] == true).expect("birth");
    (broker, p, a, dir)
}

#[test]
fn slow_download_longer_than_the_stall_timeout_completes() {
    // A full-size package (8 MiB, the default upgrade_max_bytes) in 64 KiB
    // pieces every 55 ms: ~7 s in all, over three times the 2 s stall
    // timeout, and never 2 s without a byte.
    let package = ipk_bytes(8 * 1024 * 1024);
    let srv = Server::start(HashMap::from([(
        "/slow.ipk".to_string(),
        Route::Trickle(package.clone(), 64 * 1024, Duration::from_millis(55)),
    )]));
    let (_b, p, _a, dir) = download_agent("upgrade-slow", "EE0000000002", "");
    let started = Instant::now();
    let from = p.count();
    p.publish_raw("dma/cmd/EE0000000002", &upgrade_cmd(1, &srv.url("/slow.ipk"), &package).to_string());
    // While it downloads, a second (detached) upgrade is refused at once.
    let part = dir.join("dl").join("dma-agent-upgrade.part");
    let deadline = Instant::now() + T;
    while !part.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(part.exists(), "the download did not start in upgrade_dir");
    let mut second = upgrade_cmd(2, &srv.url("/slow.ipk"), &package);
    second["detached"] = json!(true);
    let r2 = p.command("dma", "EE0000000002", second, T);
    assert_eq!(r2["status"], "err", "{r2}");
    assert!(r2["d"]["msg"].as_str().unwrap_or_default().contains("another upgrade is running"), "{r2}");
    let r = p
        .wait_from(from, "dma/resp/cmd", Duration::from_secs(60), |m| m.json["id"] == 1)
        .expect("answer to the slow upgrade")
        .json;
    let took = started.elapsed();
    assert_eq!(r["status"], "ok", "{r}");
    assert!(took >= Duration::from_secs(6), "the trickle took {took:?}: not slower than the stall timeout");
    assert_eq!(wait_file(&dir.join("installed"), package.len()), package);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stalled_download_fails_and_leaves_no_partial_file() {
    let package = ipk_bytes(64 * 1024);
    let srv = Server::start(HashMap::from([("/stall.ipk".to_string(), Route::Stall(package.clone(), 5000))]));
    let (_b, p, a, dir) = download_agent("upgrade-stall", "EE0000000003", "");
    let started = Instant::now();
    let r = p.command("dma", "EE0000000003", upgrade_cmd(1, &srv.url("/stall.ipk"), &package), T);
    let took = started.elapsed();
    assert_eq!(r["status"], "err", "{r}");
    let msg = r["d"]["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("stalled: no data for 2 s"), "{msg}");
    // The server holds the connection for 120 s: the answer came from the stall timeout.
    assert!(took < Duration::from_secs(19), "answered after {took:?}");
    assert_eq!(leftovers(&dir.join("dl")), Vec::<String>::new(), "partial file left behind");
    assert!(!dir.join("installed").exists());
    // Nothing of the download went to the flash state dir.
    let in_state: Vec<_> = std::fs::read_dir(a.state_dir()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(in_state.iter().all(|n| !n.to_string_lossy().contains("upgrade")), "{in_state:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn oversized_download_is_cut_and_removed() {
    let package = ipk_bytes(8 * 1024);
    let srv = Server::start(HashMap::from([("/big.ipk".to_string(), Route::Body(package.clone()))]));
    let (_b, p, _a, dir) = download_agent("upgrade-big", "EE0000000004", "\toption upgrade_max_bytes '4096'\n");
    let r = p.command("dma", "EE0000000004", upgrade_cmd(1, &srv.url("/big.ipk"), &package), T);
    assert_eq!(r["status"], "err", "{r}");
    assert!(r["d"]["msg"].as_str().unwrap_or_default().contains("larger than upgrade_max_bytes"), "{r}");
    assert_eq!(leftovers(&dir.join("dl")), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redirects_are_followed_up_to_a_bound() {
    let package = ipk_bytes(5000);
    let mut routes = HashMap::from([("/pkg.ipk".to_string(), Route::Body(package.clone()))]);
    // A three-hop chain (301, 302, 307 as a CDN would) to the package...
    routes.insert("/a".into(), Route::Redirect(301, "/b".into()));
    routes.insert("/b".into(), Route::Redirect(302, "/c".into()));
    routes.insert("/c".into(), Route::Redirect(307, "/pkg.ipk".into()));
    // ...and an endless loop.
    routes.insert("/loop1".into(), Route::Redirect(302, "/loop2".into()));
    routes.insert("/loop2".into(), Route::Redirect(302, "/loop1".into()));
    let srv = Server::start(routes);
    let (_b, p, _a, dir) = download_agent("upgrade-redirect", "EE0000000005", "");

    let r = p.command("dma", "EE0000000005", upgrade_cmd(1, &srv.url("/loop1"), &package), T);
    assert_eq!(r["status"], "err", "{r}");
    assert!(r["d"]["msg"].as_str().unwrap_or_default().contains("more than 5 redirects"), "{r}");
    assert_eq!(leftovers(&dir.join("dl")), Vec::<String>::new());

    let r = p.command("dma", "EE0000000005", upgrade_cmd(2, &srv.url("/a"), &package), T);
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(wait_file(&dir.join("installed"), package.len()), package);

    // A redirect to https is followed with TLS: a listener that sees the
    // TLS ClientHello (record type 0x16) and hangs up. (No test CA can be
    // given to the download, so the handshake itself cannot complete here.)
    let tls = TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_port = tls.local_addr().unwrap().port();
    let hello = Arc::new(AtomicBool::new(false));
    let seen = hello.clone();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = tls.accept() {
            c.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut b = [0u8; 1];
            if c.read_exact(&mut b).is_ok() && b[0] == 0x16 {
                seen.store(true, Ordering::SeqCst);
            }
        }
    });
    let srv2 = Server::start(HashMap::from([(
        "/to-https".to_string(),
        Route::Redirect(302, format!("https://127.0.0.1:{tls_port}/pkg.ipk")),
    )]));
    let r = p.command("dma", "EE0000000005", upgrade_cmd(3, &srv2.url("/to-https"), &package), T);
    assert_eq!(r["status"], "err", "{r}");
    assert!(hello.load(Ordering::SeqCst), "the https location was not tried with TLS: {r}");
    assert_eq!(leftovers(&dir.join("dl")), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// An agent whose PATH holds only stand-in `apk` and/or `opkg` scripts that
/// record their arguments and copy the package; no upgrade_command, default
/// upgrade_dir (/tmp).
struct PathAgent {
    child: Child,
    dir: PathBuf,
}

impl PathAgent {
    fn start(sn: &str, port: u16, tools: &[&str]) -> PathAgent {
        let dir = temp_dir("upgrade-path");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for tool in tools {
            let script = format!(
                "#!/bin/sh\nPATH=/usr/bin:/bin\necho \"$@\" > {rec}\nfor a; do last=$a; done\ncp \"$last\" {copy}\n",
                rec = dir.join(format!("{tool}.args")).display(),
                copy = dir.join(format!("{tool}.pkg")).display()
            );
            let p = bin.join(tool);
            std::fs::write(&p, script).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let state = dir.join("state");
        let config = dir.join("dma-agent.conf");
        // Its own upgrade_dir: every agent clears leftover downloads in its
        // upgrade_dir at start-up, and other tests' agents start meanwhile.
        let extra = format!("\toption upgrade_dir '{}'\n", dir.display());
        std::fs::write(&config, agent_section(sn, port, &state, &extra)).unwrap();
        let log = std::fs::File::create(dir.join("agent.log")).unwrap();
        // The runner (qemu under CI's cross suite) is found on the test's PATH, not the agent's.
        let base = agent_command();
        let child = std::process::Command::new(on_path(base.get_program()))
            .args(base.get_args())
            .arg("--config")
            .arg(&config)
            .arg("--log-level")
            .arg("debug")
            .env("PATH", &bin)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dma-agent");
        PathAgent { child, dir }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

fn on_path(prog: &std::ffi::OsStr) -> PathBuf {
    let p = PathBuf::from(prog);
    if p.is_absolute() || p.components().count() > 1 {
        return p;
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join(&p)).find(|c| c.is_file()))
        .unwrap_or(p)
}

impl Drop for PathAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn installer_is_picked_by_package_format_and_what_the_router_has() {
    let (apk, ipk) = (apk_bytes(4000), ipk_bytes(4000));
    let srv = Server::start(HashMap::from([
        ("/dma-agent-0.2.0-r1.apk".to_string(), Route::Body(apk.clone())),
        ("/dma-agent_0.2.0-r1_x.ipk".to_string(), Route::Body(ipk.clone())),
        ("/not-a-package".to_string(), Route::Body(b"<html>login page</html>".to_vec())),
    ]));
    let (apk_url, ipk_url) = (srv.url("/dma-agent-0.2.0-r1.apk"), srv.url("/dma-agent_0.2.0-r1_x.ipk"));
    let broker = Broker::start();
    let p = Platform::connect(broker.port, "dma");

    // OpenWrt 25.12+: apk only. An .ipk is refused before anything is answered ok.
    {
        let a = PathAgent::start("EE0000000006", broker.port, &["apk"]);
        p.wait("dma/state/EE0000000006", T, |m| m.json["online"] == true).unwrap_or_else(|| panic!("birth; log:\n{}", a.log()));
        let r = p.command("dma", "EE0000000006", upgrade_cmd(1, &ipk_url, &ipk), T);
        assert_eq!(r["status"], "err", "{r}");
        assert!(r["d"]["msg"].as_str().unwrap_or_default().contains("send the .apk"), "{r}");
        let body = b"<html>login page</html>";
        let r = p.command("dma", "EE0000000006", upgrade_cmd(2, &srv.url("/not-a-package"), body), T);
        assert_eq!(r["status"], "err", "{r}");
        assert!(r["d"]["msg"].as_str().unwrap_or_default().contains("not an .ipk"), "{r}");
        assert!(!a.dir.join("apk.args").exists(), "nothing installed");

        let r = p.command("dma", "EE0000000006", upgrade_cmd(3, &apk_url, &apk), T);
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["d"]["result"]["format"], "apk");
        let args = String::from_utf8(wait_file(&a.dir.join("apk.args"), 1)).unwrap();
        assert_eq!(
            args.trim(),
            format!("add --no-network --repositories-file /dev/null --allow-untrusted {}/dma-agent-upgrade.apk", a.dir.display()),
            "log:\n{}",
            a.log()
        );
        assert_eq!(wait_file(&a.dir.join("apk.pkg"), apk.len()), apk);
    }
    // OpenWrt 24.10: opkg only.
    {
        let a = PathAgent::start("EE0000000007", broker.port, &["opkg"]);
        p.wait("dma/state/EE0000000007", T, |m| m.json["online"] == true).unwrap_or_else(|| panic!("birth; log:\n{}", a.log()));
        let r = p.command("dma", "EE0000000007", upgrade_cmd(1, &apk_url, &apk), T);
        assert_eq!(r["status"], "err", "{r}");
        assert!(r["d"]["msg"].as_str().unwrap_or_default().contains("send the .ipk"), "{r}");
        let r = p.command("dma", "EE0000000007", upgrade_cmd(2, &ipk_url, &ipk), T);
        assert_eq!(r["status"], "ok", "{r}");
        let args = String::from_utf8(wait_file(&a.dir.join("opkg.args"), 1)).unwrap();
        assert_eq!(args.trim(), format!("install {}/dma-agent-upgrade.ipk", a.dir.display()), "log:\n{}", a.log());
        assert_eq!(wait_file(&a.dir.join("opkg.pkg"), ipk.len()), ipk);
    }
}
