//! `schema`, `completions`, `man`: print what the binary knows about itself.
//!
//! Invariant: read nothing, change nothing.

use clap::CommandFactory;

use super::Exit;
use crate::cli::Cli;

pub fn schema(saved_plan: bool) -> anyhow::Result<Exit> {
    if saved_plan {
        print!("{}", crate::saved::schema_json());
    } else {
        print!("{}", crate::schema::config_schema_json());
    }
    Ok(Exit::Success)
}

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<Exit> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "kvmtune",
        &mut std::io::stdout(),
    );
    Ok(Exit::Success)
}

pub fn man() -> anyhow::Result<Exit> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(Exit::Success)
}
