//! The command line: `lastbyte serve` and `lastbyte check-config` (shared by the binary and the
//! hyper 1.10 reproduction build in `tools/hyper110`).

use crate::config::{apply_config_file, Cli, Command, Engine, LogFormat, ServeArgs};
use clap::{CommandFactory, Parser};
use std::io::IsTerminal;
use std::process::ExitCode;

/// `--config FILE` (or `LASTBYTE_CONFIG`) from the raw arguments, before clap parses them, so
/// the file can supply defaults that clap then sees as environment values.
fn config_path() -> Option<std::path::PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    for (i, a) in args.iter().enumerate() {
        if a == "--config" {
            return args.get(i + 1).map(Into::into);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(p.into());
        }
    }
    std::env::var_os("LASTBYTE_CONFIG").map(Into::into)
}

fn init_logs(args: &ServeArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Human => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

/// Runs the command line; the exit code: 0 drained, 1 error, 2 usage, 3 aborted.
pub fn main() -> ExitCode {
    if let Some(path) = config_path() {
        let cmd = Cli::command();
        let known: Vec<String> = cmd
            .find_subcommand("serve")
            .map(|s| s.get_arguments().map(|a| a.get_id().to_string()).collect())
            .unwrap_or_default();
        if let Err(e) = apply_config_file(&path, &known) {
            eprintln!("lastbyte: {e}");
            return ExitCode::from(2);
        }
    }
    let cli = Cli::parse();
    let (args, check) = match cli.command {
        Command::Serve(a) => (a, false),
        Command::CheckConfig(a) => (a, true),
    };
    let log_args = args.clone();
    let config = match args.validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lastbyte: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    init_logs(&log_args);
    let run = match config.engine {
        Engine::Uring => crate::server::run,
        Engine::Hyper => crate::engine_hyper::run,
    };
    match run(config) {
        Ok(crate::server::Exit::Drained) => ExitCode::SUCCESS,
        Ok(crate::server::Exit::Aborted) => ExitCode::from(3),
        Err(e) => {
            eprintln!("lastbyte: {e}");
            ExitCode::from(1)
        }
    }
}
