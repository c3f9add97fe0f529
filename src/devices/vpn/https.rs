//! HTTPS form POSTs to the console through ureq (the one HTTP client of
//! the agent), with our TLS connector ([`http::tls_agent`]) so that the
//! console's certificate goes through our verifier (pinned fingerprint or
//! CA file, see [`super::tls`]): ureq's TLS settings take no custom
//! verifier. Every read and write is bounded by ureq's timeouts, answers by
//! [`MAX_BODY`].

use super::super::http::{self, MAX_BODY};
use super::super::DeviceError;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Where the console is: from an `https://host[:port][/]` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parse the configured address. Only `https` is accepted: the console
    /// speaks nothing else and the signed requests must not travel in clear.
    pub fn parse(address: &str) -> Result<Endpoint, String> {
        let rest = address
            .strip_prefix("https://")
            .ok_or_else(|| format!("vpn address must start with https:// (got {address:?})"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(format!("vpn address must be https://host[:port] (got {address:?})"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| format!("bad IPv6 address in {address:?}"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("bad port in {address:?}"))?,
            None => 443,
        };
        if host.is_empty() {
            return Err(format!("no host in {address:?}"));
        }
        Ok(Endpoint { host: host.to_string(), port })
    }

    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A response: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// POST `body` (form-encoded) to `path_and_query` on `ep`, within `timeout`
/// for the connection and each read, and twice that for the whole exchange.
pub fn post_form(
    config: &Arc<ClientConfig>,
    ep: &Endpoint,
    path_and_query: &str,
    body: &str,
    timeout: Duration,
) -> Result<Response, DeviceError> {
    let what = ep.host_header();
    let name = ServerName::try_from(ep.host.clone()).map_err(|_| DeviceError::BadRequest(format!("bad host name {:?}", ep.host)))?;
    let agent = http::tls_agent(http::config(timeout), Some(config.clone()), Some(name));
    let resp = agent
        .post(&format!("https://{what}{path_and_query}"))
        .header("Accept", "application/json")
        .header("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
        .send(body)
        .map_err(|e| map_err(&what, e))?;
    let status = resp.status().as_u16();
    let body = resp.into_body().with_config().limit(MAX_BODY).read_to_vec().map_err(|e| map_err(&what, e))?;
    Ok(Response { status, body })
}

/// ureq's errors, with the TLS reasons (which arrive wrapped in an I/O
/// error) spelled out for the operator.
fn map_err(what: &str, e: ureq::Error) -> DeviceError {
    match e {
        ureq::Error::Io(io) => io_error(what, io),
        other => http::map_err(what, other),
    }
}

fn io_error(what: &str, e: io::Error) -> DeviceError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => DeviceError::Timeout(format!("{what}: no answer in time")),
        io::ErrorKind::UnexpectedEof => DeviceError::Transport(format!("{what}: connection closed without an answer")),
        _ => match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            // Our own verifier's reason (the pin) reads better than its Debug form.
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(why))) => {
                DeviceError::Transport(format!("{what}: TLS: console certificate refused: {}", why.0))
            }
            Some(rustls::Error::InvalidCertificate(c)) => DeviceError::Transport(format!(
                "{what}: TLS: console certificate refused: {c} (self-signed console? set fingerprint or ca_file)"
            )),
            Some(tls) => DeviceError::Transport(format!("{what}: TLS: {tls}")),
            None => DeviceError::Transport(format!("{what}: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(Endpoint::parse("https://192.0.2.2:4430").unwrap(), Endpoint { host: "192.0.2.2".into(), port: 4430 });
        assert_eq!(Endpoint::parse("https://vpn.lan/").unwrap(), Endpoint { host: "vpn.lan".into(), port: 443 });
        assert_eq!(Endpoint::parse("https://[fd00::1]:4430").unwrap().host, "fd00::1");
        assert_eq!(Endpoint::parse("https://[fd00::1]:4430").unwrap().host_header(), "[fd00::1]:4430");
        assert!(Endpoint::parse("http://192.0.2.2:4430").is_err());
        assert!(Endpoint::parse("https://192.0.2.2:4430/x").is_err());
        assert!(Endpoint::parse("https://192.0.2.2:0").is_err());
        assert!(Endpoint::parse("https://").is_err());
    }
}
