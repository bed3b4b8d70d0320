//! The kvmtune binary: parses arguments and runs the command; all logic lives in the library
//! ([`kvmtune::commands`]).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kvmtune::cli::Cli::parse();
    match kvmtune::commands::run(&cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
