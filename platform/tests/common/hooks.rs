//! An HTTP receiver for the platform's callbacks and routes: records every
//! POST (path, `X-MQTT-Topic`, body); answers 500 on paths under `/fail`.

use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub topic: Option<String>,
    pub body: String,
}

impl Hit {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

pub struct Receiver {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("receiver");
        let port = server.server_addr().to_ip().expect("ip").port();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let h = hits.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let topic = req.headers().iter().find(|x| x.field.equiv("X-MQTT-Topic")).map(|x| x.value.to_string());
                let path = req.url().to_string();
                let code = if path.starts_with("/fail") { 500 } else { 200 };
                h.lock().unwrap().push(Hit { path, topic, body });
                let _ = req.respond(tiny_http::Response::from_string("ok").with_status_code(code));
            }
        });
        Receiver { port, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.hits.lock().unwrap().iter().filter(|h| h.path == path).cloned().collect()
    }

    /// Wait until at least `n` hits on `path` satisfy `pred`.
    pub fn wait(&self, path: &str, n: usize, timeout: Duration, pred: impl Fn(&Hit) -> bool) -> Vec<Hit> {
        super::wait_for(timeout, || {
            let v: Vec<Hit> = self.hits(path).into_iter().filter(|h| pred(h)).collect();
            (v.len() >= n).then_some(v)
        })
        .unwrap_or_else(|| panic!("fewer than {n} matching POSTs on {path} within {timeout:?}: {:?}", self.hits(path)))
    }
}


