//! A throwaway PostgreSQL server on 127.0.0.1 (Debian's `postgresql`
//! package: initdb + postgres run as the `postgres` user when we are root).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn bin_dir() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql").ok()?.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect();
    v.sort();
    v.pop()
}

fn root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `cmd` run as the `postgres` user when we are root (postgres refuses root).
fn as_pg(bin: &Path) -> Command {
    if root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl Postgres {
    /// `Err` when PostgreSQL is not installed.
    pub fn start() -> Result<Postgres, String> {
        let bins = bin_dir().ok_or("postgresql is not installed (apt-get install postgresql)")?;
        let dir = super::temp_dir("pg");
        if root() {
            let st = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().map_err(|e| e.to_string())?;
            if !st.success() {
                return Err("chown to postgres failed".into());
            }
        }
        let data = dir.join("data");
        let out = as_pg(&bins.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let port = super::free_port();
        let log = std::fs::File::create(dir.join("postgres.log")).map_err(|e| e.to_string())?;
        let child = as_pg(&bins.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        let pg = Postgres { port, dir, child: Some(child) };
        // Ready when it accepts a real connection.
        super::wait_for(Duration::from_secs(30), || postgres::Client::connect(&pg.url(), postgres::NoTls).ok())
            .ok_or_else(|| format!("postgres did not start: {}", std::fs::read_to_string(pg.dir.join("postgres.log")).unwrap_or_default()))?;
        Ok(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM through setpriv reaches postgres itself (setpriv execs it).
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGQUIT);
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
