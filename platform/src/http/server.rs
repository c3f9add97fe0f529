//! hyper (HTTP/1.1) on a small tokio runtime, with every resource bounded:
//! request heads at most `MAX_HEAD` bytes (431), bodies at most
//! `request::MAX_BODY` (413), a head must arrive within `HEAD_TIMEOUT` —
//! which is also how long an idle keep-alive connection stays open — and a
//! body within `BODY_TIMEOUT` (408), at most `MAX_CONNS` connections
//! (`conns.rs`). The API's handlers are synchronous (SQLite/PostgreSQL
//! calls): they run on at most `http_threads` blocking threads, and a
//! request waits (asynchronously, holding no thread) for one to be free.

use super::conns::{Conns, Slot};
use super::reply::{ApiError, Reply};
use super::request::{token, Query, Req, MAX_BODY};
use crate::Shared;
use hyper::body::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Request line and headers together, at most.
pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_CONNS: usize = 512;
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Runtime worker threads (network I/O only; handlers run on the blocking pool).
const IO_THREADS: usize = 2;


struct Ctx {
    shared: Arc<Shared>,
    conns: Arc<Conns>,
    /// Permits for the blocking handlers (`http_threads`).
    pool: Arc<Semaphore>,
}

/// Serve on `listener` from a runtime of its own, on a thread named `http`.
pub fn run(shared: Arc<Shared>, listener: std::net::TcpListener) -> Result<(), String> {
    let threads = shared.cfg.http_threads;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(IO_THREADS)
        .max_blocking_threads(threads)
        .thread_name("http")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("http runtime: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| format!("listener: {e}"))?;
    let ctx = Arc::new(Ctx { shared, conns: Conns::new(MAX_CONNS), pool: Arc::new(Semaphore::new(threads)) });
    std::thread::Builder::new()
        .name("http-accept".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return log::error!("http: listener: {e}"),
                };
                accept_loop(ctx, listener).await;
            })
        })
        .map(|_| ())
        .map_err(|e| format!("http thread: {e}"))
}

async fn accept_loop(ctx: Arc<Ctx>, listener: tokio::net::TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                log::warn!("http: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = ctx.conns.admit() else {
            // Every connection is inside a request: refuse this one at once.
            let _ = stream.try_write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_conn(ctx.clone(), slot, stream, peer.ip()));
    }
}

async fn serve_conn(ctx: Arc<Ctx>, slot: Slot, stream: tokio::net::TcpStream, peer: IpAddr) {
    let conn_state = slot.conn.clone();
    let c2 = ctx.clone();
    let service = service_fn(move |req| {
        let (ctx, conn_state) = (c2.clone(), conn_state.clone());
        async move {
            let _busy = ctx.conns.busy(&conn_state);
            Ok::<_, Infallible>(handle(&ctx, req, peer).await)
        }
    });
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new()).header_read_timeout(HEAD_TIMEOUT).max_buf_size(MAX_HEAD).keep_alive(true);
    let conn = b.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = slot.conn.kill.notified() => {
            // Evicted while idle: a request that arrived meanwhile gets a moment to finish.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_millis(500), conn).await;
        }
    }
    drop(slot);
}

async fn handle(ctx: &Arc<Ctx>, req: Request<Incoming>, peer: IpAddr) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let Some(rest) = path.strip_prefix(super::api::BASE) else {
        return respond(crate::console::serve(&parts.method, &path));
    };
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return respond(Reply::err(too_large()));
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(b)) => b.to_bytes().to_vec(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return respond(Reply::err(too_large())),
        Ok(Err(e)) => return respond(Reply::err(ApiError::bad(format!("reading the body: {e}")))),
        Err(_) => return respond(Reply::err(ApiError(408, "timeout", format!("the body did not arrive within {} s", BODY_TIMEOUT.as_secs())))),
    };
    let r = Req { method: parts.method, path: rest.to_string(), query: Query::parse(parts.uri.query().unwrap_or("")), token: token(&parts.headers), body, peer };
    let Ok(permit) = ctx.pool.clone().acquire_owned().await else {
        return respond(Reply::err(ApiError(503, "busy", "shutting down".into())));
    };
    let shared = ctx.shared.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        super::api::handle(&shared, &r)
    })
    .await;
    respond(reply.unwrap_or_else(|e| Reply::err(ApiError::internal(format!("handler failed: {e}")))))
}

fn too_large() -> ApiError {
    ApiError(413, "too_large", format!("body over {MAX_BODY} bytes"))
}

/// The reply with the headers every answer carries (`headers.rs`).
fn respond(r: Reply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = StatusCode::from_u16(r.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static(r.content_type));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    if let Some(s) = r.retry_after {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            h.insert("retry-after", v);
        }
    }
    super::headers::add(h);
    resp
}
