//! The web console: plain HTML, CSS and JS compiled into the binary. It
//! calls the same REST API as any other client.

use crate::http::reply::Reply;
use hyper::Method;

const INDEX: &str = include_str!("index.html");
const APP: &str = include_str!("app.js");
const FLEET: &str = include_str!("fleet.js");
const STYLE: &str = include_str!("style.css");

pub fn serve(method: &Method, path: &str) -> Reply {
    let (ct, body) = match (method.as_str(), path) {
        ("GET", "/" | "/index.html" | "/console" | "/console/") => ("text/html; charset=utf-8", INDEX),
        ("GET", "/app.js") => ("text/javascript; charset=utf-8", APP),
        ("GET", "/fleet.js") => ("text/javascript; charset=utf-8", FLEET),
        ("GET", "/style.css") => ("text/css; charset=utf-8", STYLE),
        _ => return Reply::text(404, "not found"),
    };
    Reply { code: 200, content_type: ct, body: body.as_bytes().to_vec(), retry_after: None }
}
