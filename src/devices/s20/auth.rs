//! The S20 login hash (seed "Login and Use Steps", DEVICE-NOTES "GL-S20"):
//! `md5_hex("root:" + base64(HMAC-SHA256(key = salt, msg = password)) + ":" + nonce)`.
//! The salt is used as its literal UTF-8 bytes, not base64-decoded.

use base64::prelude::{Engine, BASE64_STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The only user the S20 knows.
pub const USERNAME: &str = "root";

/// Standard padded base64 of HMAC-SHA256(key = salt, message = password).
pub fn password_hmac(password: &str, salt: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(salt.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(password.as_bytes());
    BASE64_STANDARD.encode(mac.finalize().into_bytes())
}

/// The `hash` of `/ui/login`.
pub fn login_hash(password: &str, salt: &str, nonce: &str) -> String {
    let s = format!("{USERNAME}:{}:{nonce}", password_hmac(password, salt));
    crate::util::md5_hex(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector from DEVICE-NOTES.
    #[test]
    fn login_vector() {
        assert_eq!(password_hmac("goodlife123", "ZmVhMjk5"), "6t3zc/0Bysrm/76WHRMMgCNXw12PTf+YtS6tSQnSqMk=");
        assert_eq!(login_hash("goodlife123", "ZmVhMjk5", "N2E1NDAwNjIzZGMzY2QxYjQyY2VlZTEx"), "a12adb1f585455d809ff3ca5a31935ca");
    }
}
