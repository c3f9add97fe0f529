//! A small bounded HTTP/1.1 server for what the LAN pushes to the agent
//! (the GoIP's SMS and status pushes). Std only, fixed resources whatever
//! the LAN sends:
//!
//! - threads: one I/O thread (accepts, reads, parses, closes) and a fixed
//!   pool of workers that run the handler and write the answer;
//! - connections: at most `max_conns` open at once; a new one evicts the
//!   oldest, so idle connections can never lock out a real push;
//! - the allow list is checked right after `accept`, before a byte is
//!   read: a refused peer gets a canned 403 and the socket is closed;
//! - every connection has a total deadline (`request_timeout`) from accept
//!   to complete request: slowloris and silent peers get 408;
//! - caps on the request line, each header line, the header count and
//!   the head, and on the body (`Content-Length` or chunked): 4xx with a
//!   reason, and never more than the caps in memory;
//! - at most `max_buffered` bytes buffered over all connections;
//! - complete requests wait for a worker in a bounded queue (503 when full);
//! - one request per connection (`Connection: close`);
//! - `stop` returns within about a poll interval plus the handler time.

pub mod request;
mod server;

pub use request::{HttpError, Request};
pub use server::Server;

use std::time::Duration;

/// Every bound of the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Worker threads running the handler.
    pub workers: usize,
    /// Connections open at once (reading a request); the oldest is closed for a new one.
    pub max_conns: usize,
    /// Complete requests waiting for a worker.
    pub queue: usize,
    /// From accept to a complete request.
    pub request_timeout: Duration,
    /// Writing the answer.
    pub write_timeout: Duration,
    /// Request line and each header line, bytes.
    pub max_line: usize,
    /// Header lines.
    pub max_headers: usize,
    /// The whole head, bytes.
    pub max_head: usize,
    /// The body, bytes (decoded, for chunked).
    pub max_body: usize,
    /// Bytes buffered over all open connections (a peer that would pass
    /// it is answered 503 and closed).
    pub max_buffered: usize,
}

impl Limits {
    /// Defaults with this body cap (and a total buffer that fits two such requests).
    pub fn with_max_body(max_body: usize) -> Limits {
        let d = Limits::default();
        let one = max_body.saturating_add(max_body / 2).saturating_add(d.max_head);
        Limits { max_body, max_buffered: d.max_buffered.max(one.saturating_mul(2)), ..d }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            workers: 2,
            max_conns: 64,
            queue: 16,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            max_line: 4096,
            max_headers: 64,
            max_head: 16 * 1024,
            max_body: 256 * 1024,
            max_buffered: 1024 * 1024,
        }
    }
}

/// An answer: status, JSON (or other) body; always `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response { status, content_type: "application/json;charset=utf-8", body: body.to_string().into_bytes() }
    }

    /// `{"code": status, "reason": reason}`.
    pub fn reason(status: u16, reason: &str) -> Response {
        Response::json(status, &serde_json::json!({"code": status, "reason": reason}))
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            status_text(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

pub fn status_text(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}
