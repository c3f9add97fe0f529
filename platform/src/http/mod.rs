//! The HTTP server (`server.rs`: hyper on tokio, bounded); `/iot/api/v1/…`
//! is the REST API (`api.rs`), everything else the console
//! (`crate::console`).

pub mod api;
pub mod conns;
pub mod headers;
pub mod reply;
pub mod request;
pub mod server;

use crate::Shared;
use std::net::SocketAddr;
use std::sync::Arc;

/// Bind `listen` and serve; returns the bound address.
pub fn start(shared: Arc<Shared>) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind(&shared.cfg.listen).map_err(|e| format!("listen {}: {e}", shared.cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| format!("listen {}: {e}", shared.cfg.listen))?;
    server::run(shared, listener)?;
    Ok(addr)
}
