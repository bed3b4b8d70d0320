//! `kvmtune check`: the guide's rules as lints.
//!
//! Invariant: read-only (read-only libvirt connection); exit 0 clean or info, 2 warnings,
//! 1 errors.

use anyhow::Context;

use super::{connect, load, observe, Exit};
use crate::cli::{Cli, Files, Format};

pub fn run(cli: &Cli, files: &Files, format: Format) -> anyhow::Result<Exit> {
    let (d, _) = match load(cli, files) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let hv = connect(cli, &d, true)?;
    let obs = observe(cli, &d, hv.as_ref(), true)?;
    let facts = crate::lint::read_facts(&cli.root).context("reading host facts")?;
    let lints = crate::lint::check(&d, &obs, &facts);
    match format {
        Format::Json => out!("{}", crate::lint::render_json(&lints)),
        Format::Human => out!("{}", crate::lint::render_text(&lints)),
    }
    Ok(match crate::lint::exit_code(&lints) {
        0 => Exit::Success,
        2 => Exit::Attention,
        _ => Exit::Failure,
    })
}
