//! Parsing one HTTP/1.x request from the bytes read so far, with every
//! size capped. Called again as more bytes arrive: `Ok(None)` means "not
//! complete yet, and nothing over a limit so far".

use super::Limits;

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent (`/goip/gw1?x=1`).
    pub target: String,
    /// `HTTP/1.0` → 0, `HTTP/1.1` → 1.
    pub minor: u8,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why a request is refused: the status and a reason for the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub reason: String,
}

fn err(status: u16, reason: impl Into<String>) -> HttpError {
    HttpError { status, reason: reason.into() }
}

/// What the parser knows so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// More bytes needed.
    Partial {
        /// The head is complete and announces a body (for `Expect: 100-continue`).
        head_done: bool,
        expects_continue: bool,
    },
    Done(Request),
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parse `buf` (everything read from the connection so far).
pub fn parse(buf: &[u8], lim: &Limits) -> Result<Progress, HttpError> {
    // Leading empty lines are tolerated (RFC 9112 §2.2), a few of them.
    let mut start = 0;
    while start < buf.len() && start < 8 && (buf[start] == b'\r' || buf[start] == b'\n') {
        start += 1;
    }
    let buf = buf.get(start..).unwrap_or(&[]);
    let Some(head_len) = find_head_end(buf) else {
        check_partial_head(buf, lim)?;
        return Ok(Progress::Partial { head_done: false, expects_continue: false });
    };
    if head_len > lim.max_head {
        return Err(err(431, format!("request head over {} bytes", lim.max_head)));
    }
    let head = buf.get(..head_len).unwrap_or(&[]);
    let rest = buf.get(head_len..).unwrap_or(&[]);
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or(&[]);
    if request_line.len() > lim.max_line {
        return Err(err(414, format!("request line over {} bytes", lim.max_line)));
    }
    let (method, target, minor) = request_line_parts(request_line)?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.len() > lim.max_line {
            return Err(err(431, format!("header line over {} bytes", lim.max_line)));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(err(400, "folded header lines are not accepted"));
        }
        let colon = line.iter().position(|&b| b == b':').ok_or_else(|| err(400, "header line without ':'"))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(err(400, "malformed header name"));
        }
        if value.iter().any(|&b| b == 0 || b == b'\r') {
            return Err(err(400, "control characters in a header value"));
        }
        if headers.len() >= lim.max_headers {
            return Err(err(431, format!("more than {} header lines", lim.max_headers)));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let value = String::from_utf8_lossy(value).trim().to_string();
        headers.push((name, value));
    }
    let mut req = Request { method, target, minor, headers, body: Vec::new() };
    let expects_continue = req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let te = req.headers.iter().filter(|(n, _)| n == "transfer-encoding").map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let cls = req.headers.iter().filter(|(n, _)| n == "content-length").map(|(_, v)| v.clone()).collect::<Vec<_>>();
    if !te.is_empty() && !cls.is_empty() {
        return Err(err(400, "both Content-Length and Transfer-Encoding"));
    }
    if !te.is_empty() {
        if te.len() != 1 || !te[0].eq_ignore_ascii_case("chunked") {
            return Err(err(501, "only the chunked transfer coding is supported"));
        }
        return match decode_chunked(rest, lim.max_body, lim.max_line)? {
            Some(body) => {
                req.body = body;
                Ok(Progress::Done(req))
            }
            None => Ok(Progress::Partial { head_done: true, expects_continue }),
        };
    }
    let len = match cls.first() {
        None => 0,
        Some(first) => {
            if cls.iter().any(|c| c != first) {
                return Err(err(400, "conflicting Content-Length values"));
            }
            if first.is_empty() || first.len() > 19 || !first.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(400, "malformed Content-Length"));
            }
            first.parse::<u64>().map_err(|_| err(400, "malformed Content-Length"))?
        }
    };
    if len > lim.max_body as u64 {
        return Err(err(413, format!("body of {len} bytes is over {}", lim.max_body)));
    }
    let len = len as usize;
    if cls.is_empty() && req.method == "POST" {
        return Err(err(411, "Content-Length required"));
    }
    match rest.get(..len) {
        Some(body) => {
            req.body = body.to_vec();
            Ok(Progress::Done(req))
        }
        None => Ok(Progress::Partial { head_done: true, expects_continue: expects_continue && len > 0 }),
    }
}

/// The request target of a (possibly incomplete) request, once its
/// request line is complete.
pub fn request_target(buf: &[u8]) -> Option<&str> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let rest = buf.get(start..)?;
    let line = rest.get(..rest.iter().position(|&b| b == b'\n')?)?;
    let t = line.split(|&b| b == b' ').nth(1)?;
    std::str::from_utf8(t).ok().filter(|t| !t.is_empty() && t.len() <= 4096)
}

/// Length of the head including its blank line, if complete.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            // "\n\n" or "\n\r\n"
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// An incomplete head must already be within the limits.
fn check_partial_head(buf: &[u8], lim: &Limits) -> Result<(), HttpError> {
    if buf.len() > lim.max_head {
        return Err(err(431, format!("request head over {} bytes", lim.max_head)));
    }
    let first = buf.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut lines = buf.split(|&b| b == b'\n');
    let _ = lines.next();
    if first.len() > lim.max_line {
        return Err(err(414, format!("request line over {} bytes", lim.max_line)));
    }
    let mut count = 0usize;
    for l in lines {
        if l.len() > lim.max_line {
            return Err(err(431, format!("header line over {} bytes", lim.max_line)));
        }
        count += 1;
        if count > lim.max_headers + 1 {
            return Err(err(431, format!("more than {} header lines", lim.max_headers)));
        }
    }
    if buf.iter().take(16).any(|&b| b == 0) {
        return Err(err(400, "not an HTTP request"));
    }
    Ok(())
}

fn request_line_parts(line: &[u8]) -> Result<(String, String, u8), HttpError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(m), Some(t), Some(v), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(err(400, "malformed request line"));
    };
    if m.is_empty() || m.len() > 16 || !m.iter().all(|&b| is_token(b)) {
        return Err(err(400, "malformed method"));
    }
    if t.is_empty() || t.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(err(400, "malformed request target"));
    }
    let minor = match v {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        _ if v.starts_with(b"HTTP/") => return Err(err(505, "HTTP/1.0 or HTTP/1.1 only")),
        _ => return Err(err(400, "malformed request line")),
    };
    Ok((String::from_utf8_lossy(m).into_owned(), String::from_utf8_lossy(t).into_owned(), minor))
}

/// Decode a chunked body from `buf`: `Ok(None)` when it is not complete
/// yet; every size checked (a chunk size of any length cannot overflow:
/// at most 8 hex digits, and the running total is compared with `max_body`
/// before anything is copied).
pub fn decode_chunked(buf: &[u8], max_body: usize, max_line: usize) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = buf.get(pos..).unwrap_or(&[]);
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > max_line {
                return Err(err(400, "chunk size line too long"));
            }
            return Ok(None);
        };
        if nl > max_line {
            return Err(err(400, "chunk size line too long"));
        }
        let line = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
        let hex = line.split(|&b| b == b';').next().unwrap_or(&[]);
        let hex: &[u8] = trim_ws(hex);
        if hex.is_empty() || hex.len() > 8 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(err(400, "malformed chunk size"));
        }
        let size = usize::from_str_radix(std::str::from_utf8(hex).unwrap_or("x"), 16).map_err(|_| err(400, "malformed chunk size"))?;
        pos = pos.checked_add(nl + 1).ok_or_else(|| err(400, "malformed chunk"))?;
        if size == 0 {
            // Trailer lines until an empty one; all bounded by `max_line` each.
            loop {
                let rest = buf.get(pos..).unwrap_or(&[]);
                let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                    if rest.len() > max_line {
                        return Err(err(431, "trailer line too long"));
                    }
                    return Ok(None);
                };
                if nl > max_line {
                    return Err(err(431, "trailer line too long"));
                }
                let line = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
                pos += nl + 1;
                if line.is_empty() {
                    return Ok(Some(body));
                }
            }
        }
        if body.len().checked_add(size).is_none_or(|total| total > max_body) {
            return Err(err(413, format!("chunked body over {max_body} bytes")));
        }
        let end = pos.checked_add(size).ok_or_else(|| err(413, "chunk too large"))?;
        let Some(data) = buf.get(pos..end) else { return Ok(None) };
        body.extend_from_slice(data);
        pos = end;
        match (buf.get(pos), buf.get(pos + 1)) {
            (Some(b'\r'), Some(b'\n')) => pos += 2,
            (Some(b'\n'), _) => pos += 1,
            (Some(b'\r'), None) | (None, _) => return Ok(None),
            _ => return Err(err(400, "chunk not followed by CRLF")),
        }
    }
}

fn trim_ws(s: &[u8]) -> &[u8] {
    let a = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let b = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(a, |p| p + 1);
    s.get(a..b).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits { max_body: 100, ..Limits::default() }
    }

    fn done(b: &[u8]) -> Request {
        match parse(b, &lim()) {
            Ok(Progress::Done(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_length_and_chunked() {
        let r = done(b"POST /goip/gw1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!((r.method.as_str(), r.target.as_str(), r.body.as_slice()), ("POST", "/goip/gw1", &b"hello"[..]));
        let r = done(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n");
        assert_eq!(r.body, b"abcde");
        assert!(matches!(parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel", &lim()), Ok(Progress::Partial { head_done: true, .. })));
        assert!(matches!(parse(b"POST / HTTP/1.1\r\nContent-Le", &lim()), Ok(Progress::Partial { head_done: false, .. })));
    }

    #[test]
    fn target_of_a_partial_request() {
        assert_eq!(request_target(b"\r\nPOST /goip/gw1 HTTP/1.1\r\nContent-Le"), Some("/goip/gw1"));
        assert_eq!(request_target(b"POST /goip/gw1 HT"), None);
    }

    #[test]
    fn limits_and_malformed() {
        let code = |b: &[u8]| parse(b, &lim()).err().map(|e| e.status);
        assert_eq!(code(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n"), Some(413));
        assert_eq!(code(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"), Some(400));
        assert_eq!(code(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n"), Some(413));
        assert_eq!(code(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), Some(400));
        assert_eq!(code(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), Some(400));
        assert_eq!(code(b"POST / HTTP/1.1\r\n\r\n"), Some(411));
        assert_eq!(code(b"POST / HTTP/2.0\r\n\r\n"), Some(505));
        assert_eq!(code(b"GARBAGE\r\n\r\n"), Some(400));
        let long = [b"POST / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 5000]].concat();
        assert_eq!(code(&long), Some(431));
        let many: Vec<u8> = [b"GET / HTTP/1.1\r\n".to_vec(), b"A: b\r\n".repeat(200)].concat();
        assert_eq!(code(&many), Some(431));
    }
}
