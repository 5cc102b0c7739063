fn main() -> std::process::ExitCode {
    lastbyte::cli::main()
}
