//! The HTTP agent every LAN client uses: bounded connect and read timeouts,
//! no redirects, bounded bodies, errors mapped to [`DeviceError`].

use super::DeviceError;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::time::Duration as TimeoutAfter;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, Either, LazyBuffers, NextTimeout, TcpConnector, Transport,
    TransportAdapter,
};

/// Largest answer body read from a LAN device; a device that sends more
/// is treated as malformed rather than allowed to grow our memory.
pub const MAX_BODY: u64 = 1024 * 1024;

/// Buffers per connection. ureq's defaults (128 KiB in, 128 KiB out,
/// zero-filled, held by every pooled connection) cost more memory than the
/// whole rest of the agent; LAN answers stream through 16 KiB just as well
/// (ureq needs at least 10 KiB of input space while sending a body).
const INPUT_BUFFER: usize = 16 * 1024;
const OUTPUT_BUFFER: usize = 8 * 1024;

/// The plain-HTTP agent of the IAD, S20 and GoIP clients. It keeps no idle
/// connections: a pooled connection holds its buffers (24 KiB) and socket
/// between polls, one per device, while a new TCP connection on the LAN
/// costs about a millisecond. (The VPN console's https agent keeps its pool:
/// a TLS handshake per request would cost the router's CPU.)
pub fn agent(timeout: Duration) -> ureq::Agent {
    let config = config_builder(timeout).max_idle_connections(0).build();
    ureq::Agent::with_parts(config, DefaultConnector::default(), InlineResolver)
}

/// Resolves on the calling thread. ureq's default resolver spawns a thread
/// (2 MiB stack mapping) for every request when a timeout is set, so it can
/// give up on a slow DNS: here ~2.5 thread spawns a second with four devices
/// polled every 5 s. LAN devices are addressed by IP (no lookup at all) or
/// a local name the libc resolver answers within its own timeouts, and each
/// device has its own thread, so a slow lookup delays only that device.
#[derive(Debug)]
pub struct InlineResolver;

impl Resolver for InlineResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let inline = NextTimeout { after: TimeoutAfter::NotHappening, ..timeout };
        DefaultResolver::default().resolve(uri, config, inline)
    }
}

/// The configuration of [`agent`], for agents with their own connector.
pub fn config(timeout: Duration) -> Config {
    config_builder(timeout).build()
}

fn config_builder(timeout: Duration) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .input_buffer_size(INPUT_BUFFER)
        .output_buffer_size(OUTPUT_BUFFER)
        .max_response_header_size(INPUT_BUFFER)
        .timeout_connect(Some(timeout))
        .timeout_global(Some(timeout * 2))
        .timeout_recv_response(Some(timeout))
        .timeout_recv_body(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("dma-agent/", env!("CARGO_PKG_VERSION")))
}

/// Map a ureq error to a device error (timeouts separately, so the poller
/// can say why a device went offline).
pub fn map_err(what: &str, e: ureq::Error) -> DeviceError {
    match e {
        ureq::Error::Timeout(t) => DeviceError::Timeout(format!("{what}: {t}")),
        ureq::Error::Io(io) => DeviceError::Transport(format!("{what}: {io}")),
        ureq::Error::ConnectionFailed => DeviceError::Transport(format!("{what}: connection failed")),
        ureq::Error::HostNotFound => DeviceError::Transport(format!("{what}: host not found")),
        ureq::Error::BodyExceedsLimit(n) => DeviceError::Protocol(format!("{what}: answer larger than {n} bytes")),
        other => DeviceError::Transport(format!("{what}: {other}")),
    }
}

/// Read a response body as text, bounded by [`MAX_BODY`].
pub fn read_text(what: &str, resp: ureq::http::Response<ureq::Body>) -> Result<(u16, String), DeviceError> {
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .with_config()
        .limit(MAX_BODY)
        .lossy_utf8(true)
        .read_to_string()
        .map_err(|e| map_err(what, e))?;
    Ok((status, body))
}

/// An agent for http and https: https goes through rustls with `tls` (our
/// verifier, our roots: ureq is built without a TLS feature), checked
/// against `name` or else the URL's host. Without `tls`, https URLs fail
/// with ureq's "TLS required".
pub fn tls_agent(config: Config, tls: Option<Arc<ClientConfig>>, name: Option<ServerName<'static>>) -> ureq::Agent {
    let connector = ().chain(TcpConnector::default()).chain(RustlsWith { config: tls, name });
    ureq::Agent::with_parts(config, connector, InlineResolver)
}

/// Wraps the TCP transport in rustls with our configuration when the URL
/// is https. Modelled on ureq's own rustls connector, which is not linked.
struct RustlsWith {
    config: Option<Arc<ClientConfig>>,
    name: Option<ServerName<'static>>,
}

impl fmt::Debug for RustlsWith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsWith").field("name", &self.name).finish()
    }
}

impl<In: Transport> Connector<In> for RustlsWith {
    type Out = Either<In, TlsTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(tcp) = chained else { return Ok(None) };
        let Some(config) = self.config.as_ref().filter(|_| details.needs_tls() && !tcp.is_tls()) else {
            return Ok(Some(Either::A(tcp)));
        };
        let name = match &self.name {
            Some(n) => n.clone(),
            None => {
                let host = details.uri.host().unwrap_or_default();
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                ServerName::try_from(bare.to_string()).map_err(|_| ureq::Error::BadUri(format!("bad TLS host name {host:?}")))?
            }
        };
        let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        let mut sock = TransportAdapter::new(tcp.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        let mut stream = StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(TlsTransport { buffers, stream })))
    }
}

pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = match self.stream.read(input) {
            // A close without TLS close_notify is taken as the end of the
            // connection (many consoles' web servers do it).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            r => r?,
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
