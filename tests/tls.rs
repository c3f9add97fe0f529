//! MQTT over TLS with a client certificate (mTLS) against mosquitto, with
//! certificates made by openssl for the test.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(st.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&st.stderr));
}

fn make_pki(dir: &Path) {
    openssl(dir, &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca"]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for (name, ext) in [("server", true), ("client", false)] {
        openssl(dir, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"), "-subj", &format!("/CN={name}")]);
        let mut args = vec!["x509", "-req", "-in", "", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "", "-days", "2"];
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        args[3] = &csr;
        args[10] = &pem;
        if ext {
            args.extend(["-extfile", "san.ext"]);
        }
        openssl(dir, &args);
    }
}

#[test]
fn mutual_tls_session() {
    let dir = temp_dir("pki");
    make_pki(&dir);
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mosq = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].into_iter().find(|p| Path::new(p).exists()).expect("mosquitto");
    let mut broker = Command::new(mosq).arg("-c").arg(&conf).spawn().expect("mosquitto");
    std::thread::sleep(std::time::Duration::from_millis(700));

    let extra = format!(
        "\toption tls '1'\n\toption ca_file '{d}/ca.pem'\n\toption cert_file '{d}/client.pem'\n\toption key_file '{d}/client.key'\n",
        d = dir.display()
    );
    let cfg = agent_section("CC0000000001", port, Path::new("{state}"), &extra);
    let agent = Agent::start("CC0000000001", &cfg);
    // The platform side also speaks mTLS, through the operator CLI's
    // connection code path being out of scope here: use mosquitto_sub-like
    // rumqttc with the same certificates.
    let tls = dma_agent::mqtt::tls::client_config(
        &format!("{}/ca.pem", dir.display()),
        &format!("{}/client.pem", dir.display()),
        &format!("{}/client.key", dir.display()),
    )
    .expect("client tls config");
    let mut o = rumqttc::MqttOptions::new("platform-tls", "127.0.0.1", port);
    o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
    let (client, mut conn) = rumqttc::Client::new(o, 10);
    client.subscribe("dma/#", rumqttc::QoS::AtLeastOnce).unwrap();
    client
        .publish("dma/cmd/CC0000000001", rumqttc::QoS::AtLeastOnce, false, json!({"id": 1, "command": "sh", "d": {"shcmd": "echo over-tls"}}).to_string())
        .unwrap();
    let deadline = std::time::Instant::now() + T;
    let mut answer = None;
    while std::time::Instant::now() < deadline && answer.is_none() {
        if let Ok(Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p)))) = conn.recv_timeout(std::time::Duration::from_millis(500)) {
            if p.topic == "dma/resp/cmd" {
                answer = serde_json::from_slice::<serde_json::Value>(&p.payload).ok();
            }
        }
    }
    let _ = broker.kill();
    let _ = broker.wait();
    let a = answer.unwrap_or_else(|| panic!("no answer over TLS; agent log:\n{}", agent.log()));
    assert_eq!(unb64(&a["d"]["result"]), "over-tls\n");
    let _ = std::fs::remove_dir_all(&dir);
}
