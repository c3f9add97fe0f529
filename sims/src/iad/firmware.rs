//! The simulated IAD's firmware upload (seed 4.2.1, 4.2.2).
//!
//! `sys_maintain/upload_permission` grants the upload; with `low_memory`
//! (the default: "if the current available memory of the device is less
//! than the maximum upload value") the core service is shut down: every
//! `/controller/` call answers HTTP 503 until `/upload` completes. A
//! failed upload leaves it down until the box is restarted
//! ([`super::IadSim::power_cycle`]), as the seed warns.
//!
//! `POST /upload` is `multipart/form-data` with `type` (must be
//! `controller`), `keep_sys` (`yes`/`no`, default `no`) and the file in
//! `binary`. Without permission: 403 (the seed says the device is "stuck";
//! the simulator answers rather than hang). Larger than
//! `max_upload_bytes`: HTTP 413 (seed). Success answers
//! `{"msg": "Upgrading Firmware", "code": 200}`, then the IAD is down
//! (every request 503) for `reboot_time` and comes back running the new
//! firmware, whose version the seed does not define: the simulator names
//! it `r0-` + the first 8 hex digits of the file's SHA-256. `keep_sys`
//! `no` resets the settings. The simulator's HTTP server reads at most
//! 4 MiB of a body; a larger upload arrives cut and fails to parse (400).

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// Split a multipart body (RFC 7578) into its parts; `None` when malformed
/// (no closing delimiter, a part without headers or name).
pub fn parse(body: &[u8], boundary: &str) -> Option<Vec<Part>> {
    let delim = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut pos = find(body, &delim, 0)? + delim.len();
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            return Some(parts);
        }
        if body.get(pos..pos + 2) != Some(b"\r\n") {
            return None;
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos)?;
        let head = String::from_utf8_lossy(body.get(pos..head_end)?).into_owned();
        let data_start = head_end + 4;
        let mut next_delim = b"\r\n".to_vec();
        next_delim.extend_from_slice(&delim);
        let data_end = find(body, &next_delim, data_start)?;
        let disposition = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
        let param = |key: &str| {
            disposition.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        parts.push(Part { name: param("name")?, filename: param("filename"), data: body.get(data_start..data_end)?.to_vec() });
        pos = data_end + next_delim.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ncontroller\r\n--XyZ\r\nContent-Disposition: form-data; name=\"binary\"; filename=\"f.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\r\n\x02\r\n--XyZ--\r\n";
        assert_eq!(boundary("multipart/form-data; boundary=XyZ").as_deref(), Some("XyZ"));
        assert_eq!(boundary("application/json"), None);
        let parts = parse(body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].name.as_str(), parts[0].data.as_slice()), ("type", &b"controller"[..]));
        assert_eq!(parts[1].filename.as_deref(), Some("f.bin"));
        assert_eq!(parts[1].data, b"\x00\x01\r\n\x02");
        assert!(parse(&body[..body.len() - 12], "XyZ").is_none());
    }
}
