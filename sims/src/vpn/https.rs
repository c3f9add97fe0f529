//! A small HTTPS/1.1 server for the VPN console simulator: rustls on the
//! ring provider, one thread per connection, one request per connection,
//! and the same fault modes (and `/__sim/fault` switch) as
//! [`crate::SimServer`].

use crate::server::{Endpoint, FaultSwitch, Verdict};
use crate::{SimRequest, SimResponse};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const MAX_HEAD: u64 = 16 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long a connection may stay silent before the server gives up on it.
const IDLE: Duration = Duration::from_secs(5);

pub type Handler = dyn Fn(&SimRequest) -> SimResponse + Send + Sync;

/// A TLS server configuration for one PEM certificate and its key.
pub fn server_config(cert_pem: &str, key_pem: &str) -> io::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io::Error::other(format!("certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| io::Error::other(format!("key: {e}")))?;
    let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(io::Error::other)?;
    Ok(Arc::new(config))
}

/// A running HTTPS server. Dropping it stops it.
pub struct HttpsServer {
    endpoint: Endpoint,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::ops::Deref for HttpsServer {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl HttpsServer {
    pub fn start(bind: &str, config: Arc<ServerConfig>, handler: Arc<Handler>) -> io::Result<HttpsServer> {
        let listener = TcpListener::bind(bind)?;
        listener.set_nonblocking(true)?;
        let endpoint = Endpoint::new(listener.local_addr()?, "https");
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Shared { config, handler, faults: endpoint.faults(), stop: stop.clone() };
        let thread = std::thread::Builder::new()
            .name(format!("sim-vpn-{}", endpoint.port()))
            .spawn(move || accept_loop(&listener, &Arc::new(shared)))?;
        Ok(HttpsServer { endpoint, stop, thread: Some(thread) })
    }

    /// Stop accepting; connections in progress end at their next step.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl crate::sim::Serves for HttpsServer {
    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
    fn stop(&mut self) {
        HttpsServer::stop(self)
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Shared {
    config: Arc<ServerConfig>,
    handler: Arc<Handler>,
    faults: FaultSwitch,
    stop: Arc<AtomicBool>,
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((tcp, remote)) => {
                let shared = shared.clone();
                let spawned = std::thread::Builder::new().name("sim-vpn-conn".into()).spawn(move || {
                    // A failed handshake or a client gone away is part of the tests.
                    let _ = serve_connection(tcp, remote, &shared);
                });
                if spawned.is_err() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn serve_connection(tcp: TcpStream, remote: SocketAddr, shared: &Shared) -> io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(IDLE))?;
    tcp.set_write_timeout(Some(IDLE))?;
    let conn = ServerConnection::new(shared.config.clone()).map_err(io::Error::other)?;
    let mut reader = BufReader::new(StreamOwned::new(conn, tcp));
    let req = read_request(&mut reader, remote)?;
    let resp = match shared.faults.judge(&req, &shared.stop) {
        Verdict::Serve => (shared.handler)(&req),
        Verdict::Answer(r) => r,
        // Close without an answer (and without TLS close_notify).
        Verdict::Drop => return Ok(()),
    };
    let tls = reader.get_mut();
    write_response(tls, &resp)?;
    tls.conn.send_close_notify();
    tls.flush()
}

fn read_request<R: BufRead>(r: &mut R, remote: SocketAddr) -> io::Result<SimRequest> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut head = Vec::new();
    loop {
        let before = head.len();
        r.by_ref().take(MAX_HEAD + 1 - head.len() as u64).read_until(b'\n', &mut head)?;
        if head.len() == before {
            return Err(bad("closed before a request"));
        }
        if head.len() as u64 > MAX_HEAD {
            return Err(bad("request head too large"));
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, target) = match (first.next(), first.next()) {
        (Some(m), Some(t)) if !m.is_empty() => (m.to_string(), t.to_string()),
        _ => return Err(bad("bad request line")),
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().map_err(|_| bad("bad Content-Length")))
        .transpose()?
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err(bad("request body too large"));
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Ok(SimRequest { method, path, query, headers, body, remote: Some(remote) })
}

fn write_response<W: Write>(w: &mut W, r: &SimResponse) -> io::Result<()> {
    let reason = match r.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nServer: dma-sim-vpn\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    w.write_all(head.as_bytes())?;
    w.write_all(&r.body)
}
