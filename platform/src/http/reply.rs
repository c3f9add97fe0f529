//! The seed's envelope: `{"status":"ok","data":…}` or
//! `{"status":"err","code","msg"}`, with a matching HTTP status.

use serde_json::{json, Value};
use tiny_http::{Header, Response};

pub struct Reply {
    pub code: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
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

    /// `data` already serialized (kept byte for byte, e.g. a device's answer).
    pub fn ok_raw(data: &str) -> Reply {
        Reply { code: 200, content_type: "application/json", body: format!("{{\"status\":\"ok\",\"data\":{data}}}").into_bytes() }
    }

    pub fn err(e: ApiError) -> Reply {
        Reply::json(e.0, &json!({"status": "err", "code": e.1, "msg": e.2}))
    }

    fn json(code: u16, v: &Value) -> Reply {
        Reply { code, content_type: "application/json", body: v.to_string().into_bytes() }
    }

    pub fn into_response(self) -> Response<std::io::Cursor<Vec<u8>>> {
        let mut r = Response::from_data(self.body).with_status_code(self.code);
        if let Ok(h) = Header::from_bytes("Content-Type", self.content_type) {
            r.add_header(h);
        }
        if let Ok(h) = Header::from_bytes("Cache-Control", "no-store") {
            r.add_header(h);
        }
        r
    }
}
