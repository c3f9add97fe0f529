//! The HTTP server: a fixed pool of worker threads on one tiny_http
//! listener; `/iot/api/v1/…` is the REST API (`api.rs`), everything else
//! the console (`crate::console`).

pub mod api;
pub mod request;
pub mod reply;

use crate::Shared;
use std::net::SocketAddr;
use std::sync::Arc;

pub fn start(shared: Arc<Shared>) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http(&shared.cfg.listen).map_err(|e| format!("listen {}: {e}", shared.cfg.listen))?;
    let addr = server.server_addr().to_ip().ok_or("the listener has no IP address")?;
    let server = Arc::new(server);
    for n in 0..shared.cfg.http_threads {
        let (server, shared) = (server.clone(), shared.clone());
        std::thread::Builder::new()
            .name(format!("http-{n}"))
            .spawn(move || loop {
                match server.recv() {
                    Ok(req) => serve(&shared, req),
                    Err(e) => {
                        log::error!("http: {e}");
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            })
            .map_err(|e| format!("http thread: {e}"))?;
    }
    Ok(addr)
}

fn serve(shared: &Shared, mut req: tiny_http::Request) {
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let reply = match path.strip_prefix(api::BASE) {
        Some(rest) => api::handle(shared, &mut req, rest, query),
        None => crate::console::serve(req.method(), path),
    };
    let _ = req.respond(reply.into_response());
}
