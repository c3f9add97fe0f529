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
    // Extensions make them X.509 v3 (webpki refuses v1 certificates).
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n").unwrap();
    for name in ["server", "client"] {
        openssl(dir, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"), "-subj", &format!("/CN={name}")]);
        let mut args = vec!["x509", "-req", "-in", "", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "", "-days", "2"];
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        args[3] = &csr;
        args[10] = &pem;
        let ext = format!("{name}.ext");
        args.extend(["-extfile", ext.as_str()]);
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
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let broker = Kill(Command::new(mosq).arg("-c").arg(&conf).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("mosquitto"));
    std::thread::sleep(std::time::Duration::from_millis(700));

    let extra = format!(
        "\toption tls '1'\n\toption ca_file '{d}/ca.pem'\n\toption cert_file '{d}/client.pem'\n\toption key_file '{d}/client.key'\n",
        d = dir.display()
    );
    let cfg = agent_section("CC0000000001", port, Path::new("{state}"), &extra);
    let agent = Agent::start("CC0000000001", &cfg);
    // The platform side speaks mTLS too, with the same certificates.
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
    let deadline = std::time::Instant::now() + T;
    let mut answer = None;
    let mut sent = false;
    while std::time::Instant::now() < deadline && answer.is_none() {
        if let Ok(Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p)))) = conn.recv_timeout(std::time::Duration::from_millis(500)) {
            let v = serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap_or_default();
            // Once the agent is up (its birth, over TLS), send it a command.
            if p.topic == "dma/state/CC0000000001" && v["online"] == true && !sent {
                sent = true;
                let cmd = json!({"id": 1, "command": "sh", "d": {"shcmd": "echo over-tls"}}).to_string();
                client.publish("dma/cmd/CC0000000001", rumqttc::QoS::AtLeastOnce, false, cmd).unwrap();
            }
            if p.topic == "dma/resp/cmd/CC0000000001" {
                answer = Some(v);
            }
        }
    }
    drop(broker);
    let a = answer.unwrap_or_else(|| panic!("no answer over TLS; agent log:\n{}", agent.log()));
    assert_eq!(unb64(&a["d"]["result"]), "over-tls\n");
    let _ = std::fs::remove_dir_all(&dir);
}
