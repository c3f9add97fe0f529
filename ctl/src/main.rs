//! `dma-ctl`: the operator CLI's binary (the code is the library, which
//! the demo also uses).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    dma_ctl::main(&args)
}
