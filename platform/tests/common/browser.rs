//! Headless Chromium driven through chromedriver's W3C WebDriver HTTP API
//! (Debian's `chromium` and `chromium-driver`).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: PathBuf,
}

fn find_bin(names: &[&str]) -> Option<String> {
    names.iter().find(|p| Path::new(p).exists()).map(|p| p.to_string())
}

impl Browser {
    /// `Err` when chromium or chromedriver is not installed.
    pub fn start() -> Result<Browser, String> {
        let chromium = find_bin(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]).ok_or("chromium is not installed")?;
        let driver_bin = find_bin(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]).ok_or("chromedriver is not installed")?;
        let port = super::free_port();
        let driver = Command::new(driver_bin).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("chromedriver: {e}"))?;
        let profile = super::temp_dir("chromium-profile");
        let mut b = Browser { driver, port, session: String::new(), profile };
        super::wait_for(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).ok()).ok_or("chromedriver did not start")?;
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", b.profile.display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}}});
        let v = b.call("POST", "/session", Some(caps))?;
        b.session = v["sessionId"].as_str().ok_or(format!("no session: {v}"))?.to_string();
        Ok(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let a: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(60))).http_status_as_error(false).build().into();
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let r = match method {
            "GET" => a.get(&url).call(),
            "DELETE" => a.delete(&url).call(),
            _ => a.post(&url).header("Content-Type", "application/json").send(body.unwrap_or(json!({})).to_string()),
        };
        let mut r = r.map_err(|e| format!("{method} {path}: {e}"))?;
        let ok = r.status().is_success();
        let text = r.body_mut().with_config().limit(32 << 20).read_to_string().map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        if !ok {
            return Err(format!("{method} {path}: {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({"url": url}))).expect("navigate");
    }

    pub fn find(&self, css: &str) -> Option<String> {
        self.call("POST", &self.s("/element"), Some(json!({"using": "css selector", "value": css}))).ok().and_then(|v| v[ELEMENT].as_str().map(str::to_string))
    }

    /// Wait for an element.
    pub fn wait(&self, css: &str, timeout: Duration) -> String {
        super::wait_for(timeout, || self.find(css)).unwrap_or_else(|| panic!("no element '{css}' within {timeout:?}"))
    }

    pub fn click(&self, el: &str) {
        self.call("POST", &self.s(&format!("/element/{el}/click")), Some(json!({}))).expect("click");
    }

    pub fn type_text(&self, el: &str, text: &str) {
        self.call("POST", &self.s(&format!("/element/{el}/clear")), Some(json!({}))).expect("clear");
        self.call("POST", &self.s(&format!("/element/{el}/value")), Some(json!({"text": text}))).expect("type");
    }

    pub fn text(&self, el: &str) -> String {
        self.call("GET", &self.s(&format!("/element/{el}/text")), None).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// Run a script in the page (its `return` value).
    pub fn exec(&self, script: &str) -> Value {
        self.call("POST", &self.s("/execute/sync"), Some(json!({"script": script, "args": []}))).unwrap_or(Value::Null)
    }

    /// Wait until the text of `css` satisfies `pred`; returns it.
    pub fn wait_text(&self, css: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        super::wait_for(timeout, || self.find(css).map(|el| self.text(&el)).filter(|t| pred(t)))
            .unwrap_or_else(|| panic!("'{css}' never had the expected text; page text: {}", self.exec("return document.body.innerText")))
    }

    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let v = self.call("GET", &self.s("/screenshot"), None).expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).expect("png base64");
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).expect("artifact dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
