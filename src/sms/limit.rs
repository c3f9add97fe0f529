//! Who may push and how often: a source allow list and a token bucket.

use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Instant;

/// `rate` requests per second, bursts up to `rate`.
pub struct TokenBucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(rate: u32) -> TokenBucket {
        let rate = rate.max(1) as f64;
        TokenBucket { rate, state: Mutex::new((rate, Instant::now())) }
    }

    pub fn take(&self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(g.1).as_secs_f64();
        g.0 = (g.0 + elapsed * self.rate).min(self.rate);
        g.1 = now;
        if g.0 >= 1.0 {
            g.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The host of an `http://host:port/...` address.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r)?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let host = if let Some(v6) = authority.strip_prefix('[') { v6.split(']').next()? } else { authority.split(':').next()? };
    (!host.is_empty()).then(|| host.to_string())
}

/// Addresses allowed to push: the configured list, or by default the
/// configured GoIP hosts (resolved once at start). Loopback is allowed only
/// when it is listed or a GoIP is configured on it.
pub fn allowed_sources(allow: &[String], goip_addresses: &[String]) -> Vec<IpAddr> {
    let hosts: Vec<String> = if allow.is_empty() { goip_addresses.iter().filter_map(|a| url_host(a)).collect() } else { allow.to_vec() };
    let mut out = Vec::new();
    for h in hosts {
        let ips: Vec<IpAddr> = match h.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (h.as_str(), 0).to_socket_addrs().map(|it| it.map(|a| a.ip()).collect()).unwrap_or_default(),
        };
        for ip in ips {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

/// Is `ip` in `allowed` (IPv4-mapped IPv6 compared as IPv4)?
pub fn is_allowed(allowed: &[IpAddr], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    allowed.contains(&ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills() {
        let b = TokenBucket::new(2);
        let t0 = Instant::now();
        assert!(b.take_at(t0) && b.take_at(t0));
        assert!(!b.take_at(t0));
        assert!(b.take_at(t0 + Duration::from_millis(600)));
    }

    #[test]
    fn sources() {
        assert_eq!(url_host("http://192.0.2.5:8080/x").as_deref(), Some("192.0.2.5"));
        assert_eq!(url_host("http://u:p@[::1]:80/").as_deref(), Some("::1"));
        let a = allowed_sources(&[], &["http://192.0.2.5".into()]);
        assert!(is_allowed(&a, "192.0.2.5".parse().unwrap()));
        assert!(!is_allowed(&a, "127.0.0.1".parse().unwrap()), "loopback only when a GoIP is on it");
        let a = allowed_sources(&[], &["http://127.0.0.1:9".into()]);
        assert!(is_allowed(&a, "::ffff:127.0.0.1".parse().unwrap()));
        let a = allowed_sources(&["192.0.2.11".into()], &["http://127.0.0.1:9".into()]);
        assert!(!is_allowed(&a, "127.0.0.1".parse().unwrap()));
    }
}
