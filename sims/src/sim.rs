//! What every simulator is, written once: a server (where it listens, its
//! fault switch), the device's state shared with the server's handler, and
//! whatever else runs beside them (the GoIP's pusher and ticker). Each
//! simulator is this type with its own state (`IadSim = Sim<iad::State>`,
//! …) and adds only its device's methods; before, each repeated the
//! server and state fields, the poison-tolerant lock and a `Deref` to its
//! server.

use crate::server::{Endpoint, Fault};
use crate::{SimRequest, SimResponse, SimServer};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// A server a simulator runs on: plain HTTP ([`SimServer`]) or HTTPS
/// (`vpn::HttpsServer`).
pub trait Serves {
    fn endpoint(&self) -> &Endpoint;
    /// Stop serving and close the listening socket.
    fn stop(&mut self);
}

/// A running simulator. Dropping it stops it: the server first, then what
/// runs beside it (`side`, dropped last).
pub struct Sim<S, Srv = SimServer, X = ()> {
    server: Srv,
    state: Arc<Mutex<S>>,
    side: X,
}

impl<S: Send + 'static> Sim<S> {
    /// Serve `bind` over HTTP (`127.0.0.1:0` for a free port), each request
    /// answered by `handle` on the state.
    pub(crate) fn serve(bind: &str, state: S, handle: fn(&Mutex<S>, &SimRequest) -> SimResponse) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let server = SimServer::start(bind, move |req| handle(&shared, req))?;
        Ok(Sim { server, state, side: () })
    }
}

impl<S, Srv: Serves, X> Sim<S, Srv, X> {
    /// A simulator from its running parts.
    pub(crate) fn assemble(server: Srv, state: Arc<Mutex<S>>, side: X) -> Self {
        Sim { server, state, side }
    }

    /// The device's state (a handler that panicked does not lock it away).
    pub(crate) fn state(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn side(&self) -> &X {
        &self.side
    }

    /// Where it listens and its fault switch (what a test of faults takes).
    pub fn endpoint(&self) -> &Endpoint {
        self.server.endpoint()
    }
    pub fn addr(&self) -> SocketAddr {
        self.server.endpoint().addr()
    }
    pub fn port(&self) -> u16 {
        self.server.endpoint().port()
    }
    /// `http://127.0.0.1:PORT` (https for the VPN console).
    pub fn url(&self) -> String {
        self.server.endpoint().url()
    }
    pub fn set_fault(&self, f: Fault) {
        self.server.endpoint().set_fault(f)
    }
    pub fn fault(&self) -> Fault {
        self.server.endpoint().fault()
    }
    /// Stop serving.
    pub fn stop(&mut self) {
        self.server.stop()
    }
}
