//! The GoIP's secure session (seed §3, DEVICE-NOTES): the handshake
//! `auth`, the per-request `auth`, the body key, and the two ciphers.
//!
//! The seed writes the per-request auth as `MD5(u + p + session + resource
//! + seq)` — the default — while the vendor's lab script and public
//! clients compute `MD5(u + p + session + seq + resource)`; both are
//! supported through [`AuthOrder`] (device option `auth_order`).
//!
//! Ciphers (seed §3.2.1): `none`, `xor`, `rc4`, `aes-ecb`. The seed says
//! only "simple XOR" for `xor`; the agent XORs the body with the 32-byte
//! hex key repeated, as RC4 and AES use the same key bytes, no padding.

use crate::util::md5_hex;
use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes256;
use std::time::{Duration, Instant};

/// The resource the handshake `auth` is computed over (DEVICE-NOTES).
pub const SESSION_RESOURCE: &str = "/crypt_sess.json";
/// The other spelling the seed uses for the same endpoint.
pub const SESSION_RESOURCE_ALT: &str = "/encrypt_sess.json";
/// Session lifetime the client asks for when not configured (seed default).
pub const DEFAULT_EXPIRES: u64 = 180;

/// How POST bodies are protected inside a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptMode {
    /// Session authentication only; bodies in clear.
    None,
    /// The body XORed with the key bytes, repeated.
    Xor,
    Rc4,
    /// AES-256-ECB, the key being the 32 hex characters of the MD5 key.
    AesEcb,
}

impl CryptMode {
    /// Accepts the wire names and the short `aes`.
    pub fn parse(s: &str) -> Option<CryptMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Some(CryptMode::None),
            "xor" => Some(CryptMode::Xor),
            "rc4" => Some(CryptMode::Rc4),
            "aes" | "aes-ecb" | "aes_ecb" => Some(CryptMode::AesEcb),
            _ => None,
        }
    }
    /// The value of the handshake's `crypt` parameter.
    pub fn wire_name(self) -> &'static str {
        match self {
            CryptMode::None => "none",
            CryptMode::Xor => "xor",
            CryptMode::Rc4 => "rc4",
            CryptMode::AesEcb => "aes-ecb",
        }
    }
}

/// Order of the last two fields of the per-request `auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthOrder {
    /// `MD5(u + p + session + seq + resource)`: the vendor's lab script.
    SeqFirst,
    /// `MD5(u + p + session + resource + seq)`: as the seed writes it, the default.
    #[default]
    ResourceFirst,
}

impl AuthOrder {
    pub fn parse(s: &str) -> Option<AuthOrder> {
        match s.trim().to_ascii_lowercase().as_str() {
            "seq" | "seq-first" | "seq_first" | "script" => Some(AuthOrder::SeqFirst),
            "" | "default" | "resource" | "resource-first" | "resource_first" | "seed" => Some(AuthOrder::ResourceFirst),
            _ => None,
        }
    }
}

/// Handshake auth: `MD5(u + p + cnonce + resource)`.
pub fn initial_auth(user: &str, pass: &str, cnonce: &str, resource: &str) -> String {
    md5_hex(format!("{user}{pass}{cnonce}{resource}").as_bytes())
}

/// Per-request auth for `resource` (the URL path) with sequence `seq`.
pub fn request_auth(order: AuthOrder, user: &str, pass: &str, session: &str, resource: &str, seq: u64) -> String {
    let s = match order {
        AuthOrder::SeqFirst => format!("{user}{pass}{session}{seq}{resource}"),
        AuthOrder::ResourceFirst => format!("{user}{pass}{session}{resource}{seq}"),
    };
    md5_hex(s.as_bytes())
}

/// Body key of one request: `MD5(u + p + initial auth + session + seq)` as
/// 32 hex characters; those characters are the cipher key bytes.
pub fn body_key(user: &str, pass: &str, initial_auth: &str, session: &str, seq: u64) -> String {
    md5_hex(format!("{user}{pass}{initial_auth}{session}{seq}").as_bytes())
}

/// RC4 keystream applied to `data` (encrypts and decrypts alike).
pub fn rc4(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut s: [u8; 256] = std::array::from_fn(|i| i as u8);
    if !key.is_empty() {
        let mut j: u8 = 0;
        for i in 0..256 {
            j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
            s.swap(i, j as usize);
        }
    }
    let (mut i, mut j) = (0u8, 0u8);
    data.iter()
        .map(|&b| {
            i = i.wrapping_add(1);
            j = j.wrapping_add(s[i as usize]);
            s.swap(i as usize, j as usize);
            b ^ s[s[i as usize].wrapping_add(s[j as usize]) as usize]
        })
        .collect()
}

/// `data` XORed with `key` repeated (encrypts and decrypts alike).
pub fn xor(key: &[u8], data: &[u8]) -> Vec<u8> {
    if key.is_empty() {
        return data.to_vec();
    }
    data.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k).collect()
}

/// AES-256-ECB over `data` zero-padded to whole blocks. `key` must be 32 bytes.
pub fn aes_ecb_encrypt(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let cipher = Aes256::new_from_slice(key).map_err(|_| "AES-256 key must be 32 bytes".to_string())?;
    let mut out = data.to_vec();
    let padded = out.len().div_ceil(16).max(1) * 16;
    out.resize(padded, 0);
    for block in out.chunks_exact_mut(16) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    Ok(out)
}

/// Inverse of [`aes_ecb_encrypt`]; the zero padding is left in place.
pub fn aes_ecb_decrypt(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let cipher = Aes256::new_from_slice(key).map_err(|_| "AES-256 key must be 32 bytes".to_string())?;
    if data.len() % 16 != 0 {
        return Err(format!("AES-ECB ciphertext of {} bytes is not whole blocks", data.len()));
    }
    let mut out = data.to_vec();
    for block in out.chunks_exact_mut(16) {
        cipher.decrypt_block(GenericArray::from_mut_slice(block));
    }
    Ok(out)
}

/// Encrypt a POST body with the hex `key`.
pub fn seal(mode: CryptMode, key: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
    match mode {
        CryptMode::None => Ok(plain.to_vec()),
        CryptMode::Xor => Ok(xor(key.as_bytes(), plain)),
        CryptMode::Rc4 => Ok(rc4(key.as_bytes(), plain)),
        CryptMode::AesEcb => aes_ecb_encrypt(key.as_bytes(), plain),
    }
}

/// Decrypt a POST body; trailing zero padding is removed.
pub fn open(mode: CryptMode, key: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = match mode {
        CryptMode::None => data.to_vec(),
        CryptMode::Xor => xor(key.as_bytes(), data),
        CryptMode::Rc4 => rc4(key.as_bytes(), data),
        CryptMode::AesEcb => aes_ecb_decrypt(key.as_bytes(), data)?,
    };
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(out)
}

/// A fresh client nonce: not secret, only unpredictable enough that two
/// handshakes never share one. The unique part is the jitter generator's
/// seed (the kernel's random UUID, read anew each time), not a counter of
/// ours.
pub fn cnonce() -> String {
    let n = crate::mqtt::backoff::Rng::from_entropy().next_u64();
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    md5_hex(format!("{t}:{n}:{}", std::process::id()).as_bytes())[..16].to_string()
}

/// An established session, as the client keeps it.
#[derive(Debug, Clone)]
pub struct Session {
    pub session: String,
    pub initial_auth: String,
    /// The last sequence number used; the next request uses `seq + 1`.
    pub seq: u64,
    pub expires: Duration,
    /// Renewed on every request, since each request resets the lifetime.
    pub last_use: Instant,
}

impl Session {
    pub fn new(session: String, initial_auth: String, expires: Duration) -> Session {
        Session { session, initial_auth, seq: 0, expires, last_use: Instant::now() }
    }
    /// True when the session is near its end and should be renewed before
    /// use; a margin covers the round trip and the device's clock.
    pub fn is_stale(&self) -> bool {
        let margin = (self.expires / 10).max(Duration::from_millis(200));
        self.last_use.elapsed() + margin >= self.expires
    }
    /// Take the next sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.last_use = Instant::now();
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::hex;

    #[test]
    fn device_notes_vector() {
        let ia = initial_auth("root", "root", "123456", SESSION_RESOURCE);
        assert_eq!(ia, "8e064d3cea40fb69afc5be4760b67925");
        let a = request_auth(AuthOrder::SeqFirst, "root", "root", "0123456789abcdef", "/goip_remove_sms.html", 10);
        assert_eq!(a, "22839fda5ddce7c5f0759284e21e4192");
        let k = body_key("root", "root", &ia, "0123456789abcdef", 10);
        assert_eq!(k, "abfd5a2e273b4eb25cf069394edf298a");
        let seed = request_auth(AuthOrder::ResourceFirst, "root", "root", "0123456789abcdef", "/goip_remove_sms.html", 10);
        assert_eq!(seed, md5_hex(b"rootroot0123456789abcdef/goip_remove_sms.html10"));
        assert_ne!(seed, a);
    }

    #[test]
    fn rc4_known_answers() {
        assert_eq!(hex(&rc4(b"Key", b"Plaintext")), "bbf316e8d940af0ad3");
        assert_eq!(hex(&rc4(b"Wiki", b"pedia")), "1021bf0420");
        assert_eq!(hex(&rc4(b"Secret", b"Attack at dawn")), "45a01f645fc35b383552544b9bf5");
    }

    #[test]
    fn aes256_ecb_known_answer() {
        // FIPS-197 appendix C.3.
        let key: Vec<u8> = (0u8..32).collect();
        let pt = [0x00u8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        let ct = aes_ecb_encrypt(&key, &pt).unwrap();
        assert_eq!(hex(&ct), "8ea2b7ca516745bfeafc49904b496089");
        assert_eq!(aes_ecb_decrypt(&key, &ct).unwrap(), pt);
        assert!(aes_ecb_encrypt(b"short", b"x").is_err());
        assert!(aes_ecb_decrypt(&key, &[1, 2, 3]).is_err());
    }

    #[test]
    fn seal_open_round_trip() {
        let key = "abfd5a2e273b4eb25cf069394edf298a";
        let body = br#"{"tids":[2,3]}"#;
        for mode in [CryptMode::None, CryptMode::Xor, CryptMode::Rc4, CryptMode::AesEcb] {
            let sealed = seal(mode, key, body).unwrap();
            if mode == CryptMode::AesEcb {
                assert_eq!(sealed.len(), 16);
            }
            assert_eq!(open(mode, key, &sealed).unwrap(), body);
        }
        assert_ne!(seal(CryptMode::Rc4, key, body).unwrap(), body);
    }

    #[test]
    fn parsing_and_session() {
        assert_eq!(CryptMode::parse("AES"), Some(CryptMode::AesEcb));
        assert_eq!(CryptMode::parse("xor"), Some(CryptMode::Xor));
        assert_eq!(CryptMode::parse("des"), None);
        assert_eq!(AuthOrder::parse("resource"), Some(AuthOrder::ResourceFirst));
        assert_eq!(AuthOrder::parse(""), Some(AuthOrder::ResourceFirst), "the seed's order is the default");
        assert_eq!(AuthOrder::parse("seq"), Some(AuthOrder::SeqFirst));
        assert_eq!(xor(b"ab", &[0, 1, 2]), vec![b'a', b'b' ^ 1, b'a' ^ 2]);
        assert_ne!(cnonce(), cnonce());
        let mut s = Session::new("s".into(), "a".into(), Duration::from_secs(180));
        assert_eq!((s.next_seq(), s.next_seq()), (1, 2));
        assert!(!s.is_stale());
        s.expires = Duration::from_millis(100);
        assert!(s.is_stale());
    }
}
