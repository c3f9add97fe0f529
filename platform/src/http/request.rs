//! Reading a request: query parameters, a bounded JSON body, the token.

use super::reply::ApiError;
use serde_json::Value;
use std::io::Read;

const MAX_BODY: u64 = 1 << 20;

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decoding (`+` is a space).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let pair = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex));
        match (c, pair) {
            (b'+', _) => out.push(b' '),
            (b'%', (Some(h), Some(l))) => {
                out.push(h * 16 + l);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .take(64)
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    pub fn int(&self, k: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v.parse::<i64>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| ApiError::bad(format!("'{k}' must be an integer {min}..{max}"))),
        }
    }

    /// `page` (from 1) and `limit` (1..1000, default 100).
    pub fn paging(&self) -> Result<(i64, i64), ApiError> {
        Ok((self.int("page", 1, 1, 1_000_000)?, self.int("limit", 100, 1, 1000)?))
    }
}

pub fn json_body(req: &mut tiny_http::Request) -> Result<Value, ApiError> {
    let mut buf = Vec::new();
    req.as_reader().take(MAX_BODY + 1).read_to_end(&mut buf).map_err(|e| ApiError::bad(format!("reading the body: {e}")))?;
    if buf.len() as u64 > MAX_BODY {
        return Err(ApiError(413, "too_large", format!("body over {MAX_BODY} bytes")));
    }
    serde_json::from_slice(&buf).map_err(|e| ApiError::bad(format!("body is not JSON: {e}")))
}

/// `Authorization: Bearer <token>` or a `token` header.
pub fn token(req: &tiny_http::Request) -> Option<String> {
    req.headers().iter().find_map(|h| {
        let v = h.value.as_str().trim();
        if h.field.equiv("Authorization") {
            v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
        } else if h.field.equiv("token") {
            Some(v.to_string())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query() {
        let q = Query::parse("id=201811260000000001&from=iot%20web+console&x=%zz&page=");
        assert_eq!(q.get("id"), Some("201811260000000001"));
        assert_eq!(q.get("from"), Some("iot web console"));
        assert_eq!(q.get("x"), Some("%zz"));
        assert_eq!(q.get("page"), None);
        assert_eq!(q.paging().unwrap(), (1, 100));
        assert!(Query::parse("limit=0").paging().is_err());
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("a%4"), "a%4");
    }
}
