//! `kvmtune report PLANS...`: one Markdown or HTML summary of a fleet run's per-host plans.
//!
//! Invariant: reads only the files named (bounded, see [`crate::fleet`]), changes nothing and
//! needs no hypervisor; a bad host file fails that host's row, not the report. Exit 0 every
//! host in sync, 2 a host drifts or waits for a restart, 1 a host fails.

use std::path::PathBuf;

use super::Exit;
use crate::cli::ReportFormat;
use crate::fleet::Status;

pub fn run(plans: &[PathBuf], format: ReportFormat) -> anyhow::Result<Exit> {
    let inputs = match crate::fleet::read_inputs(plans) {
        Ok(i) => i,
        Err(e) => {
            say!("error: {e}");
            return Ok(Exit::Failure);
        }
    };
    let fleet = crate::fleet::summarize(&inputs);
    match format {
        ReportFormat::Markdown => out!("{}", crate::fleet::markdown(&fleet)),
        ReportFormat::Html => out!("{}", crate::fleet::html::page(&fleet)),
    }
    Ok(match fleet.worst() {
        Status::Failing => Exit::Failure,
        Status::Drifting | Status::Pending => Exit::Attention,
        Status::InSync => Exit::Success,
    })
}
