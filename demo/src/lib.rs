//! The no-setup demo (`dma-demo`): an embedded MQTT broker, the four LAN
//! simulators, the agent and the platform (REST API + web console), all on
//! loopback; the platform's view printed live, then a short tour of
//! commands. Never part of the router build.

pub mod broker;
pub mod fleet;
pub mod platform;
pub mod printer;
pub mod tour;

use fleet::{Fleet, PREFIX, SN};
use printer::say;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "usage: dma-demo [--exit-after-tour] [--log-level LEVEL]
  Starts an embedded MQTT broker, simulators of the four LAN devices, the
  agent and the platform's web console on 127.0.0.1, prints what the
  platform sees and runs a short tour of commands; then keeps running until
  Ctrl-C. DMA_DEMO_PASSWORD sets the console's password (default: random).
  --exit-after-tour   stop (as on Ctrl-C) once the tour is done
  --log-level LEVEL   the agent's log level on stderr (default warn)";

struct Opts {
    exit_after_tour: bool,
    level: log::LevelFilter,
}

fn parse(args: &[String]) -> Result<Option<Opts>, String> {
    use lexopt::Arg::{Long, Short, Value};
    let mut o = Opts { exit_after_tour: false, level: log::LevelFilter::Warn };
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("exit-after-tour") => o.exit_after_tour = true,
            Long("log-level") => {
                let l = p.value().ok().and_then(|v| v.into_string().ok()).ok_or("--log-level needs a level")?;
                o.level = dma_agent::logging::parse_level(&l).ok_or_else(|| format!("unknown log level '{l}'"))?;
            }
            Long("help") | Short('h') => return Ok(None),
            Long(f) => return Err(format!("unknown argument '--{f}'")),
            Short(c) => return Err(format!("unknown argument '-{c}'")),
            Value(v) => return Err(format!("unknown argument '{}'", v.to_string_lossy())),
        }
    }
    Ok(Some(o))
}

/// A temp dir for the agent's config and state, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let d = std::env::temp_dir().join(format!("dma-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).map_err(|e| format!("temp dir {}: {e}", d.display()))?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn main(args: &[String]) -> ExitCode {
    let opts = match parse(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("dma-demo: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dma-demo: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(opts: &Opts) -> Result<(), String> {
    say("dma-agent demo: broker, LAN device simulators and the agent, all on 127.0.0.1");
    let port = broker::start()?;
    say(&format!("embedded MQTT broker (rumqttd)  127.0.0.1:{port}"));
    let fleet = Fleet::start()?;
    for l in fleet.describe() {
        say(&format!("simulated {l}"));
    }
    let dir = TempDir::new()?;
    let sms_port = broker::free_port().map_err(|e| format!("no free port: {e}"))?;
    // Signed end to end: the platform (and the tour) sign with a fresh key
    // that the agent trusts; an unsigned command would be refused.
    let key_file = dir.0.join("platform-signing.pem");
    let public = dma_platform::signing::keygen(&key_file, platform::KID)?;
    say(&format!("command signing key (Ed25519)   {public}  (the agent trusts only it)"));
    let config_path = dir.0.join("dma-agent.conf");
    std::fs::write(&config_path, fleet.agent_config(port, &dir.0.join("state"), sms_port, &public)).map_err(|e| format!("config: {e}"))?;
    let config_path = config_path.to_string_lossy().into_owned();
    dma_agent::logging::own_records_only();
    let loaded = dma_agent::config::load(&config_path);
    dma_agent::logging::init(opts.level, loaded.as_ref().map(|c| c.secrets()).unwrap_or_default());
    say(&format!("agent sn {SN}, config and state in {}", dir.0.display()));
    let console = platform::start(port, &dir.0, &key_file)?;
    say(&format!("platform console and REST API   {}  (log in: {} / {})", console.url, platform::USER, console.password));

    let (view, platform) = printer::start(port, PREFIX)?;
    let done = Arc::new(AtomicBool::new(false));
    let agent = {
        let (done, path, loaded) = (done.clone(), config_path.clone(), loaded);
        std::thread::Builder::new()
            .name("agent".into())
            .spawn(move || {
                let r = dma_agent::agent::runtime::run(&path, loaded);
                done.store(true, Ordering::SeqCst);
                r.map(|_| ())
            })
            .map_err(|e| format!("agent thread: {e}"))?
    };
    say("\n--- what the platform sees (Ctrl-C stops the demo) ---");
    let kinds = ["iad", "s20", "goip", "vpn"];
    let all_online = view.wait_for(Duration::from_secs(60), |s| {
        done.load(Ordering::SeqCst) || (s.online == Some(true) && kinds.iter().all(|k| s.periph.get(*k) == Some(&true)))
    });
    if all_online && !done.load(Ordering::SeqCst) {
        say("\n*** agent online; all four LAN devices online: iad s20 goip vpn ***");
        view.wait_for(Duration::from_secs(10), |s| ["sys", "procs", "versions"].iter().all(|t| s.topics.contains(*t)) || done.load(Ordering::SeqCst));
    } else if !done.load(Ordering::SeqCst) {
        let missing: Vec<&str> = view.with(|s| kinds.iter().copied().filter(|k| s.periph.get(*k) != Some(&true)).collect());
        say(&format!("\n*** not every LAN device came online within 60 s (missing: {}) ***", missing.join(" ")));
    }
    if !done.load(Ordering::SeqCst) {
        let answered = tour::run(port, &fleet, &view, &done, &key_file)?;
        if !done.load(Ordering::SeqCst) {
            say(&format!("\n*** tour complete: {answered} command(s) answered ***"));
            if opts.exit_after_tour {
                say("stopping (--exit-after-tour)");
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
            } else {
                say(&format!("the demo keeps running: open the console at {} (log in: {} / {}),", console.url, platform::USER, console.password));
                say("or try the CLI from another shell, e.g.");
                say(&format!("  cargo run -p dma-ctl -- --port {port} devices"));
                say(&format!("  cargo run -p dma-ctl -- --port {port} send {SN} sh --body '{{\"shcmd\":\"uptime\"}}'"));
                say("Ctrl-C to stop.");
            }
        }
    }
    let result = agent.join().map_err(|_| "the agent thread panicked".to_string())?;
    // Let the platform see the agent's offline state.
    view.wait_for(Duration::from_secs(3), |s| s.online == Some(false));
    printer::stop(&view, platform);
    drop(fleet);
    result?;
    say("demo stopped");
    Ok(())
}
