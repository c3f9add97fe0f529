//! The web console: plain HTML, CSS and JS compiled into the binary. It
//! calls the same REST API as any other client.

use crate::http::reply::Reply;
use tiny_http::Method;

const INDEX: &str = include_str!("index.html");
const APP: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

pub fn serve(method: &Method, path: &str) -> Reply {
    let (ct, body) = match (method, path) {
        (Method::Get, "/" | "/index.html" | "/console" | "/console/") => ("text/html; charset=utf-8", INDEX),
        (Method::Get, "/app.js") => ("text/javascript; charset=utf-8", APP),
        (Method::Get, "/style.css") => ("text/css; charset=utf-8", STYLE),
        _ => return Reply { code: 404, content_type: "text/plain; charset=utf-8", body: b"not found".to_vec() },
    };
    Reply { code: 200, content_type: ct, body: body.as_bytes().to_vec() }
}
