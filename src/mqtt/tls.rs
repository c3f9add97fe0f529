//! rustls client configuration for the broker connection, and the agent's
//! one crypto provider (ring; see CROSS.md for why not aws-lc): only the
//! suites, groups and signature checks a broker or VPN console needs
//! (README "What a broker must offer").

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
    let provider = Arc::new(provider());
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

/// The agent's crypto provider: ring's, cut to what the agent needs, so the
/// rest of ring's suites and groups are not linked (their bytes in README
/// "Size and memory"). Every TLS client of the agent (broker, VPN console,
/// upgrade download) uses it; none uses `default_provider()`.
///
/// - TLS 1.3: AES-128-GCM (every TLS 1.3 server must offer it), AES-256-GCM.
/// - TLS 1.2, ECDHE only: ECDSA or RSA certificates, AES-GCM.
/// - No ChaCha20-Poly1305: no server needs it (AES-GCM is mandatory in TLS
///   1.3 and offered by every TLS 1.2 broker); it is only faster on CPUs
///   without AES instructions, which MQTT's few KB/s do not notice.
///   -11,488 B on armv7.
/// - Key exchange: X25519 and P-256 (every TLS 1.3 server offers one of
///   them; P-384 only key exchange is not accepted).
/// - Certificate and handshake signatures: ring's full webpki set (ECDSA
///   P-256/P-384, Ed25519, RSA PKCS#1 and PSS): CA chains are signed with
///   whatever the CA chose (Let's Encrypt's ECDSA chain is P-384), so
///   nothing is dropped there.
pub fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        signature_verification_algorithms: SIG_ALGS,
        secure_random: &Ring,
        key_provider: &Ring,
    }
}

/// ring's randomness and key loading (rustls keeps its own `Ring` private).
#[derive(Debug)]
struct Ring;

impl rustls::crypto::SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new().fill(buf).map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

impl rustls::crypto::KeyProvider for Ring {
    /// A client certificate's key: ECDSA P-256/P-384 or RSA. Not Ed25519:
    /// brokers rarely accept Ed25519 client certificates, and ring's Ed25519
    /// signing (which nothing else in the agent uses: signed commands are
    /// only verified here) is ~13 KB on armv7.
    fn load_private_key(&self, key: PrivateKeyDer<'static>) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        use rustls::crypto::ring::sign;
        if let Ok(k) = sign::any_ecdsa_type(&key) {
            return Ok(k);
        }
        match sign::RsaSigningKey::new(&key) {
            Ok(k) => Ok(Arc::new(k)),
            Err(_) => Err(rustls::Error::General("key_file: not an ECDSA P-256/P-384 or RSA private key".into())),
        }
    }
}

/// rustls's ring signature set, spelled out so `default_provider()` (and
/// with it every suite and group) is never referenced.
static SIG_ALGS: rustls::crypto::WebPkiSupportedAlgorithms = {
    use rustls::SignatureScheme as S;
    use webpki::ring as w;
    rustls::crypto::WebPkiSupportedAlgorithms {
        all: &[
            w::ECDSA_P256_SHA256,
            w::ECDSA_P256_SHA384,
            w::ECDSA_P384_SHA256,
            w::ECDSA_P384_SHA384,
            w::ED25519,
            w::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            w::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            w::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            w::RSA_PKCS1_2048_8192_SHA256,
            w::RSA_PKCS1_2048_8192_SHA384,
            w::RSA_PKCS1_2048_8192_SHA512,
            w::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            w::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            w::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            (S::ECDSA_NISTP384_SHA384, &[w::ECDSA_P384_SHA384, w::ECDSA_P256_SHA384]),
            (S::ECDSA_NISTP256_SHA256, &[w::ECDSA_P256_SHA256, w::ECDSA_P384_SHA256]),
            (S::ED25519, &[w::ED25519]),
            (S::RSA_PSS_SHA512, &[w::RSA_PSS_2048_8192_SHA512_LEGACY_KEY]),
            (S::RSA_PSS_SHA384, &[w::RSA_PSS_2048_8192_SHA384_LEGACY_KEY]),
            (S::RSA_PSS_SHA256, &[w::RSA_PSS_2048_8192_SHA256_LEGACY_KEY]),
            (S::RSA_PKCS1_SHA512, &[w::RSA_PKCS1_2048_8192_SHA512]),
            (S::RSA_PKCS1_SHA384, &[w::RSA_PKCS1_2048_8192_SHA384]),
            (S::RSA_PKCS1_SHA256, &[w::RSA_PKCS1_2048_8192_SHA256]),
        ],
    }
};

/// Session resumption for one peer: a few tickets, not rustls's default
/// cache of 256 sessions (~14 KiB allocated up front per configuration).
pub fn resumption() -> rustls::client::Resumption {
    rustls::client::Resumption::in_memory_sessions(4)
}

#[cfg(test)]
mod tests {
    use rustls::{CipherSuite as C, SignatureScheme as S, SupportedCipherSuite};

    /// What README "What a broker must offer" promises, and no more
    /// (no ChaCha20, no P-384 key exchange, TLS 1.2 with ECDHE only).
    #[test]
    fn the_provider_has_what_a_broker_needs_and_no_more() {
        let p = super::provider();
        let groups: Vec<String> = p.kx_groups.iter().map(|g| format!("{:?}", g.name())).collect();
        assert_eq!(groups, ["X25519", "secp256r1"], "no P-384 key exchange");
        let suites: Vec<C> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        for must in [C::TLS13_AES_128_GCM_SHA256, C::TLS13_AES_256_GCM_SHA384, C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256] {
            assert!(suites.contains(&must), "{must:?} offered");
        }
        assert!(!suites.iter().any(|s| format!("{s:?}").contains("CHACHA")), "no ChaCha20: {suites:?}");
        for s in &p.cipher_suites {
            if let SupportedCipherSuite::Tls12(_) = s {
                assert!(format!("{:?}", s.suite()).contains("ECDHE"), "TLS 1.2 is ECDHE only: {:?}", s.suite());
            }
        }
        // Certificate chains: P-384 (Let's Encrypt's ECDSA chain), RSA PSS and PKCS#1 verify.
        let schemes = p.signature_verification_algorithms.supported_schemes();
        for must in [S::ECDSA_NISTP384_SHA384, S::ECDSA_NISTP256_SHA256, S::RSA_PSS_SHA256, S::RSA_PKCS1_SHA256, S::ED25519] {
            assert!(schemes.contains(&must), "{must:?} verified");
        }
    }

    /// Client certificate keys: ECDSA (P-256, P-384) and RSA load; Ed25519
    /// is refused with a reason (README "What a broker must offer").
    #[test]
    fn client_keys_ecdsa_and_rsa_load_ed25519_is_refused() {
        use rustls::pki_types::{pem::PemObject, PrivateKeyDer};
        let dir = std::env::temp_dir().join(format!("dma-tls-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let make = |name: &str, args: &[&str]| {
            let path = dir.join(name);
            let st = std::process::Command::new("openssl").args(args).arg("-out").arg(&path).output().expect("openssl");
            assert!(st.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&st.stderr));
            PrivateKeyDer::from_pem_file(&path).unwrap()
        };
        let p = super::provider();
        for (name, args) in [
            ("p256.key", &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..]),
            ("p384.key", &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..]),
            ("rsa.key", &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..]),
        ] {
            assert!(p.key_provider.load_private_key(make(name, args)).is_ok(), "{name} loads");
        }
        let err = p.key_provider.load_private_key(make("ed.key", &["genpkey", "-algorithm", "ed25519"])).err().expect("Ed25519 refused");
        assert!(err.to_string().contains("not an ECDSA P-256/P-384 or RSA private key"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
