//! rustls client configuration for the broker connection (ring provider;
//! see CROSS.md for why not aws-lc).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Where OpenWrt's ca-bundle / ca-certificates packages put the roots.
const SYSTEM_BUNDLES: &[&str] = &["/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/cert.pem"];

/// The system CA bundle, if the router has one.
pub fn system_bundle() -> Option<&'static str> {
    SYSTEM_BUNDLES.iter().find(|p| std::path::Path::new(p).exists()).copied()
}

/// Build the client config: roots from `ca_file` (or the system bundle),
/// and a client certificate when both `cert_file` and `key_file` are set.
pub fn client_config(ca_file: &str, cert_file: &str, key_file: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca_path = if ca_file.is_empty() {
        system_bundle()
            .map(str::to_string)
            .ok_or("tls is on but no ca_file is set and no system CA bundle exists")?
    } else {
        ca_file.to_string()
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&ca_path).map_err(|e| format!("ca_file {ca_path}: {e}"))?;
    for c in certs {
        let c = c.map_err(|e| format!("ca_file {ca_path}: {e}"))?;
        roots.add(c).map_err(|e| format!("ca_file {ca_path}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("ca_file {ca_path}: no certificates"));
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = if cert_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
            .map_err(|e| format!("cert_file {cert_file}: {e}"))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cert_file {cert_file}: {e}"))?;
        // Never echo key material: only the path goes into the error.
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|_| format!("key_file {key_file}: no usable private key"))?;
        builder.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate: {e}"))?
    };
    config.resumption = resumption();
    Ok(Arc::new(config))
}

/// Session resumption for one peer: a few tickets, not rustls's default
/// cache of 256 sessions (~14 KiB allocated up front per configuration).
pub fn resumption() -> rustls::client::Resumption {
    rustls::client::Resumption::in_memory_sessions(4)
}
