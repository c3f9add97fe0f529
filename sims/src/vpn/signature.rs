//! The console's check of `sinfor_apitoken`, from DEVICE-NOTES: every
//! `key=value` of the URL query and of the body (with `timestamp`, without
//! the token), sorted by key, joined with `&`, values decoded (not
//! URL-encoded); then the timestamp and the secret appended; SHA-256, hex.
//! Written apart from the client's `devices::vpn::sign`.

use crate::wire::sha256_hex;

/// The token the console expects for a request.
pub fn expected(query: &[(String, String)], body: &[(String, String)], timestamp: &str, secret: &str) -> String {
    let mut pairs: Vec<&(String, String)> = query.iter().chain(body.iter()).filter(|(k, _)| k != "sinfor_apitoken").collect();
    // By key (DEVICE-NOTES); a repeated key keeps the order it came in.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    sha256_hex(format!("{}{timestamp}{secret}", joined.join("&")))
}

/// Constant-time comparison of two tokens.
pub fn matches(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && expected.bytes().zip(given.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
}
