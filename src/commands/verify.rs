//! `kvmtune verify`: is the tuning in effect on the running guests?
//!
//! Invariant: read-only; exit 2 when a checked setting differs.

use super::{load, style, Exit};
use crate::cli::{Cli, Files, Format};
use crate::libvirt::Hypervisor;

pub fn run(cli: &Cli, files: &Files, format: Format) -> anyhow::Result<Exit> {
    let (d, _) = match load(cli, files) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let hv = Hypervisor::open(&cli.connect, true)?;
    let report = crate::verify::verify(&d, &cli.root, &hv)?;
    match format {
        Format::Json => out!("{}", crate::render::verify_json(&report)),
        Format::Human => out!("{}", crate::render::verify_text(&report, style())),
    }
    Ok(if report.holds() {
        Exit::Success
    } else {
        Exit::Attention
    })
}
