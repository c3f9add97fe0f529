//! Sangfor SSL-VPN console simulator: the WebApi of
//! `seeds/sangfor-vpn-webapi.txt` over HTTPS on a self-signed certificate.
//!
//! The certificate and key are fixed test material (`tests/data/vpn-sim-*.pem`,
//! EC P-256, `CA:FALSE`, SAN `IP:127.0.0.1`/`DNS:localhost`, valid
//! 2024–2124), generated with
//! `openssl req -new` + `openssl ca -selfsign -startdate 20240101000000Z -enddate 21240101000000Z`.
//! Clients trust it by pinning [`VpnSim::cert_sha256`] or by using
//! [`VpnSim::cert_pem`] as a CA file.

mod console;
mod https;
pub mod signature;

pub use console::{OnlineUser, SimUser, PATH};

use crate::wire::sha256_hex;
use console::Console;
pub use https::HttpsServer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::io;
use crate::Sim;
use std::sync::{Arc, Mutex};

const CERT_PEM: &str = include_str!("../../../tests/data/vpn-sim-cert.pem");
const KEY_PEM: &str = include_str!("../../../tests/data/vpn-sim-key.pem");

/// How the simulated console is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnSimConfig {
    /// The WebApi shared secret.
    pub secret: String,
    /// User groups besides the root `/` (full paths).
    pub groups: Vec<String>,
    /// Largest accepted distance between a request's timestamp and now, s.
    pub max_skew_secs: u64,
}

impl Default for VpnSimConfig {
    fn default() -> Self {
        VpnSimConfig { secret: "sim-vpn-secret".into(), groups: vec!["/sales".into(), "/it".into()], max_skew_secs: 300 }
    }
}

/// A running simulated console, on HTTPS (where it listens and its fault
/// switch: [`Sim`]). Dropping it stops it.
pub type VpnSim = Sim<Console, HttpsServer>;

impl VpnSim {
    /// Serve on `bind` (`127.0.0.1:0` for a free port).
    pub fn start(bind: &str, cfg: VpnSimConfig) -> io::Result<VpnSim> {
        let console = Arc::new(Mutex::new(Console::new(&cfg.secret, cfg.max_skew_secs, &cfg.groups)));
        let handler = {
            let console = console.clone();
            Arc::new(move |req: &crate::SimRequest| console.lock().unwrap_or_else(|p| p.into_inner()).handle(req))
        };
        let server = HttpsServer::start(bind, https::server_config(CERT_PEM, KEY_PEM)?, handler)?;
        Ok(Sim::assemble(server, console, ()))
    }

    /// Lower-case hex SHA-256 of the certificate (the `fingerprint` option).
    pub fn cert_sha256(&self) -> String {
        let der = CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).map(|c| c.to_vec()).unwrap_or_default();
        sha256_hex(&der)
    }
    /// The certificate in PEM (usable as the `ca_file`).
    pub fn cert_pem(&self) -> &'static str {
        CERT_PEM
    }
    /// The last requests received: `Controller/Action` and the names of
    /// the body's fields (to check what a client sends).
    pub fn requests(&self) -> Vec<(String, Vec<String>)> {
        self.state().requests()
    }
    /// How many "take effect now" calls were accepted.
    pub fn commits(&self) -> u64 {
        self.state().commits()
    }
    /// True when changes were made since the last commit.
    pub fn pending(&self) -> bool {
        self.state().pending()
    }
    /// Users in the database (what the WebApi queries see).
    pub fn users(&self) -> Vec<SimUser> {
        self.state().users()
    }
    /// Users in effect (as of the last commit: who could log in).
    pub fn active_users(&self) -> Vec<SimUser> {
        self.state().active_users()
    }
    /// A VPN client logs in as `name` from `ip`; true when the running
    /// service lets it (the user is in effect and enabled).
    pub fn login(&self, name: &str, ip: &str) -> bool {
        self.state().login(name, ip)
    }
    /// Users logged in now.
    pub fn online(&self) -> Vec<OnlineUser> {
        self.state().online()
    }
    /// One user of the database.
    pub fn user(&self, name: &str) -> Option<SimUser> {
        self.users().into_iter().find(|u| u.name == name)
    }
}

