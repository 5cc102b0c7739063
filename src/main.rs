use clap::Parser;
use lastbyte::config::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            let config = match args.validate() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("lastbyte: {e}");
                    return ExitCode::from(2);
                }
            };
            match lastbyte::server::run(config) {
                Ok(lastbyte::server::Exit::Drained) => ExitCode::SUCCESS,
                Ok(lastbyte::server::Exit::Aborted) => ExitCode::from(3),
                Err(e) => {
                    eprintln!("lastbyte: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
