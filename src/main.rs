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
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(("ctl", rest)) = args.split_first().map(|(a, r)| (a.as_str(), r)) {
        return ctl(rest);
    }
    let mut config_path = config::DEFAULT_PATH.to_string();
    let mut level = "info".to_string();
    let mut sub: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "-c" => match it.next() {
                Some(p) => config_path = p.clone(),
                None => return usage_error("--config needs a path"),
            },
            "--log-level" => match it.next() {
                Some(l) => level = l.clone(),
                None => return usage_error("--log-level needs a level"),
            },
            "--version" | "-V" => {
                println!("dma-agent {}", dma_agent::telemetry::versions::agent_version());
                return ExitCode::SUCCESS;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "check-config" | "run" if sub.is_none() => sub = Some(a.clone()),
            other => return usage_error(&format!("unknown argument '{other}'")),
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
            dma_agent::logging::init(filter, &config_path);
            match agent::runtime::run(&config_path) {
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
fn ctl(args: &[String]) -> ExitCode {
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
