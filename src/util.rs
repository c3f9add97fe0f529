//! Small helpers shared across concerns: URL encoding, hex, time, the
//! wake-up pipe.

use std::os::fd::OwnedFd;
use std::time::{SystemTime, UNIX_EPOCH};

/// A nonblocking, close-on-exec pipe: (read end, write end), each end
/// owned (closed on drop). The wake-up of a thread asleep in `poll(2)`:
/// the main loop's (`agent/wake.rs`) and the HTTP server's (`httpd/`).
pub fn wake_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK).map_err(std::io::Error::from)
}

/// Unix seconds from the device clock.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A decimal number such as `-12.50`, `0.53` or `1e3` (what devices and
/// /proc write), without core's exact float parser: its tables and code
/// are ~13 KB on armv7, and these values (load, balances, percentages) need
/// no more than the 19 significant digits kept here. `inf`, `NaN`, hex and
/// empty text are refused (JSON could not carry them anyway).
pub fn decimal(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') => { i += 1; true }
        Some(b'+') => { i += 1; false }
        _ => false,
    };
    let (mut mant, mut digits, mut scale, mut any) = (0u64, 0u32, 0i32, false);
    let mut frac = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' => {
                any = true;
                if digits < 19 {
                    mant = mant * 10 + u64::from(c - b'0');
                    if mant > 0 { digits += 1; }
                    if frac { scale -= 1; }
                } else if !frac {
                    scale += 1; // digits beyond 19 before the point still count
                }
            }
            b'.' if !frac => frac = true,
            _ => break,
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        let eneg = match b.get(i) {
            Some(b'-') => { i += 1; true }
            Some(b'+') => { i += 1; false }
            _ => false,
        };
        let start = i;
        let mut e = 0i32;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() { break; }
            e = e.saturating_mul(10).saturating_add(i32::from(c - b'0'));
            i += 1;
        }
        if i == start { return None; }
        scale = scale.saturating_add(if eneg { -e } else { e });
    }
    if i != b.len() || !(-330..=310).contains(&scale) {
        return None;
    }
    let v = if scale >= 0 { mant as f64 * 10f64.powi(scale) } else { mant as f64 / 10f64.powi(-scale) };
    v.is_finite().then_some(if neg { -v } else { v })
}

/// The `start-end` hex address range that opens a line of
/// /proc/PID/maps or smaps; `None` unless start < end.
pub fn maps_range(line: &str) -> Option<(usize, usize)> {
    let (a, b) = line.split(' ').next()?.split_once('-')?;
    let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
    (a < b).then_some((a, b))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// Lower-case hex MD5 of `data`.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(data))
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(data))
}

/// Percent-encode for a query component or form value (RFC 3986
/// unreserved characters stay as they are).
/// Cut `s` to at most `max` bytes, at a char boundary.
pub fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut keep = max;
        while keep > 0 && !s.is_char_boundary(keep) {
            keep -= 1;
        }
        s.truncate(keep);
    }
}

pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode a percent-encoded component (`+` as space); bad escapes stay literal.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'+' {
            out.push(b' ');
        } else if c == b'%' && i + 2 < b.len() {
            let hi = (b[i + 1] as char).to_digit(16);
            let lo = (b[i + 2] as char).to_digit(16);
            match (hi, lo) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decode `a=1&b=x%20y` into pairs, in order.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn decimals_parse_like_the_devices_write_them() {
        for (t, v) in [("0.53", 0.53), ("100.00", 100.0), ("-12.5", -12.5), ("+3", 3.0), ("7", 7.0), ("1e3", 1000.0), ("2.5E-2", 0.025), (".5", 0.5), ("12345.678", 12345.678)] {
            let got = super::decimal(t).unwrap_or_else(|| panic!("{t} refused"));
            assert!((got - v).abs() <= v.abs() * 1e-15, "{t}: {got} != {v}");
        }
        assert_eq!(super::decimal("123456789012345678901234").map(|v| (v / 1e23).round()), Some(1.0));
        for bad in ["", "-", ".", "inf", "NaN", "1.2.3", "12a", "1e", "0x10", " 1", "1e999", "--1"] {
            assert_eq!(super::decimal(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let mut s = "ab\u{00e9}cd".to_string(); // the accent is two bytes, at 2..4
        crate::util::truncate_utf8(&mut s, 3);
        assert_eq!(s, "ab");
        let mut s = "short".to_string();
        crate::util::truncate_utf8(&mut s, 64);
        assert_eq!(s, "short");
    }

    use super::*;
    #[test]
    fn url_round_trip() {
        assert_eq!(url_encode("a b&c=é"), "a%20b%26c%3D%C3%A9");
        assert_eq!(url_decode("a%20b%26c%3D%C3%A9+x%zz%4"), "a b&c=é x%zz%4");
        assert_eq!(parse_form("u=root&p=a%2Bb&x"), vec![("u".into(), "root".into()), ("p".into(), "a+b".into()), ("x".into(), "".into())]);
        assert_eq!(md5_hex(b"root"), "63a9f0ea7bb98050796b649e85481845");
    }
}
