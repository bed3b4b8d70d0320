//! `kvmtune plan`: what would change; `--out` saves the complete plan.
//!
//! Invariant: never changes anything (read-only libvirt connection); a plan with errors is
//! never saved.

use std::path::Path;

use anyhow::Context;

use super::{connect, load, observe, origin, style, Exit};
use crate::cli::{Cli, Files, Format};
use crate::plan::PlanOptions;
use crate::saved::SavedPlan;

pub struct Args<'a> {
    pub format: Format,
    pub diff: bool,
    pub detailed_exitcode: bool,
    pub out: Option<&'a Path>,
    pub opts: PlanOptions,
}

pub fn run(cli: &Cli, files: &Files, a: Args) -> anyhow::Result<Exit> {
    let (d, sources) = match load(cli, files) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let hv = connect(cli, &d, true)?;
    let obs = observe(cli, &d, hv.as_ref(), false)?;
    let p = crate::pipeline::plan_with(&d, &obs, a.opts);
    match a.format {
        Format::Json if a.diff => out!("{}", crate::render::plan_json_with_diff(&p)),
        Format::Json => out!("{}", crate::render::plan_json(&p)),
        Format::Human => out!("{}", crate::render::plan_text(&p, style(), a.diff)),
    }
    super::plan_errors_to_stderr(&p);
    if let Some(out) = a.out {
        if p.has_errors() {
            say!("error: the plan has errors; not saved to {}", out.display());
            return Ok(Exit::Failure);
        }
        let s = SavedPlan::new(&p, &obs, &d, &sources, origin(cli), a.opts);
        // Replaced, never written through: a symlink planted at `out` is not followed.
        crate::host::files::atomic_replace(out, &s.to_json(), 0o600)
            .with_context(|| format!("writing {}", out.display()))?;
        if a.format == Format::Human {
            say!(
                "Saved the plan to {}; apply exactly it with: kvmtune apply {}",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if p.has_errors() {
        Exit::Failure
    } else if a.detailed_exitcode && !p.is_empty() {
        Exit::Attention
    } else {
        Exit::Success
    })
}
