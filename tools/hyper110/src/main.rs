//! `lastbyte-hyper110`: the lastbyte binary built against hyper 1.10.1 (see Cargo.toml).

fn main() -> std::process::ExitCode {
    lastbyte::cli::main()
}
