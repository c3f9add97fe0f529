//! Ed25519 command signing (docs/PROTOCOL.md "Signed commands"): the key
//! file (`dma-platform keygen`, PEM PKCS#8), the public key in its
//! `kid:BASE64` form, and the signed envelope of one command try. The
//! private key stays inside `Signer`: nothing here logs, prints or serves it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// Signed before the command's bytes, so a signature over a command can
/// never be taken for one over anything else.
pub const DOMAIN: &[u8] = dma_wire::command::SIGNED_CONTEXT;
/// Largest key file read (a PKCS#8 Ed25519 PEM is ~120 bytes).
const MAX_KEY_FILE: u64 = 4096;

/// A key id: 1–32 of `A-Z a-z 0-9 . _ -`.
pub fn valid_kid(k: &str) -> bool {
    (1..=32).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The platform's signing key (no Debug: the private key never prints).
pub struct Signer {
    kid: String,
    pair: Ed25519KeyPair,
}

impl Signer {
    /// Read a PEM PKCS#8 Ed25519 private key (v2 as `keygen` writes it, or
    /// v1 as `openssl genpkey -algorithm ed25519` does).
    pub fn load(file: &str, kid: &str) -> Result<Signer, String> {
        if !valid_kid(kid) {
            return Err(format!("signing_key.kid {kid:?}: 1-32 characters of A-Z a-z 0-9 . _ -"));
        }
        let meta = std::fs::metadata(file).map_err(|e| format!("signing_key.file {file}: {e}"))?;
        if meta.len() > MAX_KEY_FILE {
            return Err(format!("signing_key.file {file}: larger than {MAX_KEY_FILE} bytes, not a key"));
        }
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                log::warn!("signing_key.file {file:?} is readable by others than its owner: chmod 600 it");
            }
        }
        let text = std::fs::read_to_string(file).map_err(|e| format!("signing_key.file {file}: {e}"))?;
        let der = pem_body(&text).ok_or_else(|| format!("signing_key.file {file}: not a PEM 'PRIVATE KEY'"))?;
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der))
            .map_err(|e| format!("signing_key.file {file}: not an Ed25519 PKCS#8 key ({e})"))?;
        Ok(Signer { kid: kid.to_string(), pair })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `kid:BASE64` of the public key, as the agent's `trusted_key` lists it.
    pub fn public_key(&self) -> String {
        format!("{}:{}", self.kid, B64.encode(self.pair.public_key().as_ref()))
    }

    /// `{"kid", "publicKey": "kid:BASE64"}` (an admin endpoint shows it for provisioning).
    pub fn public_info(&self) -> Value {
        json!({"kid": self.kid, "publicKey": self.public_key()})
    }

    /// The `signed` object over `cmd`, the inner command's exact bytes.
    pub fn sign(&self, cmd: &[u8]) -> Value {
        let mut msg = Vec::with_capacity(DOMAIN.len() + cmd.len());
        msg.extend_from_slice(DOMAIN);
        msg.extend_from_slice(cmd);
        let sig = self.pair.sign(&msg);
        let signed = dma_wire::command::Signed {
            v: dma_wire::command::SIGNED_VERSION,
            alg: dma_wire::command::SIGNED_ALG.into(),
            kid: self.kid.clone(),
            cmd: B64.encode(cmd),
            sig: B64.encode(sig.as_ref()),
        };
        // A struct of strings and a number always converts.
        serde_json::to_value(signed).unwrap_or_default()
    }

    /// The whole envelope of one try: `{"signed": {…}, "tryTimes": n}`.
    pub fn envelope(&self, cmd: &[u8], try_times: i64) -> Value {
        json!({"signed": self.sign(cmd), "tryTimes": try_times})
    }
}

impl crate::Shared {
    /// For the admin endpoint that shows the key to provision routers with:
    /// `{"kid", "publicKey": "kid:BASE64"}`, `None` without a signing key.
    pub fn public_key_info(&self) -> Option<Value> {
        self.signer.as_ref().map(Signer::public_info)
    }
}

/// The DER inside `-----BEGIN PRIVATE KEY-----` … `-----END PRIVATE KEY-----`.
fn pem_body(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN PRIVATE KEY-----")?;
    let rest = text.get(start + "-----BEGIN PRIVATE KEY-----".len()..)?;
    let end = rest.find("-----END PRIVATE KEY-----")?;
    let b64: String = rest.get(..end)?.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    B64.decode(b64).ok()
}

fn pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// `dma-platform keygen`: a new key written to `out` (created, never
/// overwritten, mode 0600); returns its public key `kid:BASE64`.
pub fn keygen(out: &Path, kid: &str) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    if !valid_kid(kid) {
        return Err(format!("--kid {kid:?}: 1-32 characters of A-Z a-z 0-9 . _ -"));
    }
    let rng = ring::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "no random source for a new key".to_string())?;
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|e| format!("new key: {e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| format!("{}: {e} (keygen never overwrites a key)", out.display()))?;
    f.write_all(pem(doc.as_ref()).as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(format!("{kid}:{}", B64.encode(pair.public_key().as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ED25519};

    /// `openssl genpkey -algorithm ed25519` (PKCS#8 v1, no public key inside).
    const OPENSSL_V1: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIPfRZ7cIDfa3qP+6iE/DFLi0DFWZEb8CxWYEIZfTW1os\n-----END PRIVATE KEY-----\n";
    /// `openssl pkey -pubout` of it: the last 32 bytes, base64.
    const OPENSSL_V1_PUB: &str = "lhesNVdSQ6zG3KH+BwsdZ5sWcl1xkFlvzn+mkEN5WCg=";

    fn verify(public: &str, signed: &Value) -> bool {
        let pk = B64.decode(public.split_once(':').unwrap().1).unwrap();
        let cmd = B64.decode(signed["cmd"].as_str().unwrap()).unwrap();
        let sig = B64.decode(signed["sig"].as_str().unwrap()).unwrap();
        let msg = [b"dma-cmd-v1\n".as_slice(), &cmd].concat();
        UnparsedPublicKey::new(&ED25519, pk).verify(&msg, &sig).is_ok()
    }

    #[test]
    fn keygen_sign_verify_and_one_byte_changed_fails() {
        let dir = std::env::temp_dir().join(format!("dma-signing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("k.pem");
        let public = keygen(&file, "k1").unwrap();
        assert!(public.starts_with("k1:") && public.len() == 3 + 44, "{public}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(keygen(&file, "k1").is_err(), "never overwrites");
        assert!(keygen(&dir.join("x.pem"), "bad kid!").is_err());

        let s = Signer::load(file.to_str().unwrap(), "k1").unwrap();
        assert_eq!(s.public_key(), public);
        assert_eq!(s.public_info(), json!({"kid": "k1", "publicKey": public}));
        let cmd = br#"{"id":1,"sn":"A1","command":"sh","d":{"shcmd":"id"},"publishTime":5,"expires":0}"#;
        let env = s.envelope(cmd, 3);
        assert_eq!((env["tryTimes"].as_i64(), env["signed"]["v"].as_i64(), env["signed"]["alg"].as_str(), env["signed"]["kid"].as_str()), (Some(3), Some(1), Some("ed25519"), Some("k1")));
        assert_eq!(B64.decode(env["signed"]["cmd"].as_str().unwrap()).unwrap(), cmd.to_vec(), "the exact bytes");
        assert!(verify(&public, &env["signed"]));
        // One byte changed in the command: refused.
        let mut bad = env["signed"].clone();
        let mut forged = cmd.to_vec();
        forged[30] ^= 1;
        bad["cmd"] = json!(B64.encode(&forged));
        assert!(!verify(&public, &bad));
        // Another key's public key: refused.
        let other = keygen(&dir.join("k2.pem"), "k2").unwrap();
        assert!(!verify(&other, &env["signed"]));
        // No private key material anywhere in what can be shown.
        let pem_text = std::fs::read_to_string(&file).unwrap();
        let secret_line = pem_text.lines().nth(1).unwrap();
        assert!(!s.public_info().to_string().contains(secret_line));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_openssl_keys_and_refuses_garbage() {
        let dir = std::env::temp_dir().join(format!("dma-signing-o-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("o.pem");
        std::fs::write(&f, OPENSSL_V1).unwrap();
        let s = Signer::load(f.to_str().unwrap(), "ops-1").unwrap();
        assert_eq!(s.public_key(), format!("ops-1:{OPENSSL_V1_PUB}"));
        assert!(verify(&s.public_key(), &s.sign(b"{}")));
        std::fs::write(&f, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        assert!(Signer::load(f.to_str().unwrap(), "k1").is_err());
        std::fs::write(&f, "hello").unwrap();
        assert!(Signer::load(f.to_str().unwrap(), "k1").is_err());
        assert!(Signer::load(dir.join("missing").to_str().unwrap(), "k1").is_err());
        assert!(!valid_kid("") && !valid_kid(&"a".repeat(33)) && !valid_kid("a:b") && valid_kid("K_1.x-2"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
