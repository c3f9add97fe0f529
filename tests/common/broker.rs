//! mosquitto on 127.0.0.1, and what every harness needs beside it: free
//! ports and fresh temp dirs. Shared by the agent's tests and the
//! platform's (`platform/tests/common` includes this file by `#[path]`).
//! `$SYS` is published every second: the platform reads its broker
//! figures from it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Numbers temp dirs and client ids apart within one test process.
pub static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A fresh temp dir per use.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dma-test-{tag}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn mosquitto_bin() -> String {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!("mosquitto not installed: run scripts/test.sh (it installs it) or apt-get install mosquitto");
}

pub fn wait_port(port: u16, up: bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if ok == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A mosquitto broker on 127.0.0.1 with persistence (sessions survive a restart).
pub struct Broker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// `user:password` pairs required when set (anonymous refused).
    auth: Option<Vec<(String, String)>>,
    /// mosquitto `acl_file` when set.
    acl: Option<PathBuf>,
}

impl Broker {
    pub fn start() -> Broker {
        let dir = temp_dir("broker");
        let port = free_port();
        let mut b = Broker { port, dir, child: None, auth: None, acl: None };
        b.restart();
        b
    }

    /// A broker that refuses anonymous clients and knows one user.
    pub fn start_with_password(user: &str, password: &str) -> Broker {
        let dir = temp_dir("broker");
        let port = free_port();
        let mut b = Broker { port, dir, child: None, auth: Some(vec![(user.into(), password.into())]), acl: None };
        b.restart();
        b
    }

    /// A broker that knows these users (anonymous refused) and enforces
    /// the ACL in `acl_file` (e.g. the shipped deploy/mosquitto/dma.acl).
    pub fn start_with_acl(users: &[(&str, &str)], acl_file: &Path) -> Broker {
        let dir = temp_dir("broker");
        let port = free_port();
        let auth = users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect();
        let mut b = Broker { port, dir, child: None, auth: Some(auth), acl: Some(acl_file.to_path_buf()) };
        b.restart();
        b
    }

    fn conf(&self) -> PathBuf {
        let conf = self.dir.join("mosquitto.conf");
        let auth = match &self.auth {
            Some(users) => {
                let pw = self.dir.join("passwd");
                let _ = std::fs::remove_file(&pw);
                for (i, (u, p)) in users.iter().enumerate() {
                    let mut c = Command::new("mosquitto_passwd");
                    c.arg("-b");
                    if i == 0 {
                        c.arg("-c");
                    }
                    let st = c.arg(&pw).arg(u).arg(p).status().expect("mosquitto_passwd");
                    assert!(st.success());
                }
                let acl = self.acl.as_ref().map(|a| format!("acl_file {}\n", a.display())).unwrap_or_default();
                format!("allow_anonymous false\npassword_file {}\n{acl}", pw.display())
            }
            None => "allow_anonymous true\n".to_string(),
        };
        std::fs::write(
            &conf,
            format!(
                "user root\nlistener {} 127.0.0.1\n{auth}persistence true\nsys_interval 1\npersistence_location {}/\nautosave_interval 1\nlog_dest file {}/mosquitto.log\nmax_queued_messages 5000\n",
                self.port,
                self.dir.display(),
                self.dir.display(),
            ),
        )
        .expect("conf");
        conf
    }

    /// (Re)start on the same port.
    pub fn restart(&mut self) {
        let conf = self.conf();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        assert!(wait_port(self.port, true, Duration::from_secs(10)), "mosquitto did not start on {}", self.port);
    }

    /// Stop cleanly (SIGTERM: mosquitto saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
        assert!(wait_port(self.port, false, Duration::from_secs(10)));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- mosquitto log (last lines) ----\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
