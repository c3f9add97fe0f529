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

/// What a server does with one request under the current fault.
pub enum Verdict {
    /// Hand it to the simulator.
    Serve,
    /// Send this instead (a fault's answer, or the `/__sim/fault` switch's).
    Answer(SimResponse),
    /// Break the connection without an answer.
    Drop,
}

/// One server's current fault, shared with its serving threads.
#[derive(Clone, Default)]
pub struct FaultSwitch(Arc<Mutex<Fault>>);

impl FaultSwitch {
    pub fn set(&self, f: Fault) {
        if let Ok(mut g) = self.0.lock() {
            *g = f;
        }
    }
    pub fn get(&self) -> Fault {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// What to do with `req`: `/__sim/fault?mode=…&ms=…` switches the fault;
    /// anything else meets the current one. A `Slow` fault waits here, in
    /// small steps so that a stop stays prompt.
    pub fn judge(&self, req: &SimRequest, stop: &AtomicBool) -> Verdict {
        if req.path == "/__sim/fault" {
            let ms = req.query_param("ms").and_then(|v| v.parse().ok());
            return Verdict::Answer(match Fault::parse(&req.query_param("mode").unwrap_or_default(), ms) {
                Some(f) => {
                    self.set(f);
                    SimResponse::text(200, "ok")
                }
                None => SimResponse::text(400, "mode must be none|slow|error500|garbage|drop"),
            });
        }
        match self.get() {
            Fault::None => Verdict::Serve,
            Fault::Slow(d) => {
                let until = std::time::Instant::now() + d;
                while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Verdict::Serve
            }
            Fault::Error500 => Verdict::Answer(SimResponse::text(500, "Internal Server Error")),
            Fault::Garbage => Verdict::Answer(SimResponse {
                status: 200,
                content_type: "application/json".into(),
                body: b"<html>\x00{\"code\": garb".to_vec(),
            }),
            Fault::Drop => Verdict::Drop,
        }
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

/// Where a simulator's server listens, and its fault switch.
pub struct Endpoint {
    addr: SocketAddr,
    scheme: &'static str,
    faults: FaultSwitch,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, scheme: &'static str) -> Endpoint {
        Endpoint { addr, scheme, faults: FaultSwitch::default() }
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// `http://127.0.0.1:PORT` (or https).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
    pub fn set_fault(&self, f: Fault) {
        self.faults.set(f)
    }
    pub fn fault(&self) -> Fault {
        self.faults.get()
    }
    /// The switch, for the server's threads.
    pub fn faults(&self) -> FaultSwitch {
        self.faults.clone()
    }
}

/// A running simulator HTTP server. Dropping it stops it.
pub struct SimServer {
    endpoint: Endpoint,
    stop: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl std::ops::Deref for SimServer {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
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
        let endpoint = Endpoint::new(addr, "http");
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (server, faults, stop) = (server.clone(), endpoint.faults(), stop.clone());
            std::thread::Builder::new()
                .name(format!("sim-{}", addr.port()))
                .spawn(move || serve(&server, &faults, &stop, &*handler))?
        };
        Ok(SimServer { endpoint, stop, server, thread: Some(thread) })
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

impl crate::sim::Serves for SimServer {
    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
    fn stop(&mut self) {
        SimServer::stop(self)
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(server: &tiny_http::Server, faults: &FaultSwitch, stop: &AtomicBool, handler: &Handler) {
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
        match faults.judge(&sreq, stop) {
            Verdict::Serve => respond(req, handler(&sreq)),
            Verdict::Answer(r) => respond(req, r),
            Verdict::Drop => drop_connection(req),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, query: &str) -> SimRequest {
        SimRequest { method: "POST".into(), path: path.into(), query: query.into(), headers: Vec::new(), body: Vec::new(), remote: None }
    }

    fn answer(v: Verdict) -> Option<(u16, String)> {
        match v {
            Verdict::Answer(r) => Some((r.status, String::from_utf8_lossy(&r.body).into_owned())),
            _ => None,
        }
    }

    #[test]
    fn the_switch_request_sets_the_fault_every_other_request_meets() {
        let (faults, stop) = (FaultSwitch::default(), AtomicBool::new(false));
        assert!(matches!(faults.judge(&req("/api", ""), &stop), Verdict::Serve));
        assert_eq!(answer(faults.judge(&req("/__sim/fault", "mode=error500"), &stop)), Some((200, "ok".into())));
        assert_eq!(faults.get(), Fault::Error500);
        assert_eq!(answer(faults.judge(&req("/api", ""), &stop)), Some((500, "Internal Server Error".into())));
        faults.judge(&req("/__sim/fault", "mode=drop"), &stop);
        assert!(matches!(faults.judge(&req("/api", ""), &stop), Verdict::Drop));
        faults.judge(&req("/__sim/fault", "mode=slow&ms=120"), &stop);
        assert_eq!(faults.get(), Fault::Slow(Duration::from_millis(120)));
        let t = std::time::Instant::now();
        assert!(matches!(faults.judge(&req("/api", ""), &stop), Verdict::Serve));
        assert!(t.elapsed() >= Duration::from_millis(120));
        // A bad mode is refused and changes nothing.
        let (code, _) = answer(faults.judge(&req("/__sim/fault", "mode=melt"), &stop)).unwrap_or_default();
        assert_eq!(code, 400);
        assert_eq!(faults.get(), Fault::Slow(Duration::from_millis(120)));
        faults.judge(&req("/__sim/fault", "mode=garbage"), &stop);
        let (code, body) = answer(faults.judge(&req("/api", ""), &stop)).unwrap_or_default();
        assert_eq!(code, 200);
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_err(), "garbage is not JSON: {body}");
        faults.judge(&req("/__sim/fault", "mode=none"), &stop);
        assert!(matches!(faults.judge(&req("/api", ""), &stop), Verdict::Serve));
    }

    #[test]
    fn a_slow_fault_ends_its_wait_when_the_server_stops() {
        let (faults, stop) = (FaultSwitch::default(), AtomicBool::new(true));
        faults.set(Fault::Slow(Duration::from_secs(30)));
        let t = std::time::Instant::now();
        assert!(matches!(faults.judge(&req("/api", ""), &stop), Verdict::Serve));
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
