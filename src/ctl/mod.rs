//! The operator CLI (`dma-agent ctl`).
use std::process::ExitCode;

pub fn main(_args: &[String]) -> ExitCode {
    eprintln!("dma-agent ctl: not available in this build yet");
    ExitCode::from(2)
}
