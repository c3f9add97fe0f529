//! `dma-agent`: the daemon, and its operator tools.

use dma_agent::{agent, config};
use std::process::ExitCode;

const USAGE: &str = "usage:
  dma-agent [--config PATH] [--log-level LEVEL]        run the agent (default config /etc/config/dma-agent)
  dma-agent check-config [--config PATH]               validate and print the effective configuration (secrets masked)
  dma-agent ctl ...                                    runs dma-ctl (the operator CLI, its own binary) if installed
  dma-agent --version | --help
LEVEL: error, warn, info (default), debug, trace";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "ctl") {
        return ctl(args.skip(1));
    }
    let mut config_path = config::DEFAULT_PATH.to_string();
    let mut level = "info".to_string();
    let mut sub: Option<String> = None;
    let mut p = lexopt::Parser::from_args(args);
    loop {
        use lexopt::Arg::{Long, Short, Value};
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            // The only error next() gives: a value on a flag (`--help=x`). Our
            // own text, not lexopt's Display (which costs bytes on the router).
            Err(lexopt::Error::UnexpectedValue { option, .. }) => return usage_error(&format!("{option} takes no value")),
            Err(_) => return usage_error("malformed argument"),
        };
        match arg {
            Long("config") | Short('c') => match p.value().ok().and_then(|v| v.into_string().ok()) {
                Some(v) => config_path = v,
                None => return usage_error("--config needs a path"),
            },
            Long("log-level") => match p.value().ok().and_then(|v| v.into_string().ok()) {
                Some(v) => level = v,
                None => return usage_error("--log-level needs a level"),
            },
            Long("version") | Short('V') => {
                println!("dma-agent {}", dma_agent::telemetry::versions::agent_version());
                return ExitCode::SUCCESS;
            }
            Long("help") | Short('h') => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Value(v) if sub.is_none() && (v == "check-config" || v == "run") => sub = v.into_string().ok(),
            Long(o) => return usage_error(&format!("unknown argument '--{o}'")),
            Short(o) => return usage_error(&format!("unknown argument '-{o}'")),
            Value(v) => return usage_error(&format!("unknown argument '{}'", v.to_string_lossy())),
        }
    }
    let Some(filter) = dma_agent::logging::parse_level(&level) else {
        return usage_error(&format!("unknown log level '{level}'"));
    };
    match sub.as_deref() {
        Some("check-config") => match config::load(&config_path) {
            Ok(c) => {
                println!("{}", serde_json::to_string_pretty(&c.to_json_masked()).unwrap_or_default());
                eprintln!("{config_path}: OK");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        _ => {
            // First, so start-up itself faults in only the code pages it runs.
            dma_agent::code_pages::no_fault_around();
            // Parsed once: the logger learns its secrets, the runtime starts from it.
            let loaded = config::load(&config_path);
            dma_agent::logging::init(filter, loaded.as_ref().map(|c| c.secrets()).unwrap_or_default());
            match agent::runtime::run(&config_path, loaded) {
                Ok(agent::runtime::Exit::Stopped) => ExitCode::SUCCESS,
                Ok(agent::runtime::Exit::Restart) => {
                    let e = agent::runtime::reexec();
                    log::error!("restart failed: {e}");
                    ExitCode::from(1)
                }
                Err(e) => {
                    log::error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// `dma-agent ctl ARGS...`: the operator CLI is its own binary (`dma-ctl`,
/// not on routers: issue 24); where both are installed this name still works.
fn ctl(args: impl Iterator<Item = std::ffi::OsString>) -> ExitCode {
    use std::os::unix::process::CommandExt as _;
    let e = std::process::Command::new("dma-ctl").args(args).exec();
    eprintln!("dma-agent: the operator CLI is the dma-ctl binary (package dma-ctl), not part of dma-agent; cannot run dma-ctl: {e}");
    ExitCode::from(2)
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("dma-agent: {msg}\n{USAGE}");
    ExitCode::from(2)
}

/// dlmalloc over plain mmap/munmap: see `dma_agent::heap`.
#[global_allocator]
static ALLOC: dma_agent::heap::Heap = dma_agent::heap::Heap;
