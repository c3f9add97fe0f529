//! Per-GoIP push tokens (issue 19 E20). Each GoIP is told to push to a URL
//! holding its own secret token (`<url>/goip/<name>/<token>`); the receiver
//! takes a push only with a token it issued and credits it to the GoIP the
//! token belongs to, whatever name the path shows (the name is a label for
//! whoever reads the GoIP's settings). The source address allow list is
//! checked as well, first.
//!
//! A token is 192 random bits (hex), made once per GoIP and kept in the
//! state dir (`sms/push-tokens.json`, mode 0600) so a restart does not
//! strand the URLs the GoIPs hold. Tokens are never logged (they are
//! registered as log secrets), published or shown by `agent get`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

const FILE: &str = "push-tokens.json";
/// Random bytes per token (192 bits).
const TOKEN_BYTES: usize = 24;

/// GoIP name → token.
pub type Tokens = BTreeMap<String, String>;

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

fn random_token() -> Result<String, String> {
    let mut b = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).map_err(|e| format!("no randomness for push tokens: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn is_token(t: &str) -> bool {
    t.len() == TOKEN_BYTES * 2 && t.bytes().all(|c| c.is_ascii_hexdigit())
}

/// The tokens of `names`: kept ones, new ones for GoIPs that have none
/// (tokens of GoIPs no longer configured are dropped). Written back when
/// anything changed.
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Tokens, String> {
    let stored: Tokens = match std::fs::read(path(dir)) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            log::warn!("sms: {FILE} unreadable ({e}); new push tokens for every GoIP");
            Tokens::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Tokens::new(),
        Err(e) => return Err(format!("{FILE}: {e}")),
    };
    let mut out = Tokens::new();
    for n in names {
        let t = match stored.get(n).filter(|t| is_token(t)) {
            Some(t) => t.clone(),
            None => random_token()?,
        };
        out.insert(n.clone(), t);
    }
    if out != stored {
        save(dir, &out)?;
    }
    crate::logging::add_secrets(out.values().cloned().collect());
    Ok(out)
}

fn save(dir: &Path, t: &Tokens) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let p = path(dir);
    // Created 0600 first: write_atomic keeps the permissions of the file it replaces.
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(&p).map_err(|e| format!("{FILE}: {e}"))?;
    let text = serde_json::to_string(t).map_err(|e| e.to_string())?;
    crate::durable::write_atomic(&p, text.as_bytes()).map_err(|e| format!("{FILE}: {e}"))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The GoIP that `token` belongs to.
pub fn owner<'a>(tokens: &'a Tokens, token: &str) -> Option<&'a str> {
    // Every token is compared (no early exit on a match).
    tokens.iter().fold(None, |found, (name, t)| if same(t.as_bytes(), token.as_bytes()) { Some(name.as_str()) } else { found })
}

/// The token a request path carries: the last segment after `/goip/`
/// (`/goip/<name>/<token>`), query cut off.
pub fn from_path(target: &str) -> Option<&str> {
    let path = target.split('?').next().unwrap_or("");
    let (_, rest) = path.rsplit_once("/goip/")?;
    rest.trim_end_matches('/').rsplit('/').next().filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("dma-tokens-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn tokens_are_random_kept_per_goip_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmp();
        let names = vec!["gw1".to_string(), "gw2".to_string()];
        let t = load_or_create(&d, &names).unwrap();
        assert_eq!(t.len(), 2);
        assert_ne!(t["gw1"], t["gw2"]);
        assert!(t.values().all(|x| is_token(x)));
        assert_eq!(std::fs::metadata(path(&d)).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&d, &names).unwrap(), t, "kept across restarts");
        let only = load_or_create(&d, &names[1..]).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only["gw2"], t["gw2"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_token_names_the_goip_not_the_path() {
        let mut t = Tokens::new();
        t.insert("x".into(), "a".repeat(48));
        t.insert("y".into(), "b".repeat(48));
        assert_eq!(from_path(&format!("/goip/y/{}", "a".repeat(48))).and_then(|k| owner(&t, k)), Some("x"));
        assert_eq!(from_path("/goip/y/?q=1").and_then(|k| owner(&t, k)), None);
        assert_eq!(from_path("/goip/y").and_then(|k| owner(&t, k)), None);
        assert_eq!(from_path("/"), None);
        assert_eq!(owner(&t, &"a".repeat(47)), None);
        assert_eq!(from_path("/in/goip/x/tok?x=1"), Some("tok"));
    }
}
