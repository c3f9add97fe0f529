//! `dma-ctl`, the operator CLI: send a command and print its answer,
//! watch what devices publish, list the devices the broker knows. Its own
//! crate and binary for operators' machines, so the router binary does not
//! carry it (`dma-agent ctl` execs `dma-ctl` where both are installed).
//! Shares the agent library's topics, TLS setup and command signing.
//! Exit codes script: 0 ok, 1 err answer, 2 usage, 3 no answer, 4 broker.

pub mod args;
pub mod connect;
pub mod devices;
pub mod render;
pub mod send;
pub mod watch;

use args::Sub;
use std::process::ExitCode;

pub const EXIT_ERR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_TIMEOUT: u8 = 3;
pub const EXIT_BROKER: u8 = 4;

/// Why the CLI stops short, with its exit code.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: u8,
    pub msg: String,
}

impl Failure {
    pub fn usage(msg: impl Into<String>) -> Failure {
        Failure { code: EXIT_USAGE, msg: msg.into() }
    }
    pub fn timeout(msg: impl Into<String>) -> Failure {
        Failure { code: EXIT_TIMEOUT, msg: msg.into() }
    }
    pub fn broker(msg: impl Into<String>) -> Failure {
        Failure { code: EXIT_BROKER, msg: msg.into() }
    }
}

/// `dma-ctl ARGS...`
pub fn main(argv: &[String]) -> ExitCode {
    let parsed = args::parse(argv, std::env::var("DMA_CTL_PASSWORD").ok());
    let a = match parsed {
        Ok(a) => a,
        Err(f) => {
            eprintln!("dma-ctl: {}\n(dma-ctl --help for usage)", f.msg);
            return ExitCode::from(f.code);
        }
    };
    if a.sub == Sub::Help {
        println!("{}", args::USAGE);
        return ExitCode::SUCCESS;
    }
    if let Sub::Keygen { out, kid } = &a.sub {
        return match send::keygen(out, kid.as_deref()) {
            Ok(public) => {
                println!("{public}");
                ExitCode::SUCCESS
            }
            Err(f) => {
                eprintln!("dma-ctl: {}", f.msg);
                ExitCode::from(f.code)
            }
        };
    }
    match run(&a) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("dma-ctl: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

fn run(a: &args::Args) -> Result<u8, Failure> {
    connect::catch_interrupt();
    let mut conn = connect::Conn::open(&a.broker)?;
    let out = match &a.sub {
        Sub::Send(o) => send::send(&mut conn, &a.prefix, o).map(|resp| {
            if a.json {
                println!("{resp}");
            } else {
                println!("{}", render::answer(&resp));
            }
            render::answer_exit(&resp)
        }),
        Sub::Watch { sn, count } => watch::watch(&mut conn, &a.prefix, sn.as_deref(), *count, a.json).map(|_| 0),
        Sub::Devices { wait } => devices::collect(&mut conn, &a.prefix, *wait).map(|list| {
            devices::print(&list, a.json);
            0
        }),
        Sub::Help | Sub::Keygen { .. } => Ok(0),
    };
    conn.close();
    out
}
