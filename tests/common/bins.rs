//! Binaries of the workspace's other packages (`dma-sim` of dma-sims,
//! `dma-ctl` of dma-ctl): Cargo's `CARGO_BIN_EXE_*` only names the tested
//! package's own binaries, so the test builds the other one with the same
//! cargo and profile (a no-op when `cargo test --workspace` already did)
//! and takes the path Cargo reports. `DMA_<NAME>_BIN` (e.g. `DMA_CTL_BIN`)
//! names a prebuilt one instead.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());

/// Path of binary `bin` of workspace package `package`, built if needed.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let var = format!("DMA_{}_BIN", bin.trim_start_matches("dma-").to_uppercase().replace('-', "_"));
    if let Ok(p) = std::env::var(&var) {
        return PathBuf::from(p);
    }
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = built.iter().find(|(b, _)| b == bin) {
        return p.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(["build", "--quiet", "--message-format=json-render-diagnostics", "-p", package, "--bin", bin])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit());
    // The same profile as this test (target/<profile>/deps/<test>).
    let exe = std::env::current_exe().unwrap_or_default();
    if exe.components().any(|c| c.as_os_str() == "release") {
        c.arg("--release");
    }
    let out = c.output().unwrap_or_else(|e| panic!("cannot run cargo to build {bin} ({e}); or set {var}"));
    assert!(out.status.success(), "cargo build -p {package} --bin {bin} failed; or set {var}");
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo built no executable {bin}; set {var}"));
    built.push((bin.to_string(), path.clone()));
    path
}

/// The operator CLI, `dma-ctl` (its own package; the host build, also when
/// the agent under test is a cross-built one).
pub fn ctl_command() -> Command {
    Command::new(workspace_bin("dma-ctl", "dma-ctl"))
}
