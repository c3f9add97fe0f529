//! The seed's envelope: `{"status":"ok","data":…}` or
//! `{"status":"err","code","msg"}`, with a matching HTTP status.

use serde_json::{json, Value};

pub struct Reply {
    pub code: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// `Retry-After` (s), for 429 and 503.
    pub retry_after: Option<u64>,
}

/// An API error: HTTP status, the envelope's `code` and `msg`.
#[derive(Debug)]
pub struct ApiError(pub u16, pub &'static str, pub String);

pub type ApiResult = Result<Reply, ApiError>;

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> ApiError {
        ApiError(400, "bad_request", msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> ApiError {
        ApiError(404, "not_found", msg.into())
    }
    pub fn internal(msg: impl Into<String>) -> ApiError {
        let m = msg.into();
        log::error!("{m}");
        ApiError(500, "internal", m)
    }
}

impl From<String> for ApiError {
    fn from(e: String) -> ApiError {
        ApiError::internal(e)
    }
}

impl Reply {
    pub fn ok(data: Value) -> Reply {
        Reply::json(200, &json!({"status": "ok", "data": data}))
    }

    /// `{"data":…,"status":"ok"}` (the members in the order `ok` gives
    /// them), serialized straight from `data`.
    pub fn ok_ser<T: serde::Serialize>(data: &T) -> Result<Reply, ApiError> {
        #[derive(serde::Serialize)]
        struct Envelope<'a, T> {
            data: &'a T,
            status: &'static str,
        }
        let body = serde_json::to_vec(&Envelope { data, status: "ok" }).map_err(|e| ApiError::internal(format!("reply: {e}")))?;
        Ok(Reply { code: 200, content_type: "application/json", body, retry_after: None })
    }

    /// `data` already serialized (kept byte for byte, e.g. a device's answer).
    pub fn ok_raw(data: &str) -> Reply {
        Reply { code: 200, content_type: "application/json", body: format!("{{\"status\":\"ok\",\"data\":{data}}}").into_bytes(), retry_after: None }
    }

    pub fn err(e: ApiError) -> Reply {
        Reply::json(e.0, &json!({"status": "err", "code": e.1, "msg": e.2}))
    }

    fn json(code: u16, v: &Value) -> Reply {
        Reply { code, content_type: "application/json", body: v.to_string().into_bytes(), retry_after: None }
    }

    /// A plain-text reply (the console's 404).
    pub fn text(code: u16, body: &str) -> Reply {
        Reply { code, content_type: "text/plain; charset=utf-8", body: body.as_bytes().to_vec(), retry_after: None }
    }

    /// 429 with `Retry-After`.
    pub fn throttled(secs: u64, msg: String) -> Reply {
        let mut r = Reply::err(ApiError(429, "too_many_requests", msg));
        r.retry_after = Some(secs.max(1));
        r
    }
}
