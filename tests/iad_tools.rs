//! Issue 21 items 4 and 5: the IAD's network tests and firmware upgrade end
//! to end, the client against the IAD simulator over real HTTP on 127.0.0.1.

use base64::Engine;
use dma_agent::devices::iad::IadClient;
use dma_agent::devices::{DeviceConfig, DeviceError, DeviceKind, LanDevice};
use dma_sims::iad::{IadSim, IadSimConfig};
use dma_sims::{SimResponse, SimServer};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

fn sim_with(cfg: IadSimConfig) -> IadSim {
    IadSim::start("127.0.0.1:0", IadSimConfig { diag_time: Duration::from_millis(600), reboot_time: Duration::from_millis(1500), ..cfg })
        .expect("sim starts")
}

fn client(sim: &IadSim, options: &[(&str, &str)]) -> IadClient {
    IadClient::new(&DeviceConfig {
        name: "iad1".into(),
        kind: DeviceKind::Iad,
        address: sim.url(),
        username: "admin".into(),
        password: "admin".into(),
        poll_interval: Duration::from_secs(60),
        timeout: Duration::from_millis(800),
        enabled: true,
        options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    })
    .expect("client")
}

#[test]
fn ping_runs_and_its_result_file_is_fetched() {
    let sim = sim_with(IadSimConfig::default());
    let mut c = client(&sim, &[]);
    let r = c.command("set", &json!({"action": "diagnose", "test": "ping", "data": {"host": "192.0.2.1", "count": 4}})).expect("ping");
    assert_eq!((r["done"].as_bool(), r["status"].as_i64(), r["url"].as_str()), (Some(true), Some(3), Some("/download/ping_result")), "{r}");
    let text = r["text"].as_str().expect("text result");
    assert!(text.contains("PING 192.0.2.1") && text.contains("4 packets transmitted"), "{text}");
    assert_eq!(r["truncated"], false);
    assert_eq!(r["bytes"].as_u64(), Some(text.len() as u64));
    assert_eq!(sim.call_count("sys_analysis/ping_do"), 1);
    assert!(sim.call_count("sys_analysis/ping_result") >= 2, "polled until completed");
    // A field out of the seed's range is the IAD's error; get cannot start a test.
    let e = c.command("set", &json!({"action": "diagnose", "test": "ping", "data": {"host": "192.0.2.1", "count": 500}})).unwrap_err();
    assert!(matches!(e, DeviceError::Device { code: 400, .. }), "{e:?}");
    assert!(matches!(c.command("get", &json!({"action": "diagnose", "test": "ping"})), Err(DeviceError::BadRequest(_))));
}

#[test]
fn binary_results_are_base64_and_cut_at_the_bound() {
    let sim = sim_with(IadSimConfig::default());
    let mut c = client(&sim, &[]);
    // A capture runs until stopped: not done within the wait, then stopped.
    let r = c.command("set", &json!({"action": "diagnose", "test": "capture", "data": {"interface": "wan", "action": "1"}, "wait": 1})).unwrap();
    assert_eq!((r["done"].as_bool(), r["status"].as_i64()), (Some(false), Some(2)), "{r}");
    let r = c.command("set", &json!({"action": "diagnose", "test": "capture", "data": {"action": "0"}})).unwrap();
    assert_eq!(r["done"], true, "{r}");
    let bytes = base64::engine::general_purpose::STANDARD.decode(r["base64"].as_str().expect("binary as base64")).unwrap();
    assert_eq!(bytes.get(..2), Some(&[0x1f, 0x8b][..]), "a gzip stream");
    assert!(r.get("text").is_none());
    // A 3 s recording is 96000 bytes: cut at max_bytes and flagged.
    let r = c.command("set", &json!({"action": "diagnose", "test": "record", "data": {"slotnum": 0, "record": 1, "record_channel": 1, "record_limit": 3}, "max_bytes": 50000})).unwrap();
    assert_eq!((r["status"].as_i64(), r["truncated"].as_bool(), r["bytes"].as_u64()), (Some(2), Some(true), Some(50000)), "{r}");
}

fn firmware_server(body: Vec<u8>) -> SimServer {
    SimServer::start("127.0.0.1:0", move |req| {
        if req.path == "/fw.bin" {
            SimResponse { status: 200, content_type: "application/octet-stream".into(), body: body.clone() }
        } else {
            SimResponse::text(404, "no")
        }
    })
    .expect("file server")
}

#[test]
fn firmware_upgrade_end_to_end_with_the_core_service_down_and_back() {
    let sim = sim_with(IadSimConfig::default());
    let dir = std::env::temp_dir().join(format!("iad-fw-{}", std::process::id()));
    let mut c = client(&sim, &[("upgrade_dir", dir.to_str().unwrap())]);
    let image: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let sha = hex(&Sha256::digest(&image));
    let files = firmware_server(image);
    let before = sim.firmware_version();

    // upload_permission alone is refused before anything is sent.
    let e = c.command("set", &json!({"api": "sys_maintain/upload_permission"})).unwrap_err();
    assert!(matches!(&e, DeviceError::BadRequest(m) if m.contains("upgrade")), "{e:?}");
    assert_eq!(sim.call_count("sys_maintain/upload_permission"), 0);

    // A wrong checksum: nothing reaches the IAD.
    let wrong = json!({"action": "upgrade", "url": format!("{}/fw.bin", files.url()), "sha256": "00".repeat(32)});
    let e = c.command("set", &wrong).unwrap_err();
    assert!(e.to_string().contains("sha256 mismatch"), "{e}");
    assert!(sim.upgrade_log().is_empty());

    let r = c.command("set", &json!({"action": "upgrade", "url": format!("{}/fw.bin", files.url()), "sha256": sha, "wait": 30})).expect("upgrade");
    let want = format!("r0-{}", &sha[..8]);
    assert_eq!((r["firmware"].as_str(), r["firmware_before"].as_str()), (Some(want.as_str()), Some(before.as_str())), "{r}");
    assert_eq!((r["upgraded"].as_bool(), r["upload"]["msg"].as_str()), (Some(true), Some("Upgrading Firmware")));
    assert_eq!(sim.upgrade_log(), ["permission", "core down", "upload 300000 keep_sys=yes", "core up", "rebooting"]);
    assert!(!sim.core_down());
    c.poll().expect("back and polled");
    assert!(std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) == 0, "the downloaded firmware is removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_refused_upload_says_the_core_service_may_be_down() {
    let sim = sim_with(IadSimConfig { max_upload_bytes: 1000, ..IadSimConfig::default() });
    let dir = std::env::temp_dir().join(format!("iad-fw2-{}", std::process::id()));
    let mut c = client(&sim, &[("upgrade_dir", dir.to_str().unwrap())]);
    let image = vec![7u8; 5000];
    let sha = hex(&Sha256::digest(&image));
    let files = firmware_server(image);
    let e = c.command("set", &json!({"action": "upgrade", "url": format!("{}/fw.bin", files.url()), "sha256": sha})).unwrap_err();
    assert!(matches!(&e, DeviceError::Device { code: 413, msg } if msg.contains("restarted by hand")), "{e:?}");
    assert!(sim.core_down(), "stuck, as the seed warns");
    sim.power_cycle();
    c.poll().expect("back after a restart by hand");
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Credentials in an IAD answer never leave the agent.
#[test]
fn provisioning_password_is_masked_in_answers() {
    let sim = sim_with(IadSimConfig::default());
    let mut c = client(&sim, &[]);
    c.command("set", &json!({"api": "sys_provision/set", "data": {"upgrade_user": "ops", "upgrade_pass": "prov-secret-1"}})).unwrap();
    let r = c.command("get", &json!({"api": "sys_provision/get"})).unwrap();
    assert_eq!((r["upgrade_user"].as_str(), r["upgrade_pass"].as_str()), (Some("ops"), Some("******")), "{r}");
    assert!(!r.to_string().contains("prov-secret-1"));
}
