//! The test platform's signer for signed commands (docs/PROTOCOL.md,
//! "Signed commands (v2)"), written here with `ring` directly rather than
//! with the agent's `src/trust`, so a bug shared by both sides cannot hide.

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A signing key of the test platform.
pub struct Key {
    pub kid: String,
    pub pair: Ed25519KeyPair,
}

impl Key {
    pub fn new(kid: &str) -> Key {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        Key { kid: kid.into(), pair: Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap() }
    }

    /// `kid:BASE64`, for `list trusted_key`.
    pub fn public(&self) -> String {
        format!("{}:{}", self.kid, B64.encode(self.pair.public_key().as_ref()))
    }

    /// `\tlist trusted_key '…'\n`, for `agent_section`'s extra lines.
    pub fn uci(&self) -> String {
        format!("\tlist trusted_key '{}'\n", self.public())
    }

    /// The envelope of `inner`'s exact bytes, signed as `kid`.
    pub fn seal_as(&self, kid: &str, inner: &[u8]) -> String {
        let mut msg = b"dma-cmd-v1\n".to_vec();
        msg.extend_from_slice(inner);
        let sig = self.pair.sign(&msg);
        json!({"signed": {"v": 1, "alg": "ed25519", "kid": kid, "cmd": B64.encode(inner), "sig": B64.encode(sig.as_ref())}, "tryTimes": 1})
            .to_string()
    }

    pub fn seal(&self, inner: &Value) -> String {
        self.seal_as(&self.kid, inner.to_string().as_bytes())
    }

    /// A v1 command document signed for `sn`: adds `sn` and `publishTime` (now).
    pub fn sign_for(&self, sn: &str, cmd: &Value) -> String {
        let mut c = cmd.clone();
        c["sn"] = json!(sn);
        c["publishTime"] = json!(now());
        self.seal(&c)
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
