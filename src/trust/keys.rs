//! Keys: trusted public keys written `kid:BASE64` (UCI `list trusted_key`)
//! and Ed25519 private keys as PEM PKCS#8 (`ctl keygen`, `ctl send
//! --sign-key`). Public keys are not secrets: they are shown in full.

use base64::Engine as _;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A public key the agent trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub kid: String,
    pub public: [u8; 32],
}

impl TrustedKey {
    /// Parse `kid:BASE64` (standard base64 with padding of 32 bytes).
    pub fn parse(text: &str) -> Result<TrustedKey, String> {
        let (kid, b64) = text.trim().split_once(':').ok_or_else(|| format!("'{text}' is not kid:BASE64 (e.g. k1:Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=)"))?;
        check_kid(kid)?;
        let bytes = B64.decode(b64).map_err(|e| format!("key '{kid}': not standard base64 ({e})"))?;
        let public: [u8; 32] = bytes.as_slice().try_into().map_err(|_| format!("key '{kid}': an Ed25519 public key has 32 bytes, not {}", bytes.len()))?;
        Ok(TrustedKey { kid: kid.to_string(), public })
    }

    /// The `kid:BASE64` form.
    pub fn text(&self) -> String {
        format!("{}:{}", self.kid, B64.encode(self.public))
    }
}

/// A key id: 1–32 characters of `A-Z a-z 0-9 . _ -`.
pub fn check_kid(kid: &str) -> Result<(), String> {
    if kid.is_empty() || kid.len() > 32 || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(format!("'{kid}' is not a key id (1-32 characters of A-Z a-z 0-9 . _ -)"));
    }
    Ok(())
}

/// Parse a list of `kid:BASE64`; key ids must be distinct.
pub fn parse_list(items: &[String]) -> Result<Vec<TrustedKey>, String> {
    let mut out: Vec<TrustedKey> = Vec::new();
    for i in items {
        let k = TrustedKey::parse(i)?;
        if out.iter().any(|o| o.kid == k.kid) {
            return Err(format!("key id '{}' is listed twice", k.kid));
        }
        out.push(k);
    }
    Ok(out)
}

/// The default key id of a public key: `k` + 8 hex digits of its SHA-256.
pub fn default_kid(public: &[u8]) -> String {
    let h = crate::util::sha256_hex(public);
    format!("k{}", h.get(..8).unwrap_or(&h))
}

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// PEM text of a PKCS#8 document.
pub fn pem_encode(der: &[u8]) -> String {
    let b = B64.encode(der);
    let mut out = String::from(PEM_BEGIN);
    out.push('\n');
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(PEM_END);
    out.push('\n');
    out
}

/// The DER of a `PRIVATE KEY` PEM block.
pub fn pem_decode(text: &str) -> Result<Vec<u8>, String> {
    let start = text.find(PEM_BEGIN).ok_or("not a PEM private key (no '-----BEGIN PRIVATE KEY-----')")?;
    let body = text.get(start + PEM_BEGIN.len()..).unwrap_or("");
    let end = body.find(PEM_END).ok_or("PEM private key without its END line")?;
    let b64: String = body.get(..end).unwrap_or("").chars().filter(|c| !c.is_whitespace()).collect();
    B64.decode(b64).map_err(|e| format!("PEM private key: bad base64 ({e})"))
}

/// An Ed25519 key pair from a PEM PKCS#8 file's text (v1 or v2).
pub fn load_private(pem: &str) -> Result<ring::signature::Ed25519KeyPair, String> {
    let der = pem_decode(pem)?;
    ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| format!("not an Ed25519 PKCS#8 private key ({e})"))
}

/// A new key pair: (PEM of the PKCS#8 private key, public key bytes).
pub fn generate() -> Result<(String, [u8; 32]), String> {
    use ring::signature::KeyPair as _;
    let rng = ring::rand::SystemRandom::new();
    let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "no randomness for a new key".to_string())?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|e| format!("new key unreadable: {e}"))?;
    let public: [u8; 32] = pair.public_key().as_ref().try_into().map_err(|_| "unexpected public key size".to_string())?;
    Ok((pem_encode(doc.as_ref()), public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_public_keys_with_reasons() {
        let k = TrustedKey::parse("k1:Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=").unwrap();
        assert_eq!(k.kid, "k1");
        assert_eq!(k.text(), "k1:Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=");
        assert!(TrustedKey::parse("nokid").unwrap_err().contains("kid:BASE64"));
        assert!(TrustedKey::parse(":Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=").unwrap_err().contains("key id"));
        assert!(TrustedKey::parse("k 1:Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=").is_err());
        assert!(TrustedKey::parse("k1:AAAA").unwrap_err().contains("32 bytes"));
        assert!(TrustedKey::parse("k1:!!!").unwrap_err().contains("base64"));
        let two = ["a:Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=".to_string(), "a:Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=".to_string()];
        assert!(parse_list(&two).unwrap_err().contains("twice"));
    }

    #[test]
    fn generated_key_round_trips_through_pem() {
        use ring::signature::KeyPair as _;
        let (pem, public) = generate().unwrap();
        assert!(pem.starts_with(PEM_BEGIN));
        let pair = load_private(&pem).unwrap();
        assert_eq!(pair.public_key().as_ref(), &public);
        assert!(load_private("junk").is_err());
        assert_eq!(default_kid(&public).len(), 9);
    }
}
