//! HTTP simulators of the four LAN devices, faithful to the vendor seeds
//! (`shared/seeds/`) and DEVICE-NOTES. Used by the tests, the demo and the
//! standalone `dma-sim` binary; never part of the router build.

pub mod goip;
pub mod iad;
pub mod s20;
pub mod server;
pub mod vpn;
pub mod wire;

pub use server::{Fault, SimRequest, SimResponse, SimServer};

/// The simulators implement the vendors' side on their own: none of their
/// files may use the client's code (`crate::devices`, `crate::util`), or a
/// client's mistake could not show up in a test (issue 10, item 11).
#[cfg(test)]
mod independence {
    use std::path::Path;

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn simulators_do_not_use_the_clients_code() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim");
        if !dir.is_dir() {
            eprintln!("skipped: the sources are not at {} on this machine", dir.display());
            return;
        }
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        assert!(files.len() >= 10, "found only {files:?}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                // Spelt in two halves so that this line does not match itself.
                let uses = [concat!("crate::", "devices"), concat!("crate::", "util")].iter().any(|m| code.contains(m));
                assert!(!uses, "{}:{}: {line}", f.display(), n + 1);
            }
        }
    }
}
