//! A minimal HTTPS/1.1 POST over rustls, so that the console's certificate
//! goes through our own verifier (ureq's TLS settings take no custom one).
//! One connection per request (`Connection: close`), every read and write
//! bounded by a deadline, answers bounded by [`MAX_BODY`].

use super::super::http::MAX_BODY;
use super::super::DeviceError;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest status line plus headers accepted.
const MAX_HEAD: usize = 16 * 1024;

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
    let deadline = Instant::now() + timeout * 2;
    let tcp = connect(ep, timeout).map_err(|e| io_error(&what, "connect", e))?;
    let name = ServerName::try_from(ep.host.clone()).map_err(|_| DeviceError::BadRequest(format!("bad host name {:?}", ep.host)))?;
    let conn = ClientConnection::new(config.clone(), name).map_err(|e| DeviceError::Transport(format!("{what}: TLS setup: {e}")))?;
    let mut tls = StreamOwned::new(conn, DeadlineStream { tcp, deadline, step: timeout });
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| io_error(&what, "TLS handshake", e))?;
    }
    let request = format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: {}\r\nUser-Agent: dma-agent/{}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        ep.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    tls.write_all(request.as_bytes())
        .and_then(|_| tls.write_all(body.as_bytes()))
        .and_then(|_| tls.flush())
        .map_err(|e| io_error(&what, "send", e))?;
    read_response(&mut BufReader::new(tls), &what)
}

fn connect(ep: &Endpoint, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host not found");
    for addr in (ep.host.as_str(), ep.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A TCP stream whose reads and writes give up at a deadline.
struct DeadlineStream {
    tcp: TcpStream,
    deadline: Instant,
    step: Duration,
}

impl DeadlineStream {
    fn remaining(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        Ok(left.min(self.step))
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let t = self.remaining()?;
        self.tcp.set_read_timeout(Some(t))?;
        self.tcp.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let t = self.remaining()?;
        self.tcp.set_write_timeout(Some(t))?;
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Map an I/O error (rustls errors arrive wrapped in one) to a device error.
fn io_error(what: &str, stage: &str, e: io::Error) -> DeviceError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => DeviceError::Timeout(format!("{what}: {stage}: no answer in time")),
        io::ErrorKind::UnexpectedEof => DeviceError::Transport(format!("{what}: {stage}: connection closed without an answer")),
        _ => match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            // Our own verifier's reason (the pin) reads better than its Debug form.
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(why))) => {
                DeviceError::Transport(format!("{what}: TLS: console certificate refused: {}", why.0))
            }
            Some(rustls::Error::InvalidCertificate(c)) => DeviceError::Transport(format!(
                "{what}: TLS: console certificate refused: {c} (self-signed console? set fingerprint or ca_file)"
            )),
            Some(tls) => DeviceError::Transport(format!("{what}: TLS: {tls}")),
            None => DeviceError::Transport(format!("{what}: {stage}: {e}")),
        },
    }
}

fn read_response<R: BufRead>(r: &mut R, what: &str) -> Result<Response, DeviceError> {
    let head = read_head(r).map_err(|e| io_error(what, "answer", e))?;
    let bad = |m: &str| DeviceError::Protocol(format!("{what}: {m}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let status = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse::<u16>().map_err(|_| bad("bad status line"))?,
        _ => return Err(bad("not an HTTP answer")),
    };
    let mut length = None;
    let mut chunked = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':').ok_or_else(|| bad("bad header line"))?;
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse::<u64>().map_err(|_| bad("bad Content-Length"))?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = if chunked {
        read_chunked(r, what)?
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(bad(&format!("answer larger than {MAX_BODY} bytes")));
        }
        let mut body = vec![0; n as usize];
        r.read_exact(&mut body).map_err(|e| io_error(what, "answer body", e))?;
        body
    } else {
        read_to_close(r, what)?
    };
    Ok(Response { status, body })
}

/// Read up to the blank line that ends the headers.
fn read_head<R: BufRead>(r: &mut R) -> io::Result<String> {
    let mut head = Vec::new();
    loop {
        let n = r.by_ref().take((MAX_HEAD - head.len()) as u64 + 1).read_until(b'\n', &mut head)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before an answer"));
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "answer headers too large"));
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).replace("\r\n", "\n").replace('\n', "\r\n");
    Ok(text.trim_end().to_string())
}

fn read_chunked<R: BufRead>(r: &mut R, what: &str) -> Result<Vec<u8>, DeviceError> {
    let bad = |m: &str| DeviceError::Protocol(format!("{what}: {m}"));
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        r.by_ref().take(1024).read_until(b'\n', &mut line).map_err(|e| io_error(what, "answer body", e))?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text.trim().split(';').next().unwrap_or_default();
        let size = u64::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, if any, are not needed: the connection closes.
            return Ok(body);
        }
        // checked: a hostile chunk size near u64::MAX must not overflow.
        if (body.len() as u64).checked_add(size).is_none_or(|n| n > MAX_BODY) {
            return Err(bad(&format!("answer larger than {MAX_BODY} bytes")));
        }
        let start = body.len();
        body.resize(start + size as usize, 0);
        r.read_exact(&mut body[start..]).map_err(|e| io_error(what, "answer body", e))?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).map_err(|e| io_error(what, "answer body", e))?;
        if &crlf != b"\r\n" {
            return Err(bad("bad chunk framing"));
        }
    }
}

/// Body without a length: up to the end of the connection. A close without
/// TLS close_notify is accepted here (many consoles' web servers do it).
fn read_to_close<R: BufRead>(r: &mut R, what: &str) -> Result<Vec<u8>, DeviceError> {
    let mut body = Vec::new();
    match r.by_ref().take(MAX_BODY + 1).read_to_end(&mut body) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(io_error(what, "answer body", e)),
    }
    if body.len() as u64 > MAX_BODY {
        return Err(DeviceError::Protocol(format!("{what}: answer larger than {MAX_BODY} bytes")));
    }
    Ok(body)
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

    #[test]
    fn responses() {
        let r = read_response(&mut &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra"[..], "t").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = read_response(&mut &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n3;x=1\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n"[..], "t").unwrap();
        assert_eq!(r.body, b"{\"a\":1}");
        let r = read_response(&mut &b"HTTP/1.0 500 Oops\r\n\r\nboom"[..], "t").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, &b"boom"[..]));
        assert!(matches!(read_response(&mut &b"garbage\r\n\r\n"[..], "t"), Err(DeviceError::Protocol(_))));
        assert!(matches!(read_response(&mut &b""[..], "t"), Err(DeviceError::Transport(_))));
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\nffffffffffffffff\r\n";
        assert!(matches!(read_response(&mut &huge[..], "t"), Err(DeviceError::Protocol(_))));
        let big = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        assert!(matches!(read_response(&mut big.as_bytes(), "t"), Err(DeviceError::Protocol(_))));
    }
}
