//! The package download: streamed to a file outside the flash state dir,
//! bounded in bytes, timed out on a stall (no bytes for `stall`) rather than
//! on total time, so 8 MB over a slow cellular link still arrives; a bounded
//! number of redirects (http or https) followed; the partial file removed on
//! every failure.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Redirects followed before giving up (a CDN or release server may chain two or three).
pub const MAX_REDIRECTS: u32 = 5;

/// Hard ceiling on one download, whatever the pace: 8 MiB at ~400 B/s.
const CEILING: Duration = Duration::from_secs(6 * 3600);

pub struct Limits {
    pub max_bytes: u64,
    pub stall: Duration,
}

/// A file that is removed when dropped: a partial or installed download
/// never stays behind.
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    pub fn new(path: PathBuf) -> TempFile {
        TempFile { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Move to `to`; the new name is removed on drop instead.
    pub fn rename(&mut self, to: PathBuf) -> Result<(), String> {
        std::fs::rename(&self.path, &to).map_err(|e| format!("cannot rename {}: {e}", self.path.display()))?;
        self.path = to;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Stream `url` into `file`, returning the SHA-256 hex of what was written.
pub fn fetch(url: &str, file: &TempFile, limits: &Limits) -> Result<String, String> {
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(limits.stall))
        .timeout_per_read(Some(limits.stall))
        .timeout_per_write(Some(limits.stall))
        .timeout_global(Some(CEILING))
        .max_redirects(MAX_REDIRECTS)
        .http_status_as_error(false)
        .user_agent(concat!("dma-agent/", env!("CARGO_PKG_VERSION")))
        .build();
    // https: rustls with the router's CA bundle (no compiled-in roots).
    let tls = crate::devices::vpn::tls::Trust::System.client_config().ok();
    let agent = crate::devices::http::tls_agent(config, tls, None);
    let stall = limits.stall.as_secs();
    let describe = |e: ureq::Error| match e {
        ureq::Error::Timeout(ureq::Timeout::PerRead) | ureq::Error::Timeout(ureq::Timeout::PerWrite) => {
            format!("stalled: no data for {stall} s")
        }
        ureq::Error::Timeout(t) => format!("timed out: {t}"),
        ureq::Error::TooManyRedirects => format!("more than {MAX_REDIRECTS} redirects"),
        ureq::Error::BodyExceedsLimit(n) => format!("package larger than upgrade_max_bytes ({n} bytes)"),
        other => other.to_string(),
    };
    let resp = agent.get(url).call().map_err(describe)?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let mut body = resp.into_body();
    let mut reader = body.with_config().limit(limits.max_bytes).reader();
    let mut f = std::fs::File::create(file.path()).map_err(|e| format!("cannot create {}: {e}", file.path().display()))?;
    let mut h = Sha256::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                // ureq reports its errors through io::Error; recover the cause.
                return Err(match e.into_inner().map(|inner| inner.downcast::<ureq::Error>()) {
                    Some(Ok(ue)) => describe(*ue),
                    Some(Err(other)) => other.to_string(),
                    None => "read failed".to_string(),
                });
            }
        };
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).ok_or("read overran the buffer")?;
        h.update(chunk);
        f.write_all(chunk).map_err(|e| format!("cannot write {}: {e}", file.path().display()))?;
    }
    f.sync_all().map_err(|e| format!("cannot write {}: {e}", file.path().display()))?;
    Ok(crate::util::hex(&h.finalize()))
}
