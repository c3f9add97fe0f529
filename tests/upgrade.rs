//! `upgrade`: download from a local HTTP server, verify the SHA-256,
//! answer, install with the configured command, restart; a redelivery is
//! answered from the journal and installs nothing again.

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn serve_once_per_request(body: Vec<u8>) -> (u16, std::thread::JoinHandle<()>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let h = std::thread::spawn(move || {
        while let Ok(Some(req)) = server.recv_timeout(Duration::from_secs(60)) {
            let _ = req.respond(tiny_http::Response::from_data(body.clone()));
        }
    });
    (port, h)
}

#[test]
fn upgrade_verifies_installs_once_and_restarts() {
    let package = b"not really an ipk, but bytes with a known hash".to_vec();
    let sha = dma_agent::util::sha256_hex(&package);
    let (http_port, _srv) = serve_once_per_request(package.clone());
    let dir = temp_dir("upgrade");
    let installed = dir.join("installed");
    let extra = format!("\toption upgrade_command 'cat {{file}} >> {}'\n", installed.display());
    let broker = Broker::start();
    let p = Platform::connect(broker.port, "dma");
    let mut a = Agent::start("EE0000000001", &agent_section("EE0000000001", broker.port, std::path::Path::new("{state}"), &extra));
    p.wait("dma/state/EE0000000001", T, |m| m.json["online"] == true).expect("birth");
    let url = format!("http://127.0.0.1:{http_port}/dma-agent.ipk");

    // A wrong hash: refused, nothing installed.
    let r = p.command("dma", "EE0000000001", json!({"id": 1, "command": "upgrade", "d": {"url": url, "sha256": "00".repeat(32)}}), T);
    assert_eq!(r["status"], "err");
    assert!(r["d"]["msg"].as_str().unwrap().contains("sha256 mismatch"), "{r}");
    assert!(!installed.exists());
    // Bad bodies.
    let r = p.command("dma", "EE0000000001", json!({"id": 2, "command": "upgrade", "d": {"url": "ftp://x", "sha256": sha}}), T);
    assert_eq!(r["status"], "err");

    let from = p.count();
    let cmd = json!({"id": 3, "command": "upgrade", "d": {"url": url, "sha256": sha}});
    let r = p.command("dma", "EE0000000001", cmd.clone(), T);
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["d"]["result"]["sha256"], sha);
    let deadline = Instant::now() + T;
    while std::fs::read(&installed).map(|b| b.len()).unwrap_or(0) < package.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read(&installed).unwrap(), package, "installed the verified package");
    // The agent restarts itself to run the new binary: a new birth (or,
    // where it cannot re-exec, an exit that procd would restart).
    let reborn = p.wait_from(from + 1, "dma/state/EE0000000001", T, |m| m.json["online"] == true).is_some();
    if !reborn {
        let exited = a.child.as_mut().and_then(|c| c.try_wait().ok().flatten()).is_some();
        assert!(exited, "neither restarted nor exited; log:\n{}", a.log());
        a.spawn();
    }
    // Redelivered: answered from the journal, not installed again.
    let r2 = p.command("dma", "EE0000000001", cmd, T);
    assert_eq!(r2["status"], "ok");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read(&installed).unwrap().len(), package.len(), "installed once");
    let _ = std::fs::remove_dir_all(&dir);
}
