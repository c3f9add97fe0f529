//! A request as the API sees it (already read whole by `server.rs`, within
//! its caps): method, path, query parameters, the token, the body, the peer.

use super::reply::ApiError;
use hyper::{HeaderMap, Method};
use serde_json::Value;
use std::net::IpAddr;

/// Request bodies at most (413 beyond).
pub const MAX_BODY: usize = 1 << 20;

pub struct Req {
    pub method: Method,
    /// The path under the API's base (`remotectl/commands`).
    pub path: String,
    pub query: Query,
    pub token: Option<String>,
    pub body: Vec<u8>,
    /// The TCP peer (login throttling per source address).
    pub peer: IpAddr,
}

impl Req {
    pub fn json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::bad(format!("body is not JSON: {e}")))
    }
}

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

/// `Authorization: Bearer <token>` or a `token` header.
pub fn token(h: &HeaderMap) -> Option<String> {
    if let Some(v) = h.get("authorization").and_then(|v| v.to_str().ok()) {
        return v.trim().strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    h.get("token").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string())
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
