//! The signed envelope: `{"signed": {"v": 1, "alg": "ed25519", "kid",
//! "cmd": base64 of the inner command's bytes, "sig"}}`. The signature is
//! over `dma-cmd-v1\n` + those bytes; on success the exact bytes are
//! returned, to be parsed and acted on as they are.

use super::refusals::Reason;
use super::TrustedKey;
use base64::Engine as _;
use serde_json::Value;

/// Domain separation: a signature made for something else never verifies here.
pub const CONTEXT: &[u8] = b"dma-cmd-v1\n";

/// What the outer payload holds.
pub enum Envelope {
    /// No `signed` member (or not a JSON object at all).
    Plain,
    Signed(Signed),
}

/// The decoded `signed` object.
#[derive(Debug)]
pub struct Signed {
    pub kid: String,
    pub cmd: Vec<u8>,
    pub sig: Vec<u8>,
}

/// The outer payload's one member the gate reads. Every command passes
/// here, so the rest of the payload is only skipped, not built into a
/// `Value` (issue 24: the command path parsed each payload whole twice).
#[derive(serde::Deserialize)]
struct Outer {
    /// Present (even `null`) or absent: `null` is a malformed envelope.
    #[serde(default, deserialize_with = "present")]
    signed: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// Read the outer payload. `Err` is a malformed `signed` object.
pub fn envelope(payload: &[u8]) -> Result<Envelope, String> {
    // Only an object is an envelope.
    if !dma_wire::command::is_object(payload) {
        return Ok(Envelope::Plain);
    }
    let Ok(Outer { signed: Some(s) }) = serde_json::from_slice::<Outer>(payload) else { return Ok(Envelope::Plain) };
    let Value::Object(mut s) = s else { return Err("signed must be an object {v, alg, kid, cmd, sig}".into()) };
    let mut text = |k: &str| match s.remove(k) {
        Some(Value::String(t)) => Ok(t),
        _ => Err(format!("signed.{k} must be a string")),
    };
    let (alg, kid, cmd, sig) = (text("alg")?, text("kid")?, text("cmd")?, text("sig")?);
    match s.get("v").and_then(Value::as_u64) {
        Some(1) => {}
        _ => return Err("signed.v must be 1".into()),
    }
    if alg != "ed25519" {
        return Err(format!("signed.alg '{}' is not supported (ed25519 is)", alg.chars().take(32).collect::<String>()));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let cmd = b64.decode(&cmd).map_err(|e| format!("signed.cmd is not base64: {e}"))?;
    let sig = b64.decode(&sig).map_err(|e| format!("signed.sig is not base64: {e}"))?;
    if sig.len() != 64 {
        return Err(format!("signed.sig has {} bytes, an Ed25519 signature 64", sig.len()));
    }
    Ok(Envelope::Signed(Signed { kid, cmd, sig }))
}

/// Check the signature against the trusted keys; the inner bytes on success.
pub fn verify(s: &Signed, keys: &[TrustedKey]) -> Result<(), (Reason, String)> {
    let Some(key) = keys.iter().find(|k| k.kid == s.kid) else {
        let shown: String = s.kid.chars().take(32).collect();
        return Err((Reason::UnknownKey, format!("unknown key: '{shown}' is not among this router's trusted keys; not run")));
    };
    let mut msg = Vec::with_capacity(CONTEXT.len() + s.cmd.len());
    msg.extend_from_slice(CONTEXT);
    msg.extend_from_slice(&s.cmd);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key.public)
        .verify(&msg, &s.sig)
        .map_err(|_| (Reason::BadSignature, format!("bad signature: the command does not verify with key '{}'; not run", key.kid)))
}

/// Sign `inner` (the command's exact JSON bytes) into the envelope's JSON
/// text (used by `ctl send`).
pub fn seal(pair: &ring::signature::Ed25519KeyPair, kid: &str, inner: &[u8]) -> String {
    let mut msg = CONTEXT.to_vec();
    msg.extend_from_slice(inner);
    let sig = pair.sign(&msg);
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::json!({"signed": {"v": 1, "alg": "ed25519", "kid": kid, "cmd": b64.encode(inner), "sig": b64.encode(sig.as_ref())}, "tryTimes": 1})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair as _;

    fn pair() -> (ring::signature::Ed25519KeyPair, TrustedKey) {
        let (pem, _) = super::super::keys::generate().unwrap();
        let p = super::super::keys::load_private(&pem).unwrap();
        let k = TrustedKey { kid: "k1".into(), public: p.public_key().as_ref().try_into().unwrap() };
        (p, k)
    }

    fn open(payload: &str, keys: &[TrustedKey]) -> Result<Vec<u8>, Reason> {
        match envelope(payload.as_bytes()) {
            Ok(Envelope::Signed(s)) => verify(&s, keys).map(|_| s.cmd).map_err(|(r, _)| r),
            Ok(Envelope::Plain) => Err(Reason::Unsigned),
            Err(_) => Err(Reason::Malformed),
        }
    }

    #[test]
    fn verifies_and_returns_the_exact_bytes() {
        let (p, k) = pair();
        let inner = br#"{"id":1, "command":"sh" ,"sn":"X"}"#;
        let env = seal(&p, "k1", inner);
        assert_eq!(open(&env, std::slice::from_ref(&k)).unwrap(), inner.to_vec());
        let other = TrustedKey { kid: "k1".into(), public: pair().1.public };
        assert_eq!(open(&env, &[other]).unwrap_err(), Reason::BadSignature);
        assert_eq!(open(&env, &[TrustedKey { kid: "k2".into(), ..k.clone() }]).unwrap_err(), Reason::UnknownKey);
        assert_eq!(open(r#"{"id":1,"command":"sh"}"#, std::slice::from_ref(&k)).unwrap_err(), Reason::Unsigned);
        assert_eq!(open(r#"{"signed":5}"#, std::slice::from_ref(&k)).unwrap_err(), Reason::Malformed);
        let v2 = env.replace("\"v\":1", "\"v\":2");
        assert_eq!(open(&v2, &[k]).unwrap_err(), Reason::Malformed);
    }

    #[test]
    fn only_an_object_with_a_signed_member_is_an_envelope() {
        let (p, k) = pair();
        let keys = std::slice::from_ref(&k);
        // The other members are skipped, whatever they hold.
        let env = seal(&p, "k1", br#"{"id":1}"#).replacen('{', r#"{"x":[1,{"y":null}],"z":"signed","#, 1);
        assert_eq!(open(&env, keys).unwrap(), br#"{"id":1}"#.to_vec());
        // `null` is not the absence of a signature.
        assert_eq!(open(r#"{"signed":null,"command":"sh"}"#, keys).unwrap_err(), Reason::Malformed);
        // An array holding an envelope is not one (a derived struct reads arrays by position).
        assert_eq!(open(&format!("[{}]", seal(&p, "k1", b"{}")), keys).unwrap_err(), Reason::Unsigned);
        // Two `signed` members are ambiguous: not believed as signed.
        let twice = seal(&p, "k1", b"{}").replacen('{', r#"{"signed":{},"#, 1);
        assert_eq!(open(&twice, keys).unwrap_err(), Reason::Unsigned);
        assert_eq!(open("not json", keys).unwrap_err(), Reason::Unsigned);
    }
}
