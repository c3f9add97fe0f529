//! `sinfor_apitoken`: the console's request signature.
//!
//! `token = sha256_hex(S + timestamp + secret)` where `S` is every
//! `key=value` pair of the URL query (including `controler` and `action`)
//! and of the form body (including `timestamp`, excluding
//! `sinfor_apitoken` itself), sorted by key and joined with `&`, values as
//! they are (not URL-encoded). The simulator verifies with the same code.

use crate::util::sha256_hex;

/// Name of the signature field in the form body.
pub const TOKEN_FIELD: &str = "sinfor_apitoken";
/// Name of the timestamp field in the form body.
pub const TIMESTAMP_FIELD: &str = "timestamp";

/// The string `S`: pairs sorted by key (then value, so that repeated keys
/// give one answer whatever their order), `sinfor_apitoken` left out.
pub fn canonical<'a, I>(pairs: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut v: Vec<(&str, &str)> = pairs.into_iter().filter(|(k, _)| *k != TOKEN_FIELD).collect();
    v.sort_unstable();
    let mut s = String::new();
    for (i, (k, val)) in v.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(val);
    }
    s
}

/// The token over `pairs` (query and body, which must already hold the
/// `timestamp` pair) for `timestamp` and `secret`.
pub fn token<'a, I>(pairs: I, timestamp: &str, secret: &str) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut msg = canonical(pairs);
    msg.push_str(timestamp);
    msg.push_str(secret);
    sha256_hex(msg.as_bytes())
}

/// Compare two tokens without an early exit on the first differing byte.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_and_skips_token() {
        let pairs = [("timestamp", "1"), ("action", "A"), ("sinfor_apitoken", "x"), ("controler", "C"), ("name", "a b")];
        assert_eq!(canonical(pairs), "action=A&controler=C&name=a b&timestamp=1");
    }

    #[test]
    fn token_appends_timestamp_and_secret() {
        let pairs = [("controler", "Updater"), ("action", "UpdaterCloud"), ("timestamp", "1700000000")];
        let expect = sha256_hex(b"action=UpdaterCloud&controler=Updater&timestamp=17000000001700000000s3cret");
        assert_eq!(token(pairs, "1700000000", "s3cret"), expect);
        assert!(tokens_equal(&expect, &expect.clone()));
        assert!(!tokens_equal(&expect, &expect[1..]));
    }
}
