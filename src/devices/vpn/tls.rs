//! Which console certificates the client trusts.
//!
//! VPN consoles ship self-signed certificates, so the operator either pins
//! the certificate's SHA-256 fingerprint or names a CA file (PEM). With
//! neither, the router's CA bundle applies (OpenWrt's ca-certificates:
//! `/etc/ssl/certs/ca-certificates.crt`; no roots are compiled in) and a
//! self-signed console fails the handshake: verification is never switched off.

use crate::util::hex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// How the console's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Exactly this end-entity certificate (SHA-256 of its DER).
    Pinned([u8; 32]),
    /// Certificates chaining to the roots in this PEM file.
    CaFile(String),
    /// Certificates chaining to the system CA bundle.
    System,
}

impl Trust {
    /// From the `fingerprint` and `ca_file` options (at most one of them).
    pub fn from_options(fingerprint: Option<&str>, ca_file: Option<&str>) -> Result<Trust, String> {
        match (fingerprint, ca_file) {
            (Some(_), Some(_)) => Err("set either fingerprint or ca_file, not both".into()),
            (Some(fp), None) => parse_fingerprint(fp).map(Trust::Pinned),
            (None, Some(path)) => Ok(Trust::CaFile(path.to_string())),
            (None, None) => Ok(Trust::System),
        }
    }

    /// A client configuration for this trust, on the ring provider.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(crate::mqtt::tls::provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let mut config = match self {
            Trust::Pinned(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(*pin, &provider)))
                .with_no_client_auth(),
            Trust::CaFile(path) => builder.with_root_certificates(roots_from_file(path)?).with_no_client_auth(),
            Trust::System => {
                let path = crate::mqtt::tls::system_bundle()
                    .ok_or("no fingerprint, no ca_file and no system CA bundle (/etc/ssl/certs/ca-certificates.crt)")?;
                builder.with_root_certificates(roots_from_file(path)?).with_no_client_auth()
            }
        };
        config.resumption = crate::mqtt::tls::resumption();
        Ok(Arc::new(config))
    }
}

/// Parse 64 hex digits, with or without `:` (or space) separators.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
    let bad = || format!("fingerprint must be the certificate's SHA-256 as 64 hex digits, got {} characters", digits.len());
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// SHA-256 of a DER certificate.
pub fn cert_sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn roots_from_file(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("ca_file {path}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("ca_file {path}: {e}"))?;
        roots.add(cert).map_err(|e| format!("ca_file {path}: unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("ca_file {path}: no certificate found"));
    }
    Ok(roots)
}

/// Accepts exactly one end-entity certificate, by its SHA-256. The chain
/// and the name are not checked (the pin is stricter than both); the
/// handshake signatures are, with the provider's algorithms, so a peer
/// that merely replays the certificate without its key still fails.
#[derive(Debug)]
struct PinnedVerifier {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    fn new(pin: [u8; 32], provider: &CryptoProvider) -> Self {
        PinnedVerifier { pin, algorithms: provider.signature_verification_algorithms }
    }
}

/// Why a pinned handshake was refused; shown in the client's error.
#[derive(Debug)]
struct PinMismatch {
    expected: String,
    presented: String,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "certificate fingerprint mismatch: pinned sha256 {}, console presented {}", self.expected, self.presented)
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = cert_sha256(end_entity);
        if presented == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        let why = PinMismatch { expected: hex(&self.pin), presented: hex(&presented) };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(why)))))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_forms() {
        let plain = "BA97C8BB0E8C44B10270C727286D31BA8E5B24EE894CC20C105D536BD558D47D";
        let colons = "ba:97:c8:bb:0e:8c:44:b1:02:70:c7:27:28:6d:31:ba:8e:5b:24:ee:89:4c:c2:0c:10:5d:53:6b:d5:58:d4:7d";
        assert_eq!(parse_fingerprint(plain).unwrap(), parse_fingerprint(colons).unwrap());
        assert_eq!(parse_fingerprint(plain).unwrap()[0], 0xba);
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn trust_choice() {
        assert_eq!(Trust::from_options(None, None).unwrap(), Trust::System);
        assert!(Trust::from_options(Some("00"), Some("/x")).is_err());
        assert!(Trust::CaFile("/nonexistent/ca.pem".into()).client_config().is_err());
        // The system bundle where the host has one; a clear error where not.
        match crate::mqtt::tls::system_bundle() {
            Some(_) => assert!(Trust::System.client_config().is_ok()),
            None => assert!(Trust::System.client_config().unwrap_err().contains("system CA bundle")),
        }
    }
}
