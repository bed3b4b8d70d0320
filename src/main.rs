//! The kvmtune binary: parses arguments and runs the command; all logic lives in the library
//! ([`kvmtune::commands`]). Usage errors exit 1, like every other error (2 means "changes
//! pending", "a setting differs" or "warnings").

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match kvmtune::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match kvmtune::commands::run(&cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            kvmtune::commands::note(&format!("error: {e:#}"));
            ExitCode::from(1)
        }
    }
}
