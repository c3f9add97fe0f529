//! The HTTP server shared by the simulators: one thread serving requests in
//! order, with fault modes that tests switch at run time.
//!
//! Faults are also switchable over HTTP so that a standalone simulator can
//! be broken from a shell: `POST /__sim/fault?mode=slow&ms=3000`,
//! `mode=none|slow|error500|garbage|drop|down`.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A fault mode applied to every request (except `/__sim/*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Answer normally, but only after this long.
    Slow(Duration),
    /// Answer `500 Internal Server Error` with a short text body.
    Error500,
    /// Answer `200` with a body that is not what the API promises.
    Garbage,
    /// Close the connection without answering.
    Drop,
}

impl Fault {
    /// Parse `mode` (and `ms` for `slow`) as sent to `/__sim/fault`.
    pub fn parse(mode: &str, ms: Option<u64>) -> Option<Fault> {
        Some(match mode {
            "none" | "" => Fault::None,
            "slow" => Fault::Slow(Duration::from_millis(ms.unwrap_or(5000))),
            "error500" | "500" => Fault::Error500,
            "garbage" => Fault::Garbage,
            "drop" => Fault::Drop,
            _ => return None,
        })
    }
}

/// What a simulator's handler sees of a request.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (without `?`), empty when absent.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub remote: Option<SocketAddr>,
}

impl SimRequest {
    /// Case-insensitive header lookup.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// Decoded query parameters, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        super::wire::form_pairs(&self.query)
    }
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query_pairs().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A handler's answer.
#[derive(Debug, Clone)]
pub struct SimResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl SimResponse {
    pub fn json(v: &serde_json::Value) -> SimResponse {
        SimResponse::json_status(200, v)
    }
    pub fn json_status(status: u16, v: &serde_json::Value) -> SimResponse {
        SimResponse { status, content_type: "application/json".into(), body: v.to_string().into_bytes() }
    }
    pub fn text(status: u16, t: &str) -> SimResponse {
        SimResponse { status, content_type: "text/plain; charset=utf-8".into(), body: t.as_bytes().to_vec() }
    }
}

type Handler = dyn Fn(&SimRequest) -> SimResponse + Send + Sync;

/// A running simulator HTTP server. Dropping it stops it.
pub struct SimServer {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    stop: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl SimServer {
    /// Bind `bind` (e.g. `127.0.0.1:0` for a free port) and serve `handler`.
    pub fn start<F>(bind: &str, handler: F) -> std::io::Result<SimServer>
    where
        F: Fn(&SimRequest) -> SimResponse + Send + Sync + 'static,
    {
        let server = tiny_http::Server::http(bind).map_err(std::io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("not an IP listener"))?;
        let server = Arc::new(server);
        let fault = Arc::new(Mutex::new(Fault::None));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (server, fault, stop) = (server.clone(), fault.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("sim-{}", addr.port()))
                .spawn(move || serve(&server, &fault, &stop, &*handler))?
        };
        Ok(SimServer { addr, fault, stop, server, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn set_fault(&self, f: Fault) {
        if let Ok(mut g) = self.fault.lock() {
            *g = f;
        }
    }
    pub fn fault(&self) -> Fault {
        self.fault.lock().map(|g| g.clone()).unwrap_or_default()
    }
    /// Stop serving and close the listening socket.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(server: &tiny_http::Server, fault: &Mutex<Fault>, stop: &AtomicBool, handler: &Handler) {
    while !stop.load(Ordering::SeqCst) {
        let mut req = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(_) => break,
        };
        let mut body = Vec::new();
        let _ = req.as_reader().take(4 * 1024 * 1024).read_to_end(&mut body);
        let url = req.url().to_string();
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (url.clone(), String::new()),
        };
        let sreq = SimRequest {
            method: req.method().as_str().to_string(),
            path,
            query,
            headers: req.headers().iter().map(|h| (h.field.as_str().to_string(), h.value.as_str().to_string())).collect(),
            body,
            remote: req.remote_addr().copied(),
        };
        if sreq.path == "/__sim/fault" {
            let ms = sreq.query_param("ms").and_then(|v| v.parse().ok());
            let resp = match Fault::parse(&sreq.query_param("mode").unwrap_or_default(), ms) {
                Some(f) => {
                    if let Ok(mut g) = fault.lock() {
                        *g = f;
                    }
                    SimResponse::text(200, "ok")
                }
                None => SimResponse::text(400, "mode must be none|slow|error500|garbage|drop"),
            };
            respond(req, resp);
            continue;
        }
        let current = fault.lock().map(|g| g.clone()).unwrap_or_default();
        match current {
            Fault::None => respond(req, handler(&sreq)),
            Fault::Slow(d) => {
                // Sleep in small steps so stop() stays prompt.
                let until = std::time::Instant::now() + d;
                while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                respond(req, handler(&sreq))
            }
            Fault::Error500 => respond(req, SimResponse::text(500, "Internal Server Error")),
            Fault::Garbage => respond(
                req,
                SimResponse { status: 200, content_type: "application/json".into(), body: b"<html>\x00{\"code\": garb".to_vec() },
            ),
            Fault::Drop => drop_connection(req),
        }
    }
}

/// Break the exchange: tiny_http keeps the socket for its own reader, so
/// instead of closing it we send bytes that are not HTTP, which the client
/// sees as a broken connection at once (not as a timeout).
fn drop_connection(req: tiny_http::Request) {
    use std::io::Write;
    let mut w = req.into_writer();
    let _ = w.write_all(b"\x00\x15\x03 connection reset by simulator\r\n\r\n");
    let _ = w.flush();
}

fn respond(req: tiny_http::Request, r: SimResponse) {
    let mut resp = tiny_http::Response::from_data(r.body).with_status_code(r.status);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], r.content_type.as_bytes()) {
        resp = resp.with_header(h);
    }
    let _ = req.respond(resp);
}
