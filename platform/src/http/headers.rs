//! Security headers on every answer (console and API): a Content Security
//! Policy that allows scripts and styles only from this origin (no inline
//! script: the console's JS is `/app.js`), no framing, no MIME sniffing,
//! no referrer.

use hyper::header::{HeaderMap, HeaderValue};

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                       object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn add(h: &mut HeaderMap) {
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}
