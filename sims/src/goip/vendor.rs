//! The GoIP's side of the wire, written from the seed (§3 the secure
//! session, §4–§5 ports and state codes) and DEVICE-NOTES, independently of
//! the client's `devices::goip` modules so that a mistake there shows up
//! as a refusal here. Shared truth: the vectors in DEVICE-NOTES (tested in
//! `tests/goip_client.rs` against both sides).

use crate::wire::md5_hex;
use aes::cipher::{generic_array::GenericArray, BlockDecrypt, KeyInit};
use serde_json::Value;

/// The handshake resource (DEVICE-NOTES) and the seed's other spelling.
pub const SESSION_PATHS: &[&str] = &["/crypt_sess.json", "/encrypt_sess.json"];

/// How a device computes the per-request `auth` (DEVICE-NOTES: the seed
/// writes resource then seq; the vendor's lab script, seq then resource).
/// The simulator follows the seed unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthOrder {
    /// `MD5(u + p + session + seq + resource)`, the lab script's.
    SeqFirst,
    /// `MD5(u + p + session + resource + seq)`, as the seed (§3.3) writes it.
    #[default]
    ResourceFirst,
}

/// Body protection chosen in the handshake (`crypt=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Plain,
    /// Seed §3.2.1 "简单 XOR 加密" (simple XOR); the seed gives no more.
    /// The simulator's reading: the body XORed with the 32 key characters
    /// (the same key bytes RC4 and AES take), repeated.
    Xor,
    Rc4,
    Aes256Ecb,
}

impl Cipher {
    /// The names the handshake's `crypt` takes. The seed names `none`,
    /// `xor`, `rc4` and `aes-ecb`; no `crypt` is `none` (its default);
    /// `aes` is accepted as the short form field units send.
    pub fn from_wire(s: &str) -> Option<Cipher> {
        match s {
            "" | "none" => Some(Cipher::Plain),
            "xor" | "XOR" => Some(Cipher::Xor),
            "rc4" | "RC4" => Some(Cipher::Rc4),
            "aes-ecb" | "AES-ECB" | "aes" => Some(Cipher::Aes256Ecb),
            _ => None,
        }
    }
}

/// `MD5(u + p + cnonce + "/crypt_sess.json")` (the resource as requested).
pub fn handshake_auth(user: &str, pass: &str, cnonce: &str, resource: &str) -> String {
    md5_hex(format!("{user}{pass}{cnonce}{resource}"))
}

/// The per-request `auth` the device expects.
pub fn request_auth(order: AuthOrder, user: &str, pass: &str, session: &str, resource: &str, seq: u64) -> String {
    match order {
        AuthOrder::SeqFirst => md5_hex(format!("{user}{pass}{session}{seq}{resource}")),
        AuthOrder::ResourceFirst => md5_hex(format!("{user}{pass}{session}{resource}{seq}")),
    }
}

/// `MD5(u + p + initial auth + session + seq)`; its 32 hex characters are
/// the key bytes.
pub fn body_key(user: &str, pass: &str, initial_auth: &str, session: &str, seq: u64) -> String {
    md5_hex(format!("{user}{pass}{initial_auth}{session}{seq}"))
}

/// RC4 (key scheduling, then the keystream XORed over the data).
pub fn rc4_apply(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut s = [0u8; 256];
    for (i, b) in s.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut j = 0usize;
    if !key.is_empty() {
        for i in 0..256 {
            j = (j + usize::from(s[i]) + usize::from(key[i % key.len()])) % 256;
            s.swap(i, j);
        }
    }
    let (mut i, mut j) = (0usize, 0usize);
    let mut out = Vec::with_capacity(data.len());
    for &b in data {
        i = (i + 1) % 256;
        j = (j + usize::from(s[i])) % 256;
        s.swap(i, j);
        let k = s[(usize::from(s[i]) + usize::from(s[j])) % 256];
        out.push(b ^ k);
    }
    out
}

/// Decrypt a POST body (zero padding removed, DEVICE-NOTES).
pub fn decrypt_body(cipher: Cipher, key_hex: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut plain = match cipher {
        Cipher::Plain => return Ok(body.to_vec()),
        Cipher::Xor => body.iter().zip(key_hex.as_bytes().iter().cycle()).map(|(b, k)| b ^ k).collect(),
        Cipher::Rc4 => rc4_apply(key_hex.as_bytes(), body),
        Cipher::Aes256Ecb => {
            if body.len() % 16 != 0 {
                return Err(format!("ciphertext of {} bytes is not a whole number of AES blocks", body.len()));
            }
            let aes = aes::Aes256::new_from_slice(key_hex.as_bytes()).map_err(|_| "AES-256 needs a 32-byte key".to_string())?;
            let mut buf = body.to_vec();
            for block in buf.chunks_mut(16) {
                aes.decrypt_block(GenericArray::from_mut_slice(block));
            }
            buf
        }
    };
    while plain.last() == Some(&0) {
        plain.pop();
    }
    Ok(plain)
}

/// A port selection as the device reads `ports` / `from` (§5.1.3, DEVICE-NOTES):
/// `all`, `*`, `1A`, `2b`, `1.01`, `3`, `4-32`, comma lists with spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Some(Vec<Pick>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// A port, with the slot when one is named (1 = `A` = `.01`).
    Port(u16, Option<u16>),
    Range(u16, u16),
}

impl Selection {
    pub fn read(text: &str) -> Option<Selection> {
        let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        if text.is_empty() {
            return None;
        }
        let mut picks = Vec::new();
        for part in text.split(',').map(str::trim) {
            if part == "*" || part.eq_ignore_ascii_case("all") {
                return Some(Selection::All);
            }
            if let Some((a, b)) = part.split_once('-') {
                let (a, b) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
                if a == 0 || a > b {
                    return None;
                }
                picks.push(Pick::Range(a, b));
            } else {
                let (port, slot) = one_port(part)?;
                picks.push(Pick::Port(port, slot));
            }
        }
        Some(Selection::Some(picks))
    }

    /// Whether port `no` is selected (whatever its slot).
    pub fn has_port(&self, no: u16) -> bool {
        match self {
            Selection::All => true,
            Selection::Some(picks) => picks.iter().any(|p| match *p {
                Pick::Port(n, _) => n == no,
                Pick::Range(a, b) => (a..=b).contains(&no),
            }),
        }
    }

    /// The slot named for port `no`, if any.
    pub fn slot_for(&self, no: u16) -> Option<u16> {
        match self {
            Selection::All => None,
            Selection::Some(picks) => picks.iter().find_map(|p| match *p {
                Pick::Port(n, s) if n == no => s,
                _ => None,
            }),
        }
    }
}

/// `1A` → (1, Some(1)); `2.02` → (2, Some(2)); `3` → (3, None).
pub fn one_port(s: &str) -> Option<(u16, Option<u16>)> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, rest) = s.split_at(split);
    let port: u16 = num.parse().ok().filter(|&n| n > 0)?;
    let slot = match rest.as_bytes() {
        [] => None,
        [c] if c.is_ascii_alphabetic() => Some(u16::from(c.to_ascii_uppercase() - b'A') + 1),
        [b'.', digits @ ..] if (1..=2).contains(&digits.len()) => {
            Some(std::str::from_utf8(digits).ok()?.parse::<u16>().ok().filter(|&n| n > 0)?)
        }
        _ => return None,
    };
    Some((port, slot))
}

/// The device's label of a port and slot: `1A` … `1Z`, then `1.27`.
pub fn port_label(no: u16, slot: u16) -> String {
    match slot {
        1..=26 => format!("{no}{}", char::from(b'A' + (slot - 1) as u8)),
        _ => format!("{no}.{slot:02}"),
    }
}

/// Port state codes and their descriptions, as the seed's table (§4.2)
/// gives them; the seed's own `port-status` example writes `"3 OK"`, which
/// the simulator follows for 3.
pub fn state_words(code: i64) -> &'static str {
    match code {
        0 => "无卡",
        1 => "有空闲卡",
        2 => "SIM卡注册中",
        3 => "OK",
        4 => "正在通话",
        5 => "无余额或告警",
        6 => "注册失败",
        7 => "SIM 被锁定",
        8 => "SIM 被封锁",
        9 => "SIM 读卡错",
        11 => "检测到卡",
        12 => "用户锁定",
        13 => "端口互打中",
        14 => "等待端口互打",
        _ => "",
    }
}

/// A number the way a lenient device reads JSON: a number, or a string of digits.
pub fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A text field: a string (empty counts as absent) or a number.
pub fn words(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_as_the_device_reads_them() {
        assert_eq!(one_port("1A"), Some((1, Some(1))));
        assert_eq!(one_port("2b"), Some((2, Some(2))));
        assert_eq!(one_port("2.02"), Some((2, Some(2))));
        assert_eq!(one_port("32"), Some((32, None)));
        assert_eq!(one_port("0A"), None);
        assert_eq!(one_port("A1"), None);
        let sel = Selection::read("1A, 2B, 3C, 4-32").expect("seed example");
        assert!(sel.has_port(3) && sel.has_port(32) && !sel.has_port(33));
        assert_eq!(sel.slot_for(2), Some(2));
        assert_eq!(Selection::read("*"), Some(Selection::All));
        assert_eq!(Selection::read("5-4"), None);
        assert_eq!(port_label(1, 1), "1A");
        assert_eq!(port_label(2, 27), "2.27");
    }

    #[test]
    fn rc4_reference_vector() {
        // The classic "Key" / "Plaintext" vector.
        assert_eq!(crate::wire::hex(&rc4_apply(b"Key", b"Plaintext")), "bbf316e8d940af0ad3");
    }
}
