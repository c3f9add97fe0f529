//! Where callbacks and routes may POST: `http`/`https` URLs without
//! credentials, to public addresses only — not loopback, link-local,
//! private, shared (CGNAT), unspecified, multicast, broadcast or reserved,
//! in IPv4 or IPv6 (mapped, NAT64 and 6to4 forms are judged by the IPv4
//! address inside) — unless the admin's allow list (`hooks.allow`: CIDRs
//! like `10.1.0.0/16`, plain addresses, or `host:port`) names them. Checked
//! when a URL is set and again at send time on the addresses the name
//! resolves to then (`Guard`, the resolver of the hooks' HTTP agent), so
//! a name that later resolves somewhere internal is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// One entry of `hooks.allow`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allow {
    Net(IpAddr, u8),
    HostPort(String, u16),
}

impl Allow {
    pub fn parse(s: &str) -> Result<Allow, String> {
        let bad = || format!("hooks.allow: '{s}' is not a CIDR (10.0.0.0/8, ::1/128), an address or host:port");
        if let Some((ip, bits)) = s.split_once('/') {
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let bits: u8 = bits.parse().map_err(|_| bad())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            return if bits <= max { Ok(Allow::Net(ip, bits)) } else { Err(bad()) };
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Allow::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Allow::HostPort(host, port))
    }

    fn admits(&self, host: &str, addr: SocketAddr) -> bool {
        match self {
            Allow::Net(net, bits) => in_net(canonical(addr.ip()), canonical(*net), *bits),
            Allow::HostPort(h, p) => *p == addr.port() && (h.as_str() == host || h.parse::<IpAddr>().is_ok_and(|ip| canonical(ip) == canonical(addr.ip()))),
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits.min(32))).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits.min(128))).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn v4_public(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
        || o[0] >= 240) // reserved
}

fn v6_public(a: Ipv6Addr) -> bool {
    let s = a.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = a.to_ipv4_mapped() {
        return v4_public(v4);
    }
    if s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0 {
        // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
        return !a.is_unspecified() && !a.is_loopback() && v4_public(embedded(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        return v4_public(embedded(s[6], s[7])); // NAT64
    }
    if s[0] == 0x2002 {
        return v4_public(embedded(s[1], s[2])); // 6to4
    }
    !((s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x100 && s[1] == 0 && s[2] == 0 && s[3] == 0)) // discard-only
}

pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => v4_public(a),
        IpAddr::V6(a) => v6_public(a),
    }
}

/// Whether a POST may go to `addr` (reached through the URL's `host`).
pub fn allowed(allow: &[Allow], host: &str, addr: SocketAddr) -> bool {
    is_public(addr.ip()) || allow.iter().any(|a| a.admits(host, addr))
}

/// The parts of an outgoing URL that the policy looks at.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// Lower case; an IPv6 literal without its brackets.
    pub host: String,
    pub port: u16,
}

/// Check a URL's form: `http(s)://host[:port][/…]`, no credentials.
pub fn parse(url: &str) -> Result<Target, String> {
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("'url' must be an http:// or https:// URL of at most 2048 bytes".into());
    }
    let (rest, default_port) = if let Some(r) = strip_ci(url, "http://") {
        (r, 80)
    } else if let Some(r) = strip_ci(url, "https://") {
        (r, 443)
    } else {
        return Err("'url' must be http:// or https://".into());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("'url' must not carry credentials (user:password@)".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("'url': unclosed [IPv6] host")?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or("'url': bad port")?,
    };
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c)) {
        return Err("'url': bad host".into());
    }
    Ok(Target { host: host.to_ascii_lowercase(), port })
}

fn strip_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(prefix)).and_then(|_| s.get(prefix.len()..))
}

/// The check when a callback or route URL is set: its form, and the
/// addresses it names or (when it resolves now) resolves to.
pub fn check(url: &str, allow: &[Allow]) -> Result<(), String> {
    let t = parse(url)?;
    let addrs: Vec<SocketAddr> = match t.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, t.port)],
        Err(_) if t.host == "localhost" || t.host.ends_with(".localhost") => vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), t.port)],
        // Not resolvable now: checked again at send time.
        Err(_) => (t.host.as_str(), t.port).to_socket_addrs().map(|a| a.take(16).collect()).unwrap_or_default(),
    };
    match addrs.iter().find(|a| !allowed(allow, &t.host, **a)) {
        Some(a) => Err(format!("'url' points to {} (loopback, link-local, private or reserved): refused unless hooks.allow names it", a.ip())),
        None => Ok(()),
    }
}

/// The hooks' resolver: the default one, keeping only allowed addresses.
#[derive(Debug)]
pub struct Guard {
    pub allow: Vec<Allow>,
}

impl ureq::unversioned::resolver::Resolver for Guard {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let all = ureq::unversioned::resolver::DefaultResolver::default().resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let mut out = self.empty();
        for a in all.iter().filter(|a| allowed(&self.allow, &host, **a)) {
            out.push(*a);
        }
        if out.is_empty() {
            return Err(ureq::Error::BadUri(format!("{host} resolves only to addresses hooks.allow does not name")));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(u: &str, allow: &[&str]) -> bool {
        let allow: Vec<Allow> = allow.iter().map(|a| Allow::parse(a).unwrap()).collect();
        check(u, &allow).is_ok()
    }

    #[test]
    fn refuses_internal_and_credentialed_urls() {
        for u in [
            "http://127.0.0.1:8080/x", "http://localhost/", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "http://192.168.1.1/",
            "http://172.16.0.1/", "http://100.64.0.1/", "http://0.0.0.0/", "http://[::1]/", "http://[::]/", "http://[fe80::1]/", "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://224.0.0.1/",
            "http://[ff02::1]/", "http://255.255.255.255/", "http://user:pw@93.184.216.34/", "http://@93.184.216.34/", "ftp://93.184.216.34/",
            "file:///etc/passwd", "gopher://x/", "http://", "http://93.184.216.34:0/", "http://93.184.216.34:99999/", "http://a b/",
        ] {
            assert!(!ok(u, &[]), "{u} accepted");
        }
        for u in ["http://93.184.216.34/hook", "https://93.184.216.34:8443/a?b=c", "HTTP://[2606:2800:220:1:248:1893:25c8:1946]/"] {
            assert!(ok(u, &[]), "{u} refused");
        }
    }

    #[test]
    fn the_allow_list_admits_what_it_names() {
        assert!(ok("http://127.0.0.1:8080/x", &["127.0.0.1/32"]));
        assert!(ok("http://127.0.0.1:8080/x", &["127.0.0.1:8080"]));
        assert!(!ok("http://127.0.0.1:8081/x", &["127.0.0.1:8080"]));
        assert!(ok("http://10.1.2.3/x", &["10.0.0.0/8"]));
        assert!(!ok("http://10.1.2.3/x", &["10.1.3.0/24"]));
        assert!(ok("http://[::1]:80/", &["::1/128"]));
        assert!(ok("http://[::ffff:127.0.0.1]:80/", &["127.0.0.0/8"]));
        assert!(ok("http://localhost:9000/", &["localhost:9000"]));
        assert!(!ok("http://user:pw@127.0.0.1:8080/x", &["127.0.0.1/32"]), "credentials never");
        assert!(Allow::parse("10.0.0.0/33").is_err());
        assert!(ok("http://[::ffff:10.1.2.3]/x", &["10.0.0.0/8"]));
        assert!(Allow::parse("nonsense").is_err());
    }

    #[test]
    fn the_send_time_resolver_keeps_only_allowed_addresses() {
        use ureq::unversioned::resolver::Resolver as _;
        let cfg = ureq::config::Config::default();
        let uri: ureq::http::Uri = "http://127.0.0.1:9/x".parse().unwrap();
        let t = ureq::unversioned::transport::NextTimeout::default();
        let refused = Guard { allow: vec![] }.resolve(&uri, &cfg, t);
        assert!(matches!(refused, Err(ureq::Error::BadUri(_))), "{refused:?}");
        let allowed = Guard { allow: vec![Allow::parse("127.0.0.1/32").unwrap()] }.resolve(&uri, &cfg, t).unwrap();
        assert_eq!(allowed.iter().map(|a| a.to_string()).collect::<Vec<_>>(), vec!["127.0.0.1:9"]);
        let name: ureq::http::Uri = "http://localhost:9/x".parse().unwrap();
        assert!(Guard { allow: vec![] }.resolve(&name, &cfg, t).is_err(), "a name resolving to loopback");
    }
}
