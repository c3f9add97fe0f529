//! The platform side of the demo: `dma-platform` (REST API + web console)
//! in-process, on the embedded broker, its database in the demo's temp dir.

use std::net::TcpListener;
use std::path::Path;

pub const USER: &str = "admin";

pub struct Console {
    pub url: String,
    pub password: String,
}

/// 127.0.0.1:8080 when free (an address to remember), else any free port.
fn listen() -> String {
    match TcpListener::bind("127.0.0.1:8080") {
        Ok(_) => "127.0.0.1:8080".into(),
        Err(_) => "127.0.0.1:0".into(),
    }
}

/// The key id of the demo's signing key.
pub const KID: &str = "demo";

pub fn start(broker_port: u16, dir: &Path, key_file: &Path) -> Result<Console, String> {
    // A fresh password per run, printed with the URL (the platform keeps only its hash).
    let password = std::env::var("DMA_DEMO_PASSWORD").ok().filter(|p| !p.is_empty()).unwrap_or_else(dma_platform::auth::random_password);
    let cfg = dma_platform::Config {
        listen: listen(),
        database: dir.join("platform.db").to_string_lossy().into_owned(),
        broker: dma_platform::config::BrokerConfig { port: broker_port, client_id: "dma-platform-demo".into(), ..Default::default() },
        users: vec![dma_platform::config::User { user: USER.into(), password_hash: dma_platform::auth::hash_password(&password)?, roles: vec!["admin".into()] }],
        signing_key: Some(dma_platform::config::SigningKeyConfig { file: key_file.to_string_lossy().into_owned(), kid: KID.into() }),
        ..Default::default()
    };
    let p = dma_platform::start(cfg).map_err(|e| format!("platform: {e}"))?;
    Ok(Console { url: p.url(), password })
}
