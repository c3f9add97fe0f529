//! `dma-sims`: HTTP simulators of the four LAN devices, faithful to the
//! vendor seeds (`shared/seeds/`) and DEVICE-NOTES. Used by the agent's
//! tests, the demo and the standalone `dma-sim` binary; never part of the
//! router build.
//!
//! The simulators implement the vendors' side on their own: this crate
//! depends on nothing of the agent (`dma-agent`), so the compiler keeps the
//! oracle independent — a simulator that used the client's code could never
//! catch the client's mistake (issue 10, item 11; issue 22, item 4).

pub mod goip;
pub mod iad;
pub mod s20;
pub mod server;
pub mod sim;
pub mod vpn;
pub mod wire;

pub use server::{Fault, SimRequest, SimResponse, SimServer};
pub use sim::Sim;

/// The compiler enforces the independence only as long as nobody adds the
/// agent as a dependency: this test fails the day someone does.
#[cfg(test)]
mod independence {
    #[test]
    fn the_simulators_do_not_depend_on_the_agent() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        for (n, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or_default();
            // The agent's package name, or any path dependency leaving this crate.
            let agent = code.contains("dma-agent") || code.contains("dma_agent") || code.contains("path = \"..");
            assert!(!agent, "{}:{}: {line}", manifest.display(), n + 1);
        }
    }
}
