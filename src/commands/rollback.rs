//! `kvmtune rollback`: undo one apply, through the same plan → show → apply path.
//!
//! Invariant: the record is read under the lock and planned by the forward planner
//! ([`crate::rollback`]); nothing changes before approval.

use super::{approve, execute, json, lock, nothing_to_do, show, Exit};
use crate::cli::{Cli, Format, Locking};
use crate::libvirt::Hypervisor;

pub fn run(
    cli: &Cli,
    to: Option<&str>,
    list: bool,
    auto_approve: bool,
    locking: &Locking,
    format: Format,
) -> anyhow::Result<Exit> {
    if list {
        let ids = crate::state::records(&cli.root)?;
        match format {
            Format::Human => {
                for i in &ids {
                    out!("{i}\n");
                }
            }
            Format::Json => out!("{}", json(&ids)?),
        }
        return Ok(Exit::Success);
    }
    let _lock = lock(cli, locking)?;
    let rec = match crate::state::load(&cli.root, to) {
        Ok(r) => r,
        Err(crate::state::StateError::NoRecord(None)) => {
            say!(
                "Nothing to restore: no apply has been recorded under {}.",
                cli.root.display()
            );
            return nothing_to_do(format);
        }
        Err(e) => {
            say!("error: {e}");
            return Ok(Exit::Failure);
        }
    };
    let hv = if rec.manifest.guests.is_empty() {
        None
    } else {
        Some(Hypervisor::open(&cli.connect, false)?)
    };
    let rb = crate::rollback::plan_rollback(&rec, &cli.root, hv.as_ref())?;
    if format == Format::Human {
        out!(
            "Rolling back to the state before apply {}:\n\n",
            rec.manifest.id
        );
    }
    show(&rb.plan, format)?;
    if rb.plan.has_errors() {
        if format == Format::Json {
            out!("{}", crate::render::plan_json(&rb.plan));
        }
        super::plan_errors_to_stderr(&rb.plan);
        say!("error: the rollback plan has errors; nothing was changed");
        return Ok(Exit::Failure);
    }
    if rb.plan.actions.is_empty() {
        return nothing_to_do(format);
    }
    if !auto_approve && !approve("Roll back these changes?")? {
        return Ok(Exit::Failure);
    }
    execute(
        cli,
        locking,
        "rollback",
        &rb.plan,
        &rb.desired,
        hv.as_ref(),
        format,
    )
}
