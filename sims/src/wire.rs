//! The simulators' own small helpers for the vendor side: digests, form
//! decoding, the clock. Deliberately not the client's (`dma_agent::util`,
//! `dma_agent::devices::*`): a simulator that checked a client's hash with the
//! client's own function could never catch a client's mistake. The
//! underlying crates (md-5, sha2) are shared; the code that uses them is not.

use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex MD5.
pub fn md5_hex(data: impl AsRef<[u8]>) -> String {
    hex(&Md5::digest(data.as_ref()))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    hex(&Sha256::digest(data.as_ref()))
}

/// Unix seconds.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Something unguessable enough for a simulator's tokens and nonces:
/// MD5 of a tag, a counter and the clock's nanoseconds.
pub fn fresh_hex(tag: &str, counter: u64) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    md5_hex(format!("{tag}-{counter}-{nanos}"))
}

/// Decode `application/x-www-form-urlencoded` (and query strings) the way
/// a web server does: pairs split on `&`, then `=`, `+` is a space, `%XX`
/// a byte; a malformed escape is kept as it is.
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.find('=') {
            Some(i) => (unescape(&p[..i]), unescape(&p[i + 1..])),
            None => (unescape(p), String::new()),
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hexpair = rest.get(..2).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hexpair {
                    Some(b) => {
                        out.push(b);
                        rest = rest.get(2..).unwrap_or_default();
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_digests() {
        assert_eq!(
            form_pairs("a=1&b=x%20y+z&c&d=%zz&e=%C3%A9"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "é".into())
            ]
        );
        // RFC 1321 and FIPS 180-2 examples.
        assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
