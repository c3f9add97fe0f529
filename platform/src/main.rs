//! `dma-platform`: the REST API and console of the IoT platform.
use std::io::BufRead;
use std::process::ExitCode;

const USAGE: &str = "usage:
  dma-platform --config FILE [--log-level error|warn|info|debug]
      serve the REST API (/iot/api/v1/…) and the console on the configured address
  dma-platform hash-password
      read a password on stdin, print its argon2 hash for the config's users
  dma-platform keygen --out FILE [--kid K]
      write a new Ed25519 command-signing key (PEM PKCS#8, mode 0600, never
      overwrites) and print its public key 'K:BASE64' for the routers' trusted_key
      (K defaults to k1; config: \"signing_key\": {\"file\": FILE, \"kid\": K})";

fn main() -> ExitCode {
    use lexopt::Arg::{Long, Short, Value};
    let mut config = None;
    let mut level = log::LevelFilter::Info;
    let mut p = lexopt::Parser::from_env();
    loop {
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return usage(&e.to_string()),
        };
        match arg {
            Value(v) if v == "hash-password" => return hash_password(),
            Value(v) if v == "keygen" => return keygen(p),
            Long("config") => match text(&mut p) {
                Some(c) => config = Some(c),
                None => return usage("--config needs a FILE"),
            },
            Long("log-level") => match text(&mut p).and_then(|l| l.parse().ok()) {
                Some(l) => level = l,
                None => return usage("--log-level needs error, warn, info or debug"),
            },
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Long(o) => return usage(&format!("unknown argument '--{o}'")),
            Short(o) => return usage(&format!("unknown argument '-{o}'")),
            Value(v) => return usage(&format!("unknown argument '{}'", v.to_string_lossy())),
        }
    }
    let Some(path) = config else { return usage("--config FILE is required") };
    dma_platform::logger::init(level);
    let cfg = match dma_platform::Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dma-platform: {e}");
            return ExitCode::from(2);
        }
    };
    match dma_platform::start(cfg) {
        Ok(p) => {
            println!("dma-platform: console and REST API on {}", p.url());
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("dma-platform: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("dma-platform: {msg}\n{USAGE}");
    ExitCode::from(2)
}

fn hash_password() -> ExitCode {
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() || line.trim_end_matches(['\r', '\n']).is_empty() {
        eprintln!("dma-platform: give the password on stdin");
        return ExitCode::from(2);
    }
    match dma_platform::auth::hash_password(line.trim_end_matches(['\r', '\n'])) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dma-platform: {e}");
            ExitCode::from(1)
        }
    }
}

/// An option's value as text (None: missing or not UTF-8).
fn text(p: &mut lexopt::Parser) -> Option<String> {
    p.value().ok().and_then(|v| v.into_string().ok())
}

fn keygen(mut p: lexopt::Parser) -> ExitCode {
    use lexopt::Arg::{Long, Short, Value};
    let (mut out, mut kid) = (None, "k1".to_string());
    loop {
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return usage(&format!("keygen: {e}")),
        };
        match arg {
            Long("out") => match text(&mut p) {
                Some(v) => out = Some(v),
                None => return usage("keygen: --out needs a FILE"),
            },
            Long("kid") => match text(&mut p) {
                Some(v) => kid = v,
                None => return usage("keygen: --kid needs a key id"),
            },
            Long(o) => return usage(&format!("keygen: unexpected '--{o}'")),
            Short(o) => return usage(&format!("keygen: unexpected '-{o}'")),
            Value(v) => return usage(&format!("keygen: unexpected '{}'", v.to_string_lossy())),
        }
    }
    let Some(out) = out else { return usage("keygen: --out FILE is required") };
    match dma_platform::signing::keygen(std::path::Path::new(&out), &kid) {
        Ok(public) => {
            println!("{public}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dma-platform: {e}");
            ExitCode::from(1)
        }
    }
}
