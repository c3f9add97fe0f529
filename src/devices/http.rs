//! The HTTP agent every LAN client uses: bounded connect and read timeouts,
//! no redirects, bounded bodies, errors mapped to [`DeviceError`].

use super::DeviceError;
use std::time::Duration;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::time::Duration as TimeoutAfter;
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Largest answer body read from a LAN device; a device that sends more
/// is treated as malformed rather than allowed to grow our memory.
pub const MAX_BODY: u64 = 1024 * 1024;

/// Buffers per connection. ureq's defaults (128 KiB in, 128 KiB out,
/// zero-filled, held by every pooled connection) cost more memory than the
/// whole rest of the agent; LAN answers stream through 16 KiB just as well
/// (ureq needs at least 10 KiB of input space while sending a body).
const INPUT_BUFFER: usize = 16 * 1024;
const OUTPUT_BUFFER: usize = 8 * 1024;

pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::with_parts(config(timeout), DefaultConnector::default(), InlineResolver)
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
        .build()
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
