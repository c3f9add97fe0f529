//! `dma-sim`: run the LAN device simulators standalone on loopback, so the
//! agent can be tried without the hardware.
//!
//!   dma-sim [all|iad|s20|goip|vpn]... [--base-port N]
//!
//! Each simulator listens on 127.0.0.1 (ports base, base+1, …; default:
//! free ports) and a ready-to-paste `config device` section is printed.
//! Faults can be switched from a shell: `curl -X POST
//! 'http://127.0.0.1:PORT/__sim/fault?mode=slow&ms=3000'` (none, slow,
//! error500, garbage, drop). Runs until Ctrl-C.

use dma_sims::{goip::GoipSim, iad::IadSim, s20::S20Sim, vpn::VpnSim};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    use lexopt::Arg::{Long, Short, Value};
    let mut kinds: Vec<String> = Vec::new();
    let mut base: Option<u16> = None;
    let mut args = lexopt::Parser::from_env();
    loop {
        let arg = match args.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return usage(&e.to_string()),
        };
        match arg {
            Long("base-port") => match args.value().ok().and_then(|v| v.into_string().ok()).and_then(|p| p.parse().ok()) {
                Some(p) => base = Some(p),
                None => return usage("--base-port needs a port number"),
            },
            Short('h') | Long("help") => return usage(""),
            Value(v) if v == "all" => kinds.extend(["iad", "s20", "goip", "vpn"].map(String::from)),
            Value(v) if v == "iad" || v == "s20" || v == "goip" || v == "vpn" => kinds.push(v.to_string_lossy().into_owned()),
            Long(o) => return usage(&format!("unknown argument '--{o}'")),
            Short(o) => return usage(&format!("unknown argument '-{o}'")),
            Value(v) => return usage(&format!("unknown argument '{}'", v.to_string_lossy())),
        }
    }
    if kinds.is_empty() {
        kinds.extend(["iad", "s20", "goip", "vpn"].map(String::from));
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bind = |i: usize| format!("127.0.0.1:{}", base.map(|b| b + i as u16).unwrap_or(0));
    // Keep the simulators alive until the end of main.
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let section = match k.as_str() {
            "iad" => IadSim::start(&bind(i), Default::default()).map(|s| {
                let t = format!("config device 'iad'\n\toption type 'iad'\n\toption address '{}'\n\toption username 'admin'\n\toption password 'admin'\n", s.url());
                keep.push(Box::new(s));
                t
            }),
            "s20" => S20Sim::start(&bind(i), Default::default()).map(|s| {
                let t = format!("config device 's20'\n\toption type 's20'\n\toption address '{}'\n\toption username 'root'\n\toption password 'goodlife123'\n", s.url());
                keep.push(Box::new(s));
                t
            }),
            "goip" => GoipSim::start(&bind(i), Default::default()).map(|s| {
                let t = format!("config device 'goip'\n\toption type 'goip'\n\toption address '{}'\n\toption username 'root'\n\toption password 'root'\n", s.url());
                keep.push(Box::new(s));
                t
            }),
            _ => VpnSim::start(&bind(i), Default::default()).map(|s| {
                let t = format!(
                    "config device 'vpn'\n\toption type 'vpn'\n\toption address '{}'\n\toption api_secret 'sim-vpn-secret'\n\toption fingerprint '{}'\n",
                    s.url(),
                    s.cert_sha256()
                );
                keep.push(Box::new(s));
                t
            }),
        };
        match section {
            Ok(t) => println!("{t}"),
            Err(e) => {
                eprintln!("dma-sim: cannot start the {k} simulator on {}: {e}", bind(i));
                return ExitCode::from(1);
            }
        }
    }
    let act = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_signal),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    for s in [nix::sys::signal::Signal::SIGINT, nix::sys::signal::Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { nix::sys::signal::sigaction(s, &act) };
    }
    eprintln!("dma-sim: {} simulator(s) running; Ctrl-C to stop", keep.len());
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(keep);
    eprintln!("dma-sim: stopped");
    ExitCode::SUCCESS
}

fn usage(msg: &str) -> ExitCode {
    if !msg.is_empty() {
        eprintln!("dma-sim: {msg}");
    }
    eprintln!("usage: dma-sim [all|iad|s20|goip|vpn]... [--base-port N]");
    ExitCode::from(if msg.is_empty() { 0 } else { 2 })
}
