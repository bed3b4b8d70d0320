//! `schema`, `completions`, `man`: print what the binary knows about itself.
//!
//! Invariant: read nothing, change nothing.

use clap::CommandFactory;

use super::Exit;
use crate::cli::Cli;

pub fn schema(saved_plan: bool) -> anyhow::Result<Exit> {
    if saved_plan {
        out!("{}", crate::saved::schema_json());
    } else {
        out!("{}", crate::schema::config_schema_json());
    }
    Ok(Exit::Success)
}

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<Exit> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kvmtune", &mut buf);
    super::emit(&String::from_utf8_lossy(&buf))?;
    Ok(Exit::Success)
}

pub fn man() -> anyhow::Result<Exit> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
    super::emit(&String::from_utf8_lossy(&buf))?;
    Ok(Exit::Success)
}
