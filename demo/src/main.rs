//! The no-setup demo: `cargo run --release -p dma-demo`.
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    dma_demo::main(&args)
}
