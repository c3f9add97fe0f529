//! Secrets in command bodies and device answers, masked before they are
//! served, stored for good, or forwarded — the agent's rule for its own
//! configuration (`MASK` for a non-empty value of a secret key) applied to
//! every key, at any depth, whose name says it holds a credential:
//! `password`/`passwd`/`secret` anywhere in the name (the agent's
//! `password`, devices' passwords, the VPN's `passwd` and `api_secret`),
//! and the keys below (the VPN's `sec_key`/`crypto_key`, the S20's Thread
//! network key and PSKc, session tokens).

use serde_json::Value;

/// What a secret value becomes (the agent's `config::model::MASK`).
pub const MASK: &str = "******";

const PARTS: &[&str] = &["password", "passwd", "secret", "private_key", "privatekey"];
const EXACT: &[&str] = &["pass", "pwd", "psk", "pskc", "sec_key", "crypto_key", "key", "network_key", "networkkey", "master_key", "token", "upgrade_pass"];

pub fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase().replace('-', "_");
    PARTS.iter().any(|p| k.contains(p)) || EXACT.contains(&k.as_str())
}

/// Mask in place; true when something was masked.
pub fn mask(v: &mut Value) -> bool {
    match v {
        Value::Object(o) => {
            let mut changed = false;
            for (k, x) in o.iter_mut() {
                if is_secret_key(k) {
                    let empty = matches!(x, Value::Null) || x.as_str() == Some("") || x.as_str() == Some(MASK);
                    if !empty {
                        *x = Value::String(MASK.into());
                        changed = true;
                    }
                } else {
                    changed |= mask(x);
                }
            }
            changed
        }
        Value::Array(a) => a.iter_mut().fold(false, |c, x| mask(x) | c),
        _ => false,
    }
}

/// JSON text with its secrets masked; `None` when there were none (or it
/// is not JSON), so unchanged text is kept byte for byte.
pub fn mask_text(text: &str) -> Option<String> {
    let mut v: Value = serde_json::from_str(text).ok()?;
    mask(&mut v).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_credentials_at_any_depth_and_nothing_else() {
        let mut v = json!({"password": "p1", "broker_host": "h", "devices": [{"name": "gw1", "password": "p2", "api_secret": "s"}],
            "params": {"passwd": "p3", "sec_key": "k", "phone": "1"}, "empty": {"password": ""}, "shcmd": "echo password"});
        assert!(mask(&mut v));
        let s = v.to_string();
        for secret in ["p1", "p2", "p3", "\"s\"", "\"k\""] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
        assert_eq!(v["broker_host"], "h");
        assert_eq!(v["params"]["phone"], "1");
        assert_eq!(v["empty"]["password"], "");
        assert_eq!(v["shcmd"], "echo password");
        assert_eq!(v["devices"][0]["password"], MASK);
        assert!(!mask(&mut v), "masking twice changes nothing");
        assert_eq!(mask_text("{\"id\":201811260000000001,\"d\":{}}"), None);
        assert_eq!(mask_text("{\"d\":{\"Password\":\"x\"}}").as_deref(), Some("{\"d\":{\"Password\":\"******\"}}"));
    }
}
